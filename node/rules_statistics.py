"""Business rules of a statistics release (pure): no free text anywhere, known indicators with
their own dimensions and codes, every cell of the cube once, and the disclosure check a
receiving node runs itself — a member with a valid key cannot slip a count below the threshold,
or a suppressed count that its totals give away, into a regional report (docs/statistics.md).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import pycountry

from node import codes
from node.checks import Context, Problem, Rule
from node.routing.ids import country_of
from node.stats import disclosure
from node.stats.indicators import BY_CODE
from node.stats.model import TOTAL, Method, ReleasedTable
from node.stats.periods import PeriodError, parse_period
from node.stats.release import MINIMUM_THRESHOLD

MAX_ROUNDING = 100


def _country(code: str) -> bool:
    return len(code) == 2 and code.isupper() and pycountry.countries.get(alpha_2=code) is not None


def _handling(h: Mapping[str, Any], path: str) -> Iterator[Problem]:
    instruments = codes.get("legal_instrument").codes
    if h.get("conditions") is not None:
        yield Problem(
            f"{path}.conditions", "statistics carry no handling conditions (no free text)"
        )
    if h.get("sender_reference") is not None:
        yield Problem(f"{path}.sender_reference", "statistics carry no case reference")
    if h.get("legal_instrument") not in (None, h["legal_basis"]):
        yield Problem(f"{path}.legal_instrument", "is the legal basis's code, or null")
    language = str(h["language"])
    if not (language.isalpha() and language.islower() and (
        pycountry.languages.get(alpha_2=language) or pycountry.languages.get(alpha_3=language)
    )):  # fmt: skip
        yield Problem(f"{path}.language", "an ISO 639 language code without subtags, e.g. en")
    if h["legal_basis"] not in instruments:
        listed = ", ".join(instruments)
        yield Problem(
            f"{path}.legal_basis", f"statistics name the instrument by its code: {listed}"
        )


def _area(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    area, coverage = str(r["area"]), r["coverage"]
    if coverage == "Regional":
        members = area.split(";")
        if not all(_country(c) for c in members) or len(set(members)) != len(members):
            yield Problem(f"{path}.area", "a regional release lists distinct ISO 3166-1 alpha-2 "
                          "codes separated by ';', e.g. ZM;ZW;MW")  # fmt: skip
        return
    if not _country(area):
        yield Problem(f"{path}.area", "an ISO 3166-1 alpha-2 country code in capitals, e.g. ZM")
        return
    if ctx.sender and country_of(ctx.sender).upper() != area:
        yield Problem(f"{path}.area", f"{ctx.sender} reports for its own country, not {area}")
    if coverage == "Agency":
        abroad = [r for r in ctx.recipients if country_of(r).upper() != area]
        if abroad:
            yield Problem(f"{path}.coverage", "an agency's statistics go to its own country's "
                          f"secretariat, not to {', '.join(abroad)}")  # fmt: skip


def _table_shape(t: Mapping[str, Any], path: str) -> Iterator[Problem]:
    indicator = BY_CODE.get(str(t["indicator"]))
    if indicator is None:
        yield Problem(f"{path}.indicator", "not an indicator this node knows (docs/statistics.md)")
        return
    expected = [d.name for d in indicator.dimensions]
    if list(t["dimensions"]) != expected:
        names = ", ".join(expected)
        yield Problem(f"{path}.dimensions", f"{indicator.code} is by {names}, in that order")
        return
    allowed = [{*d.codes, TOTAL} for d in indicator.dimensions]
    seen: set[tuple[str, ...]] = set()
    for j, cell in enumerate(t["cells"]):
        where = f"{path}.cells[{j}]"
        cell_codes = tuple(cell["codes"])
        if len(cell_codes) != len(allowed):
            yield Problem(f"{where}.codes", f"needs {len(allowed)} codes, one per dimension")
            continue
        for k, (code, ok) in enumerate(zip(cell_codes, allowed, strict=True)):
            if code not in ok:
                yield Problem(f"{where}.codes[{k}]", f"{code[:40]!r} is not a {expected[k]} code")
        if cell_codes in seen:
            yield Problem(f"{where}.codes", "this cell is listed twice")
        seen.add(cell_codes)
        if cell.get("value") is not None and cell["value"] < 0:
            yield Problem(f"{where}.value", "a count cannot be negative")
    cube = set(itertools.product(*((*d.codes, TOTAL) for d in indicator.dimensions)))
    missing = len(cube - seen)
    if missing:
        yield Problem(f"{path}.cells", f"{missing} cell(s) of the table are missing; every "
                      "combination of codes and totals is listed once")  # fmt: skip


def _disclosure(t: Mapping[str, Any], path: str, method: Method) -> Iterator[Problem]:
    indicator = BY_CODE[str(t["indicator"])]
    cells = {tuple(c["codes"]): c.get("value") for c in t["cells"]}
    index = {tuple(c["codes"]): j for j, c in enumerate(t["cells"])}
    released = ReleasedTable(indicator.code, indicator.dimensions, cells)
    for finding in disclosure.check_release(released, method, MINIMUM_THRESHOLD):
        where = f"{path}.cells[{index[finding.codes]}]" if finding.codes in index else path
        yield Problem(where, f"{finding.problem}: {finding.detail}")


def _release(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from _handling(r["handling"], f"{path}.handling")
    try:
        period = parse_period(str(r["period"]))
    except PeriodError as exc:
        yield Problem(f"{path}.period", str(exc))
    else:
        if period.end > ctx.today:
            yield Problem(f"{path}.period", f"{period.code} has not ended yet")
    yield from _area(r, path, ctx)
    m = r["method"]
    if m["threshold"] < MINIMUM_THRESHOLD:
        yield Problem(f"{path}.method.threshold", f"must be at least {MINIMUM_THRESHOLD}")
    if not 1 <= m["rounding"] <= MAX_ROUNDING:
        yield Problem(f"{path}.method.rounding", f"must be 1 to {MAX_ROUNDING}")
    if not m["secondary_suppression"]:
        yield Problem(f"{path}.method.secondary_suppression", "must be true")
    if m.get("epsilon") is not None and not m["epsilon"] > 0:
        yield Problem(f"{path}.method.epsilon", "must be positive")
    if not r["tables"]:
        yield Problem(f"{path}.tables", "a release carries at least one table")
    shaped, seen = [], set()
    for i, table in enumerate(r["tables"]):
        where = f"{path}.tables[{i}]"
        problems = list(_table_shape(table, where))
        if str(table["indicator"]) in seen:
            problems.append(Problem(f"{where}.indicator", "this indicator is listed twice"))
        seen.add(str(table["indicator"]))
        yield from problems
        if not problems:
            shaped.append((where, table))
    method = Method(max(int(m["threshold"]), 1), max(int(m["rounding"]), 1), m.get("epsilon"))
    for where, table in shaped:
        yield from _disclosure(table, where, method)


PAYLOAD_RULES: dict[str, tuple[Rule, ...]] = {
    "xnode.payload.StatisticsRelease": (_release,),
}
TYPE_RULES: dict[str, tuple[Rule, ...]] = {}
