"""NCA (`keras_dae.couplings`), the mapping metrics and the mean Jacobian."""

import keras
import numpy as np
import pytest

from keras_dae.couplings import metrics
from keras_dae.couplings import mean_jacobian
from keras_dae.couplings import NeuralCouplings, Schedule, distill, fit_couplings, lstsq_couplings, solve
from keras_dae.models import build_model

N = 16


def _frames(count=2000, seed=0):
    return np.random.default_rng(seed).random((count, N), dtype=np.float32)


def _linear_teacher(matrix):
    """A Keras model computing `y = A x` exactly."""
    teacher = keras.Sequential([keras.Input((len(matrix),)), keras.layers.Dense(len(matrix), use_bias=False)])
    teacher.layers[0].set_weights([np.asarray(matrix, np.float32).T])
    return teacher


def _relative(estimate, truth):
    return float(np.linalg.norm(estimate - truth) / np.linalg.norm(truth))


@pytest.mark.parametrize("solver", ["fit", "lstsq"])
def test_linear_teacher_is_recovered(solver):
    truth = np.random.default_rng(1).standard_normal((N, N)).astype(np.float32) * 0.3
    matrix, _ = distill(_linear_teacher(truth), _frames(), solver=solver)
    assert matrix.shape == (N, N)
    assert _relative(matrix, truth) < 0.01


@pytest.mark.parametrize("solver", ["fit", "lstsq"])
def test_diagonal_teacher_gives_a_diagonal_matrix(solver):
    gains = np.random.default_rng(2).uniform(0.5, 1.5, N)
    matrix, _ = distill(_linear_teacher(np.diag(gains)), _frames(), solver=solver)
    assert metrics.diagonal_energy_ratio(matrix) > 0.99


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fit_with_l2_approaches_the_least_squares_optimum(seed):
    frames = _frames(seed=3)
    keras.utils.set_random_seed(seed)
    teacher = build_model("sf", N, hidden_size=8)
    targets = np.asarray(teacher.predict(frames, verbose=0))
    best = lstsq_couplings(frames, targets)

    def mse(matrix):
        return float(np.mean((frames @ matrix.T - targets) ** 2))

    fitted, history = solve(frames, targets, solver="fit", loss="l2", schedule="converge")
    assert mse(best) > 0  # the teacher is not linear: the optimum has a loss
    assert mse(fitted) <= 1.01 * mse(best)
    assert history["loss"][-1] < history["loss"][0]


def test_paper_schedule_is_full_batch_adam_1e4():
    frames = _frames(200)
    student, history = fit_couplings(frames, frames, schedule="paper")
    assert len(history["loss"]) == 600
    assert int(student.optimizer.iterations.numpy()) == 600  # one step per epoch: full batch
    assert float(student.optimizer.learning_rate.numpy()) == pytest.approx(1e-4)
    # Adam moves each entry by roughly the learning rate per step (bounded by
    # lr * (1 - beta_1) / sqrt(1 - beta_2) ~ 3.2 lr): C stays near its start.
    start = NeuralCouplings(N, seed=0).matrix
    moved = np.abs(student.matrix - start).max()
    assert 600 * 1e-4 * 0.5 < moved < 600 * 1e-4 * 3.2


@pytest.mark.parametrize("case", ["well-conditioned", "under-determined", "rank-deficient"])
def test_lstsq_equals_the_minimum_norm_solution(case):
    rng = np.random.default_rng(6)
    frames = _frames({"under-determined": 10}.get(case, 200), seed=6).astype(np.float64)
    if case == "rank-deficient":
        frames[:, 1] = frames[:, 0]  # two identical bins: the Cholesky path must step aside
    targets = frames @ rng.standard_normal((N, N)).T + 0.01 * rng.standard_normal((len(frames), N))
    expected = (np.linalg.pinv(frames) @ targets).T
    np.testing.assert_allclose(lstsq_couplings(frames, targets), expected, rtol=1e-4, atol=1e-4)


