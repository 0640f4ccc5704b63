"""CSV cells a spreadsheet shows rather than runs: one rule for the exports and the reports.

A text cell that starts with what a spreadsheet takes as the start of a formula (OWASP's list
for CSV injection: `=`, `+`, `-`, `@`, a tab, a carriage return) gets a `'` put before it.
Numbers are never touched: se-flow writes them as ints (never a negative one) or as text, so a
leading `'` always marks text that was escaped. `csv_text` is one text cell as `csv.writer`
writes it, escaped, for a writer that builds its lines itself. No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["FORMULA_STARTS", "MAYBE_FORMULA", "CellTexts", "csv_text", "defused"]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Where such a cell shows in csv.writer's text: first on a line or after a comma, its quote
# before it when quoted (a cell holding a CR always is; the CR of each line's CRLF is not a
# cell's). Searched in "\n" + the text: a class of two characters first keeps the search in C.
MAYBE_FORMULA = re.compile(r'[,\n](?:"?[=+\-@\t]|"\r)')
"""Matches CSV text that may hold a cell `defused` would change (false alarms possible, misses
not): a writer may check a chunk once and defuse it row by row only when this matches."""


def defused(row: Iterable[Any]) -> list[Any]:
    """The row with each text cell a spreadsheet would run as a formula given a `'` before it."""
    # One comprehension per row, not a call per cell: this runs for every cell an export writes.
    return [
        "'" + cell if isinstance(cell, str) and cell.startswith(FORMULA_STARTS) else cell
        for cell in row
    ]


_QUOTED = frozenset(',"\r\n')


def csv_text(value: str | None) -> str:
    """A text cell (None: empty) as `csv.writer` writes it once `defused`: quoted when it holds
    a comma, a quote or a line break (its quotes doubled), as the excel dialect does. What a
    writer that builds its lines itself puts between the commas."""
    if value is None:
        return ""
    if value.startswith(FORMULA_STARTS):
        value = "'" + value
    if _QUOTED.isdisjoint(value):
        return value
    return '"' + value.replace('"', '""') + '"'


class CellTexts(dict[str | None, str]):
    """`csv_text` of each value looked up, worked out once: the ids, stages and triggers of an
    export repeat on every row. Bounded: `trim` when a caller can afford to forget."""

    __slots__ = ()

    def __missing__(self, value: str | None) -> str:
        text = self[value] = csv_text(value)
        return text

    def trim(self, most: int) -> None:
        if len(self) > most:
            self.clear()
