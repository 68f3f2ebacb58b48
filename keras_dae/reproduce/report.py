"""The report of `keras-dae reproduce`: `report.md`, and `report.html` with its figures inline.

Both are rendered from one list of blocks (headings, paragraphs, tables as
`keras_dae.tables.Table` rows, figures, code), so they always say the same
thing and neither re-parses the other. The training
curves figure is drawn here from each run's `history.csv` (`runs.read_history`).
"""

import base64
import dataclasses
import html
import json
import math
import re
from pathlib import Path

from keras_dae.atomic import atomic_path
from keras_dae.couplings.compare import COMPARISON
from keras_dae.couplings.references import MIN_CALIBRATION
from keras_dae.reproduce.finding import per_bin_placement
from keras_dae.runs import read_history
from keras_dae.tables import Table

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
TRAINING_FIGURE = "training.png"
COMPARISON_FIGURE = f"couplings/compare/{COMPARISON}.png"
EVOLUTION_FIGURE = "evolution.png"
_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; }
pre { background: #f5f5f5; padding: 0.75rem; overflow-x: auto; }
.finding { font-size: 1.1rem; padding: 0.75rem; border-left: 4px solid #888; background: #fafafa; }
"""


def plot_training(histories, path):
    """Training (and validation, where there is one) loss per epoch of each model, side by side.

    `histories` maps a name to `runs.read_history` rows.
    """
    from matplotlib.figure import Figure

    from keras_dae.plots import save_figure

    figure = Figure(figsize=(4.2 * len(histories), 3.2), layout="constrained")
    axes = figure.subplots(1, len(histories), squeeze=False)[0]
    for ax, (arch, rows) in zip(axes, histories.items()):
        epochs = [row["epoch"] + 1 for row in rows]
        ax.plot(epochs, [row.get("loss", math.nan) for row in rows], label="training")
        if any("val_loss" in row for row in rows):
            ax.plot(epochs, [row.get("val_loss", math.nan) for row in rows], label="validation")
        ax.set_title(arch)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend()
    figure.suptitle("Training curves")
    save_figure(figure, Path(path).with_suffix(""), formats=("png",))


def summary_table(records, summaries, archs):
    """Per model: its couplings' diagonal energy, the calibration, and its vocals' SDR/SIR/SAR."""
    header = ["model", "diag. energy", "calibration", "vocals SDR median", "SDR mean", "SIR median", "SIR mean",
              "SAR median", "SAR mean"]
    rows = []
    for arch in archs:
        couplings, trust = records[arch]["couplings"], records[arch]["trust"]
        vocals = summaries[arch]["vocals"]
        cells = [f"{couplings['diagonal_energy_ratio']:.3f}", f"{trust['calibration']['diagonal_energy_ratio']:.3f}"]
        cells += [f"{vocals[metric][statistic]:.2f}" for metric in ("SDR", "SIR", "SAR")
                  for statistic in ("median", "mean")]
        rows.append([arch, *cells])
    return Table(header, rows)


def per_bin_table(per_bin):
    rows = [[name, f"{scores['diagonal_energy_ratio']:.3f}", f"{scores['band_energy_ratio_3']:.3f}"]
            for name, scores in per_bin.items()]
    return Table(["per-bin teacher", "diag. energy", "energy |j-i|<=3"], rows)


def per_bin_note(per_bin, records, archs, solver="the L1 fit"):
    """Where each model's diagonal energy falls against the per-bin teachers' range (`finding.per_bin_placement`)."""
    ratios = [scores["diagonal_energy_ratio"] for scores in per_bin.values()]
    low, high = min(ratios), max(ratios)
    placed = []
    for arch in archs:
        ratio = records[arch]["couplings"]["diagonal_energy_ratio"]
        if per_bin_placement(ratio, per_bin) == "below":
            placed.append(f"{arch} ({ratio:.3f}) is below it, at {ratio / low:.2g} times its lowest")
        else:
            placed.append(f"{arch} ({ratio:.3f}) is within it{' (above its highest)' if ratio > high else ''}")
    return (f"Per-bin references ({solver}): teachers that filter each bin on its own, fitted by the same solver on "
            f"the same frames, score {low:.3f} to {high:.3f} diagonal energy (C has no bias and the bins are "
            f"correlated, so a per-bin mapping that is not linear still gets off-diagonal couplings). A model is "
            f"'within the per-bin range' at or above its lowest score and 'below it' under it. Against that range: "
            f"{'; '.join(placed)}. Far below it means structure across frequencies.")


def training_table(results):
    """Per model: how training ended (the convergence rule) and how its couplings ended and moved."""
    header = ["model", "status", "epochs", "steps", "best monitored loss", "last", "diag. energy lstsq (final)",
              "trend", "diag. energy L1 fit (final)"]
    rows = []
    for arch in results.archs:
        run = results.training.get(arch) or {}
        monitor = run.get("monitor", "val_loss")
        best, last = run.get("best") or {}, run.get("last") or {}
        lstsq = results.lstsq_records[arch]["couplings"]["diagonal_energy_ratio"] if results.lstsq_records else None
        rows.append([
            arch, run.get("status", "-"), str(run.get("epochs_completed", "-")), str(run.get("steps_completed", "-")),
            f"{best[monitor]:.4g} ({monitor}, epoch {best['epoch']})" if monitor in best else "-",
            f"{last[monitor]:.4g}" if monitor in last else "-",
            f"{lstsq:.3f}" if lstsq is not None else "-",
            (results.trends or {}).get(arch, "-"),
            f"{results.records[arch]['couplings']['diagonal_energy_ratio']:.3f}",
        ])
    return Table(header, rows)


@dataclasses.dataclass
class Results:
    """Everything the report shows, gathered by `stages.reproduce`."""

    settings: dict
    data_note: str
    records: dict  # arch -> examine's metrics record, the verdict's solver (L1 fit)
    summaries: dict  # method -> evaluation summary
    per_bin: dict  # per-bin references under the L1 fit
    verdict: str
    sentence: str
    archs: tuple
    training: dict = None  # arch -> run config.json
    lstsq_records: dict = None  # arch -> metrics record under least squares
    lstsq_per_bin: dict = None
    trends: dict = None  # arch -> "rising" / "flat" / "falling"
    evolution: bool = False  # whether EVOLUTION_FIGURE was drawn


def blocks(results):
    """The report as `(kind, content)` blocks: heading, finding, text, table, figure, code."""
    from keras_dae.couplings.compare import comparison_table
    from keras_dae.evaluation import summary_table as separation_table

    settings, data_note, records, summaries = results.settings, results.data_note, results.records, results.summaries
    per_bin, verdict, sentence, archs = results.per_bin, results.verdict, results.sentence, results.archs
    report = [
        ("heading", "keras-dae reproduction"),
        ("finding", f"Finding ({verdict}). {sentence}"),
        ("text", data_note),
        ("heading2", "Summary"),
        ("text", "Diagonal energy: the share of the couplings' energy on the diagonal (1 = per-bin filtering). "
                 "Calibration: the same solver fitted to a known diagonal teacher on the same frames; below "
                 f"{MIN_CALIBRATION} the frames cannot tell a diagonal mapping from another. Separation: museval BSS Eval v4, "
                 "median and mean over test tracks of each track's median over windows, in dB."),
        ("table", summary_table(records, summaries, archs)),
        ("text", per_bin_note(per_bin, records, archs)),
        ("table", per_bin_table(per_bin)),
        ("heading2", "Couplings"),
        ("table", comparison_table({arch: records[arch] for arch in archs})),
        ("text", "energy |j-i|<=3: the share within 3 bins of the diagonal. rel. L1 C / diag. / identity: on the "
                 "held-out frames, the L1 error of C, of the best diagonal (fitted per bin) and of the identity as "
                 "predictors of the model's output, relative to the output's L1 norm (how much of the model a "
                 "linear map explains). cond.: condition number of the fitting frames. dead units: output bins "
                 "that are zero on every frame."),
        ("figure", (COMPARISON_FIGURE, "couplings of each model side by side")),
        ("heading2", "Training"),
    ]
    if results.training:
        report += [
            ("text", "Each model trains until it converges by the rule of `keras_dae.convergence`: no improvement "
                     "of the validation loss by more than `min_delta` of its best for `patience` epochs (see the "
                     "settings below). 'epoch-cap' means it stopped at its epoch cap without converging; the "
                     "verdict is then 'undecided'. Trend: the least-squares diagonal energy at the last "
                     "checkpoint against the one three checkpoints before it (more than 0.01 up: rising; down: "
                     "falling; else flat)."),
            ("table", training_table(results)),
        ]
    report += [
        ("figure", (TRAINING_FIGURE, "training curves")),
        ("text", "Histories: `runs/<arch>/history.csv`; TensorBoard logs: `tensorboard --logdir runs`."),
    ]
    if results.evolution:
        report += [
            ("heading2", "How the mappings evolved while training"),
            ("text", "Every few epochs of training, C was distilled on fixed held-out mixture frames with the "
                     "closed-form least-squares solver (`runs/<arch>/couplings_evolution.csv` and `.npz`). The "
                     "solver matters: least squares gives lower diagonal energies than the paper's L1 fit on the "
                     "same model, so the hollow markers show each final model under the L1 fit, the verdict's "
                     "solver."),
            ("figure", (EVOLUTION_FIGURE, "diagonal and 3-bin band energy against training step; C at an early, a "
                                          "middle and the final checkpoint (least squares)")),
        ]
    if results.lstsq_per_bin and results.lstsq_records:
        report.append(("text", per_bin_note(results.lstsq_per_bin, results.lstsq_records, archs,
                                            solver="least squares")))
    report += [
        ("heading2", "Separation (with the mixture as the floor and the ideal ratio mask as the ceiling)"),
        ("table", separation_table(summaries)),
        ("heading2", "Settings"),
        ("code", json.dumps(settings, indent=2)),
    ]
    return report


def to_markdown(report_blocks):
    lines = []
    for kind, content in report_blocks:
        if kind == "heading":
            lines.append(f"# {content}")
        elif kind == "heading2":
            lines.append(f"## {content}")
        elif kind == "finding":
            verdict, _, rest = content.partition(". ")
            lines.append(f"**{verdict}.** {rest}")
        elif kind == "figure":
            lines.append(f"![{content[1]}]({content[0]})")
        elif kind == "code":
            lines.append(f"```json\n{content}\n```")
        elif kind == "table":
            lines.append(content.markdown().rstrip("\n"))
        else:
            lines.append(content.rstrip("\n"))
        lines.append("")
    return "\n".join(lines)


def _inline(text):
    escaped = html.escape(text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def _table_html(table):
    head = "".join(f"<th>{_inline(text)}</th>" for text in table.header)
    body = "".join("<tr>" + "".join(f"<td>{_inline(text)}</td>" for text in row) + "</tr>" for row in table.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(report_blocks, out):
    """The same blocks as one self-contained HTML page (figures as inline PNG data)."""
    parts = []
    for kind, content in report_blocks:
        if kind == "heading":
            parts.append(f"<h1>{_inline(content)}</h1>")
        elif kind == "heading2":
            parts.append(f"<h2>{_inline(content)}</h2>")
        elif kind == "finding":
            parts.append(f'<p class="finding">{_inline(content)}</p>')
        elif kind == "table":
            parts.append(_table_html(content))
        elif kind == "figure":
            data = base64.b64encode((Path(out) / content[0]).read_bytes()).decode("ascii")
            parts.append(f'<figure><img alt="{html.escape(content[1])}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{_inline(content[1])}</figcaption></figure>")
        elif kind == "code":
            parts.append(f"<pre>{html.escape(content)}</pre>")
        else:
            parts.append(f"<p>{_inline(content)}</p>")
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>keras-dae reproduction</title>'
            f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n")


def plot_evolution(out, results):
    """`EVOLUTION_FIGURE` from each run's couplings evolution; False when no run has one."""
    from keras_dae.couplings import evolution, figures
    from keras_dae.spectral import SpectralConfig

    evolutions = {}
    for arch in results.archs:
        run_dir = Path(out) / "runs" / arch
        rows = evolution.read_rows(run_dir)
        if rows:
            evolutions[arch] = (rows, *evolution.read_snapshots(run_dir))
    if not evolutions:
        return False
    spectral = SpectralConfig.from_dict(results.records[results.archs[0]]["spectral"])
    final = {arch: ("final C, L1 fit", results.records[arch]["couplings"]["diagonal_energy_ratio"])
             for arch in evolutions}
    figures.plot_evolution(evolutions, Path(out) / EVOLUTION_FIGURE,
                           "Couplings while training: least-squares C on held-out frames (hollow: L1 fit, final)",
                           spectral=spectral, final=final)
    return True


def write_report(out, results):
    """Draws the training curves and the evolution, and writes `report.md` and `report.html` (each atomically)."""
    out = Path(out)
    plot_training({arch: read_history(out / "runs" / arch) for arch in results.archs}, out / TRAINING_FIGURE)
    results.evolution = plot_evolution(out, results)
    report_blocks = blocks(results)
    with atomic_path(out / REPORT_MD) as tmp:
        tmp.write_text(to_markdown(report_blocks))
    with atomic_path(out / REPORT_HTML) as tmp:
        tmp.write_text(to_html(report_blocks, out))
