"""Separating audio files of any format and length into `vocals.wav` and `accompaniment.wav`.

For each input, with memory bounded by the chunk size whatever its length:

1. ffmpeg decodes its first audio stream (`keras_dae.audiofile`); the
   samples go to a raw float32 temporary file, and, resampled to the model's
   rate (soxr, streaming), to a second one when the rates differ.
2. `separation.separate_blocks` reads the model-rate file chunk by chunk
   (plain seek-and-read, no memory map) and yields the vocals; they are
   resampled back to the input's rate (streaming),
   cut or padded to the input's exact length, and the accompaniment is the
   input minus them, so the two add up to the input.

   NaN and Inf samples (a damaged float file) are repaired, not refused:
   the model reads them as silence, both outputs are 0 at those samples (so
   the outputs are finite), and a warning names the file and counts them.
   A float input above full scale (peak > 1.0) is separated divided by the
   power of two at or above its peak, and the vocals multiplied back, so the
   vocals stay at the input's level and vocals + accompaniment = input holds
   to float32 rounding of the input wherever it is finite (see
   `separation.core`).
3. Both are written as float32 WAVs under temporary names in
   `OUT/<name>/`, and renamed to `vocals.wav` and `accompaniment.wav` once
   complete. The temporary files live in a hidden directory there
   (`.separate.tmp-<pid>-<random>`, `keras_dae.atomic`), removed whatever
   happens short of a kill; the next separation into `OUT/<name>/` removes
   one whose process is gone. A separation holds the lock of `OUT/<name>/`
   (`keras_dae.locking`): a second one into it is refused while it runs.

`separation.separate` does the same on arrays in memory (one-shot soxr gives
the same samples as the streaming resampler).
"""

import contextlib
import os
import re
from pathlib import Path

import numpy as np
import soundfile

from keras_dae import audiofile
from keras_dae.atomic import remove_stale_temporaries, temporary_directory
from keras_dae.errors import cannot_write, writing
from keras_dae.locking import clear_directory, directory_lock
from keras_dae.separation.core import finite_level, input_scale, report_level, resolve, separate_blocks, stems_of

STEMS = ("vocals", "accompaniment")
SUBTYPE = "FLOAT"
MULTI_SUFFIXES = (".stem.mp4", ".stem.m4a")
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')


def output_name(path, keep_extension=False):
    """A safe directory name for the outputs of `path`: its file name without extension.

    Path separators, control and reserved characters become `_`; leading dots
    and spaces go, so the name can neither escape `OUT` nor hide.
    """
    name = Path(path).name
    if not keep_extension:
        lowered = name.lower()
        suffix = next((s for s in MULTI_SUFFIXES if lowered.endswith(s)), Path(name).suffix)
        name = name[: len(name) - len(suffix)] if suffix and len(suffix) < len(name) else name
    name = _UNSAFE.sub("_", name).strip().lstrip(". ")
    return name or "audio"


def output_names(paths):
    """One distinct `output_name` per input: inputs sharing a name keep their extension, then get -2, -3..."""
    plain = [output_name(path) for path in paths]
    names = [output_name(path, keep_extension=True) if plain.count(name) > 1 else name
             for path, name in zip(paths, plain)]
    seen = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return unique


class _Resampler:
    """Streaming soxr resampler; the identity when the rates are equal."""

    def __init__(self, rate, target_rate, channels):
        self.stream = None
        if rate != target_rate:
            import soxr

            self.stream = soxr.ResampleStream(rate, target_rate, channels, dtype="float32", quality="HQ")
        self.channels = channels

    def push(self, block, last=False):
        if self.stream is None:
            return block
        return self.stream.resample_chunk(np.ascontiguousarray(block, np.float32), last=last)

    def flush(self):
        return self.push(np.zeros((0, self.channels), np.float32), last=True)


def _writer(path, rate, channels):
    return soundfile.SoundFile(str(path), "w", samplerate=rate, channels=channels, subtype=SUBTYPE, format="WAV")


