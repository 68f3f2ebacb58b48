"""The paper's comparison in one call (`keras-dae reproduce`).

    stages    the stages (data, train, couplings, evaluate, references,
              compare, report), each recorded when done so a rerun resumes;
              the presets (`PRESETS`)
    finding   the verdict, decided from the couplings metrics
    report    `report.md` and `report.html` from one list of blocks

Data flows stages -> finding -> report.
"""

from keras_dae.reproduce.finding import ARCHS, MARGIN, finding
from keras_dae.reproduce.report import REPORT_HTML, REPORT_MD
from keras_dae.reproduce.stages import PRESETS, Preset, reproduce

__all__ = ["ARCHS", "MARGIN", "PRESETS", "REPORT_HTML", "REPORT_MD", "Preset", "finding", "reproduce"]
