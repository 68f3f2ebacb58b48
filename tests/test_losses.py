import keras
import numpy as np
import pytest

from keras_dae.losses import GeneralizedKL, get_loss

RNG = np.random.default_rng(0)
Y = RNG.uniform(0, 3, (5, 7)).astype("float32")
Y_HAT = RNG.uniform(0, 3, (5, 7)).astype("float32")
Y[0, :3] = 0.0  # silent bins
Y_HAT[1, :2] = 0.0


def _kl_reference(y, y_hat, eps=1e-8):
    y, y_hat = y.astype(np.float64), y_hat.astype(np.float64)
    return np.mean(np.mean(y * np.log((y + eps) / (y_hat + eps)) - y + y_hat, axis=-1))


@pytest.mark.parametrize(
    "name, reference",
    [
        ("kl", _kl_reference),
        ("l1", lambda y, y_hat: np.mean(np.abs(y - y_hat))),
        ("l2", lambda y, y_hat: np.mean((y - y_hat) ** 2)),
    ],
)
def test_losses_match_numpy(name, reference):
    value = float(get_loss(name)(Y, Y_HAT))
    np.testing.assert_allclose(value, reference(Y, Y_HAT), rtol=1e-5)
    assert float(get_loss(name)(Y, Y)) == pytest.approx(0.0, abs=1e-6)


def test_kl_is_finite_at_silence_and_not_symmetric():
    loss = GeneralizedKL()
    zeros = np.zeros((2, 4), "float32")
    assert float(loss(zeros, zeros)) == 0.0
    assert np.isfinite(float(loss(Y, np.zeros_like(Y))))
    assert float(loss(Y, Y_HAT)) != pytest.approx(float(loss(Y_HAT, Y)))


def test_kl_config_round_trip_and_bad_arguments():
    loss = GeneralizedKL(epsilon=1e-5)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, GeneralizedKL) and again.epsilon == 1e-5
    with pytest.raises(ValueError, match="epsilon must be positive"):
        GeneralizedKL(epsilon=0)
    with pytest.raises(ValueError, match="Unknown loss 'l3'"):
        get_loss("l3")
