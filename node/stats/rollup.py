"""Combining the releases a secretariat or regional body receives into a report's data: the
latest release per issuer and period, the submissions missing or late, and combined tables.
Pure.

A combined cell is the sum of the issuers' cells. Where an issuer suppressed its cell the sum
is not known: the cell then shows what is known, a lower bound (``at_least``), never a guess.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from node.stats.indicators import BY_CODE, INDICATORS
from node.stats.model import TOTAL, Codes, Dimension, ReleasedTable
from node.stats.periods import Period
from node.stats.release import Release

ON_TIME, LATE, MISSING, NOT_DUE = "on-time", "late", "missing", "not-due"


@dataclass(frozen=True)
class Received:
    """A release as received: from whom, when, and what it said."""

    issuer: str
    received_at: dt.datetime
    release: Release


@dataclass(frozen=True)
class Submission:
    """Where one issuer stands for one period."""

    issuer: str
    period: Period
    status: str  # on-time | late | missing | not-due
    received: Received | None = None
    replaced: int = 0  # earlier releases for the same period that this one replaced


@dataclass(frozen=True)
class Cell:
    """A combined count: ``value`` when every issuer published its part, else None with the
    sum of the parts that were published (``at_least``)."""

    value: int | None
    at_least: int


@dataclass(frozen=True)
class Combined:
    indicator: str
    period: Period
    dimensions: tuple[Dimension, ...]
    cells: Mapping[Codes, Cell]
    issuers: tuple[str, ...]


@dataclass(frozen=True)
class RollUp:
    """Everything a report shows."""

    periods: tuple[Period, ...]
    issuers: tuple[str, ...]
    submissions: tuple[Submission, ...]
    tables: Mapping[tuple[str, str, str], ReleasedTable]  # (indicator, period, issuer)
    combined: Mapping[tuple[str, str], Combined] = field(default_factory=dict)

    def submission(self, issuer: str, period: Period) -> Submission:
        return next(s for s in self.submissions if s.issuer == issuer and s.period == period)

    def total(self, indicator: str, period: Period, issuer: str | None = None) -> Cell | None:
        """The grand total of an indicator (one issuer's, or combined)."""
        if issuer is not None:
            table = self.tables.get((indicator, period.code, issuer))
            if table is None:
                return None
            value = table.cells.get(tuple(TOTAL for _ in table.dimensions))
            return Cell(value, value or 0)
        combined = self.combined.get((indicator, period.code))
        if combined is None:
            return None
        return combined.cells.get(tuple(TOTAL for _ in combined.dimensions))


def latest(
    received: Iterable[Received],
) -> tuple[dict[tuple[str, str], Received], dict[tuple[str, str], int]]:
    """Per (issuer, period): the release in force — the newest, which replaces the others —
    and how many earlier ones it replaced (all of them stay in the audit)."""
    chosen: dict[tuple[str, str], Received] = {}
    counts: dict[tuple[str, str], int] = {}
    for item in sorted(received, key=lambda r: r.received_at):
        key = (item.issuer, item.release.period.code)
        if key in chosen:
            counts[key] = counts.get(key, 0) + 1
        chosen[key] = item
    return chosen, counts


def status(period: Period, received: Received | None, today: dt.date, due_days: int) -> str:
    due = period.end - dt.timedelta(days=1) + dt.timedelta(days=due_days)  # from its last day
    if received is None:
        return MISSING if today > due else NOT_DUE
    return LATE if received.received_at.date() > due else ON_TIME


def combine(tables: Sequence[ReleasedTable], indicator: str, period: Period,
            issuers: Sequence[str]) -> Combined:  # fmt: skip
    """Cell by cell sums; unknown where any part was suppressed (with the known lower bound)."""
    dims = BY_CODE[indicator].dimensions
    keys = set().union(*(t.cells for t in tables)) if tables else set()
    cells = {}
    for codes in keys:
        parts = [t.cells.get(codes) for t in tables]
        known = sum(p for p in parts if p is not None)
        cells[codes] = Cell(known if all(p is not None for p in parts) else None, known)
    return Combined(indicator, period, dims, cells, tuple(issuers))


def roll_up(
    received: Iterable[Received], periods: Sequence[Period], expected: Sequence[str],
    today: dt.date, due_days: int,
) -> RollUp:  # fmt: skip
    """The report's data for ``periods`` from every release received."""
    chosen, replaced = latest(received)
    wanted = {p.code for p in periods}
    issuers = tuple(sorted({*expected, *(i for i, p in chosen if p in wanted)}))
    submissions = []
    tables: dict[tuple[str, str, str], ReleasedTable] = {}
    for period in periods:
        for issuer in issuers:
            item = chosen.get((issuer, period.code))
            state = status(period, item, today, due_days)
            count = replaced.get((issuer, period.code), 0)
            submissions.append(Submission(issuer, period, state, item, count))
            for table in item.release.tables if item else ():
                tables[(table.indicator, period.code, issuer)] = table
    combined = {}
    for period in periods:
        for indicator in INDICATORS:
            parts = [(i, t) for (code, p, i), t in tables.items()
                     if code == indicator.code and p == period.code]  # fmt: skip
            if parts:
                combined[(indicator.code, period.code)] = combine(
                    [t for _, t in parts], indicator.code, period, [i for i, _ in parts]
                )
    return RollUp(tuple(periods), issuers, tuple(submissions), tables, combined)
