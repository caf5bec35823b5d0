"""Reporting periods: ``2026`` (year), ``2026-Q3`` (quarter), ``2026-07`` (month). Pure.

A node releases statistics at one granularity only (``[statistics] period``): a month's cell
suppressed in January could otherwise be recovered from the quarter minus February and March.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

GRANULARITIES = ("month", "quarter", "year")
_PATTERNS = (
    ("year", re.compile(r"^(\d{4})$")),
    ("quarter", re.compile(r"^(\d{4})-Q([1-4])$")),
    ("month", re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")),
)


class PeriodError(ValueError):
    """A period that cannot be read; the message shows the three accepted forms."""


@dataclass(frozen=True, order=True)
class Period:
    """A calendar period: ``start`` inclusive, ``end`` exclusive (dates, UTC)."""

    start: dt.date
    end: dt.date
    granularity: str

    @property
    def code(self) -> str:
        if self.granularity == "year":
            return f"{self.start.year}"
        if self.granularity == "quarter":
            return f"{self.start.year}-Q{(self.start.month - 1) // 3 + 1}"
        return f"{self.start.year}-{self.start.month:02d}"

    def __str__(self) -> str:
        return self.code

    def contains(self, day: dt.date) -> bool:
        return self.start <= day < self.end

    def next(self) -> Period:
        return period_of(self.end, self.granularity)

    def previous(self) -> Period:
        return period_of(self.start - dt.timedelta(days=1), self.granularity)

    def months(self) -> int:
        return {"month": 1, "quarter": 3, "year": 12}[self.granularity]


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def period_of(day: dt.date, granularity: str) -> Period:
    """The period of ``granularity`` that contains ``day``."""
    if granularity == "year":
        start = dt.date(day.year, 1, 1)
    elif granularity == "quarter":
        start = dt.date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    elif granularity == "month":
        start = dt.date(day.year, day.month, 1)
    else:
        raise PeriodError(
            f"unknown granularity {granularity!r}; choose from {', '.join(GRANULARITIES)}"
        )
    return Period(start, _add_months(start, {"month": 1, "quarter": 3, "year": 12}[granularity]),
                  granularity)  # fmt: skip


def parse_period(text: str) -> Period:
    """``2026-Q3`` -> the third quarter of 2026; a clear error for anything else."""
    text = text.strip()
    for granularity, pattern in _PATTERNS:
        match = pattern.fullmatch(text)
        if not match:
            continue
        year = int(match.group(1))
        if not 1900 <= year <= 9998:
            raise PeriodError(f"invalid period {text!r}: the year must be from 1900 to 9998")
        if granularity == "year":
            return period_of(dt.date(year, 1, 1), "year")
        if granularity == "quarter":
            return period_of(dt.date(year, int(match.group(2)) * 3 - 2, 1), "quarter")
        return period_of(dt.date(year, int(match.group(2)), 1), "month")
    raise PeriodError(f"invalid period {text!r}: expected 2026, 2026-Q3 or 2026-07")


def last_complete(today: dt.date, granularity: str) -> Period:
    """The most recent period of ``granularity`` that has ended by ``today``."""
    return period_of(today, granularity).previous()


def span(first: Period, last: Period) -> list[Period]:
    """Every period from ``first`` to ``last`` inclusive (same granularity)."""
    if first.granularity != last.granularity:
        raise PeriodError("a span needs two periods of the same granularity")
    out, current = [], first
    while current <= last:
        out.append(current)
        current = current.next()
    return out
