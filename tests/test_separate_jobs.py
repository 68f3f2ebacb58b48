"""`keras-dae separate --jobs`: files separated in worker processes give the outputs, errors and order of jobs=1."""

import pickle

import numpy as np
import pytest
import soundfile

from keras_dae.checks import ParameterError
from keras_dae.separation import files as files_module
from keras_dae.separation.files import separate_files
from keras_dae.spectral import SpectralConfig

CONFIG = SpectralConfig(num_bins=64)  # `model`, `saved_model` (conftest.py): an untrained sf over these bins


def _write(path, samples, channels, rate, seed):
    audio = np.random.default_rng(seed).uniform(-0.5, 0.5, (samples, channels)).astype(np.float32)
    soundfile.write(str(path), audio, rate, subtype="FLOAT")
    return path


@pytest.fixture
def inputs(tmp_path):
    """Three short files: stereo 44.1 kHz, mono 22.05 kHz (resampled both ways), stereo 48 kHz."""
    return [_write(tmp_path / "one.wav", 44100 + 17, 2, 44100, 0), _write(tmp_path / "two.wav", 22050 + 3, 1, 22050, 1),
            _write(tmp_path / "three.wav", 30000, 2, 48000, 2)]


def _without_time_stamp(path):
    """The bytes of a float WAV with the time stamp of its PEAK chunk zeroed: libsndfile writes the second of
    the write there, so two runs of the same separation differ in those 4 bytes and nowhere else."""
    data = bytearray(path.read_bytes())
    peak = data.find(b"PEAK", 12)
    if peak >= 0:
        data[peak + 12 : peak + 16] = bytes(4)  # "PEAK", size, version, then the time stamp
    return bytes(data)


@pytest.mark.slow
def test_jobs_2_writes_the_bytes_of_jobs_1_in_the_same_order(saved_model, inputs, tmp_path):
    finished = []
    results = {}
    for jobs in (1, 2):
        on_finish = (lambda num, total: finished.append((num, total))) if jobs == 2 else None
        results[jobs] = separate_files(saved_model, inputs, tmp_path / f"out{jobs}", spectral=CONFIG, jobs=jobs,
                                       on_finish=on_finish)
    (one, one_failed), (two, two_failed) = results[1], results[2]
    assert not one_failed and not two_failed
    assert [path for path, _ in two] == [path for path, _ in one] == inputs  # reported in the order of `paths`
    assert finished == [(1, 3), (2, 3), (3, 3)]
    for (_, first), (_, second) in zip(one, two):
        for stem in ("vocals", "accompaniment"):
            assert first[stem].parent.name == second[stem].parent.name
            assert _without_time_stamp(first[stem]) == _without_time_stamp(second[stem]), stem
    assert sorted(p.name for p in (tmp_path / "out2").rglob("*")) == sorted(
        p.name for p in (tmp_path / "out1").rglob("*"))  # no temporary, no lock file left
    # Again without overwrite: every file is refused in this process (no worker), as with jobs=1.
    again, refused = separate_files(saved_model, inputs, tmp_path / "out2", spectral=CONFIG, jobs=2)
    assert not again and [path for path, _ in refused] == inputs
    assert all(isinstance(error, FileExistsError) and "`overwrite=True`" in str(error) for _, error in refused)


def test_jobs_is_checked_and_an_in_memory_model_needs_its_file(model, inputs, tmp_path):
    with pytest.raises(ValueError, match="cannot be sent to worker processes"):
        separate_files(model, inputs, tmp_path / "out", spectral=CONFIG, jobs=2)
    with pytest.raises(ValueError, match="jobs must be a positive integer"):
        separate_files(model, inputs, tmp_path / "out", spectral=CONFIG, jobs=0)
    assert not (tmp_path / "out").exists()
    # The default for an in-memory model is this process: no error, in order.
    done, failed = separate_files(model, inputs[:2], tmp_path / "out", spectral=CONFIG)
    assert not failed and [path for path, _ in done] == inputs[:2]


