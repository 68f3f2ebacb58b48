"""keras-dae: train and explain spectrogram-based singing-voice separators.

Implements the denoising-autoencoder models of Mimilakis et al., "Examining the
Mapping Functions of Denoising Autoencoders in Singing Voice Separation"
(TASLP 2019) in Keras 3 on TensorFlow.

Example:

>>> import keras_dae
>>> model = keras_dae.build_model("sf", num_bins=744)
>>> config = keras_dae.SpectralConfig(num_bins=744)
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

from keras_dae.layers import SkipFilter  # noqa: E402
from keras_dae.models import ARCHITECTURES, build_model, describe_model  # noqa: E402
from keras_dae.separation.core import separate  # noqa: E402
from keras_dae.spectral import SpectralConfig  # noqa: E402
from keras_dae.training import train  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES",
    "SkipFilter",
    "SpectralConfig",
    "build_model",
    "describe_model",
    "separate",
    "train",
]
