"""Evaluation's memory per job: the chunked ideal ratio mask is the whole-track one bit for bit, a track's
scores are those of the code before the memory cuts, and `jobs=None` plans with the memory."""

import dataclasses
import functools
import logging
import types

import numpy as np
import pytest

from keras_dae import evaluation
from keras_dae import spectral as front_end
from keras_dae.data.example import SOURCES
from keras_dae.data.synthetic import write_synthetic_musdb
from keras_dae.data.tracks import list_tracks, read_track
from keras_dae.separation import masks
from keras_dae.spectral import SpectralConfig

CONFIG = SpectralConfig(num_bins=128)  # `model` (conftest.py): an untrained sf over these bins
ODD = SpectralConfig(window_length=1000, fft_length=1024, hop_length=300, num_bins=100, window="hann")

# The window medians of `track` (4 s, seed 3) as the code before the memory cuts (HEAD 649a8ec) saved them.
BEFORE = {
    "mixture": {
        "vocals": {"SDR": -1.397255, "SIR": -0.03491, "SAR": 52.119165, "ISR": -7.800685},
        "accompaniment": {"SDR": 1.397255, "SIR": 2.33184, "SAR": 52.119165, "ISR": 10.46449},
    },
    "irm": {
        "vocals": {"SDR": 14.50749, "SIR": -30.355625, "SAR": 0.003655, "ISR": 10.02101},
        "accompaniment": {"SDR": 18.388, "SIR": -28.34543, "SAR": 0.00671, "ISR": 17.96244},
    },
}

# Peaks of one job measured by benchmarks/bench_evaluate_memory.py (2026-11-29): {seconds: bytes}.
MEASURED_PEAKS = {20: 1342e6, 60: 1914e6, 240: 4601e6, 600: 8625e6}


def _whole_track_irm(mixture, vocals, accompaniment, spectral):
    """`masks.ideal_ratio_mask` as it was before it was chunked: the STFTs of the whole track at once."""
    full_band = dataclasses.replace(spectral, num_bins=spectral.max_bins)

    def spectrum(audio):
        return front_end.stft(np.ascontiguousarray(audio.T), full_band)

    mask = masks.ratio_mask(np.abs(spectrum(vocals)), np.abs(spectrum(accompaniment)))
    estimate = front_end.istft(mask.astype(np.complex64) * spectrum(mixture), len(mixture), full_band).numpy().T
    return {"vocals": estimate, "accompaniment": mixture - estimate}


def _old_load_sources(track):
    """`evaluation.load_sources` as it was: the vocals a view of all four sources."""
    sources = read_track(track)
    vocals = sources[SOURCES.index("vocals")]
    mixture = sources.sum(axis=0)
    return mixture, {"vocals": vocals, "accompaniment": mixture - vocals}


def _bits(array):
    return np.ascontiguousarray(array).tobytes()


@pytest.fixture(scope="module")
def track(tmp_path_factory):
    root = tmp_path_factory.mktemp("musdb")
    write_synthetic_musdb(root, num_tracks=1, seconds=4.0, subset="test", seed=3)
    return list_tracks(root, is_wav=True, subsets="test")[0]


@pytest.mark.parametrize("spectral", [CONFIG, ODD], ids=["paper", "odd"])
def test_the_chunked_ideal_ratio_mask_is_the_whole_track_one_bit_for_bit(spectral):
    rng = np.random.default_rng(0)
    for num_samples, channels in ((1, 2), (1000, 1), (44_100 + 77, 2)):
        vocals = rng.standard_normal((num_samples, channels)).astype(np.float32)
        accompaniment = rng.standard_normal((num_samples, channels)).astype(np.float32)
        mixture = vocals + accompaniment
        expected = _whole_track_irm(mixture, vocals, accompaniment, spectral)
        for chunk_frames in (None, 1, 7, 64, masks.IRM_CHUNK_FRAMES):
            found = masks.ideal_ratio_mask(mixture, vocals, accompaniment, spectral, chunk_frames=chunk_frames)
            for name in ("vocals", "accompaniment"):
                assert found[name].dtype == np.float32 and found[name].shape == mixture.shape
                assert _bits(found[name]) == _bits(expected[name]), (num_samples, channels, chunk_frames, name)


