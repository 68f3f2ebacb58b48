"""The architecture names, the one definition (no imports).

`keras_dae.models.ARCHITECTURES` is keyed by these, and the command line
reads this file without importing `keras_dae` (which loads TensorFlow), so
that `keras-dae --help` stays fast and offers exactly the library's choices.
Keep this module free of imports.
"""

DAE = "dae"
DEEP_DAE = "deep-dae"
SF = "sf"
ARCHITECTURE_NAMES = (DAE, DEEP_DAE, SF)