def test_ridge_shrinks_and_bad_arguments_are_refused():
    frames = _frames(500)
    targets = frames @ np.random.default_rng(4).standard_normal((N, N)).T
    plain = lstsq_couplings(frames, targets)
    ridged = lstsq_couplings(frames, targets, ridge=1.0)
    assert np.linalg.norm(ridged) < np.linalg.norm(plain)
    for ridge in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="ridge must be non-negative and finite"):
            lstsq_couplings(frames, targets, ridge=ridge)
    with pytest.raises(ValueError, match="no frames"):
        lstsq_couplings(frames[:0], targets[:0])
    with pytest.raises(ValueError, match="Unknown solver"):
        solve(frames, targets, solver="svd")
    with pytest.raises(ValueError, match="Unknown schedule"):
        fit_couplings(frames, targets, schedule="slow")
    with pytest.raises(ValueError, match="Unknown loss"):
        fit_couplings(frames, targets, loss="kl")


def test_neural_couplings_is_one_matrix_and_serializable(tmp_path):
    student = NeuralCouplings(N, seed=5)
    assert len(student.trainable_weights) == 1 and tuple(student.trainable_weights[0].shape) == (N, N)
    x = _frames(4)
    np.testing.assert_allclose(np.asarray(student(x)), x @ student.matrix.T, rtol=1e-5, atol=1e-6)
    # Glorot normal: std sqrt(2 / (fan_in + fan_out)) (Keras rescales its truncated normal to it).
    assert np.std(NeuralCouplings(256, seed=0).matrix) == pytest.approx(np.sqrt(2 / 512), rel=0.05)
    path = tmp_path / "couplings.keras"
    student.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, NeuralCouplings) and loaded.num_bins == N
    np.testing.assert_array_equal(loaded.matrix, student.matrix)
    with pytest.raises(ValueError, match="num_bins must be a positive integer"):
        NeuralCouplings(0)


# -- metrics by hand ------------------------------------------------------------

M = np.array([[1.0, 2.0], [3.0, 4.0]])


def test_structure_metrics_by_hand():
    assert metrics.diagonal_energy_ratio(M) == pytest.approx(17 / 30)
    assert metrics.band_energy_ratio(M, 0) == pytest.approx(17 / 30)
    assert metrics.band_energy_ratio(M, 1) == pytest.approx(1.0)
    assert metrics.mean_absolute_offset(M) == pytest.approx((2 + 3) / 10)
    offsets, means = metrics.offset_profile(M)
    np.testing.assert_array_equal(offsets, [-1, 0, 1])
    np.testing.assert_allclose(means, [3.0, 2.5, 2.0])  # M[1,0]; mean(M[0,0], M[1,1]); M[0,1]
    diagonal, off = metrics.energy_per_output(M)
    np.testing.assert_allclose(diagonal, [1, 16])
    np.testing.assert_allclose(off, [4, 9])
    three = np.arange(9.0).reshape(3, 3)
    assert metrics.band_energy_ratio(three, 1) == pytest.approx((204 - 2**2 - 6**2) / 204)  # all but (0,2), (2,0)
    assert metrics.diagonal_energy_ratio(np.zeros((3, 3))) == 0.0
    with pytest.raises(ValueError, match="must be square"):
        metrics.diagonal_energy_ratio(np.ones((2, 3)))


def test_fit_metrics_by_hand():
    frames = np.array([[1.0, 2.0], [3.0, 4.0]])
    targets = np.array([[2.0, 2.0], [6.0, 4.0]])  # y = diag(2, 1) x exactly
    np.testing.assert_allclose(metrics.best_diagonal(frames, targets), [2.0, 1.0])
    errors = metrics.relative_errors(np.eye(2), frames, targets)
    # identity: error = x - y = [[-1, 0], [-3, 0]]
    assert errors["relative_l1"] == pytest.approx(4 / 14)
    assert errors["relative_l2"] == pytest.approx(np.sqrt(10) / np.sqrt(60))
    quality = metrics.fit_quality(np.diag([2.0, 1.0]), frames, targets, frames, targets)
    assert quality["matrix"]["relative_l1"] == 0 and quality["best_diagonal"]["relative_l2"] == 0
    assert quality["identity"]["relative_l1"] == pytest.approx(4 / 14)


