"""Silences TensorFlow's "frequent retracing" warning where keras-dae retraces by design.

keras-dae calls many models in one process (a reproduction trains, distils
and evaluates three): each model gets its own traced function, traced once,
but TensorFlow counts the traces of all functions of one name together and
warns after a few models. That is expected and not actionable, so these
warnings are dropped: the ones about keras-dae's own `predict_frames` and
Keras's `predict` step. Every other TensorFlow warning passes.
"""

import logging

_EXPECTED = ("predict_frames", "make_predict_function")


class ExpectedRetracingFilter(logging.Filter):
    def filter(self, record):
        message = record.getMessage()
        return not ("retracing" in message and any(name in message for name in _EXPECTED))


def install():
    """Adds the filter to the `tensorflow` logger, once."""
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, ExpectedRetracingFilter) for f in logger.filters):
        logger.addFilter(ExpectedRetracingFilter())
