"""The mean input-output Jacobian of a model over frames.

`J(x)[i, j] = d f(x)_i / d x_j`, the same orientation as the couplings C.
For a ReLU network without biases `f(x) = J(x) x` exactly; the mean
`E_x[J(x)]` is the best single linear map *locally*, while C is the best one
over the frames, so their distance says how far from linear the model is.
"""

import numpy as np
import tensorflow as tf

BATCH = 8


def mean_jacobian(model, frames, batch_size=BATCH, progress=None):
    """`mean_x J(x)` over `frames`, float32 `(N, N)`.

    Computed with `tf.GradientTape.batch_jacobian` on `batch_size` frames at
    a time (each frame's Jacobian is N x N floats, so memory grows with
    `batch_size * N^2`). `progress`, if given, is called with the number of
    frames done.
    """
    frames = np.asarray(frames, np.float32)
    if frames.ndim != 2 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty (num_frames, num_bins) array. Received shape {frames.shape}")

    @tf.function(reduce_retracing=True)
    def summed(batch):
        with tf.GradientTape() as tape:
            tape.watch(batch)
            outputs = model(batch, training=False)
        return tf.reduce_sum(tape.batch_jacobian(outputs, batch), axis=0)

    total = np.zeros((frames.shape[1], frames.shape[1]), np.float64)
    for start in range(0, len(frames), batch_size):
        total += summed(tf.constant(frames[start : start + batch_size])).numpy()
        if progress is not None:
            progress(min(start + batch_size, len(frames)))
    return (total / len(frames)).astype(np.float32)
