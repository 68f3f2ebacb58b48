"""The embedded default data: a real 6-second MUSDB18 excerpt.

The `stempeg` wheel ships "The Easton Ellises - Falcon 69", a 6-second
excerpt of a MUSDB18 test track, as a 5-stream `.stem.mp4` (mixture, drums,
bass, other, vocals), 44.1 kHz stereo. Its stream 0 is a separately limited
master, so the mixture used here is the exact sum of the four stems.
"""

import dataclasses

import numpy as np

EXAMPLE_TRACK = "The Easton Ellises - Falcon 69"
SOURCES = ("drums", "bass", "other", "vocals")


def import_stempeg():
    """Imports `stempeg`, turning its error without ffmpeg/ffprobe into install instructions.

    Raises:
        RuntimeError: if ffmpeg or ffprobe is missing.
    """
    try:
        import stempeg
    except RuntimeError as error:  # stempeg raises at import without ffmpeg/ffprobe
        raise RuntimeError(
            "Reading MUSDB18 stems needs 'ffmpeg' and 'ffprobe' on PATH "
            "(Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg). "
            f"stempeg said: {error}"
        ) from None
    return stempeg


@dataclasses.dataclass(frozen=True)
class Track:
    """A track's sources as float32 arrays `(samples, channels)`.

    Attributes:
        name: str, the track name.
        rate: int, sample rate in Hz.
        sources: dict from source name (`drums`, `bass`, `other`, `vocals`)
            to its audio.
    """

    name: str
    rate: int
    sources: dict

    @property
    def vocals(self):
        return self.sources["vocals"]

    @property
    def accompaniment(self):
        """drums + bass + other."""
        return sum(audio for name, audio in self.sources.items() if name != "vocals")

    @property
    def mixture(self):
        """The exact sum of all sources."""
        return sum(self.sources.values())

    def mono(self):
        """The same track downmixed to one channel, arrays `(samples, 1)`."""
        return dataclasses.replace(
            self,
            sources={
                name: audio.mean(axis=1, keepdims=True) for name, audio in self.sources.items()
            },
        )


def example_path():
    """Path of the embedded `.stem.mp4` inside the installed stempeg wheel."""
    return import_stempeg().example_stem_path()


def load_example():
    """Decodes the embedded MUSDB18 excerpt.

    Returns:
        `Track` with four stereo float32 sources at 44.1 kHz.

    Raises:
        RuntimeError: if ffmpeg/ffprobe are missing.
    """
    stempeg = import_stempeg()
    stems, rate = stempeg.read_stems(stempeg.example_stem_path(), dtype=np.float32)
    # Stream 0 is the limited master; streams 1..4 are the sources.
    sources = {name: np.ascontiguousarray(stems[index + 1]) for index, name in enumerate(SOURCES)}
    return Track(name=EXAMPLE_TRACK, rate=int(rate), sources=sources)
