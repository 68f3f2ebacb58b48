"""The example scripts run as a person would run them (a subprocess, not an import)."""

import subprocess
import sys
from pathlib import Path

import soundfile

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_front_end_tour(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "front_end_tour.py"), "--out", str(tmp_path), "--num-bins", "256"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "frames x 256 bins" in result.stdout
    audio, rate = soundfile.read(tmp_path / "oracle_vocals.wav")
    assert rate == 44100 and 5.9 < len(audio) / rate < 6.2 and abs(audio).max() > 0.01
    assert (tmp_path / "tour.png").stat().st_size > 10_000


def _run_example(*args, timeout=600):
    result = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_reproduce_step_by_step_then_the_walkthrough_on_its_run(tmp_path):
    out = tmp_path / "steps"
    stdout = _run_example(EXAMPLES / "reproduce_step_by_step.py", "--out", out, "--num-bins", "16", "--epochs", "1",
                          "--steps-per-epoch", "2", "--demo-seconds", "3", "--max-frames", "400")
    for arch in ("dae", "deep-dae", "sf"):
        assert f"{arch}: diagonal energy ratio" in stdout and (out / "runs" / arch / "model.keras").is_file()
        assert f"| {arch} | vocals | median |" in stdout
    assert any(stdout.count(v + ":") for v in ("held", "not held", "mixed", "undecided"))
    assert (out / "couplings" / "compare" / "comparison.png").is_file()

    walk = tmp_path / "walk"
    stdout = _run_example(EXAMPLES / "couplings_walkthrough.py", out / "runs" / "sf", "--out", walk)
    assert "'arch': 'sf'" in stdout and "diagonal energy ratio" in stdout
    assert (walk / "couplings.png").stat().st_size > 10_000 and (walk / "offsets.png").stat().st_size > 10_000
    import numpy as np

    assert np.load(walk / "couplings.npy").shape == (16, 16)
