"""Separating recordings with a trained model.

    masks   subtract, soft and ideal ratio masks: the one definition of each,
            used by separation, evaluation and the exported serving graph
    core    chunked separation of an array or a block reader (`separate`,
            `separate_waveform`, `separate_blocks`), bounded memory
    files   files on disk: decode with ffmpeg, resample, separate, write WAVs
            atomically (`separate_file`, `separate_files`)

Data flows files -> core -> masks.
"""

from keras_dae.separation.core import resolve, separate, separate_blocks, separate_waveform
from keras_dae.separation.files import separate_file, separate_files
from keras_dae.separation.masks import MASKS

__all__ = ["MASKS", "resolve", "separate", "separate_blocks", "separate_file", "separate_files", "separate_waveform"]
