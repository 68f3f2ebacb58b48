"""Tables as data: a header and rows of cells, rendered to Markdown (and by the report, to HTML).

Tables are built once as `Table` objects and rendered by each output format,
so no format re-parses another's text.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Table:
    """A table of text cells.

    Args:
        header: tuple of column titles.
        rows: tuple of rows, each a tuple of cells (strings), as many as the header.
        align: tuple of `"left"`/`"right"` per column; default: the first
            column left, the others right.
    """

    header: tuple
    rows: tuple
    align: tuple = None

    def __post_init__(self):
        object.__setattr__(self, "header", tuple(str(cell) for cell in self.header))
        object.__setattr__(self, "rows", tuple(tuple(str(cell) for cell in row) for row in self.rows))
        for row in self.rows:
            if len(row) != len(self.header):
                raise ValueError(f"a table row has {len(row)} cells for {len(self.header)} columns: {row}")
        if self.align is None:
            object.__setattr__(self, "align", ("left",) + ("right",) * (len(self.header) - 1))

    def markdown(self):
        """The table as GitHub Markdown (a `|` inside a cell is escaped)."""

        def line(cells):
            return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

        rule = "|" + "".join("---:|" if side == "right" else "---|" for side in self.align)
        return "\n".join([line(self.header), rule, *(line(row) for row in self.rows)]) + "\n"
