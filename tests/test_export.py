"""`keras-dae export`: a SavedModel that TF Serving loads without keras_dae, versioned atomically."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_dae.export import export_model, next_version
from keras_dae.separation import separate
from keras_dae.spectral import SpectralConfig

CONFIG = SpectralConfig(num_bins=64)  # `model`, `saved_model` (conftest.py): an untrained sf over these bins
LENGTHS = (10_001, 2049, 100)  # odd, one window, shorter than a window


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    return export_model(model, tmp_path_factory.mktemp("serving"), spectral=CONFIG, name="sf")


# Runs in a fresh interpreter where importing keras_dae fails: the SavedModel must not need it.
_WITHOUT_PACKAGE = """
import json, sys
sys.modules["keras_dae"] = None  # any `import keras_dae` now raises ImportError
import numpy as np, tensorflow as tf
path, inputs, out = sys.argv[1:4]
loaded = tf.saved_model.load(path)
results = {"signatures": sorted(loaded.signatures)}
for name, x in np.load(inputs).items():
    if name.startswith("wave"):
        found = loaded.signatures["serving_default"](waveforms=tf.constant(x))
    else:
        found = loaded.signatures["spectrogram"](magnitudes=tf.constant(x))
    for key, value in found.items():
        np.save(f"{out}/{name}-{key}.npy", value.numpy())
print(json.dumps(results))
"""


def test_reloads_without_the_package_and_matches_separate(model, exported, tmp_path, run_process):
    rng = np.random.default_rng(3)
    inputs = {f"wave{n}": rng.uniform(-0.5, 0.5, (2, n)).astype(np.float32) for n in LENGTHS}
    inputs["magnitudes"] = rng.random((2, 7, CONFIG.num_bins), dtype=np.float32)
    np.savez(tmp_path / "inputs.npz", **inputs)
    result = run_process(sys.executable, "-c", _WITHOUT_PACKAGE, exported, tmp_path / "inputs.npz", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["signatures"] == ["serving_default", "spectrogram"]
    for n in LENGTHS:
        vocals = np.load(tmp_path / f"wave{n}-vocals.npy")
        accompaniment = np.load(tmp_path / f"wave{n}-accompaniment.npy")
        assert vocals.shape == accompaniment.shape == (2, n)
        for row in range(2):
            expected = separate(model, inputs[f"wave{n}"][row], CONFIG.sample_rate, spectral=CONFIG)
            np.testing.assert_allclose(vocals[row], expected["vocals"], atol=1e-4)
            np.testing.assert_allclose(accompaniment[row], expected["accompaniment"], atol=1e-4)
    magnitudes = inputs["magnitudes"]
    expected = model.predict(magnitudes.reshape(-1, CONFIG.num_bins), verbose=0).reshape(magnitudes.shape)
    np.testing.assert_allclose(np.load(tmp_path / "magnitudes-vocals.npy"), expected, atol=1e-5)


def _saved_model_cli():
    script = Path(sys.executable).parent / "saved_model_cli"
    if not script.exists():
        pytest.skip("saved_model_cli is not installed beside this Python")
    return str(script)


@pytest.mark.slow
def test_saved_model_cli_shows_and_runs(exported, tmp_path, run_process):
    shown = run_process(_saved_model_cli(), "show", "--dir", exported, "--all")
    assert shown.returncode == 0, shown.stderr[-2000:]
    for text in ("signature_def['serving_default']", "signature_def['spectrogram']", "waveforms", "magnitudes",
                 "vocals", "accompaniment"):
        assert text in shown.stdout
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(-0.5, 0.5, (1, 5000)).astype(np.float32))
    run = run_process(_saved_model_cli(), "run", "--dir", exported, "--tag_set", "serve",
                      "--signature_def", "serving_default", "--inputs", f"waveforms={tmp_path / 'x.npy'}",
                      "--outdir", tmp_path / "out")
    assert run.returncode == 0, run.stderr[-2000:]
    assert np.load(tmp_path / "out" / "vocals.npy").shape == (1, 5000)


def test_versions_and_a_failed_export_leaves_nothing(model, tmp_path, monkeypatch):
    base = tmp_path / "serving"
    assert export_model(model, base, spectral=CONFIG, name="m").name == "1"
    import keras_dae.export as export_module

    written = []

    def fail_after_writing(root):  # the SavedModel is on disk, then the process "dies"
        written.append(sorted(p.name for p in Path(root).iterdir()))
        raise KeyboardInterrupt

    monkeypatch.setattr(export_module, "_make_readable", fail_after_writing)
    with pytest.raises(KeyboardInterrupt):
        export_model(model, base, spectral=CONFIG, name="m")
    assert "saved_model.pb" in written[0]
    assert sorted(p.name for p in (base / "m").iterdir()) == ["1"]  # no version 2, no temporary
    monkeypatch.undo()
    assert export_model(model, base, spectral=CONFIG, name="m").name == "2"
    assert next_version(base / "m") == 3 and next_version(base / "absent") == 1
    with pytest.raises(ValueError, match="already exists"):
        export_model(model, base, spectral=CONFIG, name="m", version=2)
    with pytest.raises(ValueError, match="plain directory name"):
        export_model(model, base, spectral=CONFIG, name="../m")


def test_cli_export(model, tmp_path, run_cli):
    run = tmp_path / "my-run"
    run.mkdir()
    model.save(run / "model.keras")
    code, out, _ = run_cli("export", "--model", run, "--out", tmp_path / "serving")
    assert code == 0 and "serving/my-run/1" in out
    assert (tmp_path / "serving" / "my-run" / "1" / "saved_model.pb").is_file()
    code, _, err = run_cli("export", "--model", run, "--out", tmp_path / "serving", "--version", "1")
    assert code == 1 and "already exists" in err and err.count("\n") == 1
    # The library names its parameter (`version`); the command line shows the flag.
    assert "pick another --version" in err and "`" not in err
