"""The reproduction's verdict, decided from the couplings metrics (never written by hand)."""

from keras_dae.couplings.references import MIN_CALIBRATION
from keras_dae.models import ARCHITECTURES

ARCHS = tuple(ARCHITECTURES)
# The plain DAEs, which the paper finds more diagonal than the skip-filtering model.
PLAIN = tuple(name for name, spec in ARCHITECTURES.items() if not spec["skip"])
# Difference of diagonal energy ratios that counts as "more diagonal".
MARGIN = 0.1


def finding(records):
    """`(verdict, sentence)` from the couplings metrics of each architecture.

    `records` maps `dae`, `deep-dae` and `sf` to `examine`'s metrics records.
    Verdicts: `undecided` (the frames cannot tell a diagonal mapping from
    another: under-determined, or a known diagonal teacher scores below
    `MIN_CALIBRATION`), `held` (both plain DAEs more diagonal than sf by
    `MARGIN`), `not held` (neither is), or `mixed` (one is).
    """
    missing = [arch for arch in ARCHS if arch not in records]
    if missing:
        raise ValueError(f"finding needs the couplings of {', '.join(ARCHS)}; missing {', '.join(missing)}.")
    ratios = {arch: records[arch]["couplings"]["diagonal_energy_ratio"] for arch in ARCHS}
    shown = ", ".join(f"{arch} {ratio:.3f}" for arch, ratio in ratios.items())
    trust = [records[arch]["trust"] for arch in ARCHS]
    calibration = min(t["calibration"]["diagonal_energy_ratio"] for t in trust)
    if any(t["under_determined"] for t in trust) or calibration < MIN_CALIBRATION:
        return "undecided", (
            f"The data cannot decide: on these frames a known diagonal teacher scores only {calibration:.3f} "
            f"diagonal energy (under-determined: {any(t['under_determined'] for t in trust)}), so the models' "
            f"ratios ({shown}) do not tell per-bin filtering from inter-frequency structure. Use more test "
            "frames or fewer bins."
        )
    diagonal = [arch for arch in PLAIN if ratios[arch] >= ratios["sf"] + MARGIN]
    if len(diagonal) == 2:
        return "held", (
            f"The paper's finding held: both plain DAEs learned more diagonal (per-bin) mappings than the "
            f"skip-filtering model (diagonal energy ratios {shown}; a diagonal teacher scores {calibration:.3f})."
        )
    if not diagonal:
        return "not held", (
            f"The paper's finding did not hold on this run: neither plain DAE's mapping is more diagonal than "
            f"sf's by {MARGIN} (diagonal energy ratios {shown}; a diagonal teacher scores {calibration:.3f})."
        )
    return "mixed", (
        f"Mixed: only {diagonal[0]} is more diagonal than sf by {MARGIN} (diagonal energy ratios {shown}; "
        f"a diagonal teacher scores {calibration:.3f})."
    )
