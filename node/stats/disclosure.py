"""Statistical disclosure control: what may be published of a table of counts, and a check of it.

A table counts people (victims by sex, age group and form of exploitation, say). A count of one
or two in a cell points at a person someone may know, so before a table leaves the node:

* :func:`add_noise` (optional, before everything else) adds discrete Laplace noise to every
  interior cell, so the release is differentially private whatever an attacker knows;
* :func:`protect` turns the table into the full cube with every margin and suppresses cells
  (``None``) until no small count is published and none can be worked out from the rest;
* :func:`audit` is the attacker: it tries to work every suppressed cell out of the published ones
  by linear programming; :func:`check_release` is what a receiving node runs on a release from
  abroad (the threshold it demands, the shape of the cube, then the audit).

Why margins are suppressed too: a margin is a count like any other (all women in the table, all
victims of forced labour); a margin of 2 discloses as much as an interior 2. And a margin is the
sum of its line, so one suppressed cell in a line is the published total minus the published rest:
*secondary* suppression hides a second cell in every such line.

Why zero is published: a zero is nobody. Suppressing zeros would hide most of a sparse table and
protect no one; the attacker's bound that counts are not negative is in the audit anyway.

Why linear programming: two suppressed cells per line is not enough in general (the suppressed
cells of different lines can pin one another down, and that counts are not negative adds more).
The attacker's knowledge is exactly a set of linear constraints on the interior counts, so the
range a suppressed cell can take is the minimum and maximum of a linear programme. The LP bounds
are outer bounds of the integer bounds (the LP relaxes integrality); for one- and two-way tables
they coincide, because the constraint matrix (two laminar families of sets: rows and their
totals, columns and their totals) is totally unimodular, so with integer right-hand sides (exact
counts, or the integer range a rounded count stands for) every vertex of the polytope is
integral. For three and more dimensions they may differ; the audit then confirms with an integer
programme, so "recoverable" means exactly: every integer table consistent with the publication
gives this cell the same value.

Everything here is pure (no I/O); the noise is the only randomness.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import opendp.prelude as dp
from scipy import sparse  # type: ignore[import-untyped]
from scipy.optimize import (  # type: ignore[import-untyped]
    Bounds,
    LinearConstraint,
    linprog,
    milp,
)

from node.stats.model import TOTAL, Codes, Dimension, Method, ReleasedTable, Table

BELOW_THRESHOLD = "below-threshold"
NOT_ROUNDED = "not-rounded"
INCONSISTENT = "inconsistent"
RECOVERABLE = "recoverable"
THRESHOLD_TOO_LOW = "threshold-too-low"
UNKNOWN_CELL = "unknown-cell"
MISSING_CELL = "missing-cell"
BAD_DIMENSION = "bad-dimension"

_TOL = 1e-6  # HiGHS works to 1e-7; counts are integers, so anything closer than this is one


@dataclass(frozen=True)
class Finding:
    """One thing wrong with a release: the cell (``()`` for the table as a whole), the problem
    (one of the module's problem constants) and a sentence for a person.

    The detail never contains a suppressed value, even one the audit worked out: findings are
    logged and shown, and must not disclose what they complain about."""

    codes: Codes
    problem: str
    detail: str


# --- the cube -------------------------------------------------------------------------------


def _dimension_problem(dimensions: tuple[Dimension, ...]) -> str | None:
    """Why these dimensions make no cube (a code twice, ``TOTAL`` as a code), or None."""
    for d in dimensions:
        if len(set(d.codes)) != len(d.codes):
            return f"dimension {d.name!r} lists a code twice"
        if TOTAL in d.codes:
            return f"dimension {d.name!r} uses the total code {TOTAL!r} as a code"
    return None


class _Cube:
    """The cells of a table's cube and how they relate: which interior cells each one sums
    (its *cover*) and the lines (cells differing in one dimension only, its ``TOTAL`` last)."""

    def __init__(self, dimensions: tuple[Dimension, ...]) -> None:
        axes = [(*d.codes, TOTAL) for d in dimensions]
        self.cells: list[Codes] = list(itertools.product(*axes))
        self.order: dict[Codes, int] = {c: i for i, c in enumerate(self.cells)}
        self.interior: list[Codes] = list(itertools.product(*(d.codes for d in dimensions)))
        covers: dict[Codes, list[int]] = {c: [] for c in self.cells}
        for j, codes in enumerate(self.interior):
            for mask in itertools.product((False, True), repeat=len(codes)):
                covers[tuple(TOTAL if m else c for c, m in zip(codes, mask, strict=True))].append(j)
        self.covers = covers
        self.lines: list[list[Codes]] = []
        self.lines_through: dict[Codes, list[int]] = {c: [] for c in self.cells}
        for d in range(len(axes)):
            others = axes[:d] + axes[d + 1 :]
            for fixed in itertools.product(*others):
                line = [(*fixed[:d], code, *fixed[d:]) for code in axes[d]]
                for cell in line:
                    self.lines_through[cell].append(len(self.lines))
                self.lines.append(line)

    def incidence(self, cells: list[Codes]) -> Any:
        """The sparse 0/1 matrix with a row per cell: which interior cells (variables) it sums."""
        rows: list[int] = []
        cols: list[int] = []
        for i, cell in enumerate(cells):
            cover = self.covers[cell]
            rows.extend([i] * len(cover))
            cols.extend(cover)
        data = np.ones(len(rows))
        return sparse.csr_matrix((data, (rows, cols)), shape=(len(cells), len(self.interior)))


def _round(value: int, rounding: int) -> int:
    """``value`` to the nearest multiple of ``rounding``, halves up."""
    if rounding <= 1:
        return value
    return (2 * value + rounding) // (2 * rounding) * rounding


def _interval(value: int, rounding: int) -> tuple[int, int]:
    """The integers that :func:`_round` takes to ``value``: what a published value says."""
    if rounding <= 1:
        return value, value
    return value - rounding // 2, value + (rounding + 1) // 2 - 1


# --- the attacker ---------------------------------------------------------------------------


def _recoverable(
    cube: _Cube, values: Mapping[Codes, int | None], rounding: int, *, first_only: bool = False
) -> list[Codes] | None:
    """The suppressed cells the published ones fix to one value, in cube order; None if no
    table of non-negative integers agrees with every published value (inconsistent).

    For each suppressed cell the LP minimum and maximum of the sum it covers are solved, unless
    the cell is already proven free: every optimum that comes out integral is a table the
    attacker cannot rule out, and two of them giving the cell different values prove it cannot
    be recovered (no LP needed for it). LP bounds narrower than two integers prove the opposite.
    Between the two (fractional optima: three or more dimensions) integer programmes decide.
    """
    published = [c for c in cube.cells if values.get(c) is not None]
    suppressed = [c for c in cube.cells if values.get(c) is None]
    intervals = [_interval(int(values[c] or 0), rounding) for c in published]
    n = len(cube.interior)
    if n == 0:  # an empty dimension: every cell is the empty sum, nought
        if any(lo > 0 or hi < 0 for lo, hi in intervals):
            return None
        return suppressed[:1] if first_only else suppressed
    lower = np.array([lo for lo, _ in intervals], dtype=float)
    upper = np.array([hi for _, hi in intervals], dtype=float)
    matrix = cube.incidence(published)
    constraints: dict[str, Any] = {}
    if published and rounding <= 1:
        constraints = {"A_eq": matrix, "b_eq": lower}
    elif published:
        constraints = {
            "A_ub": sparse.vstack([matrix, -matrix]).tocsr(),
            "b_ub": np.concatenate([upper, -lower]),
        }

    def solve(objective: Any) -> Any:
        return linprog(objective, bounds=(0, None), method="highs", **constraints)

    covers = cube.incidence(suppressed)
    seen: list[set[int]] = [set() for _ in suppressed]

    def record(x: Any) -> bool:
        """Note the values of an integral solution; False if it is not integral."""
        if np.any(np.abs(x - np.round(x)) > _TOL):
            return False
        for i, v in enumerate(covers @ np.round(x)):
            seen[i].add(round(v))
        return True

    def integer(objective: Any) -> Any:
        result = _integer_programme(objective, matrix, lower, upper)
        if result.status == 0:
            record(np.round(result.x))
        return result

    first = solve(np.zeros(n))
    if first.status == 2:
        return None
    _solved(first)
    if not record(first.x):  # the LP relaxation has a table; has the integer programme?
        if integer(np.zeros(n)).status == 2:
            return None
    found: list[Codes] = []
    for i, cell in enumerate(suppressed):
        if len(seen[i]) >= 2:
            continue
        objective = covers[i].toarray().ravel()
        low = _solved(solve(objective))
        record(low.x)
        if len(seen[i]) >= 2:
            continue
        high = solve(-objective)
        if high.status == 3:  # unbounded above: the cell can be anything
            continue
        record(_solved(high).x)
        if len(seen[i]) >= 2:
            continue
        if math.floor(-high.fun + _TOL) - math.ceil(low.fun - _TOL) >= 1:
            _solved(integer(objective))
            if len(seen[i]) < 2:
                _solved(integer(-objective))
            if len(seen[i]) >= 2:
                continue
        found.append(cell)
        if first_only:
            break
    return found


def _solved(result: Any) -> Any:
    """``result`` if the solver found the optimum; the audit cannot answer otherwise."""
    if result.status != 0:
        raise RuntimeError(f"disclosure audit: the solver failed: {result.message}")
    return result


def _integer_programme(objective: Any, matrix: Any, lower: Any, upper: Any) -> Any:
    """Minimise ``objective`` over tables of non-negative integers whose published cells
    (``matrix`` rows) lie in ``lower .. upper``: the attacker's exact bound, where the LP's is
    an outer one."""
    n = matrix.shape[1]
    kwargs: dict[str, Any] = {"integrality": np.ones(n), "bounds": Bounds(0, np.inf)}
    if matrix.shape[0]:
        kwargs["constraints"] = LinearConstraint(matrix, lower, upper)
    return milp(objective, **kwargs)


# --- protection -----------------------------------------------------------------------------


def _check_table(table: Table) -> None:
    problem = _dimension_problem(table.dimensions)
    if problem:
        raise ValueError(problem)
    interior = set(table.interior())
    for codes, n in table.counts.items():
        if codes not in interior:
            raise ValueError(f"count for {codes!r}, not an interior cell of the table")
        if n < 0:
            raise ValueError(f"negative count for {codes!r}")


def _secondary(cube: _Cube, true: Mapping[Codes, int], suppressed: set[Codes]) -> None:
    """Suppress until no line has exactly one suppressed cell (it would be the total minus the
    rest, or the sum of the rest). The cell taken is the line's smallest published one, a
    positive one before a zero (a suppressed zero beside it says only "at most the total"),
    ties by the order of codes, the total last: the least information lost, deterministically."""
    changed = True
    while changed:
        changed = False
        for line in cube.lines:
            if sum(cell in suppressed for cell in line) != 1:
                continue
            open_ = [
                (true[c] == 0, true[c], pos) for pos, c in enumerate(line) if c not in suppressed
            ]
            if open_:
                suppressed.add(line[min(open_)[2]])
                changed = True


def _complement(
    cube: _Cube, true: Mapping[Codes, int], suppressed: set[Codes], cell: Codes
) -> Codes:
    """The cell to suppress because ``cell`` can be recovered: the smallest published cell in a
    line through it (positive before zero, then cube order); failing that, anywhere."""
    near = {c for i in cube.lines_through[cell] for c in cube.lines[i] if c not in suppressed}
    pool: Iterable[Codes] = near or (c for c in cube.cells if c not in suppressed)
    return min(pool, key=lambda c: (true[c] == 0, true[c], cube.order[c]))


def protect(table: Table, method: Method) -> ReleasedTable:
    """The cube of ``table`` with every margin, as it may be published under ``method``.

    Deterministic. Primary suppression: a count in ``1 .. threshold-1``, or one that would be
    rounded into that range, is suppressed (zero is published: it is nobody). Secondary
    suppression (see :func:`_secondary`) hides a second cell in every line with one. Then the
    audit's attacker is run and, while it recovers a suppressed cell, the smallest published
    cell of a line through it is suppressed too (secondary suppression again, audit again).
    Published values are rounded to ``method.rounding`` (halves up). ``method.epsilon`` is not
    used: noise is added before, by :func:`add_noise`.

    The result always passes :func:`audit`. Raises ValueError for a table or method that
    cannot be protected (negative counts, counts outside the cube, threshold or rounding < 1).
    """
    if method.threshold < 1 or method.rounding < 1:
        raise ValueError("threshold and rounding must be at least 1")
    _check_table(table)
    cube = _Cube(table.dimensions)
    true = table.cube()
    r, t = method.rounding, method.threshold
    shown = {c: _round(true[c], r) for c in cube.cells}
    suppressed = {c for c in cube.cells if 0 < true[c] < t or 0 < shown[c] < t}
    while True:
        _secondary(cube, true, suppressed)
        values = {c: None if c in suppressed else shown[c] for c in cube.cells}
        found = _recoverable(cube, values, r, first_only=True)
        if found is None:  # the true table agrees with its own release
            raise AssertionError("disclosure: a protected table is inconsistent")
        if not found:
            return ReleasedTable(table.indicator, table.dimensions, values)
        suppressed.add(_complement(cube, true, suppressed, found[0]))


# --- checks ---------------------------------------------------------------------------------


def audit(released: ReleasedTable, method: Method) -> list[Finding]:
    """What an attacker learns from ``released``, knowing ``method``: published values below the
    threshold or not rounded, published values that cannot all be true (no table of
    non-negative integers gives them: ``codes`` is then ``()`` and no cell is judged), and
    suppressed cells whose value the published ones fix (recoverable).

    The attacker's model: the interior counts are unknown non-negative integers; every published
    cell says the sum of the interior cells it covers is its value (with rounding ``r > 1``: one
    of the integers that round to it half up, ``v - r//2 .. v + ceil(r/2) - 1``, the exact set
    rather than ``v +- r/2``, so the attacker is if anything stronger). Recoverable means every
    such table gives the cell the same value (LP bounds, confirmed by integer programming where
    they are fractional; see the module docstring). A cell missing from ``released.cells``
    counts as suppressed; a cell outside the cube is ignored (:func:`check_release` reports
    both).
    """
    problem = _dimension_problem(released.dimensions)
    if problem:
        return [Finding((), BAD_DIMENSION, problem)]
    cube = _Cube(released.dimensions)
    r, t = max(method.rounding, 1), method.threshold
    values = {c: released.cells.get(c) for c in cube.cells}
    findings: list[Finding] = []
    for codes, v in values.items():
        if v is None:
            continue
        if 0 < v < t:
            findings.append(
                Finding(codes, BELOW_THRESHOLD, f"published {v}, below the threshold {t}")
            )
        if r > 1 and v % r:
            findings.append(Finding(codes, NOT_ROUNDED, f"published {v}, not a multiple of {r}"))
    recoverable = _recoverable(cube, values, r)
    if recoverable is None:
        findings.append(
            Finding(
                (),
                INCONSISTENT,
                "no table of non-negative counts gives every published value",
            )
        )
        return findings
    for codes in recoverable:
        findings.append(
            Finding(codes, RECOVERABLE, "suppressed, but the published cells fix its value")
        )
    return findings


def check_release(released: ReleasedTable, method: Method, minimum_threshold: int) -> list[Finding]:
    """What a receiving node checks on a release from abroad before it uses or passes it on:
    that it was protected with at least ``minimum_threshold``, that it is the whole cube of its
    dimensions and nothing else, then :func:`audit`. Empty if the release is acceptable; a
    release :func:`protect` made with a threshold of at least the minimum always is."""
    findings: list[Finding] = []
    if method.threshold < minimum_threshold:
        findings.append(
            Finding(
                (),
                THRESHOLD_TOO_LOW,
                f"protected with threshold {method.threshold}, {minimum_threshold} required",
            )
        )
    problem = _dimension_problem(released.dimensions)
    if problem:
        return [*findings, Finding((), BAD_DIMENSION, problem)]
    cube = _Cube(released.dimensions)
    for codes in released.cells:
        if codes not in cube.order:
            findings.append(Finding(codes, UNKNOWN_CELL, "not a cell of the table's dimensions"))
    for codes in cube.cells:
        if codes not in released.cells:
            findings.append(Finding(codes, MISSING_CELL, "a cell of the cube is missing"))
    return findings + audit(released, method)


# --- differential privacy -------------------------------------------------------------------


def _mechanism(scale: float) -> dp.Measurement:
    """OpenDP's discrete Laplace mechanism on a vector of counts, L1 distance: one person is in
    exactly one interior cell, so adding or removing one moves the vector by 1 in L1."""
    dp.enable_features("contrib")
    return dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"), scale=scale
    )


def noise_scale(epsilon: float) -> float:
    """The Laplace scale that spends ``epsilon`` on a table (sensitivity 1): ``1/epsilon``."""
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise ValueError(f"epsilon must be positive and finite, not {epsilon!r}")
    return 1.0 / epsilon


def privacy_loss(scale: float) -> float:
    """The epsilon one table's noise at ``scale`` spends, as OpenDP's privacy map computes it
    (a bound it rounds up), for a table in which one person changes one count by one."""
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale must be positive and finite, not {scale!r}")
    return float(_mechanism(scale).map(1))  # type: ignore[no-untyped-call]


def add_noise(table: Table, epsilon: float) -> Table:
    """``table`` with discrete Laplace noise of scale ``1/epsilon`` added to every interior cell
    (zeros too: noise on non-zero cells only would show which are zero), negatives clamped to 0.

    Clamping is post-processing and costs no privacy. Margins are not noised separately:
    :func:`protect` computes them from the noisy interior, so they stay consistent with it and
    the whole release spends ``epsilon`` once (:func:`privacy_loss`). Every interior cell is in
    the result's counts. Raises ValueError for ``epsilon <= 0``.
    """
    scale = noise_scale(epsilon)
    _check_table(table)
    cells = list(table.interior())
    if not cells:
        return Table(table.indicator, table.dimensions, {})
    noisy = _mechanism(scale)([int(table.counts.get(c, 0)) for c in cells])
    counts = {c: max(0, int(v)) for c, v in zip(cells, noisy, strict=True)}
    return Table(table.indicator, table.dimensions, counts)
