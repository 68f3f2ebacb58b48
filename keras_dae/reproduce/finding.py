"""The reproduction's verdict, decided from the couplings metrics (never written by hand).

The verdict answers the paper's question, "are the plain DAEs' mappings more
diagonal (per-bin) than the skip-filtering model's?", in four words:

    undecided   a model stopped at its epoch cap without converging, or the
                frames cannot tell a diagonal mapping from another (under-
                determined, or a known diagonal teacher scores below
                `MIN_CALIBRATION`)
    held        both plain DAEs' diagonal energy exceeds sf's by `MARGIN`
    not held    neither does
    mixed       one does

It is decided with the verdict's solver (the paper's L1 `fit`). The sentence
then says whether the same comparison gives the same verdict under the other
solver (closed-form least squares), where each model sits against the
per-bin references (within their range, or below its lowest score), and
whether each model's diagonal energy was still rising, flat or falling over
its last checkpoints (`trend`).
"""

from keras_dae.couplings.references import MIN_CALIBRATION
from keras_dae.models import ARCHITECTURES

ARCHS = tuple(ARCHITECTURES)
# The plain DAEs, which the paper finds more diagonal than the skip-filtering model.
PLAIN = tuple(name for name, spec in ARCHITECTURES.items() if not spec["skip"])
# Difference of diagonal energy ratios that counts as "more diagonal".
MARGIN = 0.1
# A model's diagonal energy is "rising" ("falling") when its last checkpoint is more than TREND_TOLERANCE above
# (below) the checkpoint TREND_CHECKPOINTS before it, else "flat".
TREND_CHECKPOINTS = 3
TREND_TOLERANCE = 0.01
CONVERGED = "converged"


def _ratios(records):
    missing = [arch for arch in ARCHS if arch not in records]
    if missing:
        raise ValueError(f"finding needs the couplings of {', '.join(ARCHS)}; missing {', '.join(missing)}.")
    return {arch: records[arch]["couplings"]["diagonal_energy_ratio"] for arch in ARCHS}


def compare_ratios(ratios):
    """`(verdict, diagonal)`: held / not held / mixed from the diagonal energy ratios, and the plain DAEs
    more diagonal than sf by `MARGIN`."""
    diagonal = [arch for arch in PLAIN if ratios[arch] >= ratios["sf"] + MARGIN]
    verdict = "held" if len(diagonal) == len(PLAIN) else ("not held" if not diagonal else "mixed")
    return verdict, diagonal


def trend(values):
    """`"rising"`, `"flat"` or `"falling"`: the last value against the one `TREND_CHECKPOINTS` before it."""
    values = list(values)
    if len(values) < 2:
        return "unknown"
    change = values[-1] - values[max(len(values) - 1 - TREND_CHECKPOINTS, 0)]
    return "rising" if change > TREND_TOLERANCE else ("falling" if change < -TREND_TOLERANCE else "flat")


def per_bin_placement(ratio, per_bin):
    """`"within"` the per-bin references' range (at or above its lowest score), or `"below"` it."""
    low = min(scores["diagonal_energy_ratio"] for scores in per_bin.values())
    return "below" if ratio < low else "within"


def finding(records, *, training=None, per_bin=None, lstsq=None, trends=None):
    """`(verdict, sentence)` from the couplings metrics of each architecture.

    Args:
        records: dict arch -> `examine`'s metrics record (the verdict's solver)
            for `dae`, `deep-dae` and `sf`.
        training: dict arch -> the run's `config.json` (its `status` and
            `epochs_completed`), or None to skip the convergence check.
        per_bin: the per-bin references' scores under the verdict's solver
            (`per_bin_references`), or None.
        lstsq: dict with `"records"` (arch -> metrics record) and `"per_bin"`
            under the least-squares solver, or None.
        trends: dict arch -> `trend` of its diagonal energy while training, or None.
    """
    ratios = _ratios(records)
    shown = ", ".join(f"{arch} {ratio:.3f}" for arch, ratio in ratios.items())
    if training is not None:
        capped = [arch for arch in ARCHS if (training.get(arch) or {}).get("status") != CONVERGED]
        if capped:
            stops = ", ".join(f"{arch} ({(training.get(arch) or {}).get('status', 'not trained')} after "
                              f"{(training.get(arch) or {}).get('epochs_completed', 0)} epochs)" for arch in capped)
            return "undecided", (
                f"Undecided: {stops} did not converge by the training rule, so its mapping may still be changing; "
                f"train longer (a larger epoch cap) before reading the couplings (diagonal energy ratios {shown})."
            )
    trust = [records[arch]["trust"] for arch in ARCHS]
    calibration = min(t["calibration"]["diagonal_energy_ratio"] for t in trust)
    if any(t["under_determined"] for t in trust) or calibration < MIN_CALIBRATION:
        return "undecided", (
            f"The data cannot decide: on these frames a known diagonal teacher scores only {calibration:.3f} "
            f"diagonal energy (under-determined: {any(t['under_determined'] for t in trust)}), so the models' "
            f"ratios ({shown}) do not tell per-bin filtering from inter-frequency structure. Use more test "
            "frames or fewer bins."
        )
    verdict, diagonal = compare_ratios(ratios)
    if verdict == "held":
        sentence = (f"The paper's finding held: both plain DAEs learned more diagonal (per-bin) mappings than the "
                    f"skip-filtering model (diagonal energy ratios {shown}; a diagonal teacher scores "
                    f"{calibration:.3f}).")
    elif verdict == "not held":
        sentence = (f"The paper's finding did not hold on this run: neither plain DAE's mapping is more diagonal "
                    f"than sf's by {MARGIN} (diagonal energy ratios {shown}; a diagonal teacher scores "
                    f"{calibration:.3f}).")
    else:
        sentence = (f"Mixed: only {diagonal[0]} is more diagonal than sf by {MARGIN} (diagonal energy ratios "
                    f"{shown}; a diagonal teacher scores {calibration:.3f}).")
    extra = []
    other_ratios = _ratios(lstsq["records"]) if lstsq is not None else None
    if lstsq is not None:
        other, _ = compare_ratios(other_ratios)
        other_shown = ", ".join(f"{arch} {ratio:.3f}" for arch, ratio in other_ratios.items())
        extra.append(f"Under both solvers: the least-squares C gives the same verdict ({other_shown})."
                     if other == verdict else
                     f"Only under the L1 fit: the least-squares C gives '{other}' ({other_shown}).")
    if per_bin is not None:
        placed = "; ".join(f"{arch} {per_bin_placement(ratios[arch], per_bin)}" for arch in ARCHS)
        line = f"Against the per-bin references' range (L1 fit): {placed}"
        if lstsq is not None and lstsq.get("per_bin"):
            placed = "; ".join(f"{arch} {per_bin_placement(other_ratios[arch], lstsq['per_bin'])}" for arch in ARCHS)
            line += f"; least squares: {placed}"
        extra.append(line + ".")
    if trends is not None:
        extra.append("Diagonal energy over the last checkpoints of training (least squares): "
                     + ", ".join(f"{arch} {trends.get(arch, 'unknown')}" for arch in ARCHS) + ".")
    return verdict, " ".join([sentence, *extra])
