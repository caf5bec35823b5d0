"""Local case records: HTCDS-shaped rows checked all or nothing, reduced to what the indicators
need, stored, replaced by case id; every bad row named with its line and field."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from node.audit import AuditEvent
from node.stats import cases
from node.stats.sample import sample_cases, to_csv
from node.store.sqlite import SqliteStore

TODAY = dt.date(2026, 12, 5)
HEADER = ("case_id,record_type,identified_on,prs_Gender,prs_Birthdate,prs_Citizenship,"
          "vic_TraffickingStatus,vic_TypeOfExploitation,hte_RecruitmentCountry,"
          "hte_ExploitationCountry\n")  # fmt: skip


def _csv(*rows: str) -> str:
    return HEADER + "".join(r + "\n" for r in rows)


def test_a_valid_row_keeps_codes_an_age_and_dates_only() -> None:
    (record,) = cases.read_csv(_csv(
        "LSK-2026-0041,Victim,2026-08-14,Feminine,2010-09-30,zm;MW,ActualVictimOfTrafficking,"
        "SexualExploitation,ZM,ZA"), TODAY)  # fmt: skip
    assert record == cases.CaseRecord(
        case_id="LSK-2026-0041", record_type="Victim", identified_on=dt.date(2026, 8, 14),
        gender="Feminine", age=15, citizenship="ZM", status="ActualVictimOfTrafficking",
        exploitation="SexualExploitation", recruitment_country="ZM", exploitation_country="ZA",
    )  # fmt: skip


def test_age_is_counted_at_identification_to_the_day() -> None:
    rows = [
        "a,Victim,2026-08-14,Feminine,2008-08-14,,,,,",  # 18th birthday that day
        "b,Victim,2026-08-13,Feminine,2008-08-14,,,,,",  # the day before
    ]
    first, second = cases.read_csv(_csv(*rows), TODAY)
    assert (first.age, second.age) == (18, 17)


def test_several_forms_of_exploitation_count_once_as_multiple() -> None:
    rows = ['a,Victim,2026-08-14,,,,,"ForcedLabour;SexualExploitation",,',
            'b,Victim,2026-08-14,,,,,"ForcedLabour;ForcedLabour",,']  # fmt: skip
    first, second = cases.read_csv(_csv(*rows), TODAY)
    assert (first.exploitation, second.exploitation) == (cases.MULTIPLE, "ForcedLabour")


@pytest.mark.parametrize(("row", "where", "field", "message"), [
    ("a,Victim,2027-01-02,,,,,,,", "line 2", "identified_on", "2027-01-02 is in the future"),
    ("a,Victim,14/08/2026,,,,,,,", "line 2", "identified_on",
     "'14/08/2026' is not a date (YYYY-MM-DD)"),
    ("a,Victim,2026-08-14,Female,,,,,,", "line 2", "prs_Gender",
     "unknown code 'Female'; expected one of Feminine, Masculine, TransgenderFeminine, "
     "TransgenderMasculine, NonConforming, NonSpecifiedUnknown"),
    ("a,Victim,2026-08-14,,,XX,,,,", "line 2", "prs_Citizenship",
     "'XX' is not an ISO 3166-1 alpha-2 country code"),
    ("a,Suspect,2026-08-14,,,,,,,", "line 2", "record_type",
     "unknown code 'Suspect'; expected one of Victim, Perpetrator, SmuggledMigrant"),
    ("a,Victim,2026-08-14,,2026-09-01,,,,,", "line 2", "prs_Birthdate", "is after identified_on"),
    (",Victim,2026-08-14,,,,,,,", "line 2", "case_id", "is required"),
    ("a,Victim,2026-08-14,,,,,Slavery,,", "line 2", "vic_TypeOfExploitation",
     "unknown code 'Slavery'; expected one of ForcedLabour, SexualExploitation, ChildLabour, "
     "ForcedMarriage, Servitude, ForcedMilitaryByNonStateActors, OrganRemoval, ForcedBegging, "
     "ForcedAdoption, Surrogacy, Other"),
])  # fmt: skip
def test_a_bad_row_is_named_with_its_line_and_field(row, where, field, message) -> None:
    with pytest.raises(cases.ImportRefused) as refused:
        cases.read_csv(_csv("ok,Victim,2026-08-14,,,,,,,", row), TODAY)
    (error,) = refused.value.errors
    assert (error.where, error.field, error.message) == ("line 3", field, message)
    assert where == "line 2"  # the header is line 1, the good row line 2


def test_ages_below_zero_and_above_the_limit_are_refused() -> None:
    text = ("case_id,record_type,identified_on,vic_AgeWhenTrafficked\n"
            "a,Victim,2026-08-14,-1\nb,Victim,2026-08-14,121\nc,Victim,2026-08-14,seven\n")  # fmt: skip
    with pytest.raises(cases.ImportRefused) as refused:
        cases.read_csv(text, TODAY)
    assert [str(e) for e in refused.value.errors] == [
        "line 2: vic_AgeWhenTrafficked: -1 is outside 0..120",
        "line 3: vic_AgeWhenTrafficked: 121 is outside 0..120",
        "line 4: vic_AgeWhenTrafficked: 'seven' is not a whole number",
    ]


def test_names_and_unknown_columns_are_refused_rather_than_kept() -> None:
    text = "case_id,record_type,identified_on,prs_FirstName\na,Victim,2026-08-14,Chipo\n"
    with pytest.raises(cases.ImportRefused) as refused:
        cases.read_csv(text, TODAY)
    (error,) = refused.value.errors
    assert (error.where, error.field) == ("line 1", "prs_FirstName")  # the header already
    assert "unknown column" in error.message


def test_a_quoted_field_over_two_lines_keeps_the_next_rows_line_numbers() -> None:
    text = _csv('a,Victim,2026-08-14,,,,,"ForcedLabour\n",,', "b,Victim,2027-01-01,,,,,,,")
    with pytest.raises(cases.ImportRefused) as refused:
        cases.read_csv(text, TODAY)
    assert [(e.where, e.field) for e in refused.value.errors] == [("line 4", "identified_on")]


def test_a_case_id_twice_in_one_file_is_an_error_on_the_second() -> None:
    with pytest.raises(cases.ImportRefused) as refused:
        cases.read_csv(_csv("a,Victim,2026-08-14,,,,,,,", "a,Victim,2026-08-15,,,,,,,"), TODAY)
    assert [str(e) for e in refused.value.errors] == ["line 3: case_id: 'a' also on line 2"]


def test_json_rows_are_numbered_by_record() -> None:
    rows = [{"case_id": "a", "record_type": "Victim", "identified_on": "2026-08-14",
             "vic_TypeOfExploitation": ["ForcedLabour"]},
            {"case_id": "b", "record_type": "Victim", "identified_on": "2026-08-14",
             "prs_Citizenship": "Zambia"}]  # fmt: skip
    with pytest.raises(cases.ImportRefused) as refused:
        cases.read_json(json.dumps({"cases": rows}), TODAY)
    assert [(e.where, e.field) for e in refused.value.errors] == [("record 2", "prs_Citizenship")]
    assert cases.read_json(json.dumps(rows[:1]), TODAY)[0].exploitation == "ForcedLabour"
    with pytest.raises(cases.ImportRefused, match="line 1"):
        cases.read_json("[{", TODAY)
    with pytest.raises(cases.ImportRefused, match="record 1: -: is not an object"):
        cases.read_json("[1]", TODAY)


def test_an_empty_or_unknown_file_is_refused_clearly() -> None:
    with pytest.raises(cases.ImportRefused, match="empty file"):
        cases.read_csv("", TODAY)
    with pytest.raises(ValueError, match="unsupported case file type 'text/plain'"):
        cases.read("x", "text/plain", TODAY)


def _store(tmp_path: Path) -> SqliteStore:
    return SqliteStore.open(tmp_path / "node.db")


def _event() -> AuditEvent:
    return AuditEvent("cases-imported", dt.datetime(2026, 12, 5, tzinfo=dt.UTC), detail={})


def test_the_store_replaces_by_case_id_and_keeps_no_birthdate(tmp_path: Path) -> None:
    store = _store(tmp_path)
    now = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
    records = sample_cases(50, "ZM", dt.date(2026, 1, 1), dt.date(2026, 10, 1))
    assert store.import_cases(records, now, False, _event()) == {
        "added": 50, "replaced": 0, "removed": 0}  # fmt: skip
    assert list(store.local_cases()) == sorted(records, key=lambda r: r.case_id)
    corrected = [cases.CaseRecord(**{**records[0].__dict__, "age": 44})]
    assert store.import_cases(corrected, now, False, _event())["replaced"] == 1
    assert store.local_case_count() == 50
    assert next(r for r in store.local_cases() if r.case_id == records[0].case_id).age == 44
    assert store.import_cases(records[:3], now, True, _event()) == {
        "added": 3, "replaced": 0, "removed": 50}  # fmt: skip
    row = store._conn.execute("SELECT record FROM local_cases LIMIT 1").fetchone()[0]
    assert "birth" not in row.lower() and records[0].case_id not in row
    entries = [e.event for e in store.audit_entries() if e.event.event == "cases-imported"]
    assert [e.detail for e in entries] == [
        {"added": 50, "replaced": 0, "removed": 0}, {"added": 0, "replaced": 1, "removed": 0},
        {"added": 3, "replaced": 0, "removed": 50}]  # fmt: skip
    store.close()


def test_a_refused_import_stores_nothing(tmp_path: Path) -> None:
    from node import statistics

    store = _store(tmp_path)
    now = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
    good = to_csv(sample_cases(20, "ZW", dt.date(2026, 1, 1), dt.date(2026, 6, 1)))
    statistics.import_cases(store, good, "text/csv", now, replace_all=False, source="a.csv")
    bad = good + "zz-1,Victim,2030-01-01,,,,,,,,,,\n"
    with pytest.raises(cases.ImportRefused) as refused:
        statistics.import_cases(store, bad, "text/csv", now, replace_all=True, source="b.csv")
    assert [str(e) for e in refused.value.errors] == [
        "line 22: identified_on: 2030-01-01 is in the future"]  # fmt: skip
    assert store.local_case_count() == 20  # not removed by --replace, nothing partial added
    store.close()
