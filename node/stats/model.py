"""The shapes statistics take between the modules: tables, released tables and the method.

A :class:`Table` is what the node counted: interior cells only, one code per dimension. A
:class:`ReleasedTable` is what may leave the node: the full cube with every margin (``TOTAL`` in
a dimension's place), each cell a published count or ``None`` (suppressed). Pure data.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

TOTAL = "_T"  # the SDMX code for "all values of this dimension"

Codes = tuple[str, ...]


@dataclass(frozen=True)
class Dimension:
    """One breakdown of a table: its name (``sex``) and its interior codes, in display order."""

    name: str
    codes: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """Counts of one indicator for one period, by the cross-product of its dimensions.

    ``counts`` holds interior cells (no ``TOTAL``); a missing cell is zero."""

    indicator: str
    dimensions: tuple[Dimension, ...]
    counts: Mapping[Codes, int] = field(default_factory=dict)

    def interior(self) -> Iterator[Codes]:
        """Every interior cell, in dimension order."""
        return itertools.product(*(d.codes for d in self.dimensions))

    def cube(self) -> dict[Codes, int]:
        """Every cell with its margins: each dimension's codes plus ``TOTAL``."""
        out: dict[Codes, int] = {}
        for codes in itertools.product(*((*d.codes, TOTAL) for d in self.dimensions)):
            out[codes] = 0
        for codes, n in self.counts.items():
            for mask in itertools.product((False, True), repeat=len(codes)):
                key = tuple(TOTAL if m else c for c, m in zip(codes, mask, strict=True))
                out[key] += n
        return out


@dataclass(frozen=True)
class ReleasedTable:
    """A table as it may leave the node: every cell of the cube, ``None`` where suppressed."""

    indicator: str
    dimensions: tuple[Dimension, ...]
    cells: Mapping[Codes, int | None]


@dataclass(frozen=True)
class Method:
    """How a release was protected; travels with it so the receiver can check it.

    ``threshold``: a published count is 0 or at least this. ``rounding``: published counts are
    multiples of this (1 = not rounded). ``epsilon``: differential privacy budget this release
    spent (None = no noise)."""

    threshold: int = 5
    rounding: int = 1
    epsilon: float | None = None
