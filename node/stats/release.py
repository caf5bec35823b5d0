"""A statistics release: tables protected for disclosure, as the ``StatisticsRelease`` payload,
and back. Pure (differential privacy draws random noise, nothing else).

Tables of one population (victims: by sex, age and exploitation, and by citizenship) count the
same people and share their grand total; if that total cannot be published in every one of them
(too few people), none of their cells is, since each table's margins would otherwise help
recover another's suppressed cells.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from node.stats import disclosure
from node.stats.indicators import BY_CODE, DIMENSIONS
from node.stats.model import TOTAL, Method, ReleasedTable, Table
from node.stats.periods import Period

MINIMUM_THRESHOLD = 3  # no node accepts (or makes) a release protected by less
COVERAGES = ("Agency", "National", "Regional")


class ReleaseError(ValueError):
    """A release cannot be made as asked (budget spent, bad settings); the message says why."""


@dataclass(frozen=True)
class Release:
    """One release as the node works with it; :func:`to_payload` makes the message."""

    release_id: str
    period: Period
    coverage: str
    area: str
    method: Method
    tables: tuple[ReleasedTable, ...]
    replaces: str | None = None
    budget_remaining: float | None = None


def protect_all(tables: Sequence[Table], method: Method) -> list[ReleasedTable]:
    """Each table protected; a population whose grand total is suppressed anywhere is
    suppressed everywhere (module docstring)."""
    released = [disclosure.protect(t, method) for t in tables]
    hidden = set()
    for table in released:
        total = tuple(TOTAL for _ in table.dimensions)
        if table.cells.get(total) is None:
            hidden.add(BY_CODE[table.indicator].population)
    return [
        ReleasedTable(t.indicator, t.dimensions, dict.fromkeys(t.cells))
        if BY_CODE[t.indicator].population in hidden else t
        for t in released
    ]  # fmt: skip


def add_noise(tables: Sequence[Table], epsilon: float) -> list[Table]:
    """Differential privacy over the whole release: the budget is split evenly between its
    tables (a person may be counted in several: sequential composition)."""
    if not tables:
        return []
    share = epsilon / len(tables)
    return [disclosure.add_noise(t, share) for t in tables]


def make_release(
    tables: Sequence[Table], period: Period, method: Method, *, coverage: str, area: str,
    replaces: str | None = None, budget_remaining: float | None = None,
) -> Release:  # fmt: skip
    """Protect ``tables`` (noise first when ``method.epsilon`` is set) into a release."""
    if method.threshold < MINIMUM_THRESHOLD:
        raise ReleaseError(f"threshold {method.threshold} is below the minimum {MINIMUM_THRESHOLD}")
    if coverage not in COVERAGES:
        raise ReleaseError(f"unknown coverage {coverage!r}; choose from {', '.join(COVERAGES)}")
    counted = add_noise(tables, method.epsilon) if method.epsilon else list(tables)
    return Release(
        str(uuid.uuid4()), period, coverage, area, method,
        tuple(protect_all(counted, method)), replaces, budget_remaining,
    )  # fmt: skip


def to_payload(release: Release, handling: Mapping[str, Any]) -> dict[str, Any]:
    """The ``StatisticsRelease`` payload (JSON form) of a release."""
    return {
        "handling": dict(handling),
        "release_id": release.release_id,
        "period": release.period.code,
        "coverage": release.coverage,
        "area": release.area,
        "replaces": release.replaces,
        "method": {
            "threshold": release.method.threshold,
            "secondary_suppression": True,
            "rounding": release.method.rounding,
            "epsilon": release.method.epsilon,
            "budget_remaining": release.budget_remaining,
        },
        "tables": [
            {
                "indicator": t.indicator,
                "dimensions": [d.name for d in t.dimensions],
                "cells": [
                    {"codes": list(codes), "value": value} for codes, value in t.cells.items()
                ],
            }
            for t in release.tables
        ],
    }


def method_of(payload: Mapping[str, Any]) -> Method:
    m = payload["method"]
    return Method(int(m["threshold"]), int(m["rounding"]), m.get("epsilon"))


def tables_of(payload: Mapping[str, Any]) -> list[ReleasedTable]:
    """The tables of a payload, for indicators this node knows (checked by the rules)."""
    out = []
    for table in payload["tables"]:
        indicator = BY_CODE.get(str(table["indicator"]))
        if indicator is None:
            continue
        dims = tuple(DIMENSIONS[str(d)] for d in table["dimensions"] if str(d) in DIMENSIONS)
        cells = {tuple(c["codes"]): c.get("value") for c in table["cells"]}
        out.append(ReleasedTable(indicator.code, dims, cells))
    return out


def from_payload(payload: Mapping[str, Any], period: Period) -> Release:
    m = payload["method"]
    return Release(
        str(payload["release_id"]), period, str(payload["coverage"]), str(payload["area"]),
        method_of(payload), tuple(tables_of(payload)), payload.get("replaces"),
        m.get("budget_remaining"),
    )  # fmt: skip


def default_handling(instrument: str, language: str = "en") -> dict[str, Any]:
    """Handling for statistics: H0, the instrument's code as the legal basis, no free text."""
    return {
        "code": "H0",
        "conditions": None,
        "legal_basis": instrument,
        "legal_instrument": instrument,
        "language": language,
        "retention_days": 3650,
        "sender_reference": None,
    }


def spent(epsilons: Sequence[float | None]) -> float:
    return float(sum(e for e in epsilons if e))


def check_budget(spent_so_far: float, epsilon: float, budget: float) -> float:
    """What remains after spending ``epsilon``; :class:`ReleaseError` if that is too much."""
    if epsilon <= 0:
        raise ReleaseError("epsilon must be positive")
    remaining = budget - spent_so_far - epsilon
    if remaining < -1e-9:
        raise ReleaseError(
            f"privacy budget spent: {spent_so_far:g} of {budget:g} used for this period, "
            f"{epsilon:g} more asked"
        )
    return max(remaining, 0.0)
