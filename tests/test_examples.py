"""The example scripts run as a person would run them (a subprocess, not an import): what they print and write."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from keras_dae import spectral
from keras_dae.couplings import metrics
from keras_dae.data import load_example
from keras_dae.spectral import SpectralConfig

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ARCHS = ("dae", "deep-dae", "sf")  # the order the examples print them in

pytestmark = pytest.mark.slow  # each runs a whole example script in a fresh interpreter


def _run_example(run_process, *args, timeout=600):
    result = run_process(sys.executable, *args, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _number(pattern, text):
    """The number that `pattern`'s one group matches in `text` (which must match)."""
    found = re.search(pattern, text)
    assert found, (pattern, text)
    return float(found.group(1).replace(",", ""))


def test_front_end_tour(tmp_path, run_process, assert_png):
    stdout = _run_example(run_process, EXAMPLES / "front_end_tour.py", "--out", tmp_path, "--num-bins", "256",
                          timeout=300)
    track = load_example().mono()
    config = SpectralConfig(sample_rate=track.rate, num_bins=256)
    frames = config.num_frames(len(track.mixture))
    assert f"{track.name}: {len(track.mixture) / track.rate:.2f} s -> {frames} frames x 256 bins" in stdout
    # An sf model of 256 bins (hidden size 256): two 256 x 256 kernels and two biases.
    assert f"untrained sf model: {2 * 256 * 256 + 2 * 256:,} parameters, output ({frames}, 256)" in stdout
    assert f"wrote {tmp_path / 'oracle_vocals.wav'} {tmp_path / 'tour.png'}" in stdout
    # The WAV is the oracle: mono, the clip's rate and length, and the SNR printed against the band-limited vocals.
    audio, rate = soundfile.read(tmp_path / "oracle_vocals.wav")
    assert rate == track.rate == 44100 and audio.shape == (len(track.mixture),)
    vocals = track.vocals[:, 0]
    band_limited = spectral.istft(spectral.stft(vocals, config), len(vocals), config).numpy()
    snr = 10 * np.log10(np.sum(band_limited**2) / np.sum((band_limited - audio) ** 2))
    printed = _number(r"oracle magnitude \+ mixture phase: (-?[\d.]+) dB SNR", stdout)
    assert abs(snr - printed) < 0.1 and printed > 5, (snr, printed)
    assert_png(tmp_path / "tour.png", min_height=600, min_width=800)  # three panels