def _decode(info, native_path, model_path, model_rate):
    """Decodes `info.path` to raw float32 `native_path` (and at `model_rate` to `model_path`).

    The native file keeps NaN and Inf samples as they are (the outputs are 0
    there); the model-rate file gets 0 in their place (resampling would
    spread them over their neighbours).

    Returns:
        `(input samples, model-rate samples, NaN and Inf samples, peak of the finite samples)`.
    """
    resampler = _Resampler(info.sample_rate, model_rate, info.channels)
    counts = [0, 0]
    non_finite, peak = 0, 0.0
    with contextlib.ExitStack() as stack:
        native = stack.enter_context(open(native_path, "wb"))
        model = stack.enter_context(open(model_path, "wb")) if model_path != native_path else None

        def write_model(block):
            if model is not None:
                model.write(np.ascontiguousarray(block, np.float32).tobytes())
            counts[1] += len(block)

        for block in audiofile.decode_blocks(info):
            native.write(block.tobytes())
            counts[0] += len(block)
            bad, block_peak = finite_level(block)
            non_finite, peak = non_finite + bad, max(peak, block_peak)
            if bad:
                block = np.where(np.isfinite(block), block, np.float32(0))
            write_model(resampler.push(block))
        write_model(resampler.flush())
    return (*counts, non_finite, peak)


class _RawReader:
    """Random-access reads of a raw float32 temporary (plain reads: a memory map would keep
    every page read resident in this process, growing with the input's length)."""

    def __init__(self, path, samples, channels):
        self.handle = open(path, "rb")
        self.samples, self.channels = samples, channels

    def __len__(self):
        return self.samples

    def __getitem__(self, span):
        start, stop = max(span.start, 0), min(span.stop, self.samples)
        if stop <= start:
            return np.zeros((0, self.channels), np.float32)
        self.handle.seek(start * 4 * self.channels)
        data = self.handle.read((stop - start) * 4 * self.channels)
        return np.frombuffer(data, np.float32).reshape(-1, self.channels)

    def close(self):
        self.handle.close()


def _check_outputs(target, overwrite):
    existing = [name for name in STEMS if (target / f"{name}.wav").exists()]
    if existing and not overwrite:
        raise FileExistsError(f"'{target}' already holds {existing[0]}.wav; pass `overwrite=True` to replace it.")


def separate_file(model, path, out_dir, *, spectral=None, name=None, mask="subtract", wiener=0, chunk_frames=None,
                  overwrite=False, progress=None):
    """Separates one audio file into `out_dir/<name>/vocals.wav` and `accompaniment.wav`.

    Args:
        model: a keras-dae Keras model, a `.keras` file or a run directory.
        path: the input file (anything ffmpeg decodes; `.stem.mp4`: the mixture).
        out_dir: str or `Path`, the output root.
        spectral: `SpectralConfig` or None: the model's run's settings (see
            `separation.resolve`).
        name: the output directory's name; default `output_name(path)`.
        mask, wiener, chunk_frames: see `separation.separate_waveform`.
        overwrite: replace existing outputs.
        progress: callable or None, called as `progress(seconds_done, seconds_total)`.

    Returns:
        dict stem -> `Path` of the written WAV. Both are finite: at NaN and
        Inf input samples both are 0 (a warning counts them); elsewhere
        vocals + accompaniment = input.

    Raises:
        audiofile.AudioFileError: the input cannot be decoded (names the file).
        FileExistsError: outputs exist and not `overwrite`.
        keras_dae.locking.DirectoryInUse: another process is writing `out_dir/<name>`.
        OSError: the output directory cannot be written.
        ValueError: not a keras-dae model, or settings of another `num_bins`.
    """
    model, spectral = resolve(model, spectral=spectral)
    info = audiofile.probe(path)
    target = Path(out_dir) / (name or output_name(path))
    _check_outputs(target, overwrite)
    created = not target.exists()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(cannot_write(error, target, "output directory ")) from None
    try:
        # One writer of OUT/<name> at a time, from before its outputs are checked until they are in place.
        # A full disk meanwhile: one line naming the output directory (`keras_dae.errors.writing`).
        with directory_lock(target), writing(target, "output directory "):
            try:
                _check_outputs(target, overwrite)
                remove_stale_temporaries(target)  # the scratch directory of a killed separation
                with temporary_directory(target, "separate") as tmp:
                    written = _separate_into(model, spectral, info, tmp, mask, wiener, chunk_frames, progress)
                    _check_outputs(target, overwrite)  # someone else may have written meanwhile
                    outputs = {}
                    for stem in STEMS:
                        outputs[stem] = target / f"{stem}.wav"
                        os.replace(written[stem], outputs[stem])
                return outputs
            except BaseException:
                if created:
                    clear_directory(target)  # all but the lock file, which goes with the lock
                raise
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                target.rmdir()  # empty, unless another process has taken it over since
        raise


