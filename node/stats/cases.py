"""Local case records: HTCDS-shaped rows read from CSV or JSON, checked, reduced. Pure.

An agency imports its own case files so the node can count them. The rows use the names of
IOM's Human Trafficking Case Data Standard (``prs_Gender``, ``vic_TypeOfExploitation``...;
docs/statistics.md lists them). Only what the indicators need is kept: a row's date of birth
becomes an age at identification, and names, addresses or free text are refused outright, so
the store never holds more than a statistic needs. These records are never sent anywhere.

Checking is all or nothing: :func:`read_csv` and :func:`read_json` return every row's errors
with its line (or record) number, and an import stores nothing unless there are none.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pycountry

from node import codes

RECORD_TYPES = ("Victim", "Perpetrator", "SmuggledMigrant")
TRAFFICKING_STATUSES = (
    "PossibleVictimOfTrafficking",
    "ActualVictimOfTrafficking",
    "NotAVictimOfTrafficking",
)
MULTIPLE = "Multiple"  # a victim exploited in more than one form counts once, here
MAX_AGE = 120
MAX_ROWS = 1_000_000

# column -> (required, what it holds); the HTCDS name where HTCDS has one
COLUMNS: Mapping[str, tuple[bool, str]] = {
    "case_id": (True, "the agency's own case number (kept locally, to replace a re-imported row)"),
    "record_type": (True, "Victim, Perpetrator or SmuggledMigrant"),
    "identified_on": (True, "date the person was identified (victim, migrant) or first suspected"),
    "prs_Gender": (False, "HTCDS gender code"),
    "prs_Birthdate": (False, "date of birth; only the age at identification is kept"),
    "vic_AgeWhenTrafficked": (False, "age in years, used when there is no date of birth"),
    "prs_Citizenship": (False, "ISO 3166-1 alpha-2 code(s), ';'-separated; the first is kept"),
    "vic_TraffickingStatus": (False, "HTCDS trafficking status (victims)"),
    "vic_TypeOfExploitation": (False, "HTCDS form(s) of exploitation, ';'-separated"),
    "hte_RecruitmentCountry": (False, "country of recruitment (HTCDS hte_Country, Recruitment)"),
    "hte_ExploitationCountry": (False, "country of exploitation (hte_Country, Exploitation)"),
    "per_InvestigatedOn": (False, "date an investigation of the person began (perpetrators)"),
    "per_ProsecutedOn": (False, "date the person was charged or prosecuted (perpetrators)"),
    "per_ConvictedOn": (False, "date of first-instance conviction (perpetrators)"),
}


@dataclass(frozen=True)
class CaseRecord:
    """What the node keeps of one local case row: codes, an age and dates."""

    case_id: str
    record_type: str
    identified_on: dt.date
    gender: str | None = None
    age: int | None = None
    citizenship: str | None = None
    status: str | None = None
    exploitation: str | None = None  # one HTCDS code, MULTIPLE, or None
    recruitment_country: str | None = None
    exploitation_country: str | None = None
    investigated_on: dt.date | None = None
    prosecuted_on: dt.date | None = None
    convicted_on: dt.date | None = None


@dataclass(frozen=True)
class RowError:
    """One problem with one row: where (``line 7`` or ``record 3``), which field, and why."""

    where: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.field}: {self.message}"


class ImportRefused(ValueError):
    """The import had errors; nothing was imported. ``errors`` lists every one."""

    def __init__(self, errors: Sequence[RowError]) -> None:
        shown = "; ".join(map(str, errors[:5]))
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"{len(errors)} error(s), nothing imported: {shown}{more}")
        self.errors = list(errors)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value).strip()


def _date(
    value: str, field: str, today: dt.date, problems: list[tuple[str, str]]
) -> dt.date | None:
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        problems.append((field, f"{value!r} is not a date (YYYY-MM-DD)"))
        return None
    if day > today:
        problems.append((field, f"{value} is in the future"))
        return None
    if day.year < 1900:
        problems.append((field, f"{value} is before 1900"))
        return None
    return day


def _country(value: str, field: str, problems: list[tuple[str, str]]) -> str | None:
    if not value:
        return None
    first = value.split(";")[0].strip().upper()
    if len(first) != 2 or pycountry.countries.get(alpha_2=first) is None:
        problems.append((field, f"{first!r} is not an ISO 3166-1 alpha-2 country code"))
        return None
    return first


def _code(
    value: str, field: str, allowed: Sequence[str], problems: list[tuple[str, str]]
) -> str | None:
    if not value:
        return None
    if value not in allowed:
        problems.append((field, f"unknown code {value!r}; expected one of {', '.join(allowed)}"))
        return None
    return value


def _age(
    row: Mapping[str, str],
    identified: dt.date | None,
    today: dt.date,
    problems: list[tuple[str, str]],
) -> int | None:
    born = _date(row.get("prs_Birthdate", ""), "prs_Birthdate", today, problems)
    if born is not None and identified is not None:
        if born > identified:
            problems.append(("prs_Birthdate", "is after identified_on"))
            return None
        years = (
            identified.year
            - born.year
            - ((identified.month, identified.day) < (born.month, born.day))
        )
        if years > MAX_AGE:
            problems.append(("prs_Birthdate", f"gives an age of {years}, above {MAX_AGE}"))
            return None
        return years
    text = row.get("vic_AgeWhenTrafficked", "")
    if not text:
        return None
    try:
        years = int(text)
    except ValueError:
        problems.append(("vic_AgeWhenTrafficked", f"{text!r} is not a whole number"))
        return None
    if not 0 <= years <= MAX_AGE:
        problems.append(("vic_AgeWhenTrafficked", f"{years} is outside 0..{MAX_AGE}"))
        return None
    return years


def check_row(
    row: Mapping[str, Any], today: dt.date
) -> tuple[CaseRecord | None, list[tuple[str, str]]]:
    """One row -> its record, or None and the (field, message) problems found."""
    problems: list[tuple[str, str]] = []
    unknown = sorted(set(row) - set(COLUMNS))
    for name in unknown:
        problems.append((name, "unknown column (docs/statistics.md lists the accepted ones)"))
    values = {name: _text(row.get(name)) for name in COLUMNS}
    for name, (required, _) in COLUMNS.items():
        if required and not values[name]:
            problems.append((name, "is required"))
    if len(values["case_id"]) > 64:
        problems.append(("case_id", "is longer than 64 characters"))
    record_type = _code(values["record_type"], "record_type", RECORD_TYPES, problems)
    identified = _date(values["identified_on"], "identified_on", today, problems)
    gender = _code(values["prs_Gender"], "prs_Gender", codes.get("gender").codes, problems)
    status = _code(
        values["vic_TraffickingStatus"], "vic_TraffickingStatus", TRAFFICKING_STATUSES, problems
    )
    forms = [f.strip() for f in values["vic_TypeOfExploitation"].split(";") if f.strip()]
    allowed_forms = codes.get("exploitation_type").codes
    for form in forms:
        _code(form, "vic_TypeOfExploitation", allowed_forms, problems)
    exploitation = None if not forms else forms[0] if len(set(forms)) == 1 else MULTIPLE
    dates = {
        name: _date(values[name], name, today, problems)
        for name in ("per_InvestigatedOn", "per_ProsecutedOn", "per_ConvictedOn")
    }
    record = CaseRecord(
        case_id=values["case_id"],
        record_type=record_type or "",
        identified_on=identified or today,
        gender=gender,
        age=_age(values, identified, today, problems),
        citizenship=_country(values["prs_Citizenship"], "prs_Citizenship", problems),
        status=status,
        exploitation=exploitation,
        recruitment_country=_country(
            values["hte_RecruitmentCountry"], "hte_RecruitmentCountry", problems
        ),
        exploitation_country=_country(
            values["hte_ExploitationCountry"], "hte_ExploitationCountry", problems
        ),
        investigated_on=dates["per_InvestigatedOn"],
        prosecuted_on=dates["per_ProsecutedOn"],
        convicted_on=dates["per_ConvictedOn"],
    )
    return (None, problems) if problems else (record, [])


def check_rows(rows: Iterable[tuple[str, Mapping[str, Any]]], today: dt.date) -> list[CaseRecord]:
    """Every row checked; :class:`ImportRefused` with all errors if any row has one."""
    records: list[CaseRecord] = []
    errors: list[RowError] = []
    seen: dict[str, str] = {}
    for where, row in rows:
        if len(records) + len(errors) >= MAX_ROWS:
            errors.append(RowError(where, "-", f"more than {MAX_ROWS:,} rows in one import"))
            break
        record, problems = check_row(row, today)
        errors.extend(RowError(where, field, message) for field, message in problems)
        case_id = _text(row.get("case_id"))
        if case_id and case_id in seen:
            errors.append(RowError(where, "case_id", f"{case_id!r} also on {seen[case_id]}"))
        elif case_id:
            seen[case_id] = where
        if record is not None:
            records.append(record)
    if errors:
        raise ImportRefused(errors)
    return records


def read_csv(text: str, today: dt.date) -> list[CaseRecord]:
    """CSV with a header row of column names (line numbers as a spreadsheet shows them)."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        raise ImportRefused([RowError("line 1", "-", "empty file: expected a header row")])
    header = [
        RowError(
            "line 1", name or "-", "unknown column (docs/statistics.md lists the accepted ones)"
        )
        for name in reader.fieldnames
        if name not in COLUMNS
    ]
    header += [RowError("line 1", name, "required column missing from the header")
               for name, (required, _) in COLUMNS.items()
               if required and name not in reader.fieldnames]  # fmt: skip
    if header:
        raise ImportRefused(header)

    def rows() -> Iterable[tuple[str, Mapping[str, Any]]]:
        start = reader.line_num + 1
        for row in reader:
            if None in row:
                row = {k: v for k, v in row.items() if k is not None} | {"(extra)": "x"}
            yield f"line {start}", {k: v for k, v in row.items() if k is not None}
            start = reader.line_num + 1

    try:
        return check_rows(rows(), today)
    except csv.Error as exc:
        raise ImportRefused([RowError(f"line {reader.line_num}", "-", str(exc))]) from None


