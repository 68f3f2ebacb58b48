"""The three denoising-autoencoder architectures of the paper.

Each maps one magnitude frame `(batch, num_bins)` of the mixture to one frame
of the singing-voice estimate; there is no context window. All are functional
Keras models made of a single `SkipFilter` layer (see `layers.py` for why):

| arch       | encoder               | output                         |
|------------|-----------------------|--------------------------------|
| `dae`      | N -> H                | relu(W_dec h + b_dec)          |
| `deep-dae` | N -> H -> H -> H      | relu(W_dec h + b_dec)          |
| `sf`       | N -> H                | x * relu(W_dec h + b_dec)      |

Every layer uses ReLU, has biases and Glorot-normal kernels. Biases start at
zero for `sf` (as in the reference code) and at PyTorch's `nn.Linear` default
for the two plain DAEs.
"""

import keras

from keras_dae.checks import one_of, positive_int
from keras_dae.layers import SkipFilter
from keras_dae.names import DAE, DEEP_DAE, SF

# Keyed by `keras_dae.names` (in its order), which the command line reads without importing TensorFlow.
ARCHITECTURES = {
    DAE: {"num_encoder_layers": 1, "skip": False, "bias_initializer": None},
    DEEP_DAE: {"num_encoder_layers": 3, "skip": False, "bias_initializer": None},
    SF: {"num_encoder_layers": 1, "skip": True, "bias_initializer": "zeros"},
}


def build_model(arch, num_bins, hidden_size=None, name=None):
    """Builds one of the paper's architectures as a functional Keras model.

    Args:
        arch: str, one of `"dae"`, `"deep-dae"`, `"sf"`.
        num_bins: int, number of frequency bins N of the input and output.
        hidden_size: int or None, default None. Encoder width H; None means N,
            as the reference code suggests.
        name: str or None. Model name; default the arch with `_` for `-`.

    Returns:
        `keras.Model` with input `mixture` `(batch, num_bins)` and output
        `vocals` `(batch, num_bins)`, built and ready for `compile`.

    Raises:
        ValueError: for an unknown `arch` or non-positive sizes.

    Example:

    >>> model = build_model("sf", num_bins=744)
    >>> model.output_shape
    (None, 744)
    """
    one_of("arch", arch, ARCHITECTURES)
    positive_int("num_bins", num_bins)
    positive_int("hidden_size", hidden_size, optional=True)
    inputs = keras.Input(shape=(num_bins,), name="mixture")
    outputs = SkipFilter(
        hidden_size=hidden_size, name="skip_filter", **ARCHITECTURES[arch]
    )(inputs)
    # Identity layer only to give the output a stable, documented name.
    outputs = keras.layers.Identity(name="vocals")(outputs)
    return keras.Model(inputs, outputs, name=name or arch.replace("-", "_"))


def describe_model(model):
    """The architecture facts of a keras-dae model.

    Args:
        model: a model made by `build_model` (or loaded from its `.keras` file).

    Returns:
        dict with `arch`, `num_bins`, `hidden_size`, `num_params`.

    Raises:
        ValueError: if the model holds no `SkipFilter` layer, or its settings
            match none of the architectures.
    """
    layers = [layer for layer in model.layers if isinstance(layer, SkipFilter)]
    if len(layers) != 1:
        raise ValueError(
            f"Model {model.name!r} is not a keras-dae model: it has {len(layers)} "
            "SkipFilter layers, expected exactly one."
        )
    layer = layers[0]
    arch = next(
        (
            name
            for name, settings in ARCHITECTURES.items()
            if settings["num_encoder_layers"] == layer.num_encoder_layers
            and settings["skip"] == layer.skip
        ),
        None,
    )
    if arch is None:
        raise ValueError(
            f"Model {model.name!r} has a SkipFilter with num_encoder_layers="
            f"{layer.num_encoder_layers}, skip={layer.skip}, which matches none of "
            f"{', '.join(ARCHITECTURES)}."
        )
    return {
        "arch": arch,
        "num_bins": int(layer.decoder_kernel.shape[1]),
        "hidden_size": int(layer.decoder_kernel.shape[0]),
        "num_params": int(model.count_params()),
    }