def _separate_into(model, spectral, info, tmp, mask, wiener, chunk_frames, progress):
    # Temporaries are raw float32 (no WAV layer: plain seek-and-read access, no fsync on close).
    native_path = tmp / "input.f32"
    model_path = tmp / "model-rate.f32" if info.sample_rate != spectral.sample_rate else native_path
    num_samples, model_samples, non_finite, peak = _decode(info, native_path, model_path, spectral.sample_rate)
    scale = input_scale(peak)
    report_level(f"'{info.path}'", non_finite, num_samples * info.channels, peak, scale)
    seconds = num_samples / info.sample_rate
    mixture = _RawReader(native_path, num_samples, info.channels)
    source = _RawReader(model_path, model_samples, info.channels)
    stems = {stem: tmp / f"{stem}.wav" for stem in STEMS}
    back = _Resampler(spectral.sample_rate, info.sample_rate, info.channels)
    with contextlib.ExitStack() as stack:
        stack.callback(mixture.close)
        stack.callback(source.close)
        writers = {stem: stack.enter_context(_writer(stems[stem], info.sample_rate, info.channels)) for stem in STEMS}
        done = 0

        def emit(vocals):
            nonlocal done
            vocals = vocals[: num_samples - done]
            if len(vocals) == 0:
                return
            vocals, accompaniment = stems_of(vocals, mixture[done : done + len(vocals)])  # 0 at NaN/Inf input
            writers["vocals"].write(vocals)
            writers["accompaniment"].write(accompaniment)
            done += len(vocals)
            if progress is not None:
                progress(done / info.sample_rate, seconds)

        blocks = separate_blocks(model, lambda start, stop: source[start:stop], len(source), info.channels,
                                 spectral=spectral, mask=mask, wiener=wiener, chunk_frames=chunk_frames, scale=scale)
        for block in blocks:
            emit(back.push(block))
        emit(back.flush())
        if done < num_samples:  # the resampled length can fall a sample short
            emit(np.zeros((num_samples - done, info.channels), np.float32))
    return stems


def separate_files(model, paths, out_dir, *, spectral=None, on_done=None, on_error=None, progress_for=None,
                   **options):
    """Separates each of `paths`; a file that fails does not stop the others.

    Args:
        model, spectral: see `separate_file`; the model is loaded once.
        paths: input files.
        out_dir: the output root; one directory per input (`output_names`).
        on_done: callable `(path, outputs)` or None.
        on_error: callable `(path, error)` or None.
        progress_for: callable `path -> progress callable` or None.
        **options: `mask`, `wiener`, `chunk_frames`, `overwrite` (see `separate_file`).

    Returns:
        `(done, failed)`: lists of `(path, outputs)` and `(path, error)`.
    """
    model, spectral = resolve(model, spectral=spectral)
    done, failed = [], []
    for path, name in zip(paths, output_names(paths)):
        try:
            progress = progress_for(path) if progress_for else None
            outputs = separate_file(model, path, out_dir, spectral=spectral, name=name, progress=progress, **options)
        except (ValueError, OSError) as error:
            failed.append((path, error))
            if on_error:
                on_error(path, error)
            continue
        done.append((path, outputs))
        if on_done:
            on_done(path, outputs)
    return done, failed
