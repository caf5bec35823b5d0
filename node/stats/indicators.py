"""The indicators a node computes, each defined once: what it counts, by what, from where. Pure.

Victims are counted from the agency's own case records (:mod:`node.stats.cases`), exchanges from
the facts kept of sent and received messages (:mod:`node.stats.facts`). Each indicator is one
table whose interior cells are disjoint — one person, message or subject in exactly one cell —
so margins add up, suppression can be checked by linear programming and one person changes one
cell (the sensitivity differential privacy needs). Tables of the same ``population`` count the
same people and share their grand total (docs/statistics.md has every definition).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import pycountry

from node import codes
from node.stats.cases import MULTIPLE, CaseRecord
from node.stats.facts import ALERT_SUBJECTS, MLA_REQUESTS, Fact
from node.stats.model import Codes, Dimension, Table
from node.stats.periods import Period

UNKNOWN = "U"
SEX = Dimension("sex", ("F", "M", "O", UNKNOWN))
AGE = Dimension("age", ("Y0T11", "Y12T17", "Y18T24", "Y25T34", "Y35T49", "Y_GE50", UNKNOWN))
CHILD_BANDS = ("Y0T11", "Y12T17")
EXPLOITATION = Dimension("exploitation", (*codes.get("exploitation_type").codes, MULTIPLE, UNKNOWN))
CITIZENSHIP = Dimension("citizenship", (*sorted(c.alpha_2 for c in pycountry.countries), UNKNOWN))
SCOPE = Dimension("scope", ("Domestic", "CrossBorder", UNKNOWN))
DIRECTION = Dimension("direction", ("Sent", "Received"))
OUTCOME = Dimension("outcome", ("Pending", *codes.get("referral_response_status").codes))
DAYS = Dimension("days", ("D0T30", "D31T90", "D91T180", "D181T365", "D_GT365", UNKNOWN))
REQUEST = Dimension("request", MLA_REQUESTS)
SUBJECT = Dimension("subject", tuple(ALERT_SUBJECTS))
AGE_GROUP = Dimension("age_group", ("Y0T17", "Y_GE18", UNKNOWN))

ANSWERS = ("PartiallyExecuted", "Executed", "Refused")  # an MLA response that answers
DIMENSIONS: Mapping[str, Dimension] = {
    d.name: d
    for d in (SEX, AGE, EXPLOITATION, CITIZENSHIP, SCOPE, DIRECTION, OUTCOME, DAYS, REQUEST,
              SUBJECT, AGE_GROUP)
}  # fmt: skip

_GENDER_SEX = {
    "Feminine": "F", "TransgenderFeminine": "F", "Masculine": "M", "TransgenderMasculine": "M",
    "NonConforming": "O",
}  # fmt: skip


@dataclass(frozen=True)
class Inputs:
    """What one computation reads: local case records and the facts of exchanged messages."""

    cases: Sequence[CaseRecord] = ()
    facts: Sequence[Fact] = ()


@dataclass(frozen=True)
class Indicator:
    """One indicator: its code, what it counts and where the definition comes from."""

    code: str
    title: str
    unit: str
    population: str
    dimensions: tuple[Dimension, ...]
    definition: str
    source: str
    count: Callable[[Inputs, Period], Iterable[Codes]]


def sex_of(record: CaseRecord) -> str:
    return _GENDER_SEX.get(record.gender or "", UNKNOWN)


def age_band(age: int | None) -> str:
    if age is None:
        return UNKNOWN
    for limit, band in ((11, "Y0T11"), (17, "Y12T17"), (24, "Y18T24"), (34, "Y25T34"),
                        (49, "Y35T49")):  # fmt: skip
        if age <= limit:
            return band
    return "Y_GE50"


def age_group(age: int | None) -> str:
    return UNKNOWN if age is None else "Y0T17" if age < 18 else "Y_GE18"


def scope_of(record: CaseRecord) -> str:
    """Domestic when every known country (citizenship, recruitment, exploitation) is the same,
    cross-border when two differ, unknown with fewer than two known (UNODC's distinction)."""
    known = {c for c in (record.citizenship, record.recruitment_country,
                         record.exploitation_country) if c}  # fmt: skip
    if len(known) > 1:
        return "CrossBorder"
    if len(known) == 1 and sum(
        c is not None for c in (record.citizenship, record.recruitment_country,
                                record.exploitation_country)
    ) >= 2:  # fmt: skip
        return "Domestic"
    return UNKNOWN


def days_band(days: float | None) -> str:
    if days is None:
        return UNKNOWN
    for limit, band in ((30, "D0T30"), (90, "D31T90"), (180, "D91T180"), (365, "D181T365")):
        if days <= limit:
            return band
    return "D_GT365"


def _victims(inputs: Inputs, period: Period) -> Iterable[CaseRecord]:
    return (
        r for r in inputs.cases
        if r.record_type == "Victim" and r.status != "NotAVictimOfTrafficking"
        and period.contains(r.identified_on)
    )  # fmt: skip


def _direction(fact: Fact) -> str:
    return "Sent" if fact.direction == "sent" else "Received"


def _facts(inputs: Inputs, period: Period, *schemas: str) -> Iterable[Fact]:
    return (f for f in inputs.facts if f.schema in schemas and period.contains(f.at.date()))


def _by_thread(inputs: Inputs, *schemas: str) -> dict[tuple[str, str], list[Fact]]:
    out: dict[tuple[str, str], list[Fact]] = {}
    for fact in inputs.facts:
        if fact.schema in schemas:
            out.setdefault((fact.direction, fact.thread_id), []).append(fact)
    for facts in out.values():
        facts.sort(key=lambda f: f.at)
    return out


def _days(start: dt.datetime, end: dt.datetime) -> float:
    return (end - start).total_seconds() / 86400


def count_victims(inputs: Inputs, period: Period) -> Iterable[Codes]:
    for r in _victims(inputs, period):
        yield sex_of(r), age_band(r.age), r.exploitation or UNKNOWN


def count_victim_citizenship(inputs: Inputs, period: Period) -> Iterable[Codes]:
    for r in _victims(inputs, period):
        yield r.citizenship or UNKNOWN, scope_of(r)


def _stage(attribute: str) -> Callable[[Inputs, Period], Iterable[Codes]]:
    def count(inputs: Inputs, period: Period) -> Iterable[Codes]:
        for r in inputs.cases:
            day = getattr(r, attribute)
            if r.record_type == "Perpetrator" and day is not None and period.contains(day):
                yield (sex_of(r),)

    return count


def count_smuggled(inputs: Inputs, period: Period) -> Iterable[Codes]:
    for r in inputs.cases:
        if r.record_type == "SmuggledMigrant" and period.contains(r.identified_on):
            yield sex_of(r), age_group(r.age)


def count_smuggling_alerts(inputs: Inputs, period: Period) -> Iterable[Codes]:
    for fact in _facts(inputs, period, "Alert"):
        if fact.codes.get("alert_type") == "MigrantSmuggling":
            yield (_direction(fact),)


def count_alert_subjects(inputs: Inputs, period: Period) -> Iterable[Codes]:
    for fact in _facts(inputs, period, "Alert"):
        for subject, n in dict(fact.codes.get("subjects") or {}).items():
            if subject in ALERT_SUBJECTS:
                yield from [(subject, _direction(fact))] * int(n)


def count_referrals(inputs: Inputs, period: Period) -> Iterable[Codes]:
    """Referrals made (sent) or received in the period, by the latest answer so far."""
    answers = _by_thread(inputs, "ReferralResponse")
    for fact in _facts(inputs, period, "Referral"):
        other = "received" if fact.direction == "sent" else "sent"
        replies = answers.get((other, fact.thread_id), [])
        yield _direction(fact), str(replies[-1].codes.get("status")) if replies else "Pending"


def count_returns(inputs: Inputs, period: Period) -> Iterable[Codes]:
    """Returns completed (arrival confirmed) in the period, by the days from the proposal
    (first contact between the two countries) to the handover."""
    threads = _by_thread(inputs, "RepatriationProposal", "RepatriationHandover")
    for fact in _facts(inputs, period, "RepatriationArrivalConfirmed"):
        steps = [f for key, fs in threads.items() if key[1] == fact.thread_id for f in fs]
        proposal = next((f for f in steps if f.schema == "RepatriationProposal"), None)
        handover = next((f for f in steps if f.schema == "RepatriationHandover"), None)
        days = _days(proposal.at, handover.at) if proposal and handover else None
        yield _direction(fact), days_band(days)


def count_mla_requests(inputs: Inputs, period: Period) -> Iterable[Codes]:
    for fact in _facts(inputs, period, *MLA_REQUESTS):
        yield _direction(fact), fact.schema


def count_mla_answers(inputs: Inputs, period: Period) -> Iterable[Codes]:
    """Requests first answered (executed, partly executed or refused) in the period, by the
    days from the request; the direction is the request's."""
    requests = _by_thread(inputs, *MLA_REQUESTS)
    responses = _by_thread(inputs, "MlaResponse")
    for (direction, thread), asked in requests.items():
        other = "received" if direction == "sent" else "sent"
        answer = next((f for f in responses.get((other, thread), [])
                       if f.codes.get("status") in ANSWERS), None)  # fmt: skip
        if answer is not None and period.contains(answer.at.date()):
            yield _direction(asked[0]), days_band(_days(asked[0].at, answer.at))


INDICATORS: tuple[Indicator, ...] = (
    Indicator(
        "victims_detected",
        "Detected victims of trafficking",
        "persons",
        "victims",
        (SEX, AGE, EXPLOITATION),
        "Persons identified in the period as actual or possible victims of trafficking in "
        "persons (HTCDS vic_TraffickingStatus other than NotAVictimOfTrafficking), by sex, age "
        "at identification and form of exploitation; a person exploited in several forms "
        "counts once, as Multiple.",
        "SDG indicator 16.2.2 disaggregation (sex, age, form of exploitation); UNODC Global "
        "Report on Trafficking in Persons data collection",
        count_victims,
    ),
    Indicator(
        "victims_citizenship",
        "Detected victims by citizenship and scope",
        "persons",
        "victims",
        (CITIZENSHIP, SCOPE),
        "The same victims by citizenship (first listed) and whether the trafficking was "
        "domestic (citizenship, recruitment and exploitation in one country) or cross-border.",
        "UNODC Global Report on Trafficking in Persons (citizenship; domestic and "
        "cross-border flows)",
        count_victim_citizenship,
    ),
    Indicator(
        "persons_investigated",
        "Persons investigated",
        "persons",
        "investigated",
        (SEX,),
        "Persons against whom an investigation for trafficking in persons began in the period.",
        "UNODC Global Report data collection (criminal justice response)",
        _stage("investigated_on"),
    ),
    Indicator(
        "persons_prosecuted",
        "Persons prosecuted",
        "persons",
        "prosecuted",
        (SEX,),
        "Persons charged or prosecuted for trafficking in persons in the period.",
        "UNODC Global Report data collection (criminal justice response)",
        _stage("prosecuted_on"),
    ),
    Indicator(
        "persons_convicted",
        "Persons convicted",
        "persons",
        "convicted",
        (SEX,),
        "Persons convicted at first instance of trafficking in persons in the period.",
        "UNODC Global Report data collection (criminal justice response)",
        _stage("convicted_on"),
    ),
    Indicator(
        "smuggled_migrants",
        "Smuggled migrants identified",
        "persons",
        "smuggled",
        (SEX, AGE_GROUP),
        "Persons identified in the period as smuggled migrants (local case records).",
        "UNODC data collection on smuggling of migrants (Protocol against the Smuggling of "
        "Migrants)",
        count_smuggled,
    ),
    Indicator(
        "smuggling_alerts",
        "Migrant smuggling alerts",
        "alerts",
        "smuggling_alerts",
        (DIRECTION,),
        "New alerts of type MigrantSmuggling sent or received in the period.",
        "xnode exchanges",
        count_smuggling_alerts,
    ),
    Indicator(
        "alert_subjects",
        "Alert subjects by type",
        "subjects",
        "alert_subjects",
        (SUBJECT, DIRECTION),
        "Subjects named in new alerts sent or received in the period: persons, vehicles, "
        "documents, organisations, phone numbers, online and financial accounts.",
        "xnode exchanges",
        count_alert_subjects,
    ),
    Indicator(
        "referrals",
        "Transnational referrals",
        "referrals",
        "referrals",
        (DIRECTION, OUTCOME),
        "Referrals made (sent) or received in the period, by the latest answer so far "
        "(Pending when none).",
        "xnode exchanges; HTCDS referral details",
        count_referrals,
    ),
    Indicator(
        "returns_completed",
        "Returns completed",
        "returns",
        "returns",
        (DIRECTION, DAYS),
        "Returns whose arrival was confirmed in the period, by the days from the return "
        "proposal (first contact between the two countries) to the handover.",
        "xnode exchanges",
        count_returns,
    ),
    Indicator(
        "mla_requests",
        "Mutual legal assistance requests",
        "requests",
        "mla_requests",
        (DIRECTION, REQUEST),
        "Requests for mutual legal assistance and other judicial cooperation sent or received "
        "in the period, by type.",
        "xnode exchanges; UNTOC arts. 13-21",
        count_mla_requests,
    ),
    Indicator(
        "mla_answered",
        "Mutual legal assistance requests answered",
        "requests",
        "mla_answers",
        (DIRECTION, DAYS),
        "Requests first answered (executed, partly executed or refused) in the period, by the "
        "days from the request to the answer.",
        "xnode exchanges; UNTOC art. 18(24)",
        count_mla_answers,
    ),
)
BY_CODE: Mapping[str, Indicator] = {i.code: i for i in INDICATORS}


def compute(indicator: Indicator, inputs: Inputs, period: Period) -> Table:
    """One indicator's table for one period."""
    counts = Counter(indicator.count(inputs, period))
    valid = {d.name: set(d.codes) for d in indicator.dimensions}
    for cell in counts:
        for dimension, code in zip(indicator.dimensions, cell, strict=True):
            if code not in valid[dimension.name]:
                raise ValueError(f"{indicator.code}: {code!r} is not a {dimension.name} code")
    return Table(indicator.code, indicator.dimensions, dict(counts))


def compute_all(inputs: Inputs, period: Period,
                chosen: Sequence[str] | None = None) -> list[Table]:  # fmt: skip
    """Every indicator (or those ``chosen``) for one period."""
    wanted = [BY_CODE[c] for c in chosen] if chosen else list(INDICATORS)
    return [compute(i, inputs, period) for i in wanted]