def test_reproduce_step_by_step_then_the_walkthrough_on_its_run(tmp_path, run_process, assert_png):
    """--max-frames 10 leaves about 8 fitting frames for 16 bins: C is under-determined, so the verdict
    the example prints is "undecided" whatever the tiny models learned."""
    out = tmp_path / "steps"
    stdout = _run_example(run_process, EXAMPLES / "reproduce_step_by_step.py", "--out", out, "--num-bins", "16",
                          "--epochs", "1", "--steps-per-epoch", "2", "--demo-seconds", "3", "--max-frames", "10")
    fitting = int(_number(r"(\d+) fitting frames of 16 bins from 2 test tracks", stdout))
    assert 0 < fitting < 16
    records = {arch: json.loads((out / "couplings" / arch / "metrics.json").read_text()) for arch in ARCHS}
    for arch, record in records.items():
        assert f"trained {arch}" in stdout and (out / "runs" / arch / "model.keras").is_file()
        assert record["model"]["arch"] == arch and record["spectral"]["num_bins"] == 16
        assert record["trust"]["frames_fit"] == fitting and record["trust"]["under_determined"] is True
        ratio = record["couplings"]["diagonal_energy_ratio"]
        assert f"{arch}: diagonal energy ratio {ratio:.3f}" in stdout
        matrix = np.load(out / "couplings" / arch / "couplings.npy")
        assert matrix.shape == (16, 16) and np.isfinite(matrix).all()
        assert metrics.diagonal_energy_ratio(matrix) == pytest.approx(ratio)
        for method in (arch, "mixture", "irm"):
            assert re.search(rf"^\| {method} \| vocals \| median \| -?\d+\.\d\d \|", stdout, re.MULTILINE), method
    verdict_line = next(line for line in stdout.splitlines() if line.startswith(("held:", "not held:", "mixed:",
                                                                                 "undecided:")))
    assert verdict_line.startswith("undecided: The data cannot decide")
    assert "(under-determined: True)" in verdict_line
    assert f"only {records['sf']['trust']['calibration']['diagonal_energy_ratio']:.3f} diagonal energy" in verdict_line
    compare = out / "couplings" / "compare"
    assert_png(compare / "comparison.png", min_width=600)  # three matrices side by side
    assert [row.split("|")[1].strip() for row in (compare / "comparison.md").read_text().strip().splitlines()[2:]] \
        == list(ARCHS)

    walk = tmp_path / "walk"
    stdout = _run_example(run_process, EXAMPLES / "couplings_walkthrough.py", out / "runs" / "sf", "--out", walk)
    assert "{'arch': 'sf', 'num_bins': 16, 'hidden_size': 16, 'num_params': 544}" in stdout
    config = SpectralConfig(num_bins=16)
    assert f"16 bins of a {config.fft_length}-point FFT: 0 to {config.bin_frequencies()[-1]:.0f} Hz" in stdout
    # The run's demo data beside runs/ (2 test tracks of 3 s): determined, unlike the example's 10 frames.
    assert _number(r"(\d+) frames to fit C", stdout) > 16
    matrix = np.load(walk / "couplings.npy")
    assert matrix.shape == (16, 16) and matrix.dtype == np.float32 and np.isfinite(matrix).all()
    assert (f"diagonal energy ratio {metrics.diagonal_energy_ratio(matrix):.3f}; energy within 3 bins of the "
            f"diagonal {metrics.band_energy_ratio(matrix, 3):.3f}") in stdout
    assert f"mean |offset| from the diagonal: {metrics.mean_absolute_offset(matrix):.1f} bins" in stdout
    assert _number(r"a diagonal teacher on these frames reaches ([\d.]+)", stdout) > 0.9
    assert f"wrote {walk / 'couplings.png'}, {walk / 'offsets.png'}" in stdout
    assert_png(walk / "couplings.png")
    assert_png(walk / "offsets.png")


def test_held_out_clip(tmp_path, run_process):
    """The scores it prints are the SDRs of what it wrote, recomputed here; the two references from the clip."""
    stdout = _run_example(run_process, EXAMPLES / "held_out_clip.py", "--out", tmp_path / "run", "--arch", "dae",
                          "--num-bins", "32", "--epochs", "2", "--learning-rate", "1e-3")
    scores = json.loads((tmp_path / "run" / "held_out.json").read_text())
    track = load_example()
    cut = int(round(len(track.mixture) * 0.8))
    mixture, vocals = track.mixture[cut:], track.vocals[cut:]

    def sdr(estimate):
        return 10 * np.log10(np.sum(vocals**2) / np.sum((vocals - estimate) ** 2))

    gain = np.sum(mixture * vocals) / np.sum(mixture * mixture)
    assert scores["gain"] == pytest.approx(gain, rel=1e-5)
    assert scores["mixture"] == pytest.approx(sdr(mixture), abs=1e-3)
    assert scores["best scaled mixture"] == pytest.approx(sdr(gain * mixture), abs=1e-3)
    assert scores["best scaled mixture"] > scores["mixture"]  # least squares beats gain 1 whenever a != 1
    assert scores["status"] == "epoch-cap"  # 2 epochs cannot converge with patience 20
    assert "dae, 32 bins: epoch-cap after 2 epochs" in stdout
    for name in ("model", "mixture", "best scaled mixture"):
        assert f"vocals SDR, {name}: {scores[name]:.2f} dB" in stdout
    assert f"model - best scaled mixture: {scores['model'] - scores['best scaled mixture']:+.2f} dB" in stdout
