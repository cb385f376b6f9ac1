"""The one way a table is drawn for a person: columns padded to a width.

``status``, ``audit``, ``releases`` and a fleet's deploy all print their rows
through :func:`lines`, so a column is declared once (its title, width and the gap
before it) and every table lines up the same way. ``--json`` prints the rows
themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """One column of a table.

    Attributes:
        title: Its header.
        width: Its cells are padded to this width (0: the last column, unpadded).
        gap: What separates it from the column before it.
        right: Aligned right (numbers), not left.
    """

    title: str
    width: int = 0
    gap: str = " "
    right: bool = False

    def cell(self, text: str) -> str:
        """``text`` padded to this column's width (never cut: callers clip)."""
        if not self.width:
            return text
        return text.rjust(self.width) if self.right else text.ljust(self.width)


def line(columns: Sequence[Column], cells: Sequence[str]) -> str:
    """One row: each cell padded and after its column's gap."""
    parts = [
        (column.gap if index else "") + column.cell(cell)
        for index, (column, cell) in enumerate(zip(columns, cells))
    ]
    return "".join(parts)


def lines(
    columns: Sequence[Column], rows: Iterable[Sequence[str]], *, header: bool = True
) -> list[str]:
    """The header (unless ``header`` is false) and one line per row."""
    drawn = [line(columns, [c.title for c in columns])] if header else []
    return drawn + [line(columns, row) for row in rows]
