"""`keras-dae reproduce`: stages end to end at tiny sizes, resuming, the data-driven finding."""

import base64
import copy
import html
import json
import re

import numpy as np
import pytest

from keras_dae import training
from keras_dae.reproduce import stages as reproduce_module
from keras_dae.reproduce import ARCHS, Preset, finding, reproduce

# hidden_size = num_bins, so that a plain DAE can pass every bin through (`_known_mapping`); the least-squares
# solver on ~320 fitting frames of 16 bins: C is determined and a diagonal teacher scores ~1 (the calibration).
# The convergence rule with patience 1 and min_delta 0.9: the second epoch cannot improve by 90%, so every
# model has converged after 2 epochs (the cap is 4), with a couplings checkpoint after each epoch.
TINY = Preset(num_bins=16, hidden_size=16, epochs=4, steps_per_epoch=2, batch_size=32, max_frames=400,
              couplings_solver="lstsq", demo_tracks=(1, 1), demo_seconds=3.0, patience=1, min_delta=0.9,
              couplings_every=1)


PNG = b"\x89PNG\r\n\x1a\n"


def _record(ratio, calibration=0.99, under_determined=False):
    return {"couplings": {"diagonal_energy_ratio": ratio},
            "trust": {"under_determined": under_determined, "calibration": {"diagonal_energy_ratio": calibration}}}


def test_finding_is_decided_by_the_metrics():
    held = {"dae": _record(0.8), "deep-dae": _record(0.7), "sf": _record(0.3)}
    assert finding(held)[0] == "held"
    not_held = {"dae": _record(0.2), "deep-dae": _record(0.3), "sf": _record(0.6)}
    assert finding(not_held)[0] == "not held"
    verdict, sentence = finding({"dae": _record(0.6), "deep-dae": _record(0.2), "sf": _record(0.4)})
    assert verdict == "mixed" and "only dae" in sentence
    # None diagonal: sf the least diagonal, but not by the margin.
    assert finding({"dae": _record(0.010), "deep-dae": _record(0.008), "sf": _record(0.007)})[0] == "not held"
    weak = copy.deepcopy(held)
    weak["sf"]["trust"]["calibration"]["diagonal_energy_ratio"] = 0.5
    verdict, sentence = finding(weak)
    assert verdict == "undecided" and "0.500" in sentence
    under = copy.deepcopy(not_held)
    under["dae"]["trust"]["under_determined"] = True
    assert finding(under)[0] == "undecided"
    converged = {arch: {"status": "converged", "epochs_completed": 30} for arch in ARCHS}
    assert finding(held, training=converged)[0] == "held"
    capped = {**converged, "deep-dae": {"status": "epoch-cap", "epochs_completed": 400}}
    verdict, sentence = finding(held, training=capped)
    assert verdict == "undecided" and sentence.startswith("Undecided: deep-dae (epoch-cap after 400 epochs)")
    assert "dae (" not in sentence.replace("deep-dae (", "")  # only the capped model is named
    with pytest.raises(ValueError, match="missing sf"):
        finding({"dae": _record(0.8), "deep-dae": _record(0.7)})


def test_finding_reports_both_solvers_the_per_bin_placement_and_the_trends():
    held = {"dae": _record(0.8), "deep-dae": _record(0.7), "sf": _record(0.3)}
    per_bin = {"linear gain": {"diagonal_energy_ratio": 0.98}, "threshold": {"diagonal_energy_ratio": 0.4}}
    lstsq_held = {"dae": _record(0.5), "deep-dae": _record(0.45), "sf": _record(0.1)}
    lstsq_not = {"dae": _record(0.05), "deep-dae": _record(0.04), "sf": _record(0.1)}
    trends = {"dae": "rising", "deep-dae": "flat", "sf": "falling"}
    verdict, sentence = finding(held, per_bin=per_bin, lstsq={"records": lstsq_held, "per_bin": per_bin},
                                trends=trends)
    assert verdict == "held" and "Under both solvers" in sentence
    assert "(L1 fit): dae within; deep-dae within; sf below; least squares: dae within; deep-dae within; sf below" \
        in sentence
    assert "dae rising, deep-dae flat, sf falling" in sentence
    verdict, sentence = finding(held, lstsq={"records": lstsq_not, "per_bin": per_bin})
    assert verdict == "held" and "Only under the L1 fit: the least-squares C gives 'not held'" in sentence