def test_load_sources_keeps_no_view_of_the_four_sources(track):
    mixture, references = evaluation.load_sources(track)
    old_mixture, old_references = _old_load_sources(track)
    assert references["vocals"].base is None and old_references["vocals"].base is not None
    assert _bits(mixture) == _bits(old_mixture)
    for name in ("vocals", "accompaniment"):
        assert _bits(references[name]) == _bits(old_references[name])


def test_the_scores_of_a_track_are_those_of_the_code_before(model, track, tmp_path, monkeypatch):
    import museval
    from threadpoolctl import threadpool_limits

    from keras_dae.separation.core import separate

    # Chunks of 40 frames: the 4-second track's mask in 12 of them (the default takes it in one).
    monkeypatch.setattr(evaluation, "ideal_ratio_mask", functools.partial(masks.ideal_ratio_mask, chunk_frames=40))
    evaluation.evaluate(model, [track], tmp_path, spectral=CONFIG, jobs=1)
    mixture, references = _old_load_sources(track)
    target = evaluation._MusTrack(track.name, track.subset, track.rate,
                                  {name: evaluation._Target(audio) for name, audio in references.items()})
    before = {"model": separate(model, mixture, track.rate, spectral=CONFIG),
              "mixture": {"vocals": mixture, "accompaniment": mixture},
              "irm": _whole_track_irm(mixture, references["vocals"], references["accompaniment"], CONFIG)}
    for method, estimates in before.items():
        with threadpool_limits(1):
            expected = museval.eval_mus_track(target, estimates).json
        assert evaluation.score_path(tmp_path, method, track).read_text() == expected, method
    for method, targets in BEFORE.items():
        found = evaluation.track_medians(evaluation.score_path(tmp_path, method, track))
        for name, medians in targets.items():
            assert found[name] == pytest.approx(medians, abs=2e-6), (method, name)


def test_job_bytes_plans_at_least_the_measured_peaks():
    for seconds, peak in MEASURED_PEAKS.items():
        planned = evaluation.job_bytes(seconds * 44100)
        assert peak <= planned <= 1.15 * peak, seconds
    # museval's FFTs double at each power of two of samples (n_fft >= samples + 511).
    assert evaluation.job_bytes(2**20 - 511) < evaluation.job_bytes(2**20 - 510)


def test_available_memory_is_at_most_the_machines():
    available = evaluation.available_memory()
    with open("/proc/meminfo") as handle:
        total = int(next(line for line in handle if line.startswith("MemTotal:")).split()[1]) * 1024
    assert available is not None and 0 < available <= total


def test_jobs_none_is_the_cores_the_memory_holds_for_the_longest_track(monkeypatch, caplog):
    tracks = [types.SimpleNamespace(name=f"t{i}", num_samples=seconds * 44100, rate=44100)
              for i, seconds in enumerate((60, 240, 30))]
    monkeypatch.setattr(evaluation, "usable_cores", lambda: 16)
    need = evaluation.job_bytes(240 * 44100)
    monkeypatch.setattr(evaluation, "available_memory", lambda: 2.5 * need)
    with caplog.at_level(logging.INFO, logger="keras_dae.evaluation"):
        assert evaluation.default_jobs(tracks) == 2
    assert "jobs=2 for 3 tracks: 16 usable cores" in caplog.text and "'t1', 240 s" in caplog.text
    monkeypatch.setattr(evaluation, "available_memory", lambda: 100 * need)
    assert evaluation.default_jobs(tracks) == 3  # one per track
    monkeypatch.setattr(evaluation, "available_memory", lambda: 0.5 * need)
    assert evaluation.default_jobs(tracks) == 1  # at least one, even if the track may not fit
    monkeypatch.setattr(evaluation, "available_memory", lambda: None)
    assert evaluation.default_jobs(tracks) == 3  # memory unknown: the cores
