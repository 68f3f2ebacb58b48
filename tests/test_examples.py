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