def test_trend_compares_the_last_checkpoint_with_three_before():
    from keras_dae.reproduce.finding import trend

    assert trend([0.1, 0.2, 0.3, 0.4, 0.45]) == "rising"  # 0.45 - 0.2
    assert trend([0.1, 0.3, 0.305, 0.3, 0.309]) == "flat"
    assert trend([0.5, 0.4, 0.3, 0.2]) == "falling"
    assert trend([0.5]) == "unknown"


def _known_mapping(arch, run_dir):
    """Replaces a trained run's weights by a mapping whose couplings are known (all biases zero).

    `dae`, `deep-dae`: encoders the identity, decoder `0.5 * I`, so `y = 0.5 * x`, a per-bin gain:
    least squares recovers C = 0.5 I exactly (diagonal energy ratio 1). `sf`: encoder the identity,
    decoder a pairing of bin i with bin i + N/2, so `y_i = x_i * x_{i+N/2}`: each output is the
    product of two bins, far from any per-bin gain, and C spreads it over the (correlated) bins
    (diagonal energy ratio below 0.1 on the tiny demo frames). Both plain DAEs are more diagonal
    than sf by far more than MARGIN: the finding "held".
    """
    import keras

    path = run_dir / "model.keras"
    model = keras.saving.load_model(path)
    layer = model.get_layer("skip_filter")
    n = int(layer.decoder_kernel.shape[1])
    decoder = np.roll(np.eye(n), n // 2, axis=1) if layer.skip else 0.5 * np.eye(n)
    for weight in layer.weights:
        name = weight.path.rsplit("/", 1)[-1]
        value = np.eye(n) if name.startswith("encoder_kernel") else decoder if name == "decoder_kernel" else 0.0
        weight.assign(np.broadcast_to(value, weight.shape).astype("float32"))
    model.save(path)


@pytest.mark.slow
def test_tiny_reproduction_end_to_end_and_resume(tmp_path, monkeypatch, assert_png):
    """The real stages, with each trained model's weights then set to a known mapping: the verdict is "held"."""
    real_train = training.train

    def train_then_set(arch, run_dir, *args, **kwargs):
        result = real_train(arch, run_dir, *args, **kwargs)
        _known_mapping(arch, run_dir)
        return result

    monkeypatch.setattr(training, "train", train_then_set)
    calls = []
    stopped = []
    real_run = reproduce_module._Stages.run

    def counting(self, name, function):
        if name not in self.state["done"]:
            calls.append(name)
            if name == "compare" and not stopped:
                stopped.append(name)
                raise KeyboardInterrupt  # stopped between stages
        return real_run(self, name, function)

    monkeypatch.setattr(reproduce_module._Stages, "run", counting)
    with pytest.raises(KeyboardInterrupt):
        reproduce(tmp_path, preset=TINY)
    assert calls[:5] == ["data", "train/dae", "couplings/dae", "couplings-lstsq/dae", "evaluate/dae"]
    assert calls[-1] == "compare"
    calls.clear()
    verdict, sentence = reproduce(tmp_path, preset=TINY)
    assert calls == ["compare", "report"]  # nothing before the interruption is redone
    records = {arch: json.loads((tmp_path / "couplings" / arch / "metrics.json").read_text()) for arch in ARCHS}
    calibration = min(record["trust"]["calibration"]["diagonal_energy_ratio"] for record in records.values())
    ratios = {arch: record["couplings"]["diagonal_energy_ratio"] for arch, record in records.items()}
    assert calibration > 0.99 and ratios["dae"] > 0.999 and ratios["deep-dae"] > 0.999, (calibration, ratios)
    assert ratios["sf"] < 0.5, ratios  # 0.07 on these frames; "held" needs < 1 - MARGIN
    assert verdict == "held", sentence
    assert sentence.startswith("The paper's finding held: both plain DAEs learned more diagonal")
    assert "Under both solvers" in sentence and "dae within; deep-dae within" in sentence
    for arch in ARCHS:
        run = json.loads((tmp_path / "runs" / arch / "config.json").read_text())
        assert run["status"] == "converged" and run["epochs_completed"] == 2, run
        assert run["data"]["validation"] == "held-out train tracks: demo-valid-000"
        rows = (tmp_path / "runs" / arch / "couplings_evolution.csv").read_text().splitlines()
        assert [row.split(",")[0] for row in rows[1:]] == ["1", "2"]
    assert f"dae {ratios['dae']:.3f}, deep-dae {ratios['deep-dae']:.3f}, sf {ratios['sf']:.3f}" in sentence
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["test", "train"]  # demo tracks, no root
    assert sorted(p.name for p in (tmp_path / "data" / "train").iterdir()) == ["demo-000", "demo-valid-000"]
    report = (tmp_path / "report.md").read_text()
    assert sentence in report and "comparison.png" in report and "training.png" in report
    assert "evolution.png" in report and "| dae | converged | 2 | 4 |" in report
    assert "demo data, not MUSDB18" in report
    for arch in ARCHS:
        assert f"| {arch} | vocals | median |" in report
    for method in ("mixture", "irm"):
        assert f"| {method} | vocals | mean |" in report
    assert "nan" not in report.lower().replace("nan)", "")
    table_rows = [line for line in report.splitlines() if line.startswith("|")]
    assert table_rows and all("||" not in row.replace(" ", "") for row in table_rows)  # every cell filled
    for figure in ("couplings/compare/comparison.png", "training.png", "evolution.png"):
        assert_png(tmp_path / figure)
    page = (tmp_path / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3 and all(base64.b64decode(data)[:8] == PNG for data in images)
    assert sentence in html.unescape(page) and page.count("<table>") == 5
    assert "Per-bin references (the L1 fit): teachers that filter each bin on its own" in report
    assert "Per-bin references (least squares): teachers" in report
    for teacher in ("linear gain", "soft gate", "threshold", "compression"):
        assert f"| {teacher} | " in report
    with pytest.raises(ValueError, match="other settings"):
        reproduce(tmp_path, preset=Preset(num_bins=32, hidden_size=8, epochs=1, steps_per_epoch=2))


def test_comparison_table_cells_do_not_split():
    from keras_dae.couplings import comparison_table

    table = comparison_table({"sf": {}}).markdown()
    header, rule, row = table.strip().splitlines()
    cells = lambda line: [c for c in line.replace("\\|", "").split("|")[1:-1]]  # noqa: E731
    assert len(cells(header)) == len(cells(rule)) == len(cells(row))


def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, run_cli):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("reproduce", "--out", out, "--root", tmp_path / "missing")
    assert code == 1 and stderr.count("\n") == 1 and "does not exist" in stderr and "Traceback" not in stderr
    assert not out.exists()
    code, _, stderr = run_cli("reproduce", "--out", out, "--preset", "huge")
    assert code == 2 and "huge" in stderr and stderr.count("\n") == 1


class _Stop(Exception):
    pass


def test_prepared_caches_and_jobs_reach_training_and_evaluation(tmp_path, monkeypatch):
    """With a root, `prepared`/`prepared_valid` go to every `train` and `jobs` to every `evaluate`."""
    from keras_dae import couplings, evaluation
    from keras_dae.data.synthetic import write_synthetic_musdb

    write_synthetic_musdb(tmp_path / "musdb", num_tracks=1, seconds=1.0, subset="test")
    seen = {}
    monkeypatch.setattr(training, "train", lambda arch, run_dir, **kwargs: seen.setdefault(arch, kwargs))
    monkeypatch.setattr(couplings, "examine", lambda *args, **kwargs: None)

    def evaluate(model, tracks, out, **kwargs):
        seen["evaluate"] = kwargs
        raise _Stop

    monkeypatch.setattr(evaluation, "evaluate", evaluate)
    with pytest.raises(_Stop):
        reproduce(tmp_path / "out", root=tmp_path / "musdb", is_wav=True, preset=TINY, jobs=3,
                  prepared=tmp_path / "cache", prepared_valid=tmp_path / "valid-cache")
    assert seen["dae"]["prepared"] == tmp_path / "cache" and seen["dae"]["prepared_valid"] == tmp_path / "valid-cache"
    assert seen["dae"]["root"] == tmp_path / "musdb" and seen["evaluate"]["jobs"] == 3
    settings = json.loads((tmp_path / "out" / "stages.json").read_text())["settings"]
    assert settings["prepared"] == str(tmp_path / "cache")
    from keras_dae.reproduce.stages import _data_note

    note = _data_note(False, tmp_path / "musdb", True, TINY, [None], tmp_path / "cache", tmp_path / "valid-cache")
    assert f"trained on the frame cache `{tmp_path / 'cache'}`, validated on `{tmp_path / 'valid-cache'}`" in note


def test_prepared_without_a_root_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("MUSDB_PATH", raising=False)
    with pytest.raises(ValueError, match="give `root` too"):
        reproduce(tmp_path / "out", preset=TINY, prepared=tmp_path)
    with pytest.raises(ValueError, match="give `prepared` too"):
        reproduce(tmp_path / "out", root=tmp_path, preset=TINY, prepared_valid=tmp_path)
    assert not (tmp_path / "out").exists()
