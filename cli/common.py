"""What every `keras-dae` command shares: state, logging, importing the library."""

import logging
import os
import sys

log = logging.getLogger("keras_dae")

ARCH_NAMES = ("dae", "deep-dae", "sf")
# Exceptions that a user's input can cause inside the library: shown as one
# line (with `-vv`, as a traceback).
USER_ERRORS = (ValueError, OSError, RuntimeError)
STATE = {"verbose": 0}


def import_library():
    """Imports keras_dae, hiding TensorFlow's C++ start-up log unless -v.

    TensorFlow 2.21 logs through absl before `TF_CPP_MIN_LOG_LEVEL` applies
    (oneDNN, CUDA probing, a `cuInit` error on machines without a GPU), so the
    only way to keep a command's output to its own lines is to point file
    descriptor 2 elsewhere while TensorFlow loads and probes its devices.
    Python exceptions raised meanwhile still propagate and are shown.
    """
    if STATE["verbose"] or "tensorflow" in sys.modules:
        import keras_dae  # noqa: F401

        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        import keras_dae  # noqa: F401

        tf.config.list_physical_devices("GPU")
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def configure_logging(verbose, quiet):
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    # Keras' own progress bars follow --quiet too.
    for name in ("tensorflow", "absl", "h5py", "matplotlib", "numba", "PIL"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