def read_json(text: str, today: dt.date) -> list[CaseRecord]:
    """A JSON array of row objects, or ``{"cases": [...]}``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportRefused([RowError(f"line {exc.lineno}", "-", f"not JSON: {exc.msg}")]) from None
    if isinstance(data, dict) and isinstance(data.get("cases"), list):
        extra = sorted(set(data) - {"cases"})
        if extra:
            raise ImportRefused([RowError("record 0", extra[0], 'unknown field beside "cases"')])
        data = data["cases"]
    if not isinstance(data, list):
        raise ImportRefused(
            [RowError("record 0", "-", 'expected an array of cases or {"cases": [...]}')]
        )
    bad = [
        RowError(f"record {i}", "-", "is not an object")
        for i, row in enumerate(data, 1)
        if not isinstance(row, dict)
    ]
    if bad:
        raise ImportRefused(bad)
    return check_rows(((f"record {i}", row) for i, row in enumerate(data, 1)), today)


def read(text: str, media_type: str, today: dt.date) -> list[CaseRecord]:
    """By media type (``text/csv`` or ``application/json``) or file suffix (``.csv``)."""
    kind = media_type.split(";")[0].strip().lower()
    if kind in ("text/csv", "csv", ".csv"):
        return read_csv(text, today)
    if kind in ("application/json", "json", ".json"):
        return read_json(text, today)
    raise ValueError(f"unsupported case file type {media_type!r}: use CSV or JSON")
