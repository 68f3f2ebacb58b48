"""`keras-dae evaluate`: museval scores, references, resuming, the summary table."""

import json

import numpy as np
import pytest

from keras_dae import evaluation
from keras_dae.data.synthetic import write_synthetic_musdb
from keras_dae.data.tracks import list_tracks
from keras_dae.evaluation import evaluate, format_table, ideal_ratio_mask, load_sources, score_path, summarize
from keras_dae.spectral import SpectralConfig

CONFIG = SpectralConfig(num_bins=128)  # `model`, `saved_model` (conftest.py): an untrained sf over these bins


@pytest.fixture(scope="module")
def tracks(tmp_path_factory):
    root = tmp_path_factory.mktemp("musdb")
    write_synthetic_musdb(root, num_tracks=2, seconds=3.0, subset="test", seed=7)
    return list_tracks(root, is_wav=True, subsets="test")


@pytest.mark.slow
def test_oracle_beats_the_model_and_the_mixture_and_resumes(model, tracks, tmp_path, monkeypatch):
    import museval

    calls = []
    real = museval.eval_mus_track
    monkeypatch.setattr(museval, "eval_mus_track", lambda *a, **k: calls.append(a[0].name) or real(*a, **k))
    summary = evaluate(model, tracks, tmp_path, spectral=CONFIG)
    assert len(calls) == 6  # 2 tracks x 3 methods
    vocals = {method: summary[method]["vocals"]["SDR"]["median"] for method in evaluation.METHODS}
    assert vocals["irm"] > vocals["model"] and vocals["irm"] > vocals["mixture"]
    assert summary["irm"]["accompaniment"]["SDR"]["median"] > summary["mixture"]["accompaniment"]["SDR"]["median"]
    for method in evaluation.METHODS:
        assert summary[method]["tracks"] == 2
        for track in tracks:
            scores = json.loads(score_path(tmp_path, method, track).read_text())
            assert {t["name"] for t in scores["targets"]} == {"vocals", "accompaniment"}
            assert len(scores["targets"][0]["frames"]) == 3  # 1-second windows
    # Resume: nothing is recomputed; a lost file is recomputed alone.
    calls.clear()
    assert evaluate(model, tracks, tmp_path, spectral=CONFIG) == summary
    assert calls == []
    score_path(tmp_path, "model", tracks[1]).unlink()
    again = evaluate(model, tracks, tmp_path, spectral=CONFIG)
    assert calls == [tracks[1].name]
    np.testing.assert_allclose(again["model"]["vocals"]["SDR"]["median"], summary["model"]["vocals"]["SDR"]["median"])


def test_a_stopped_evaluation_resumes_after_the_last_finished_track(model, tracks, tmp_path, monkeypatch):
    real = evaluation.separate
    seen = []

    def stop_on_second(*args, **kwargs):
        seen.append(1)
        if len(seen) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "separate", stop_on_second)
    with pytest.raises(KeyboardInterrupt):
        evaluate(model, tracks, tmp_path, spectral=CONFIG, methods=("model",))
    assert score_path(tmp_path, "model", tracks[0]).exists()
    assert not score_path(tmp_path, "model", tracks[1]).exists()
    assert not list(score_path(tmp_path, "model", tracks[1]).parent.glob(".*"))  # no half-written file
    seen.clear()
    evaluate(model, tracks, tmp_path, spectral=CONFIG, methods=("model",))
    assert len(seen) == 1 and score_path(tmp_path, "model", tracks[1]).exists()


def test_other_settings_are_refused_unless_overwrite(model, tracks, tmp_path):
    evaluate(model, tracks[:1], tmp_path, spectral=CONFIG, methods=("mixture",))
    with pytest.raises(ValueError, match="other settings \\(mask\\)"):
        evaluate(model, tracks[:1], tmp_path, spectral=CONFIG, methods=("mixture",), mask="soft")
    evaluate(model, tracks[:1], tmp_path, spectral=CONFIG, methods=("mixture",), mask="soft", overwrite=True)
    with pytest.raises(ValueError, match="Unknown methods"):
        evaluate(model, tracks, tmp_path, spectral=CONFIG, methods=("oracle",))


def test_ideal_ratio_mask_of_a_lone_source_is_that_source(tracks):
    mixture, references = load_sources(tracks[0])
    np.testing.assert_allclose(references["vocals"] + references["accompaniment"], mixture, atol=1e-6)
    silent = np.zeros_like(mixture)
    estimate = ideal_ratio_mask(references["vocals"], references["vocals"], silent, CONFIG)
    np.testing.assert_allclose(estimate["vocals"], references["vocals"], atol=1e-4)
    np.testing.assert_allclose(estimate["accompaniment"], 0, atol=1e-4)


def test_summary_is_the_median_and_mean_over_tracks_of_window_medians(tmp_path):
    class Track:
        def __init__(self, name):
            self.name, self.subset = name, "test"

    tracks = [Track("a"), Track("b"), Track("c")]
    window_values = {"a": [1.0, 2.0, 9.0], "b": [4.0, float("nan"), 6.0], "c": [float("nan")] * 3}
    for track in tracks:
        frames = [{"time": i, "duration": 1.0, "metrics": {m: v for m in evaluation.METRICS}}
                  for i, v in enumerate(window_values[track.name])]
        scores = {"targets": [{"name": name, "frames": frames} for name in evaluation.TARGETS]}
        path = score_path(tmp_path, "model", track)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(scores))
    summary = summarize(tmp_path, tracks, methods=("model",))
    sdr = summary["model"]["vocals"]["SDR"]
    # Window medians: a 2.0, b 5.0 (NaN ignored), c NaN (all NaN: left out of the statistics).
    assert sdr["median"] == pytest.approx(3.5) and sdr["mean"] == pytest.approx(3.5)
    table = format_table(summary)
    assert "| model | vocals | median | 3.50 | 3.50 | 3.50 | 3.50 |" in table
    assert table.count("\n") == 2 + 4


@pytest.mark.slow
def test_cli_on_the_embedded_clip(saved_model, tmp_path, run_cli):
    code, out, err = run_cli("evaluate", "--model", saved_model, "--out", tmp_path / "eval")
    assert code == 0, err
    for method in evaluation.METHODS:
        assert f"| {method} | vocals | median |" in out
    assert (tmp_path / "eval" / "results.md").read_text() in out
    assert len((tmp_path / "eval" / "results.csv").read_text().splitlines()) == 1 + 3 * 2 * 2
    code, _, err = run_cli("evaluate", "--model", saved_model, "--out", tmp_path / "eval",
                        "--wiener", "1")
    assert code == 1 and "other settings (wiener)" in err and err.count("\n") == 1
    code, _, err = run_cli("evaluate", "--model", saved_model, "--out", tmp_path / "x",
                        "--root", tmp_path / "nowhere")
    assert code == 1 and "does not exist" in err and err.count("\n") == 1
