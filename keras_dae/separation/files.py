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

With `jobs` > 1, `separate_files` separates the files in that many worker
processes (`keras_dae.workers`: spawned, the parent watched, threads shared
out), one file per task. Each worker loads the model once from its file and
runs `separate_file` on its file exactly as the sequential path does: it
takes the lock of `OUT/<name>/`, writes under temporary names and renames,
so the outputs are those of `jobs=1` byte for byte (but for the time stamp
of the WAV's `PEAK` chunk, which differs between any two runs) and a second
separation into a folder a worker writes is refused. The parent reports the
files in the order given, as `jobs=1` does. After a `kill -9` only the files
in flight are lost; their scratch directories are removed by the next run.

`separation.separate` does the same on arrays in memory (one-shot soxr gives
the same samples as the streaming resampler).
"""

import contextlib
import logging
import os
import re
from pathlib import Path

import numpy as np
import soundfile

from keras_dae import audiofile
from keras_dae.atomic import remove_stale_temporaries, temporary_directory
from keras_dae.checks import positive_int
from keras_dae.errors import cannot_write, writing
from keras_dae.locking import clear_directory, directory_lock
from keras_dae.separation.core import finite_level, input_scale, report_level, resolve, separate_blocks, stems_of
from keras_dae.workers import in_processes, usable_cores

log = logging.getLogger(__name__)

STEMS = ("vocals", "accompaniment")
SUBTYPE = "FLOAT"
MULTI_SUFFIXES = (".stem.mp4", ".stem.m4a")
# The default `jobs` of `separate_files`: one separation keeps several cores busy on its own (TensorFlow's
# matrix products, the FFTs), and a worker's start (TensorFlow, the model) costs 3-4 s: on 2 cores `jobs=2`
# took 1.4-2.2 times as long as `jobs=1` on 4 files of 30-120 s (benchmarks/bench_separate.py).
CORES_PER_JOB = 4
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


# --------------------------------------------------------------------------- worker processes

_WORKER = {}


class _Records(logging.Handler):
    """Collects a worker's log records of one task, to be logged again in the parent (whose log the user sees)."""

    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append((record.name, record.levelno, record.getMessage()))


def _init_worker(model_file, spectral, level):
    _WORKER.update(model_file=model_file, spectral=spectral, model=None)
    logging.getLogger("keras_dae").setLevel(level)  # the parent's level: its warnings and notes come back


def _worker_separate(index, path, out_dir, name, options):
    """One task of a worker: `separate_file` of `path` (the `index`-th input) with this worker's model,
    loaded from its file on first use.

    Returns:
        `(outputs, None, records)`, or `(None, error, records)` for the
        errors after which the sequential path goes on with the next file;
        `records` are the task's log records.
    """
    if _WORKER["model"] is None:
        _WORKER["model"], _ = resolve(_WORKER["model_file"], spectral=_WORKER["spectral"])
    handler = _Records()
    logger = logging.getLogger("keras_dae")
    logger.addHandler(handler)
    try:
        outputs = separate_file(_WORKER["model"], path, out_dir, spectral=_WORKER["spectral"], name=name, **options)
        return outputs, None, handler.records
    except (ValueError, OSError) as error:
        return None, error, handler.records
    finally:
        logger.removeHandler(handler)


def _separate_in_workers(pending, out_dir, jobs, model_file, spectral, options, finish):
    """Separates `pending` (`[(index, path, name)]`) in `jobs` worker processes; `finish(index, outputs, error)`
    as each one finishes."""
    items = [(index, path, out_dir, name, options) for index, path, name in pending]
    level = logging.getLogger("keras_dae").getEffectiveLevel()
    finished = in_processes(_worker_separate, items, jobs=jobs, initializer=_init_worker,
                            initargs=(str(model_file), spectral, level), describe=lambda item: f"'{item[1]}'")
    for (index, *_), (outputs, error, records) in finished:
        finish(index, outputs, error, records)


def default_jobs():
    """`jobs=None` of `separate_files` for a model file: one job per `CORES_PER_JOB` usable cores, at least 1."""
    return max(1, usable_cores() // CORES_PER_JOB)


def _has_outputs(target):
    return any((target / f"{stem}.wav").exists() for stem in STEMS)


def separate_files(model, paths, out_dir, *, spectral=None, on_done=None, on_error=None, progress_for=None,
                   on_finish=None, model_file=None, jobs=None, **options):
    """Separates each of `paths`; a file that fails does not stop the others.

    Args:
        model, spectral: see `separate_file`; the model is loaded once (once per worker process).
        paths: input files.
        out_dir: the output root; one directory per input (`output_names`, computed here, once).
        on_done: callable `(path, outputs)` or None.
        on_error: callable `(path, error)` or None. `on_done` and `on_error`
            are called in the order of `paths` whatever `jobs` (a file that
            finishes before an earlier one is reported after it).
        progress_for: callable `path -> progress callable` or None; used for
            the files separated in this process (all of them with `jobs=1`).
        on_finish: callable `(num_finished, num_files)` or None, called as
            each file finishes (separated or failed), in the order they
            finish: the progress over the files.
        model_file: the model's file, loaded by the worker processes (`jobs`
            > 1); default the file of a `model` given as a path.
        jobs: positive int or None: how many files are separated at once,
            each in its own worker process. None: one job per
            `CORES_PER_JOB` usable cores (at least 1), or 1 for an in-memory `model` without a
            `model_file` (a Keras model cannot be sent to another process);
            1: in this process, one file after another. At most one job per
            file to separate is started (one file left: this process). A
            file whose outputs exist (without `overwrite`) is refused here
            with the error a worker would give, and no worker is started for
            it. Each worker runs `separate_file` as `jobs=1` does: it takes
            the lock of `OUT/<name>/` while it writes there (there is no lock
            of `OUT` itself, as with `jobs=1`), so a second separation into
            that folder is refused meanwhile; the outputs are byte for byte
            those of `jobs=1` (but for the time stamp libsndfile writes in
            a float WAV's `PEAK` chunk, which differs between any two runs),
            and a worker's log records (e.g. the NaN warning) are logged here
            when its file is reported. After a `kill -9` only the files in
            flight are lost; the next run removes their scratch directories.
            Memory per job: one model and one chunk's arrays, bounded by
            `chunk_frames` whatever the file's length (the audio goes through
            raw temporary files): measured peak of a worker (`sf` at 2049
            bins, default `chunk_frames`, 44.1 kHz stereo 16-bit WAV) 1.15 GB
            on a 60-s file and 1.19 GB on a 240-s one, of which 0.82 GB is
            TensorFlow and the model loaded, so about 1.2 GB per job flat
            with length (`jobs=1` needs as much, in this process); this
            process holds TensorFlow and the model too. Each job runs
            TensorFlow and BLAS on `usable_cores() // jobs` threads.
            Processes are spawned: a script calling `separate_files` with
            `jobs` > 1 must do so under `if __name__ == "__main__":`.
        **options: `mask`, `wiener`, `chunk_frames`, `overwrite` (see `separate_file`).

    Returns:
        `(done, failed)`: lists of `(path, outputs)` and `(path, error)`, in the order of `paths`.

    Raises:
        ValueError: `jobs` is not a positive integer, or is > 1 with an in-memory model and no `model_file`.
        ChildProcessError: a worker process died (e.g. out of memory); the finished outputs are kept.
    """
    from keras_dae import runs

    positive_int("jobs", jobs, optional=True)
    if model_file is None and isinstance(model, (str, os.PathLike)):
        model_file = runs.model_file(model)
    model, spectral = resolve(model, spectral=spectral)
    if jobs is None:
        jobs = 1 if model_file is None else default_jobs()
    elif jobs > 1 and model_file is None:
        raise ValueError(
            f"a Keras model in memory cannot be sent to worker processes; give `model` as a file or run "
            f"directory, or its `model_file`, or `jobs=1`. Received: jobs={jobs}"
        )
    paths = list(paths)
    done, failed = [], []
    finished = {}  # index in `paths` -> (outputs, error, a worker's log records), until reported
    state = {"reported": 0, "finished": 0}

    def report(everything=False):
        """A worker's log records, then `on_done` / `on_error`, of the finished files in the order of `paths`
        (with gaps if `everything`): the log and the callbacks of `jobs=1`."""
        for index in sorted(finished):
            if index != state["reported"] and not everything:
                break
            outputs, error, records = finished.pop(index)
            state["reported"] = index + 1
            for logger, level, message in records:
                logging.getLogger(logger).log(level, "%s", message)
            if error is not None:
                failed.append((paths[index], error))
                if on_error:
                    on_error(paths[index], error)
            else:
                done.append((paths[index], outputs))
                if on_done:
                    on_done(paths[index], outputs)

    def finish(index, outputs, error, records=()):
        finished[index] = (outputs, error, records)
        state["finished"] += 1
        if on_finish:
            on_finish(state["finished"], len(paths))
        report()

    def here(index, path, name):
        try:
            progress = progress_for(path) if progress_for else None
            outputs = separate_file(model, path, out_dir, spectral=spectral, name=name, progress=progress, **options)
        except (ValueError, OSError) as error:
            finish(index, None, error)
            return
        finish(index, outputs, None)

    pending = [(index, path, name) for index, (path, name) in enumerate(zip(paths, output_names(paths)))]
    if jobs > 1 and not options.get("overwrite"):
        # Outputs there already: `separate_file` refuses them at once, here, without a worker.
        existing = [item for item in pending if _has_outputs(Path(out_dir) / item[2])]
        pending = [item for item in pending if item not in existing]
        for item in existing:
            here(*item)
    jobs = min(jobs, len(pending))
    if jobs <= 1:  # in this process, in order
        for item in pending:
            here(*item)
        return done, failed
    log.info("separating %d files in %d processes", len(pending), jobs)
    try:
        _separate_in_workers(pending, out_dir, jobs, model_file, spectral, options, finish)
    except BaseException:
        report(everything=True)  # the files finished before the error, then the error
        raise
    return done, failed
