"""`keras-dae evaluate --jobs`: tracks scored in worker processes give the scores of one process, and resume."""

import json

import pytest

from keras_dae import evaluation
from keras_dae.data.synthetic import write_synthetic_musdb
from keras_dae.spectral import SpectralConfig

CONFIG = SpectralConfig(num_bins=128)  # `model`, `saved_model` (conftest.py): an untrained sf over these bins


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("musdb")
    write_synthetic_musdb(root, num_tracks=3, seconds=2.0, subset="test", seed=5)
    return root


def _scores(out):
    return {str(path.relative_to(out)): json.loads(path.read_text())
            for method in evaluation.METHODS for path in sorted((out / method).rglob("*.json"))}


@pytest.mark.slow
def test_jobs_2_gives_the_scores_of_jobs_1_and_resumes(saved_model, root, tmp_path, run_cli):
    common = ("evaluate", "--model", saved_model, "--root", root, "--is-wav", "--num-bins", CONFIG.num_bins)
    code, one_out, err = run_cli(*common, "--out", tmp_path / "seq", "--jobs", "1")
    assert code == 0, err
    code, two_out, err = run_cli(*common, "--out", tmp_path / "par", "--jobs", "2")
    assert code == 0, err
    one, two = _scores(tmp_path / "seq"), _scores(tmp_path / "par")
    assert len(one) == 3 * 3 and one == two  # 3 methods x 3 tracks, the same numbers
    assert one_out.replace("seq", "par") == two_out  # the same summary table
    for name in ("results.json", "evaluation.json"):
        assert (tmp_path / "seq" / name).read_text() == (tmp_path / "par" / name).read_text()
    # Resume with jobs: only the lost files' tracks (two: both jobs busy) are scored again, to the same numbers.
    scores = {path for method in evaluation.METHODS for path in (tmp_path / "par" / method).rglob("*.json")}
    lost = {tmp_path / "par" / "irm" / "test" / "synthetic-000.json",
            tmp_path / "par" / "model" / "test" / "synthetic-002.json"}
    kept = {path: path.stat().st_mtime_ns for path in scores - lost}
    for path in lost:
        path.unlink()
    code, again, err = run_cli(*common, "--out", tmp_path / "par", "--jobs", "2")
    assert code == 0, err
    assert again == two_out and _scores(tmp_path / "par") == two
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in kept.items())
    assert not [p for p in (tmp_path / "par").rglob(".*") if ".tmp-" in p.name]  # no temporaries left


def test_jobs_0_is_a_usage_error(saved_model, tmp_path, run_cli):
    code, _, err = run_cli("evaluate", "--model", saved_model, "--out", tmp_path / "eval", "--jobs", "0")
    assert code == 2 and "--jobs" in err and err.count("\n") == 1
    assert not (tmp_path / "eval").exists()


def test_jobs_is_checked_and_an_in_memory_model_needs_its_file(model, tmp_path):
    from keras_dae.data.tracks import list_tracks

    with pytest.raises(ValueError, match="jobs must be a positive integer"):
        evaluation.evaluate(None, [], tmp_path, methods=("mixture",), jobs=0)
    with pytest.raises(ValueError, match="cannot be sent to worker processes"):
        evaluation.evaluate(model, list_tracks(None), tmp_path, spectral=CONFIG, jobs=2)


@pytest.mark.slow
def test_an_error_in_a_worker_is_the_one_line_error_of_one_process(saved_model, root, tmp_path, run_cli):
    import shutil

    bad = tmp_path / "musdb"
    shutil.copytree(root, bad)
    # A NaN past the headers, which `list_tracks` checks: the error comes from reading the track, in a worker.
    import numpy as np
    import soundfile

    vocals = sorted((bad / "test").iterdir())[1] / "vocals.wav"
    audio, rate = soundfile.read(vocals, dtype="float32", always_2d=True)
    audio[len(audio) // 2] = np.nan
    soundfile.write(vocals, audio, rate, subtype="FLOAT")
    common = ("evaluate", "--model", saved_model, "--root", bad, "--is-wav", "--num-bins", CONFIG.num_bins,
              "--no-references")
    errors = []
    for jobs in ("1", "2"):
        code, _, err = run_cli(*common, "--out", tmp_path / f"out{jobs}", "--jobs", jobs)
        assert code == 1 and err.count("\n") == 1 and "non-finite samples" in err, err
        assert "synthetic-001" in err and "Traceback" not in err
        errors.append(err.replace(f"out{jobs}", "OUT"))
    assert errors[0] == errors[1]
