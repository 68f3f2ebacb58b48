"""Reading audio files into float32 arrays `(samples, channels)`."""

import numpy as np
import soundfile


def load_audio(path):
    """Reads a WAV, FLAC or OGG file.

    Args:
        path: str or `Path`.

    Returns:
        tuple `(audio, rate)`: float32 array `(samples, channels)` and the
        sample rate in Hz.

    Raises:
        ValueError: if the file cannot be decoded or holds no samples.
    """
    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise ValueError(f"cannot read audio file '{path}': {error}") from None
    if audio.shape[0] == 0:
        raise ValueError(f"audio file '{path}' holds no samples")
    return np.ascontiguousarray(audio), int(rate)
