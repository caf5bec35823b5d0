"""The small pure parts of statistics: periods, the release in and out of its payload, the
privacy budget, a population suppressed together, and the roll-up of what was received."""

from __future__ import annotations

import datetime as dt

import pytest

from node.stats import release, rollup
from node.stats.indicators import BY_CODE, Inputs, compute_all
from node.stats.model import TOTAL, Method, ReleasedTable, Table
from node.stats.periods import (
    Period,
    PeriodError,
    last_complete,
    parse_period,
    period_of,
    span,
)
from node.stats.sample import sample_cases


@pytest.mark.parametrize(("text", "start", "end", "granularity"), [
    ("2026", "2026-01-01", "2027-01-01", "year"),
    ("2026-Q1", "2026-01-01", "2026-04-01", "quarter"),
    ("2026-Q4", "2026-10-01", "2027-01-01", "quarter"),
    ("2026-07", "2026-07-01", "2026-08-01", "month"),
    ("2026-12", "2026-12-01", "2027-01-01", "month"),
    (" 2026-Q2 ", "2026-04-01", "2026-07-01", "quarter"),
])  # fmt: skip
def test_periods_read_and_write_their_codes(text, start, end, granularity) -> None:
    period = parse_period(text)
    assert (period.start, period.end, period.granularity) == (
        dt.date.fromisoformat(start), dt.date.fromisoformat(end), granularity)  # fmt: skip
    assert period.code == text.strip() and str(period) == text.strip()
    assert parse_period(period.code) == period
    assert period.contains(period.start) and not period.contains(period.end)
    assert period.contains(period.end - dt.timedelta(days=1))
    assert not period.contains(period.start - dt.timedelta(days=1))


@pytest.mark.parametrize("text", ["2026-Q5", "2026-Q0", "2026-13", "2026-00", "26", "2026-7",
                                  "2026-W12", "", "2026-Q1..2026-Q2"])  # fmt: skip
def test_a_period_that_cannot_be_read_says_what_can(text: str) -> None:
    with pytest.raises(PeriodError, match="expected 2026, 2026-Q3 or 2026-07"):
        parse_period(text)


def test_next_previous_span_and_the_last_complete_period() -> None:
    q4 = parse_period("2026-Q4")
    assert q4.next().code == "2027-Q1" and q4.previous().code == "2026-Q3"
    assert parse_period("2026-01").previous().code == "2025-12"
    assert parse_period("2026").next().code == "2027"
    assert [p.code for p in span(parse_period("2025-Q4"), parse_period("2026-Q2"))] == [
        "2025-Q4", "2026-Q1", "2026-Q2"]  # fmt: skip
    assert span(q4, parse_period("2026-Q3")) == []
    with pytest.raises(PeriodError, match="same granularity"):
        span(q4, parse_period("2026"))
    assert last_complete(dt.date(2026, 12, 5), "quarter").code == "2026-Q3"
    assert last_complete(dt.date(2026, 10, 1), "quarter").code == "2026-Q3"
    assert last_complete(dt.date(2026, 9, 30), "quarter").code == "2026-Q2"
    assert last_complete(dt.date(2026, 1, 1), "month").code == "2025-12"
    assert q4.months() == 3 and parse_period("2026").months() == 12
    with pytest.raises(PeriodError, match="unknown granularity 'week'"):
        period_of(dt.date(2026, 1, 1), "week")


Q2 = parse_period("2026-Q2")


def _tables(n: int = 600, country: str = "ZM", seed: int = 4) -> list[Table]:
    return compute_all(Inputs(sample_cases(n, country, Q2.start, Q2.end, seed=seed)), Q2)


def test_a_release_goes_into_its_payload_and_comes_back_the_same() -> None:
    made = release.make_release(_tables(), Q2, Method(5, 1), coverage="National", area="ZM",
                                replaces="0b7c5d5e-2a4b-4c3d-8e9f-1a2b3c4d5e6f")  # fmt: skip
    handling = release.default_handling("UNTOC", "fr")
    payload = release.to_payload(made, handling)
    assert payload["handling"] == {"code": "H0", "conditions": None, "legal_basis": "UNTOC",
                                   "legal_instrument": "UNTOC", "language": "fr",
                                   "retention_days": 3650, "sender_reference": None}  # fmt: skip
    assert payload["method"] == {"threshold": 5, "secondary_suppression": True, "rounding": 1,
                                 "epsilon": None, "budget_remaining": None}  # fmt: skip
    back = release.from_payload(payload, Q2)
    assert back == made
    assert release.method_of(payload) == Method(5, 1, None)


def test_tables_of_a_payload_skip_indicators_this_node_does_not_know() -> None:
    made = release.make_release(_tables()[:2], Q2, Method(5), coverage="National", area="ZM")
    payload = release.to_payload(made, release.default_handling("UNTOC"))
    payload["tables"][0]["indicator"] = "Other"
    assert [t.indicator for t in release.tables_of(payload)] == ["victims_citizenship"]


def test_a_population_whose_total_cannot_be_published_is_suppressed_in_every_table() -> None:
    few = _tables(n=3)  # a handful of victims: the grand total itself is below the threshold
    protected = release.protect_all(few, Method(5))
    victims = [t for t in protected if BY_CODE[t.indicator].population == "victims"]
    assert len(victims) == 2
    for table in victims:
        assert set(table.cells.values()) == {None}
    many = release.protect_all(_tables(), Method(5))
    for table in many:
        assert table.cells[tuple(TOTAL for _ in table.dimensions)] is not None


