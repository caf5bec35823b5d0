"""The indicators, each counted from records and facts made for it: the boundaries of age bands
and durations, domestic against cross-border, the latest answer of a referral, the days from a
proposal to its handover and from an MLA request to its answer, subjects of new alerts only."""

from __future__ import annotations

import datetime as dt

import pytest

from node.stats import facts, indicators
from node.stats.cases import CaseRecord
from node.stats.indicators import Inputs, compute
from node.stats.periods import parse_period

Q2 = parse_period("2026-Q2")


def _at(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(day + "T10:00:00+00:00")


def _fact(schema: str, direction: str, thread: str, day: str, **codes: object) -> facts.Fact:
    return facts.Fact(f"{schema}-{thread}-{day}", direction, schema, thread, _at(day), codes)


def _victim(**kw: object) -> CaseRecord:
    base: dict[str, object] = {"case_id": "x", "record_type": "Victim",
                               "identified_on": dt.date(2026, 5, 1)}  # fmt: skip
    return CaseRecord(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(("age", "band"), [
    (None, "U"), (0, "Y0T11"), (11, "Y0T11"), (12, "Y12T17"), (17, "Y12T17"), (18, "Y18T24"),
    (24, "Y18T24"), (25, "Y25T34"), (34, "Y25T34"), (35, "Y35T49"), (49, "Y35T49"),
    (50, "Y_GE50"),
])  # fmt: skip
def test_age_bands_at_their_edges(age: int | None, band: str) -> None:
    assert indicators.age_band(age) == band
    assert indicators.age_group(age) == ("U" if age is None else "Y0T17" if age < 18 else "Y_GE18")


@pytest.mark.parametrize(("days", "band"), [
    (None, "U"), (0, "D0T30"), (30, "D0T30"), (30.5, "D31T90"), (90, "D31T90"), (91, "D91T180"),
    (180, "D91T180"), (181, "D181T365"), (365, "D181T365"), (366, "D_GT365"),
])  # fmt: skip
def test_duration_bands_at_their_edges(days: float | None, band: str) -> None:
    assert indicators.days_band(days) == band


@pytest.mark.parametrize(("citizenship", "recruited", "exploited", "scope"), [
    ("ZM", "ZM", "ZM", "Domestic"), ("ZM", None, "ZM", "Domestic"), ("ZM", "ZM", "ZA", "CrossBorder"),
    ("MW", None, "ZM", "CrossBorder"), ("ZM", None, None, "U"), (None, None, None, "U"),
])  # fmt: skip
def test_domestic_needs_two_known_countries_that_agree(
    citizenship, recruited, exploited, scope
) -> None:
    record = _victim(citizenship=citizenship, recruitment_country=recruited,
                     exploitation_country=exploited)  # fmt: skip
    assert indicators.scope_of(record) == scope


def test_victims_are_counted_in_their_period_by_sex_age_and_form() -> None:
    records = [
        _victim(gender="TransgenderFeminine", age=15, exploitation="SexualExploitation"),
        _victim(gender="Masculine", age=30, exploitation="ForcedLabour"),
        _victim(gender="NonConforming"),
        _victim(status="NotAVictimOfTrafficking", gender="Feminine"),  # not counted
        _victim(identified_on=dt.date(2026, 7, 1), gender="Feminine"),  # next quarter
        _victim(identified_on=dt.date(2026, 3, 31), gender="Feminine"),  # previous one
        _victim(record_type="SmuggledMigrant", gender="Feminine"),  # another indicator
    ]
    table = compute(indicators.BY_CODE["victims_detected"], Inputs(records), Q2)
    assert dict(table.counts) == {("F", "Y12T17", "SexualExploitation"): 1,
                                  ("M", "Y25T34", "ForcedLabour"): 1, ("O", "U", "U"): 1}  # fmt: skip


def test_criminal_justice_counts_each_stage_in_the_period_of_its_date() -> None:
    perpetrator = CaseRecord("p", "Perpetrator", dt.date(2026, 1, 5), gender="Masculine",
                             investigated_on=dt.date(2026, 1, 5),
                             prosecuted_on=dt.date(2026, 4, 2), convicted_on=None)  # fmt: skip
    inputs = Inputs([perpetrator])
    count = {code: sum(compute(indicators.BY_CODE[code], inputs, Q2).counts.values())
             for code in ("persons_investigated", "persons_prosecuted", "persons_convicted")}  # fmt: skip
    assert count == {"persons_investigated": 0, "persons_prosecuted": 1, "persons_convicted": 0}


def test_a_referral_counts_with_its_latest_answer_from_the_other_side() -> None:
    inputs = Inputs(facts=[
        _fact("Referral", "sent", "t1", "2026-04-10"),
        _fact("ReferralResponse", "received", "t1", "2026-04-12", status="MoreInformationNeeded"),
        _fact("ReferralResponse", "received", "t1", "2026-04-20", status="Accepted"),
        _fact("Referral", "received", "t2", "2026-05-01"),
        _fact("Referral", "sent", "t3", "2026-06-30"),
        _fact("ReferralResponse", "sent", "t3", "2026-07-02", status="Declined"),  # own answer: no
        _fact("Referral", "sent", "t4", "2026-03-31"),  # previous quarter
    ])  # fmt: skip
    table = compute(indicators.BY_CODE["referrals"], inputs, Q2)
    assert dict(table.counts) == {("Sent", "Accepted"): 1, ("Received", "Pending"): 1,
                                  ("Sent", "Pending"): 1}  # fmt: skip


def test_a_return_counts_when_its_arrival_is_confirmed_with_days_to_handover() -> None:
    inputs = Inputs(facts=[
        _fact("RepatriationProposal", "received", "r1", "2026-01-10"),
        _fact("RepatriationHandover", "sent", "r1", "2026-04-10"),  # 90 days
        _fact("RepatriationArrivalConfirmed", "sent", "r1", "2026-04-11"),
        _fact("RepatriationArrivalConfirmed", "received", "r2", "2026-05-11"),  # no proposal kept
    ])  # fmt: skip
    table = compute(indicators.BY_CODE["returns_completed"], inputs, Q2)
    assert dict(table.counts) == {("Sent", "D31T90"): 1, ("Received", "U"): 1}


def test_an_mla_request_is_answered_by_its_first_executing_or_refusing_response() -> None:
    inputs = Inputs(facts=[
        _fact("MlaRequest", "sent", "m1", "2026-02-01"),
        _fact("MlaResponse", "received", "m1", "2026-02-03", status="Acknowledged"),
        _fact("MlaResponse", "received", "m1", "2026-05-02", status="PartiallyExecuted"),  # 90 d
        _fact("MlaResponse", "received", "m1", "2026-06-02", status="Executed"),  # not again
        _fact("JointInvestigationTeam", "received", "m2", "2026-04-01"),
        _fact("MlaResponse", "sent", "m2", "2026-04-15", status="Refused"),  # 14 days
    ])  # fmt: skip
    answered = compute(indicators.BY_CODE["mla_answered"], inputs, Q2)
    assert dict(answered.counts) == {("Sent", "D31T90"): 1, ("Received", "D0T30"): 1}
    asked = compute(indicators.BY_CODE["mla_requests"], inputs, Q2)
    assert dict(asked.counts) == {("Received", "JointInvestigationTeam"): 1}


def test_alert_subjects_count_new_alerts_only_and_smuggling_alerts_by_type() -> None:
    new = facts.codes_of("xnode.payload.Alert", {
        "action": "New", "alert_type": "MigrantSmuggling", "subjects": [{}, {}],
        "phone_numbers": [{}], "vehicles": None})  # fmt: skip
    assert new == {"alert_type": "MigrantSmuggling", "subjects": {
        "person": 2, "vehicle": 0, "document": 0, "organisation": 0, "phone": 1,
        "online_account": 0, "financial_account": 0}}  # fmt: skip
    assert facts.codes_of("xnode.payload.Alert", {"action": "Update"}) is None
    assert facts.codes_of("xnode.payload.CaseUpdate", {}) is None
    assert facts.codes_of("xnode.payload.StatisticsRelease", {}) is None
    inputs = Inputs(facts=[facts.Fact("a", "received", "Alert", "t", _at("2026-04-04"), new)])
    subjects = compute(indicators.BY_CODE["alert_subjects"], inputs, Q2)
    assert dict(subjects.counts) == {("person", "Received"): 2, ("phone", "Received"): 1}
    smuggling = compute(indicators.BY_CODE["smuggling_alerts"], inputs, Q2)
    assert dict(smuggling.counts) == {("Received",): 1}


def test_every_indicator_has_a_definition_a_source_and_codes_with_labels() -> None:
    from node import codes

    listed = set(codes.get("statistics_indicator").codes)
    categories = set(codes.get("statistics_category").codes)
    for indicator in indicators.INDICATORS:
        assert indicator.code in listed and indicator.definition and indicator.source
        for dimension in indicator.dimensions:
            assert dimension.name in codes.get("statistics_dimension").codes
            if dimension.name in ("sex", "age", "scope", "direction", "days", "subject",
                                  "age_group"):  # fmt: skip
                assert set(dimension.codes) <= categories, dimension.name