def test_a_parameter_error_comes_back_from_a_worker_as_itself():
    """Its `__init__` takes (parameter, message), not its `args`: it pickles through its own `__reduce__`."""
    error = ParameterError("mask", "Unknown mask 'x'; valid ones are subtract, soft. Received: mask='x'")
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is ParameterError and back.parameter == "mask" and str(back) == str(error)


@pytest.mark.slow
def test_a_bad_file_among_good_ones_is_the_one_line_error_of_jobs_1(saved_model, inputs, tmp_path, run_cli):
    data = inputs[0].read_bytes()
    (tmp_path / "truncated.wav").write_bytes(data[: len(data) // 2 + 1])
    audio = np.full((4000, 2), 0.1, np.float32)
    audio[10:13, 0] = np.nan
    soundfile.write(tmp_path / "damaged.wav", audio, 44100, subtype="FLOAT")
    names = ["one.wav", "truncated.wav", "damaged.wav", "two.wav", "three.wav"]
    errs = []
    for jobs in ("1", "2"):
        code, out, err = run_cli("separate", "--model", saved_model, "--out", tmp_path / f"out{jobs}",
                                 "--jobs", jobs, *(tmp_path / name for name in names))
        assert code == 1 and "Traceback" not in err, err
        errs.append(err.replace(f"out{jobs}", "OUT"))
        lines = err.strip().splitlines()
        assert sum("truncated.wav" in line and "truncated" in line for line in lines) == 1
        # The worker's warning comes back to this process's log.
        assert sum("damaged.wav' holds 3 non-finite samples" in line for line in lines) == 1
        assert lines[-1].endswith("1 of 5 files failed; 4 separated.")
        assert [line.split(":")[0] for line in out.splitlines()] == [
            str(tmp_path / name) for name in names if name != "truncated.wav"]  # in the order given
        assert sorted(p.name for p in (tmp_path / f"out{jobs}").iterdir()) == ["damaged", "one", "three", "two"]
        assert not [p for p in (tmp_path / f"out{jobs}").rglob(".*")]  # no temporary, no lock file
    assert errs[0] == errs[1]


def test_cli_jobs_option(saved_model, inputs, tmp_path, run_cli, monkeypatch):
    code, _, err = run_cli("separate", "--model", saved_model, "--out", tmp_path / "out", "--jobs", "0", *inputs)
    assert code == 2 and "--jobs" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
    seen = {}

    def fake(model, paths, out, **kwargs):
        seen.update(kwargs)
        return [], []

    monkeypatch.setattr("keras_dae.separation.separate_files", fake)
    for args, jobs in ((["--jobs", "3"], 3), ([], None)):
        code, _, err = run_cli("separate", "--model", saved_model, "--out", tmp_path / "out", *args, *inputs)
        assert code == 0, err
        assert seen["jobs"] == jobs and seen["model_file"] == saved_model
    code, out, _ = run_cli("separate", "--help")
    assert code == 0 and "--jobs" in out


@pytest.mark.parametrize("cores, expected", [(2, 1), (7, 1), (8, 2), (12, 3), (16, 3)])  # 16: 3 files
def test_default_jobs_is_one_per_four_cores(saved_model, inputs, tmp_path, monkeypatch, cores, expected):
    """One separation keeps several cores busy: the default starts a worker per `CORES_PER_JOB` cores."""
    used = []
    monkeypatch.setattr(files_module, "usable_cores", lambda: cores)
    monkeypatch.setattr(files_module, "_separate_in_workers", lambda pending, out, jobs, *args: used.append(jobs))
    if expected == 1:  # in this process: stop at the first file
        monkeypatch.setattr(files_module, "separate_file", lambda *args, **kwargs: used.append(1) or {})
    separate_files(saved_model, inputs, tmp_path / "out", spectral=CONFIG)
    assert used[0] == expected
