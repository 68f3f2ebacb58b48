"""Several `examine` outputs side by side: one figure on one colour scale, one table."""

import csv
import json
from pathlib import Path

import numpy as np

from keras_dae.atomic import atomic_path, remove_stale_temporaries
from keras_dae.couplings import figures
from keras_dae.couplings.examine import COUPLINGS, METRICS
from keras_dae.locking import holds_lock
from keras_dae.spectral import SpectralConfig
from keras_dae.tables import Table

COMPARISON = "comparison"
# Columns of the comparison table: (metrics.json path, header, format).
TABLE = (
    (("couplings", "diagonal_energy_ratio"), "diag. energy", "{:.3f}"),
    (("couplings", "band_energy_ratio_3"), "energy |j-i|<=3", "{:.3f}"),
    (("couplings", "mean_absolute_offset_bins"), "mean |offset| (bins)", "{:.1f}"),
    (("couplings", "fit_quality", "matrix", "relative_l1"), "rel. L1 C", "{:.3f}"),
    (("couplings", "fit_quality", "best_diagonal", "relative_l1"), "rel. L1 diag.", "{:.3f}"),
    (("couplings", "fit_quality", "identity", "relative_l1"), "rel. L1 identity", "{:.3f}"),
    (("trust", "frames_fit"), "frames", "{:d}"),
    (("trust", "condition_number"), "cond.", "{:.1e}"),
    (("trust", "dead_output_units"), "dead units", "{:.0%}"),
    (("trust", "calibration", "diagonal_energy_ratio"), "calibration diag.", "{:.3f}"),
)


def read_result(directory):
    """`(C, metrics record)` of a directory written by `examine`."""
    directory = Path(directory)
    if not (directory / METRICS).is_file() or not (directory / COUPLINGS).is_file():
        raise ValueError(f"'{directory}' holds no couplings (no {METRICS} and {COUPLINGS}); run keras-dae couplings.")
    try:
        record = json.loads((directory / METRICS).read_text())
        matrix = np.load(directory / COUPLINGS)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read the couplings in '{directory}': {error}") from None
    return matrix, record


def _cell(record, path, fmt):
    value = record
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if value is None:
        return "-"
    return fmt.format(int(value) if fmt.endswith("d}") else value)


def comparison_table(records):
    """`Table`, one row per `(name, record)`, the columns of `TABLE`."""
    header = ["model", *(title for _, title, _ in TABLE)]
    rows = [[name, *(_cell(record, path, fmt) for path, _, fmt in TABLE)] for name, record in records.items()]
    return Table(header, rows, align=("left",) * len(header))


@holds_lock("out")
def compare(directories, out, *, formats=("png",)):
    """Draws the couplings of several `examine` outputs side by side and writes a table.

    Writes `out/comparison.png` (one shared colour scale), `comparison.md`
    and `comparison.csv`, holding the lock of `out` (`keras_dae.locking`).
    Returns the markdown table.
    """
    if len(directories) < 2:
        raise ValueError(
            "compare needs at least two couplings directories. "
            f"Received: directories={[str(directory) for directory in directories]!r}"
        )
    matrices, records, configs = {}, {}, {}
    for directory in directories:
        matrix, record = read_result(directory)
        arch, folder = record["model"]["arch"], Path(directory).name
        name = arch if folder == arch else f"{arch} ({folder})"
        while name in matrices:
            name += "'"
        matrices[name], records[name] = matrix, record
        configs[name] = SpectralConfig.from_dict(record["spectral"])
    out = Path(out)
    remove_stale_temporaries(out)  # what a killed run left (this call holds the lock of `out`)
    notes = {
        name: [f"diag. energy {record['couplings']['diagonal_energy_ratio']:.3f} "
               f"(calibration {record['trust']['calibration']['diagonal_energy_ratio']:.3f})",
               f"{record['trust']['frames_fit']} frames, {record['trust']['num_bins']} bins"]
        for name, record in records.items()
    }
    figures.plot_compare(matrices, out / f"{COMPARISON}.png",
                         "Couplings C, one colour scale (dB below the largest |C| of all)", spectral=configs,
                         notes=notes, formats=formats)
    table = comparison_table(records).markdown()
    with atomic_path(out / f"{COMPARISON}.md") as tmp:
        tmp.write_text(table)
    with atomic_path(out / f"{COMPARISON}.csv") as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", *(".".join(path) for path, _, _ in TABLE)])
        for name, record in records.items():
            writer.writerow([name, *(_cell(record, path, "{}") for path, _, _ in TABLE)])
    return table
