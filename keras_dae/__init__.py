"""keras-dae: train and explain spectrogram-based singing-voice separators.

Implements the denoising-autoencoder models of Mimilakis et al., "Examining the
Mapping Functions of Denoising Autoencoders in Singing Voice Separation"
(IEEE/ACM TASLP, vol. 28, 2020) in Keras 3 on TensorFlow.

Example:

>>> import keras_dae
>>> spectral = keras_dae.SpectralConfig(num_bins=744)
>>> model, run_dir = keras_dae.train("sf", "runs/sf", spectral=spectral, epochs=5)
>>> stems = keras_dae.separate(run_dir, audio, 44100)

Every function that takes a `SpectralConfig` takes it as the keyword
`spectral=`; `config` means a run's record (`config.json`). Errors name the
Python parameters (`num_bins`, `overwrite=True`); the `keras-dae` command
line shows them as its flags.

`keras_dae.reproduce` is the function; the stages behind it are in the
package of the same name (`from keras_dae.reproduce import PRESETS`).
"""

import os

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) drowns the CLI's
# output; users who want it set TF_CPP_MIN_LOG_LEVEL themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# tf.signal, tf.data and SavedModel export need the TensorFlow backend.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        "keras_dae needs the TensorFlow backend of Keras, but Keras is using "
        f"'{keras.backend.backend()}'. Set KERAS_BACKEND=tensorflow before "
        "importing keras."
    )

# `names` first and by name: the command line may have loaded it already (without this package), and
# `from keras_dae import names` binds that module here either way.
from keras_dae import names  # noqa: E402, F401
from keras_dae.couplings import distill, examine  # noqa: E402
from keras_dae.evaluation import evaluate  # noqa: E402
from keras_dae.export import export_model  # noqa: E402
from keras_dae.layers import SkipFilter  # noqa: E402
from keras_dae.models import ARCHITECTURES, build_model, describe_model  # noqa: E402
from keras_dae.separation.core import separate  # noqa: E402
from keras_dae.spectral import SpectralConfig  # noqa: E402
from keras_dae.training import train  # noqa: E402

# Last: the function `reproduce` replaces the attribute `keras_dae.reproduce`, which importing the
# subpackage `keras_dae.reproduce` sets (`from keras_dae.reproduce import ...` still reaches the package).
from keras_dae.reproduce import reproduce  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES",
    "SkipFilter",
    "SpectralConfig",
    "build_model",
    "describe_model",
    "distill",
    "evaluate",
    "examine",
    "export_model",
    "reproduce",
    "separate",
    "train",
]
