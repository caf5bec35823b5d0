"""Statistical disclosure control (node/stats/disclosure.py): suppression, rounding, the LP audit,
the receiver's check and differential-privacy noise.

The audit is cross-checked by brute force, independently of linear programming: every table of
non-negative integers (up to a bound) that gives the published cells is enumerated. For one- and
two-way tables a bound of the largest true count plus one finds every value a cell can take: the
constraint matrix is totally unimodular, so every other table is reached from the true one by moves
of +-1 per cell (its Graver basis), and some such move changes the cell if anything does.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import sparse
from scipy.optimize import linprog

from node.stats.disclosure import (
    Finding,
    _Cube,
    _integer_programme,
    _secondary,
    add_noise,
    audit,
    check_release,
    noise_scale,
    privacy_loss,
    protect,
)
from node.stats.model import TOTAL, Codes, Dimension, Method, ReleasedTable, Table

SEX = Dimension("sex", ("F", "M"))
AGE = Dimension("age_group", ("Y0T17", "Y_GE18"))
FORM = Dimension("exploitation", ("SexualExploitation", "ForcedLabour", "Other"))
SE, FL, OT = FORM.codes


def table(dimensions: tuple[Dimension, ...], counts: dict[Codes, int]) -> Table:
    return Table("VICTIMS", dimensions, counts)


def suppressed(released: ReleasedTable) -> set[Codes]:
    return {c for c, v in released.cells.items() if v is None}


def two_way(rows: dict[str, list[int]]) -> Table:
    """sex x exploitation from rows of three interior counts."""
    return table(
        (SEX, FORM),
        {(s, f): n for s, ns in rows.items() for f, n in zip(FORM.codes, ns, strict=True)},
    )


def released_from(t: Table, hidden: set[Codes], rounding: int = 1) -> ReleasedTable:
    """The true cube of ``t`` with ``hidden`` suppressed, rounded half up (hand-made releases)."""

    def rnd(v: int) -> int:
        q, rest = divmod(v, rounding)
        return (q + (2 * rest >= rounding)) * rounding

    cells: dict[Codes, int | None] = {
        c: None if c in hidden else rnd(v) for c, v in t.cube().items()
    }
    return ReleasedTable(t.indicator, t.dimensions, cells)


# --- brute force ----------------------------------------------------------------------------


def fiber(released: ReleasedTable, rounding: int, bound: int, stop_at_two: bool) -> dict:
    """For each suppressed cell, the set of values it takes over all tables of integers
    0..bound whose cube rounds (half up) to every published value. Plain enumeration with
    pruning on partial sums; no LP. With ``stop_at_two`` it stops once every suppressed cell
    has two values."""
    dims = released.dimensions
    interior = list(itertools.product(*(d.codes for d in dims)))
    cells = list(itertools.product(*((*d.codes, TOTAL) for d in dims)))
    cover = {
        cell: [
            k
            for k, inner in enumerate(interior)
            if all(c in (TOTAL, i) for c, i in zip(cell, inner, strict=True))
        ]
        for cell in cells
    }

    def rnd(v: int) -> int:
        q, rest = divmod(v, rounding)
        return (q + (2 * rest >= rounding)) * rounding

    published = [(c, released.cells[c]) for c in cells if released.cells[c] is not None]
    hidden = [c for c in cells if released.cells[c] is None]
    values: dict[Codes, set[int]] = {c: set() for c in hidden}
    x = [0] * len(interior)

    class Done(Exception):
        pass

    def consistent(k: int) -> bool:
        for cell, v in published:
            s = sum(x[j] for j in cover[cell] if j <= k)
            complete = not cover[cell] or max(cover[cell]) <= k
            if rnd(s) > v or (complete and rnd(s) != v):  # rounding is monotone
                return False
        return True

    def go(k: int) -> None:
        if k == len(interior):
            for c in hidden:
                values[c].add(sum(x[j] for j in cover[c]))
            if stop_at_two and all(len(s) >= 2 for s in values.values()):
                raise Done
            return
        for v in range(bound + 1):
            x[k] = v
            if consistent(k):
                go(k + 1)
        x[k] = 0

    if not interior:
        if consistent(-1):
            go(0)
        return values
    try:
        go(0)
    except Done:
        pass
    return values


# --- strategies -----------------------------------------------------------------------------

CODE_POOLS = (
    ("F", "M", "U"),
    ("Y0T17", "Y_GE18", "UNK"),
    ("SexualExploitation", "ForcedLabour", "Other", "Organs", "Begging"),
)


@st.composite
def tables(draw: st.DrawFn, max_dims: int = 3, max_codes: int = 5, max_count: int = 30) -> Table:
    n = draw(st.integers(1, max_dims))
    dims = []
    for i in range(n):
        pool = CODE_POOLS[i] if max_codes <= len(CODE_POOLS[i]) else CODE_POOLS[2]
        size = draw(st.integers(1, min(max_codes, len(pool))))
        dims.append(Dimension(f"d{i}", pool[:size]))
    interior = list(itertools.product(*(d.codes for d in dims)))
    some = st.one_of(st.just(0), st.integers(0, max_count))
    counts = {c: n for c in interior if (n := draw(some))}
    return table(tuple(dims), counts)


TINY = tables(max_dims=2, max_codes=3, max_count=6)


# --- protect: properties --------------------------------------------------------------------


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.integers(2, 10), st.sampled_from([1, 3, 5, 10]))
def test_protected_release_is_safe_and_true(t: Table, threshold: int, rounding: int) -> None:
    method = Method(threshold=threshold, rounding=rounding)
    released = protect(t, method)
    true = t.cube()
    assert set(released.cells) == set(true)
    for codes, v in released.cells.items():
        if v is None:
            continue
        assert not 0 < v < threshold, (codes, v)
        assert v % rounding == 0
        if rounding == 1:
            assert v == true[codes]
        else:
            assert abs(v - true[codes]) <= rounding / 2
    # a small true count is never published, even when rounding would lift it
    assert all(released.cells[c] is None for c, v in true.items() if 0 < v < threshold)
    assert audit(released, method) == []
    assert check_release(released, method, minimum_threshold=threshold) == []
    assert protect(t, method) == released  # deterministic


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    TINY.filter(lambda t: len(list(t.interior())) <= 6), st.integers(2, 5), st.sampled_from([1, 3])
)
def test_brute_force_every_suppressed_cell_takes_two_values(
    t: Table, threshold: int, rounding: int
) -> None:
    """Independent of the LP: each suppressed cell of a protected release can take at least two
    values over the integer tables the publication allows."""
    released = protect(t, Method(threshold=threshold, rounding=rounding))
    bound = max(t.counts.values(), default=0) + 1
    values = fiber(released, rounding, bound, stop_at_two=True)
    for codes, seen in values.items():
        assert len(seen) >= 2, (codes, seen, released.cells)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.integers(0, 3), min_size=8, max_size=8),
    st.integers(2, 4),
)
def test_brute_force_three_way(counts: list[int], threshold: int) -> None:
    """A 2x2x2 table (sex x age x two forms), where the audit may need its integer programme."""
    dims = (SEX, AGE, Dimension("exploitation", (SE, FL)))
    interior = list(itertools.product(*(d.codes for d in dims)))
    t = table(dims, dict(zip(interior, counts, strict=True)))
    released = protect(t, Method(threshold=threshold))
    values = fiber(released, 1, max(counts) + 2, stop_at_two=True)
    for codes, seen in values.items():
        assert len(seen) >= 2, (codes, seen, released.cells)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tables(max_dims=2, max_codes=3, max_count=5).filter(lambda t: len(list(t.interior())) <= 6),
    st.data(),
    st.sampled_from([1, 1, 3]),
)
def test_audit_recovers_exactly_what_brute_force_recovers(
    t: Table, data: st.DataObject, rounding: int
) -> None:
    """Random suppression patterns, not protect's: the audit's recoverable cells are exactly
    the cells that every consistent integer table gives one value (two-way: the bound is
    complete, see the module docstring)."""
    cells = list(t.cube())
    hidden = set(data.draw(st.lists(st.sampled_from(cells), max_size=len(cells))))
    released = released_from(t, hidden, rounding)
    bound = max(t.counts.values(), default=0) + 1
    values = fiber(released, rounding, bound, stop_at_two=False)
    fixed = {c for c, seen in values.items() if len(seen) == 1}
    found = {f.codes for f in audit(released, Method(threshold=1, rounding=rounding))}
    assert found == fixed


# --- protect: known examples ----------------------------------------------------------------


def test_textbook_two_way_table() -> None:
    """One small cell: the cells hidden with it form a rectangle, its smallest complements.

             SexualExpl ForcedLab Other | total
    F            20        12       8   |   40
    M             3        15      10   |   28
    total        23        27      18   |   68
    """
    t = two_way({"F": [20, 12, 8], "M": [3, 15, 10]})
    released = protect(t, Method(threshold=5))
    assert suppressed(released) == {("M", SE), ("F", SE), ("M", OT), ("F", OT)}
    assert released.cells[("M", TOTAL)] == 28
    assert released.cells[(TOTAL, SE)] == 23
    assert released.cells[(TOTAL, TOTAL)] == 68
    assert audit(released, Method(threshold=5)) == []


def test_positive_complement_preferred_to_zero() -> None:
    """Row F is 3, 0, 10: hiding the 0 would say the 3 is at most 13 - 10; the 10 goes."""
    t = two_way({"F": [3, 0, 10], "M": [8, 9, 6]})
    released = protect(t, Method(threshold=5))
    assert suppressed(released) == {("F", SE), ("M", SE), ("F", OT), ("M", OT)}
    assert released.cells[("F", FL)] == 0


def test_ties_go_to_the_first_code() -> None:
    t = two_way({"F": [2, 7, 7], "M": [9, 9, 9]})
    released = protect(t, Method(threshold=5))
    assert suppressed(released) == {("F", SE), ("M", SE), ("F", FL), ("M", FL)}


def test_small_margin_is_suppressed_and_protected() -> None:
    """Interior 3 + 1 (both small) gives a margin of 4: the margin is a count like any other."""
    t = two_way({"F": [3, 1, 0], "M": [20, 30, 40]})
    released = protect(t, Method(threshold=5))
    assert {("F", SE), ("F", FL), ("F", TOTAL)} <= suppressed(released)
    assert audit(released, Method(threshold=5)) == []


def test_zero_is_published() -> None:
    t = two_way({"F": [0, 0, 0], "M": [20, 30, 40]})
    released = protect(t, Method(threshold=5))
    assert suppressed(released) == set()
    assert released.cells[("F", TOTAL)] == 0


def test_lines_alone_are_not_enough_and_the_audit_loop_fixes_it() -> None:
    """Every line with a hidden cell has two after secondary suppression, yet the attacker
    recovers one (the zeros and the other lines pin it down); protect's audit loop hides more.

                 SexualExpl ForcedLab Other | total
        Y0T17        12         0       3   |   15
        Y_GE18        8         0       0   |    8
        UNK           8         2      12   |   22
        total        28         2      15   |   45
    """
    age = Dimension("age_group", ("Y0T17", "Y_GE18", "UNK"))
    rows = {"Y0T17": [12, 0, 3], "Y_GE18": [8, 0, 0], "UNK": [8, 2, 12]}
    t = table(
        (age, FORM),
        {(a, f): n for a, ns in rows.items() for f, n in zip(FORM.codes, ns, strict=True)},
    )
    true = t.cube()
    cube = _Cube(t.dimensions)
    lines_only = {c for c, v in true.items() if 0 < v < 5}
    _secondary(cube, true, lines_only)
    for line in cube.lines:
        assert sum(c in lines_only for c in line) != 1
    after_lines = released_from(t, lines_only)
    assert [f.codes for f in audit(after_lines, Method(threshold=5))] == [("Y0T17", OT)]
    values = fiber(after_lines, 1, max(t.counts.values()) + 1, stop_at_two=False)
    assert values[("Y0T17", OT)] == {3}  # the brute force agrees: recovered
    released = protect(t, Method(threshold=5))
    assert suppressed(released) > lines_only
    assert audit(released, Method(threshold=5)) == []


def test_rounding_that_would_make_a_small_value_suppresses() -> None:
    """10 with threshold 10 and base 3 rounds to 9: the cell is hidden, not published as 9."""
    t = table((SEX,), {("F",): 10, ("M",): 30})
    released = protect(t, Method(threshold=10, rounding=3))
    assert released.cells[("F",)] is None
    assert released.cells[("M",)] is None  # else F = total - M, up to rounding
    assert released.cells[(TOTAL,)] == 39
    assert audit(released, Method(threshold=10, rounding=3)) == []


def test_rounding_half_up() -> None:
    t = table((SEX,), {("F",): 15, ("M",): 24})
    released = protect(t, Method(threshold=5, rounding=10))
    assert released.cells == {("F",): 20, ("M",): 20, (TOTAL,): 40}


def test_edge_cases_do_not_crash() -> None:
    empty = table((SEX, Dimension("exploitation", ())), {})
    released = protect(empty, Method())
    assert released.cells == {("F", TOTAL): 0, ("M", TOTAL): 0, (TOTAL, TOTAL): 0}
    assert check_release(released, Method(), 5) == []
    no_dims = table((), {(): 3})
    assert protect(no_dims, Method()).cells == {(): None}
    assert protect(table((), {(): 7}), Method()).cells == {(): 7}
    assert audit(ReleasedTable("X", (), {(): None}), Method()) == []
    nothing = protect(table((SEX,), {}), Method(rounding=5))
    assert nothing.cells == {("F",): 0, ("M",): 0, (TOTAL,): 0}


def test_empty_dimension_release_is_all_zeros() -> None:
    """No interior cell: every cell is the empty sum. A published 3 cannot be; a suppressed
    cell is known to be 0."""
    dims = (SEX, Dimension("exploitation", ()))
    cells: dict[Codes, int | None] = {("F", TOTAL): 3, ("M", TOTAL): 0, (TOTAL, TOTAL): 0}
    findings = audit(ReleasedTable("X", dims, cells), Method(threshold=1))
    assert [(f.codes, f.problem) for f in findings] == [((), "inconsistent")]
    cells = {("F", TOTAL): None, ("M", TOTAL): 0, (TOTAL, TOTAL): 0}
    findings = audit(ReleasedTable("X", dims, cells), Method(threshold=1))
    assert [(f.codes, f.problem) for f in findings] == [(("F", TOTAL), "recoverable")]


def test_protect_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        protect(table((SEX,), {("X",): 3}), Method())
    with pytest.raises(ValueError):
        protect(table((SEX,), {("F",): -1}), Method())
    with pytest.raises(ValueError):
        protect(table((SEX,), {}), Method(rounding=0))
    with pytest.raises(ValueError):
        protect(table((Dimension("sex", ("F", "F")),), {}), Method())


def test_fifty_six_countries_by_scope_is_fast() -> None:
    rng = random.Random(7)
    countries = tuple(f"C{i:02d}" for i in range(56))
    dims = (Dimension("country", countries), Dimension("scope", ("A", "B", "C")))
    counts = {(c, s): rng.choice([0, 0, 1, 2, 3, 4, 8, 15, 40]) for c in countries for s in "ABC"}
    released = protect(table(dims, counts), Method())
    start = time.perf_counter()
    assert audit(released, Method()) == []
    assert time.perf_counter() - start < 1.0


def test_integer_programme_settles_what_the_lp_cannot() -> None:
    """LP bounds are outer bounds. a + b = 1, b + c = 1, a + c + d = 1 has one integer
    solution (0, 1, 0, 1), but the LP lets b + d range over [0.5, 2] (a = c = t, b = 1 - t,
    d = 1 - 2t): two integers in range, one value in fact. Three-way tables can do this."""
    matrix = sparse.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 1, 1]], float))
    ones = np.ones(3)
    b_plus_d = np.array([0, 1, 0, 1.0])
    relaxed = linprog(b_plus_d, A_eq=matrix, b_eq=ones, bounds=(0, None), method="highs")
    assert relaxed.fun == pytest.approx(0.5)
    low = _integer_programme(b_plus_d, matrix, ones, ones)
    high = _integer_programme(-b_plus_d, matrix, ones, ones)
    assert low.fun == pytest.approx(2) and -high.fun == pytest.approx(2)
    assert list(np.round(low.x)) == [0, 1, 0, 1]


# --- audit and check_release: hand-made releases --------------------------------------------


ROWS = two_way({"F": [20, 12, 8], "M": [3, 15, 10]})


def test_one_suppressed_cell_in_a_row_is_recoverable() -> None:
    released = released_from(ROWS, {("M", SE)})
    assert audit(released, Method(threshold=1)) == [
        Finding(("M", SE), "recoverable", "suppressed, but the published cells fix its value")
    ]


def test_recoverable_detail_does_not_disclose_the_value() -> None:
    released = released_from(ROWS, {("M", SE)})
    (finding,) = audit(released, Method(threshold=1))
    assert "3" not in finding.detail


def test_rounding_widens_what_the_attacker_knows() -> None:
    """Hidden F beside published M and total is recovered exactly, but not once rounded to 10:
    M 10 means 5..14 and the total 30 means 25..34, so F is anything in 11..29."""
    t = table((SEX,), {("F",): 20, ("M",): 10})
    released = released_from(t, {("F",)}, rounding=10)  # M 10 (5..14), total 30 (25..34)
    assert audit(released, Method(threshold=1, rounding=10)) == []
    released = released_from(t, {("F",)}, rounding=1)
    assert [f.codes for f in audit(released, Method(threshold=1))] == [("F",)]


def test_inconsistent_total() -> None:
    cells = dict(released_from(ROWS, set()).cells)
    cells[("F", TOTAL)] = 41
    findings = audit(ReleasedTable("VICTIMS", ROWS.dimensions, cells), Method(threshold=1))
    assert [(f.codes, f.problem) for f in findings] == [((), "inconsistent")]


def test_negative_published_value_is_inconsistent() -> None:
    released = ReleasedTable("X", (SEX,), {("F",): -5, ("M",): None, (TOTAL,): None})
    assert [f.problem for f in audit(released, Method(threshold=1))] == ["inconsistent"]


def test_below_threshold_and_not_rounded() -> None:
    t = table((SEX,), {("F",): 3, ("M",): 30})
    released = released_from(t, set())
    findings = audit(released, Method(threshold=5, rounding=1))
    assert [(f.codes, f.problem) for f in findings] == [(("F",), "below-threshold")]
    findings = audit(released, Method(threshold=2, rounding=5))
    assert {(f.codes, f.problem) for f in findings} == {
        (("F",), "not-rounded"),
        ((TOTAL,), "not-rounded"),
    }


def test_zeros_pin_a_rectangle() -> None:
    """Two hidden cells in every line, but counts are not negative: all four are fixed."""
    t = two_way({"F": [0, 0, 9], "M": [3, 7, 9]})
    released = released_from(t, {("F", SE), ("F", FL), ("M", SE), ("M", FL)})
    found = [f.codes for f in audit(released, Method(threshold=1))]
    assert found == [("F", SE), ("F", FL), ("M", SE), ("M", FL)]


def test_check_release_threshold_too_low() -> None:
    released = protect(ROWS, Method(threshold=3))
    findings = check_release(released, Method(threshold=3), minimum_threshold=5)
    assert [(f.codes, f.problem) for f in findings] == [((), "threshold-too-low")]
    assert check_release(released, Method(threshold=3), minimum_threshold=3) == []


def test_check_release_missing_and_unknown_cells() -> None:
    cells = dict(protect(ROWS, Method()).cells)
    del cells[(TOTAL, TOTAL)]
    cells[("X", SE)] = 10
    findings = check_release(ReleasedTable("VICTIMS", ROWS.dimensions, cells), Method(), 5)
    assert {(f.codes, f.problem) for f in findings} == {
        (("X", SE), "unknown-cell"),
        ((TOTAL, TOTAL), "missing-cell"),
        # a missing cell is one the attacker does not see: F total + M total give it
        ((TOTAL, TOTAL), "recoverable"),
    }


def test_check_release_runs_the_audit() -> None:
    released = released_from(ROWS, {("M", SE)})
    findings = check_release(released, Method(threshold=3), minimum_threshold=3)
    assert [(f.codes, f.problem) for f in findings] == [(("M", SE), "recoverable")]


def test_check_release_bad_dimensions() -> None:
    released = ReleasedTable("X", (Dimension("sex", ("F", TOTAL)),), {})
    findings = check_release(released, Method(), 5)
    assert [f.problem for f in findings] == ["bad-dimension"]


# --- differential privacy -------------------------------------------------------------------

BIG = (
    Dimension("country", tuple(f"C{i:02d}" for i in range(20))),
    Dimension("exploitation", tuple(f"E{i}" for i in range(10))),
)


def big_table(n: int) -> Table:
    return table(BIG, {c: n for c in itertools.product(*(d.codes for d in BIG))})


def test_noise_keeps_dimensions_and_every_cell() -> None:
    t = table((SEX, FORM), {("F", SE): 4})
    noisy = add_noise(t, 1.0)
    assert noisy.dimensions == t.dimensions and noisy.indicator == t.indicator
    assert set(noisy.counts) == set(t.interior())
    assert all(isinstance(n, int) and n >= 0 for n in noisy.counts.values())


def test_noise_changes_counts_at_small_epsilon() -> None:
    """200 cells at epsilon 0.1 (scale 10): P(no change) per cell is about 0.05."""
    t = big_table(100)
    noisy = add_noise(t, 0.1)
    changed = sum(noisy.counts[c] != 100 for c in t.interior())
    assert changed > 100


def test_noise_is_negligible_at_large_epsilon() -> None:
    """Scale 1/epsilon, not epsilon: at epsilon 50 a change has probability about e^-50."""
    t = big_table(100)
    assert add_noise(t, 50.0).counts == t.counts


def test_noise_spread_matches_scale() -> None:
    """Discrete Laplace with scale 2 has variance 2e^-.5 / (1 - e^-.5)^2 = 7.8 (1000 draws)."""
    t = big_table(1000)
    draws = [add_noise(t, 0.5) for _ in range(5)]
    diffs = [noisy.counts[c] - 1000 for noisy in draws for c in t.counts]
    assert len(diffs) == 1000
    assert 5 < statistics.pvariance(diffs) < 12


def test_noise_is_added_to_zeros_and_clamped() -> None:
    t = big_table(0)
    noisy = add_noise(t, 0.1)
    assert min(noisy.counts.values()) == 0
    assert sum(n > 0 for n in noisy.counts.values()) > 50


@pytest.mark.parametrize("epsilon", [0.0, -1.0, math.nan, math.inf])
def test_bad_epsilon(epsilon: float) -> None:
    with pytest.raises(ValueError):
        add_noise(big_table(1), epsilon)
    with pytest.raises(ValueError):
        noise_scale(epsilon)


@pytest.mark.parametrize("epsilon", [0.05, 0.1, 0.5, 1.0, 3.0])
def test_privacy_loss_is_epsilon(epsilon: float) -> None:
    assert noise_scale(epsilon) == pytest.approx(1 / epsilon)
    assert privacy_loss(noise_scale(epsilon)) == pytest.approx(epsilon, rel=1e-9)
    assert privacy_loss(noise_scale(epsilon)) >= epsilon  # OpenDP rounds the bound up