def test_the_privacy_budget_is_spent_and_then_refused() -> None:
    assert release.spent([None, 1.0, 0.5]) == 1.5
    assert release.check_budget(1.5, 1.5, 3.0) == 0.0
    assert release.check_budget(0.0, 1.0, 3.0) == 2.0
    with pytest.raises(release.ReleaseError, match=r"privacy budget spent: 2.5 of 3 used"):
        release.check_budget(2.5, 1.0, 3.0)
    with pytest.raises(release.ReleaseError, match="epsilon must be positive"):
        release.check_budget(0.0, 0.0, 3.0)


def test_noise_is_split_between_the_tables_and_the_release_records_its_epsilon() -> None:
    tables = _tables()
    made = release.make_release(tables, Q2, Method(5, 1, 2.0), coverage="National", area="ZM",
                                budget_remaining=1.0)  # fmt: skip
    assert made.method.epsilon == 2.0 and made.budget_remaining == 1.0
    noisy = release.add_noise(tables, 2.4)
    assert len(noisy) == len(tables)
    assert noisy != tables  # at 0.2 per table, some of the thousand cells moved
    assert release.add_noise([], 1.0) == []
    with pytest.raises(release.ReleaseError, match="below the minimum 3"):
        release.make_release(tables, Q2, Method(2), coverage="National", area="ZM")
    with pytest.raises(release.ReleaseError, match="unknown coverage 'Planet'"):
        release.make_release(tables, Q2, Method(5), coverage="Planet", area="ZM")


def _received(issuer: str, day: str, tables: list[Table], period: Period = Q2) -> rollup.Received:
    made = release.make_release(tables, period, Method(5), coverage="National",
                                area=issuer[:2].upper())  # fmt: skip
    return rollup.Received(issuer, dt.datetime.fromisoformat(day + "T08:00:00+00:00"), made)


def test_the_latest_release_of_an_issuer_replaces_the_earlier_ones() -> None:
    first = _received("zm-secretariat", "2026-07-05", _tables(seed=1))
    second = _received("zm-secretariat", "2026-07-20", _tables(seed=2))
    other = _received("zw-secretariat", "2026-07-06", _tables(country="ZW"))
    chosen, replaced = rollup.latest([second, other, first])
    assert chosen[("zm-secretariat", "2026-Q2")] is second
    assert replaced == {("zm-secretariat", "2026-Q2"): 1}


@pytest.mark.parametrize(("received", "today", "status"), [
    (None, "2026-07-30", rollup.NOT_DUE), (None, "2026-07-31", rollup.MISSING),
    ("2026-07-30", "2026-12-01", rollup.ON_TIME), ("2026-07-31", "2026-12-01", rollup.LATE),
])  # fmt: skip
def test_a_release_is_due_thirty_days_after_its_period(received, today, status) -> None:
    item = None if received is None else _received("zm-secretariat", received, _tables()[:1])
    assert rollup.status(Q2, item, dt.date.fromisoformat(today), 30) == status


def test_combined_cells_are_sums_or_lower_bounds_never_guesses() -> None:
    dims = BY_CODE["persons_convicted"].dimensions
    a = ReleasedTable("persons_convicted", dims, {("F",): 7, ("M",): None, ("_T",): 12})
    b = ReleasedTable("persons_convicted", dims, {("F",): 5, ("M",): 9, ("_T",): 14})
    combined = rollup.combine([a, b], "persons_convicted", Q2, ["zm", "zw"])
    assert combined.cells[("F",)] == rollup.Cell(12, 12)
    assert combined.cells[("M",)] == rollup.Cell(None, 9)
    assert combined.cells[("_T",)] == rollup.Cell(26, 26)


def test_the_roll_up_lists_every_expected_issuer_and_each_periods_status() -> None:
    q1 = parse_period("2026-Q1")
    received = [
        _received("zm-secretariat", "2026-04-10", _tables(seed=1), q1),
        _received("zm-secretariat", "2026-07-10", _tables(seed=2)),
        _received("zw-secretariat", "2026-08-20", _tables(country="ZW")),  # late for Q2
        _received("na-secretariat", "2026-07-01", _tables(country="NA")),  # not expected, sent
    ]
    data = rollup.roll_up(received, [q1, Q2], ["zm-secretariat", "zw-secretariat",
                                               "mw-secretariat"], dt.date(2026, 9, 1), 30)  # fmt: skip
    assert data.issuers == ("mw-secretariat", "na-secretariat", "zm-secretariat",
                            "zw-secretariat")  # fmt: skip
    statuses = {(s.issuer, s.period.code): s.status for s in data.submissions}
    assert statuses == {
        ("mw-secretariat", "2026-Q1"): "missing", ("mw-secretariat", "2026-Q2"): "missing",
        ("na-secretariat", "2026-Q1"): "missing", ("na-secretariat", "2026-Q2"): "on-time",
        ("zm-secretariat", "2026-Q1"): "on-time", ("zm-secretariat", "2026-Q2"): "on-time",
        ("zw-secretariat", "2026-Q1"): "missing", ("zw-secretariat", "2026-Q2"): "late",
    }  # fmt: skip
    total = data.total("victims_detected", Q2)
    parts = [data.total("victims_detected", Q2, i) for i in ("na-secretariat", "zm-secretariat",
                                                             "zw-secretariat")]  # fmt: skip
    assert total is not None and total.value == sum(p.value for p in parts if p)
    assert data.total("victims_detected", q1, "zw-secretariat") is None
    assert data.submission("zm-secretariat", q1).received is received[0]
