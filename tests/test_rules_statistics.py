"""A statistics release as a receiver judges it: what an honest node makes passes; a member with
a valid key that slips a small count, an inconsistent total, a recoverable suppressed cell, a
text or a code out of place into a release is refused with the field path. And the schema has
no field that could carry a person's data."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from node import validation
from node.checks import Context
from node.codec import default_registry
from node.payloads import STATISTICS_SCHEMA
from node.stats import release
from node.stats.indicators import Inputs, compute_all
from node.stats.model import TOTAL, Method
from node.stats.periods import parse_period
from node.stats.sample import sample_cases

REGISTRY = default_registry()
PERIOD = parse_period("2026-Q2")
NOW = dt.datetime(2026, 8, 1, 12, tzinfo=dt.UTC)
CTX = Context(NOW, ("bw-sadc",), "zm-secretariat")


def _payload(**changes: Any) -> dict[str, Any]:
    records = sample_cases(900, "ZM", PERIOD.start, PERIOD.end)
    tables = compute_all(Inputs(records, ()), PERIOD, ["victims_detected", "persons_convicted",
                                                       "smuggled_migrants"])  # fmt: skip
    made = release.make_release(tables, PERIOD, Method(5), coverage="National", area="ZM")
    payload = release.to_payload(made, release.default_handling("TraffickingInPersonsProtocol"))
    payload.update(changes)
    return payload


VALID = _payload()


def _problems(payload: dict[str, Any], ctx: Context = CTX) -> list[str]:
    value = REGISTRY.from_json(STATISTICS_SCHEMA, payload, "payload")
    return [str(p) for p in validation.validate(REGISTRY, STATISTICS_SCHEMA, value, ctx)]


def _cell(payload: dict[str, Any], table: int, codes: tuple[str, ...]) -> dict[str, Any]:
    return next(c for c in payload["tables"][table]["cells"] if tuple(c["codes"]) == codes)


def _index(payload: dict[str, Any], table: int, codes: tuple[str, ...]) -> int:
    return next(j for j, c in enumerate(payload["tables"][table]["cells"])
                if tuple(c["codes"]) == codes)  # fmt: skip


def test_a_release_the_node_makes_passes_the_receivers_rules() -> None:
    assert _problems(VALID) == []
    # it does protect something: small cells were there and are suppressed
    assert any(c["value"] is None for c in VALID["tables"][0]["cells"])


def test_a_published_count_below_the_threshold_is_refused_with_its_cell() -> None:
    bad = copy.deepcopy(VALID)
    # a small interior cell, published as what it is, with its margins left as they were
    j = next(j for j, c in enumerate(bad["tables"][0]["cells"])
             if c["value"] is None and TOTAL not in c["codes"])  # fmt: skip
    bad["tables"][0]["cells"][j]["value"] = 2
    problems = _problems(bad)
    assert any(p.startswith(f"payload.tables[0].cells[{j}]: below-threshold") for p in problems)


def test_a_total_that_does_not_add_up_is_refused() -> None:
    bad = copy.deepcopy(VALID)
    total = _cell(bad, 0, (TOTAL, TOTAL, TOTAL))
    total["value"] += 7
    assert any(p.startswith("payload.tables[0]: inconsistent") for p in _problems(bad))


def test_a_suppressed_cell_its_totals_give_away_is_refused() -> None:
    bad = copy.deepcopy(VALID)
    # persons convicted by sex: publish every cell but one, and the total
    cells = bad["tables"][1]["cells"]
    for c in cells:
        c["value"] = 10 if c["codes"] != [TOTAL] else 40
    j = _index(bad, 1, ("O",))
    cells[j]["value"] = None
    problems = _problems(bad)
    assert f"payload.tables[1].cells[{j}]: recoverable" in " ".join(problems)


@pytest.mark.parametrize(("change", "path", "message"), [
    (lambda p: p["handling"].update(conditions="Chipo Banda, aged 15"),
     "payload.handling.conditions", "statistics carry no handling conditions (no free text)"),
    (lambda p: p["handling"].update(legal_basis="Case of Chipo Banda"),
     "payload.handling.legal_basis", "statistics name the instrument by its code"),
    (lambda p: p["handling"].update(language="en-Chipo-Banda"), "payload.handling.language",
     "an ISO 639 language code without subtags, e.g. en"),
    (lambda p: p["handling"].update(legal_instrument="UNTOC"), "payload.handling.legal_instrument",
     "is the legal basis's code, or null"),
    (lambda p: p["handling"].update(sender_reference="LSK-2026-0041"),
     "payload.handling.sender_reference", "statistics carry no case reference"),
    (lambda p: p["tables"][0]["cells"][0]["codes"].__setitem__(0, "Chipo Banda"),
     "payload.tables[0].cells[0].codes[0]", "'Chipo Banda' is not a sex code"),
    (lambda p: p.update(period="2026-Q5"), "payload.period", "invalid period '2026-Q5'"),
    (lambda p: p.update(period="2026-Q3"), "payload.period", "2026-Q3 has not ended yet"),
    (lambda p: p.update(area="ZW"), "payload.area", "zm-secretariat reports for its own country"),
    (lambda p: p.update(area="Lusaka"), "payload.area", "an ISO 3166-1 alpha-2 country code"),
    (lambda p: p["method"].update(threshold=2), "payload.method.threshold", "must be at least 3"),
    (lambda p: p["method"].update(secondary_suppression=False),
     "payload.method.secondary_suppression", "must be true"),
    (lambda p: p["tables"][0].update(indicator="Other"), "payload.tables[0].indicator",
     "not an indicator this node knows"),
    (lambda p: p["tables"][0].update(dimensions=["age", "sex", "exploitation"]),
     "payload.tables[0].dimensions", "victims_detected is by sex, age, exploitation"),
    (lambda p: p["tables"][2]["cells"].pop(), "payload.tables[2].cells", "1 cell(s) of the table"),
    (lambda p: p["tables"][2]["cells"].append(dict(p["tables"][2]["cells"][0])),
     "payload.tables[2].cells[20].codes", "this cell is listed twice"),
    (lambda p: p["tables"].append(copy.deepcopy(p["tables"][2])),
     "payload.tables[3].indicator", "this indicator is listed twice"),
    (lambda p: p["tables"][2]["cells"][0].update(value=-5), "payload.tables[2].cells[0].value",
     "a count cannot be negative"),
    (lambda p: p["tables"][2]["cells"][0]["codes"].append("F"),
     "payload.tables[2].cells[0].codes", "needs 2 codes, one per dimension"),
])  # fmt: skip
def test_a_hostile_or_careless_release_is_refused_with_the_field_path(
    change, path, message
) -> None:
    bad = copy.deepcopy(VALID)
    change(bad)
    problems = _problems(bad)
    assert any(p.startswith(f"{path}: {message}") for p in problems), problems


def test_an_agencys_release_stays_in_its_country() -> None:
    agency = _payload(coverage="Agency")
    ctx = Context(NOW, ("zm-secretariat",), "zm-police")
    assert _problems(agency, ctx) == []
    abroad = Context(NOW, ("zw-secretariat",), "zm-police")
    assert _problems(agency, abroad) == [
        "payload.coverage: an agency's statistics go to its own country's secretariat, not to "
        "zw-secretariat"]  # fmt: skip


def test_a_regional_release_lists_its_countries() -> None:
    assert _problems(_payload(coverage="Regional", area="ZM;ZW;MW")) == []
    assert _problems(_payload(coverage="Regional", area="ZM;ZM")) == [
        "payload.area: a regional release lists distinct ISO 3166-1 alpha-2 codes separated by "
        "';', e.g. ZM;ZW;MW"]  # fmt: skip


def _strings(schema: Any, named: dict[str, Any], path: str, seen: set[str]) -> list[str]:
    """Every path in the schema where a string that is not an enum or a UUID can go."""
    if isinstance(schema, list):
        return [s for branch in schema for s in _strings(branch, named, path, seen)]
    if isinstance(schema, str):
        if schema == "string":
            return [path]
        if schema in named and schema not in seen:
            return _strings(named[schema], named, path, seen | {schema})
        return []
    kind = schema.get("type")
    if kind == "record":
        return [s for f in schema["fields"]
                for s in _strings(f["type"], named, f"{path}.{f['name']}", seen)]  # fmt: skip
    if kind == "array":
        return _strings(schema["items"], named, f"{path}[]", seen)
    if kind == "string" and schema.get("logicalType") == "uuid":
        return []
    if isinstance(kind, str | list | dict):
        return _strings(kind, named, path, seen)
    return []


def test_no_field_of_the_statistics_schema_can_hold_a_persons_data() -> None:
    """Every string field is pinned by a rule to a code, a period or a country; the rules above
    show each refusing a name. Anything added to the schema later fails this test until it is
    pinned too."""
    info = REGISTRY.schema(STATISTICS_SCHEMA)
    found = sorted(_strings(info.parsed, dict(info.named), "payload", set()))
    assert found == [
        "payload.area",  # ISO 3166 codes (test_a_hostile_or_careless_release...)
        "payload.handling.conditions",  # must be null
        "payload.handling.language",  # an ISO 639 code, no subtags
        "payload.handling.legal_basis",  # an instrument code
        "payload.handling.legal_instrument",  # the same code, or null
        "payload.handling.sender_reference",  # must be null
        "payload.period",  # 2026, 2026-Q3, 2026-07
        "payload.tables[].cells[].codes[]",  # a code of the dimension or _T
    ]
    numbers = [f["name"] for f in info.named["xnode.common.StatisticsCell"]["fields"]]
    assert numbers == ["codes", "value"]  # counts only, never an amount or an age of one person