def test_frame_and_output_diagnostics_by_hand():
    assert metrics.singular_value_summary(np.diag([3.0, 1.0])) == {"rank": 2, "condition_number": 3.0}
    assert metrics.singular_value_summary(np.ones((2, 2))) == {"rank": 1, "condition_number": 1.0}
    summary = metrics.singular_value_summary(np.zeros((2, 2)))
    assert summary["rank"] == 0 and summary["condition_number"] == float("inf")
    assert metrics.dead_unit_share(np.array([[0.0, 1.0], [0.0, 2.0]])) == 0.5


# -- the mean Jacobian ------------------------------------------------------------


def _sf_jacobian_by_hand(model, x):
    layer = model.get_layer("skip_filter")
    k_enc, b_enc = layer.encoder_kernels[0].numpy(), layer.encoder_biases[0].numpy()
    k_dec, b_dec = layer.decoder_kernel.numpy(), layer.decoder_bias.numpy()
    hidden_pre = x @ k_enc + b_enc
    hidden = np.maximum(hidden_pre, 0)
    mask_pre = hidden @ k_dec + b_dec
    mask = np.maximum(mask_pre, 0)
    # d mask / d x = diag(1[mask_pre > 0]) K_dec^T diag(1[hidden_pre > 0]) K_enc^T
    dmask = (mask_pre > 0)[:, None] * (k_dec.T @ ((hidden_pre > 0)[:, None] * k_enc.T))
    return np.diag(mask) + x[:, None] * dmask


def test_sf_jacobian_matches_the_hand_derivation():
    keras.utils.set_random_seed(7)
    model = build_model("sf", N, hidden_size=12)
    layer = model.get_layer("skip_filter")
    # Biases start at zero for sf; make them non-zero so that every term is exercised.
    layer.decoder_bias.assign(np.random.default_rng(0).uniform(-0.1, 0.3, N).astype(np.float32))
    frames = _frames(5, seed=8)
    for x in frames:
        np.testing.assert_allclose(mean_jacobian(model, x[None]), _sf_jacobian_by_hand(model, x), rtol=1e-4,
                                   atol=1e-5)
    expected = np.mean([_sf_jacobian_by_hand(model, x) for x in frames], axis=0)
    seen = []
    np.testing.assert_allclose(mean_jacobian(model, frames, batch_size=2, progress=seen.append), expected,
                               rtol=1e-4, atol=1e-5)
    assert seen == [2, 4, 5]


def test_jacobian_of_a_linear_map_is_the_map():
    truth = np.random.default_rng(9).standard_normal((N, N)).astype(np.float32)
    np.testing.assert_allclose(mean_jacobian(_linear_teacher(truth), _frames(3)), truth, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="non-empty"):
        mean_jacobian(_linear_teacher(truth), np.zeros((0, N), np.float32))


@pytest.mark.parametrize("stop_at_floor", [False, True])
def test_stop_at_floor_waits_for_the_learning_rate_floor(stop_at_floor):
    keras.utils.set_random_seed(0)
    frames = _frames(512, seed=4)
    targets = np.asarray(build_model("sf", N, hidden_size=8).predict(frames, verbose=0))
    schedule = Schedule(learning_rate=2e-2, epochs=300, batch_size=64, patience=4, min_steps=8, min_lr_divisor=1024,
                        stop_at_floor=stop_at_floor)
    student, history = fit_couplings(frames, targets, schedule=schedule, loss="l2")
    rate = float(student.optimizer.learning_rate.numpy())
    assert len(history["loss"]) < 300  # stopped on the loss, not by the epoch cap
    if stop_at_floor:
        assert rate == pytest.approx(2e-2 / 1024)
    else:  # plain early stopping fires while ReduceLROnPlateau is still halving the rate
        assert rate > 2e-2 / 1024
