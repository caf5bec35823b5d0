"""Statistics reports (node/stats/report.py): the HTML page, the PDF and the SDMX-style CSV made
from a roll-up of real releases (invented case records, protected by make_release).

The roll-up: zm-secretariat and zw-secretariat release 2026-Q1..Q3 (zw's Q1 twice, its Q2 late),
mw-secretariat never does; 2026-Q4 is not due yet on the report's day.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import re
import stat
from html.parser import HTMLParser
from pathlib import Path

import pytest

from node import codes
from node.stats import report
from node.stats.indicators import Inputs, compute_all
from node.stats.model import TOTAL, Method, ReleasedTable
from node.stats.periods import parse_period
from node.stats.release import Release, make_release
from node.stats.rollup import Received, RollUp, roll_up
from node.stats.sample import sample_cases

THRESHOLD = 5
PERIODS = [parse_period(f"2026-Q{q}") for q in (1, 2, 3, 4)]
EXPECTED = ["zm-secretariat", "zw-secretariat", "mw-secretariat"]
TODAY = dt.date(2026, 11, 15)
GENERATED = dt.datetime(2026, 11, 15, 9, 30, tzinfo=dt.UTC)
TITLE = "SADC statistics on trafficking in persons"
SEX_SDMX = {"F": "F", "M": "M", "O": "_O", "U": "_U", TOTAL: TOTAL}


def _received(issuer: str, release: Release, days_after_end: int) -> Received:
    at = dt.datetime.combine(release.period.end + dt.timedelta(days=days_after_end), dt.time(9),
                             dt.UTC)  # fmt: skip
    return Received(issuer, at, release)


def _releases() -> list[Received]:
    out = []
    for issuer, n, seed in (("zm-secretariat", 400, 3), ("zw-secretariat", 150, 7)):
        country = issuer[:2].upper()
        cases = sample_cases(n, country, dt.date(2026, 1, 1), dt.date(2026, 10, 1), seed=seed)
        for period in PERIODS[:3]:
            release = make_release(compute_all(Inputs(cases), period), period, Method(THRESHOLD),
                                   coverage="National", area=country)  # fmt: skip
            late = issuer == "zw-secretariat" and period.code == "2026-Q2"
            out.append(_received(issuer, release, 45 if late else 10))
            if issuer == "zw-secretariat" and period.code == "2026-Q1":
                out.append(_received(issuer, release, 5))  # an earlier version, replaced
    return out


@pytest.fixture(scope="module")
def received() -> list[Received]:
    return _releases()


@pytest.fixture(scope="module")
def rollup(received: list[Received]) -> RollUp:
    return roll_up(received, PERIODS, EXPECTED, TODAY, due_days=30)


@pytest.fixture(scope="module")
def html(rollup: RollUp) -> str:
    return report.render_html(rollup, title=TITLE, generated_at=GENERATED, threshold=THRESHOLD)


def _in_force(received: list[Received], issuer: str, period: str) -> Release:
    return max((r for r in received if r.issuer == issuer and r.release.period.code == period),
               key=lambda r: r.received_at).release  # fmt: skip


# --- an HTML reader for the tests ---------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip


@dataclasses.dataclass
class Cell:
    text: str
    classes: set[str]


@dataclasses.dataclass
class Table:
    article: str | None
    caption: str
    columns: list[str]
    rows: dict[str, list[Cell]]
    row_attrs: dict[str, dict[str, str]]


class Page(HTMLParser):
    """Checks that tags nest and close, and collects tables, list items and attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tables: list[Table] = []
        self.items: list[str] = []
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.article: str | None = None
        self.text: list[str] | None = None
        self.row: list[Cell] | None = None
        self.row_head = ""
        self.row_attrs: dict[str, str] = {}
        self.cell_classes: set[str] = set()
        self.in_head = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if tag not in VOID:
            self.stack.append(tag)
        elif tag == "br" and self.text is not None:
            self.text.append(" ")
        if tag == "article":
            self.article = a.get("id")
        elif tag == "table":
            self.tables.append(Table(self.article, "", [], {}, {}))
        elif tag == "tr":
            self.row, self.row_head, self.row_attrs = [], "", a
        elif tag in ("td", "th", "caption", "li"):
            self.text = []
            self.cell_classes = set(a.get("class", "").split())
            self.in_head = tag == "th"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()
        text = " ".join("".join(self.text or []).split())
        if tag == "caption":
            self.tables[-1].caption = text
        elif tag == "li":
            self.items.append(text)
        elif tag == "th" and self.row is not None:
            if self.row_head or self.row:
                self.tables[-1].columns.append(text)  # a heading row
            else:
                self.row_head = text
        elif tag == "td" and self.row is not None:
            self.row.append(Cell(text, self.cell_classes))
        elif tag == "tr" and self.row is not None:
            if self.row_head and self.row:
                self.tables[-1].rows[self.row_head] = self.row
                self.tables[-1].row_attrs[self.row_head] = self.row_attrs
            elif not self.row_head and not self.row:
                pass
            self.row = None
        elif tag == "article":
            self.article = None
        if tag in ("td", "th", "caption", "li"):
            self.text = None

    def handle_data(self, data: str) -> None:
        if self.text is not None:
            self.text.append(data)

    def table(self, article: str | None, caption: str) -> Table:
        return next(t for t in self.tables if t.article == article and t.caption == caption)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def _number(text: str) -> int | None:
    digits = re.sub(r"[\s,.\u202f≥]", "", text)
    return int(digits) if digits.isdigit() else None


# --- HTML ----------------------------------------------------------------------------------------


def test_html_is_one_well_formed_self_contained_page(html: str) -> None:
    page = parse(html)
    assert html.startswith("<!DOCTYPE html>")
    assert page.errors == []
    assert page.stack == []  # every element closed
    assert "<script" not in html.lower()
    assert "http://" not in html and "https://" not in html
    assert not [(t, a) for t, a in page.tags if "src" in a or t in ("link", "iframe", "object")]
    assert re.findall(r"url\((?!#)", html) == []  # only references inside the page
    assert all(a["href"].startswith("#") for _, a in page.tags if "href" in a)
    assert sum(t == "svg" for t, _ in page.tags) == 3  # trend, sex by age, exploitation
    ids = [a["id"] for _, a in page.tags if "id" in a]
    assert len(ids) == len(set(ids))  # three SVGs share no id


def test_html_shows_every_issuer_and_each_submission(html: str) -> None:
    page = parse(html)
    submissions = page.tables[0]  # issuer by period
    assert set(submissions.rows) == set(EXPECTED)
    assert submissions.columns == [p.code for p in PERIODS]
    mw = [c.text for c in submissions.rows["mw-secretariat"]]
    assert ["Missing" in c for c in mw] == [True, True, True, False]
    assert "Not yet due" in mw[3]
    zw = [c.text for c in submissions.rows["zw-secretariat"]]
    assert "replaces 1 earlier" in zw[0] and "On time" in zw[0]
    assert "Late" in zw[1] and "received 2026-08-15" in zw[1]
    assert "late" in submissions.rows["zw-secretariat"][1].classes  # a class to colour, and words
    assert ["On time" in c.text for c in submissions.rows["zm-secretariat"][:3]] == [True] * 3
    problems = [i for i in page.items if i.startswith(("mw-", "zw-", "zm-"))]
    assert problems == [
        "mw-secretariat: 2026-Q1 missing",
        "mw-secretariat: 2026-Q2 missing",
        "mw-secretariat: 2026-Q3 missing",  # not Q4: not due yet
        "zw-secretariat: 2026-Q2 late (received 2026-08-15)",
    ]


def test_html_margins_are_the_combined_cells_with_lower_bounds(html: str, rollup: RollUp) -> None:
    page = parse(html)
    combined = rollup.combined[("victims_detected", "2026-Q3")]  # the last period with data
    bounds = 0
    for index, dimension in enumerate(combined.dimensions):
        caption = codes.get("statistics_dimension").label(dimension.name)
        table = page.table("victims_detected", caption)
        assert table.columns == ["zm-secretariat", "zw-secretariat", "Combined"]
        assert len(table.rows) == len(dimension.codes) + 1  # every code, then the total
        for code, cells in zip((*dimension.codes, TOTAL), table.rows.values(), strict=True):
            key = tuple(code if i == index else TOTAL for i in range(len(combined.dimensions)))
            cell = combined.cells[key]
            shown = cells[-1]
            if cell.value is not None:
                assert _number(shown.text) == cell.value and "value" in shown.classes
            elif cell.at_least:
                assert shown.text == f"≥ {cell.at_least}" and "bound" in shown.classes
                bounds += 1
            else:
                assert shown.text == report.SUPPRESSED_MARK
            for issuer, part in zip(("zm-secretariat", "zw-secretariat"), cells, strict=False):
                value = rollup.tables[("victims_detected", "2026-Q3", issuer)].cells[key]
                assert part.text == (report.SUPPRESSED_MARK if value is None else str(value))
    assert bounds > 0  # the fixture has combined cells with suppressed parts
    totals = page.table("victims_detected", "")
    assert totals.columns == [p.code for p in PERIODS]
    assert [c.text for c in totals.rows["mw-secretariat"]] == [report.NO_DATA_MARK] * 4
    zm = rollup.total("victims_detected", PERIODS[0], "zm-secretariat")
    assert zm is not None and totals.rows["zm-secretariat"][0].text == str(zm.value)


def test_html_has_a_section_per_indicator_with_labels(html: str) -> None:
    page = parse(html)
    articles = {a["id"] for t, a in page.tags if t == "article"}
    assert articles == {i.code for i in report.INDICATORS}  # every indicator was released
    forms = page.table("victims_detected", "Form of exploitation")
    assert {"Sexual exploitation", "More than one form", "Unknown", "Total"} <= set(forms.rows)
    requests = page.table("mla_requests", "Type of request")
    assert "Joint investigation team" in requests.rows and "MLA request" in requests.rows
    citizenship = page.table("victims_citizenship", "Citizenship")
    assert "Zambia" in citizenship.rows and len(citizenship.rows) < 40  # zero rows left out
    assert "Definition" in html and "SDG indicator 16.2.2" in html


def test_html_never_shows_a_count_below_the_threshold(html: str) -> None:
    numbers = [
        _number(cell.text)
        for table in parse(html).tables
        for cells in table.rows.values()
        for cell in cells
        if "num" in cell.classes
    ]
    shown = [n for n in numbers if n is not None]
    assert len(shown) > 300
    assert [n for n in shown if 0 < n < THRESHOLD] == []


def test_html_language_and_direction(rollup: RollUp, html: str) -> None:
    assert '<html lang="en" dir="ltr">' in html
    arabic = report.render_html(rollup, title=TITLE, language="ar", generated_at=GENERATED,
                                threshold=THRESHOLD)  # fmt: skip
    assert '<html lang="ar" dir="rtl">' in arabic
    assert codes.get("statistics_indicator").label("victims_detected", "ar") in arabic
    assert 'lang="en" dir="auto"' in arabic  # English headings say so
    french = report.render_html(rollup, title=TITLE, language="fr", generated_at=GENERATED,
                                threshold=THRESHOLD)  # fmt: skip
    assert '<html lang="fr" dir="ltr">' in french
    for heading in ("Comment lire ce rapport", "Transmissions", "Graphiques", "Indicateurs",
                    "Méthode", "Manquante"):  # fmt: skip
        assert heading in french
    assert "Submissions" not in french and 'lang="en" dir="auto"' not in french.split("<dl>")[0]
    portuguese = report.render_html(rollup, title=TITLE, language="pt", generated_at=GENERATED,
                                    threshold=THRESHOLD)  # fmt: skip
    assert "Envios" in portuguese and "Indicadores" in portuguese


def test_trend_leaves_out_suppressed_points_and_says_so(received: list[Received]) -> None:
    """zw's 2026-Q1 victims hidden (as for too few victims): no point, a note, a lower bound."""

    def hidden(table: ReleasedTable) -> ReleasedTable:
        if table.indicator != "victims_detected":
            return table
        return ReleasedTable(table.indicator, table.dimensions, dict.fromkeys(table.cells))

    changed = [
        dataclasses.replace(r, release=dataclasses.replace(
            r.release, tables=tuple(hidden(t) for t in r.release.tables)))
        if r.issuer == "zw-secretariat" and r.release.period.code == "2026-Q1" else r
        for r in received
    ]  # fmt: skip
    rollup = roll_up(changed, PERIODS, EXPECTED, TODAY, due_days=30)
    zm = rollup.total("victims_detected", PERIODS[0], "zm-secretariat")
    assert zm is not None and zm.value
    page = report.render_html(rollup, title=TITLE, generated_at=GENERATED, threshold=THRESHOLD)
    notes = re.search(r'<figure id="chart1">.*?<p class="notes"[^>]*>(.*?)</p>', page, re.S)
    assert notes is not None
    assert "zw-secretariat 2026-Q1: suppressed" in notes.group(1)
    assert f"Combined 2026-Q1: ≥ {zm.value}" in notes.group(1)
    assert "mw-secretariat 2026-Q1: no release" in notes.group(1)
    assert "2026-Q4" not in notes.group(1)  # not due: nothing to say


def test_combined_without_an_issuer_that_released_other_periods(
    received: list[Received], html: str
) -> None:
    """zw's 2026-Q3 missing: the combined Q3 is not joined to the trend line, and says why."""
    fewer = [
        r for r in received if (r.issuer, r.release.period.code) != ("zw-secretariat", "2026-Q3")
    ]
    rollup = roll_up(fewer, PERIODS, EXPECTED, TODAY, due_days=30)
    assert report.incomplete(rollup, "victims_detected") == {"2026-Q3": ("zw-secretariat",)}
    page = report.render_html(rollup, title=TITLE, generated_at=GENERATED, threshold=THRESHOLD)
    note = "Combined 2026-Q3: without zw-secretariat (no release)"
    chart = re.search(r'<figure id="chart1">.*?</figure>', page, re.S)
    assert chart is not None and note in chart.group(0)
    assert "Combined, releases missing" in chart.group(0)  # the legend of the open marker
    totals = page.split('<article id="victims_detected">')[1].split("</article>")[0]
    assert note in totals
    assert "without" not in html and "releases missing" not in html  # mw: never released


# --- PDF -----------------------------------------------------------------------------------------


def test_pdf(rollup: RollUp, tmp_path: Path) -> None:
    path = tmp_path / "out" / "report.pdf"
    report.render_pdf(rollup, path, title=TITLE, generated_at=GENERATED, threshold=THRESHOLD)
    data = path.read_bytes()
    assert data.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type /Page\b(?!s)", data))
    assert pages >= 3 + 1 + 3  # summary, three charts, indicator tables over several pages
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"/Title ({TITLE})".encode() in data
    assert b"/CreationDate (D:20261115093000Z)" in data
    assert [p.name for p in path.parent.iterdir()] == ["report.pdf"]  # no temporary file left


# --- CSV -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rows(rollup: RollUp) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(report.render_csv(rollup))))


def _victims(
    rows: list[dict[str, str]], issuer: str, period: str, **columns: str
) -> list[dict[str, str]]:
    """The victims_detected rows of an issuer and period, at the given codes (else totals)."""
    want = {"SEX": TOTAL, "AGE": TOTAL, "EXPLOITATION": TOTAL, **columns}
    return [r for r in rows if r["INDICATOR"] == "victims_detected" and r["ISSUER"] == issuer
            and r["TIME_PERIOD"] == period and all(r[k] == v for k, v in want.items())]  # fmt: skip


def test_csv_columns_and_sdg_totals(rows: list[dict[str, str]], received: list[Received]) -> None:
    assert list(rows[0]) == list(report.CSV_COLUMNS)
    for issuer in ("zm-secretariat", "zw-secretariat"):
        for period in ("2026-Q1", "2026-Q2", "2026-Q3"):
            release = _in_force(received, issuer, period)
            table = next(t for t in release.tables if t.indicator == "victims_detected")
            (row,) = _victims(rows, issuer, period)
            assert row["SERIES"] == "VC_HTF_DETV"
            assert row["OBS_VALUE"] == str(table.cells[(TOTAL, TOTAL, TOTAL)])
            assert row["OBS_STATUS"] == "A" and row["UNIT_MEASURE"] == "persons"
            assert row["REF_AREA"] == issuer[:2].upper()
            assert row["CITIZENSHIP"] == "" and row["DIRECTION"] == ""  # not its dimensions
    (combined,) = _victims(rows, "combined", "2026-Q3")
    assert combined["REF_AREA"] == "ZM;ZW"
    assert not [r for r in rows if r["ISSUER"] == "mw-secretariat" or r["TIME_PERIOD"] == "2026-Q4"]


def test_csv_series_by_form_of_exploitation(rows: list[dict[str, str]]) -> None:
    def series(form: str) -> set[str]:
        return {r["SERIES"] for r in _victims(rows, "zm-secretariat", "2026-Q1", EXPLOITATION=form)}

    assert series("SexualExploitation") == {"VC_HTF_DETVSX"}
    assert series("ForcedLabour") == series("Servitude") == {"VC_HTF_DETVFL"}
    assert series("OrganRemoval") == {"VC_HTF_DETVOG"}
    assert series("ForcedBegging") == series("Other") == {"VC_HTF_DETVOP"}
    assert series("Multiple") == series("_U") == {""}
    assert {r["SERIES"] for r in rows if r["INDICATOR"] != "victims_detected"} == {""}


def test_csv_every_cell_with_its_status(rows: list[dict[str, str]], rollup: RollUp) -> None:
    def key(row: dict[str, str], dimensions: list[str]) -> tuple[str, ...]:
        return tuple(row[d.upper()] for d in dimensions)

    def sdmx(dimension: str, code: str) -> str:
        return SEX_SDMX[code] if dimension == "sex" else "_U" if code == "U" else code

    index: dict[tuple[str, ...], dict[str, str]] = {}
    for row in rows:
        if row["AGE"] in ("Y0T17", "Y_GE18"):
            continue  # derived rows: the next test
        dims = [d.name for d in report.BY_CODE[row["INDICATOR"]].dimensions]
        index[(row["INDICATOR"], row["TIME_PERIOD"], row["ISSUER"], *key(row, dims))] = row
    suppressed = bounds = 0
    for (indicator, period, issuer), table in rollup.tables.items():
        names = [d.name for d in table.dimensions]
        for cell, value in table.cells.items():
            codes_ = tuple(sdmx(n, c) for n, c in zip(names, cell, strict=True))
            row = index.pop((indicator, period, issuer, *codes_))
            if value is None:
                assert (row["OBS_VALUE"], row["OBS_STATUS"], row["LOWER_BOUND"]) == ("", "C", "")
                suppressed += 1
            else:
                assert (row["OBS_VALUE"], row["OBS_STATUS"]) == (str(value), "A")
    for (indicator, period), combined in rollup.combined.items():
        names = [d.name for d in combined.dimensions]
        for cell, value in combined.cells.items():
            codes_ = tuple(sdmx(n, c) for n, c in zip(names, cell, strict=True))
            row = index.pop((indicator, period, "combined", *codes_))
            if value.value is not None:
                assert (row["OBS_VALUE"], row["OBS_STATUS"]) == (str(value.value), "A")
            elif value.at_least:
                assert row["OBS_VALUE"] == "" and row["OBS_STATUS"] == "L"
                assert row["LOWER_BOUND"] == str(value.at_least)
                bounds += 1
            else:
                assert (row["OBS_VALUE"], row["OBS_STATUS"]) == ("", "C")
    assert index == {}  # no row that is not a cell
    assert suppressed > 0 and bounds > 0
    sexes = {r["SEX"] for r in rows if r["INDICATOR"] == "victims_detected"}
    assert sexes == {"F", "M", "_O", "_U", "_T"}


def test_csv_child_and_adult_rows_only_where_the_bands_were_published(
    rows: list[dict[str, str]], rollup: RollUp
) -> None:
    derived = 0
    for issuer in ("zm-secretariat", "zw-secretariat"):
        cells = rollup.tables[("victims_detected", "2026-Q3", issuer)].cells
        for sex in ("F", "M", "U", TOTAL):
            bands = [cells[(sex, band, TOTAL)] for band in ("Y0T11", "Y12T17")]
            found = _victims(rows, issuer, "2026-Q3", SEX=SEX_SDMX[sex], AGE="Y0T17")
            if None in bands:
                assert found == []
            else:
                (row,) = found
                assert row["OBS_VALUE"] == str(sum(b for b in bands if b is not None))
                assert row["SERIES"] == "VC_HTF_DETV"
                derived += 1
            adults = [cells[(sex, band, TOTAL)] for band in report.ADULT_BANDS]
            found = _victims(rows, issuer, "2026-Q3", SEX=SEX_SDMX[sex], AGE="Y_GE18")
            assert len(found) == (0 if None in adults else 1)
    assert derived > 0


# --- labels and files ----------------------------------------------------------------------------


def test_labels() -> None:
    assert report.label("sex", "F", "fr") == codes.get("statistics_category").label("F", "fr")
    assert report.label("exploitation", "ForcedLabour") == "Forced labour"
    assert report.label("exploitation", "Multiple") == "More than one form"
    assert report.label("outcome", "Pending") == "No answer yet"
    assert report.label("citizenship", "ZM") == "Zambia"
    assert report.label("citizenship", "ZM", "fr") == "Zambie"
    assert report.label("citizenship", "U") == "Unknown"
    assert report.label("request", "ArrestWarrantNotice") == "Arrest warrant notice"
    assert report.label("age", TOTAL, "pt") == codes.get("statistics_category").label(TOTAL, "pt")


def test_labels_awaiting_translation_fall_back_to_english(monkeypatch: pytest.MonkeyPatch) -> None:
    labels = codes.get("statistics_category").labels["F"]
    monkeypatch.setitem(labels, "fr", "TODO Féminin")
    assert report.label("sex", "F", "fr") == "Female"


def test_write_report_by_suffix(rollup: RollUp, tmp_path: Path) -> None:
    small = dataclasses.replace(rollup, periods=rollup.periods[:1])
    for name, start in (("r.html", b"<!DOCTYPE html>"), ("r.csv", b"SERIES,INDICATOR"),
                        ("R.PDF", b"%PDF")):  # fmt: skip
        path = tmp_path / name
        path.write_bytes(b"old")
        path.chmod(0o644)
        report.write_report(small, path, generated_at=GENERATED, threshold=THRESHOLD)
        assert path.read_bytes().startswith(start)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(ValueError, match=r"'r\.docx'.*\.html, \.pdf, \.csv"):
        report.write_report(small, tmp_path / "r.docx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["R.PDF", "r.csv", "r.html"]


def test_render_bytes_by_format(rollup: RollUp) -> None:
    """What the API serves: the same documents as the files."""
    small = dataclasses.replace(rollup, periods=rollup.periods[:1])
    kw = {"title": TITLE, "generated_at": GENERATED, "threshold": THRESHOLD}
    assert report.render_bytes(small, "csv", **kw) == report.render_csv(small).encode()
    assert report.render_bytes(small, "html", **kw) == report.render_html(small, **kw).encode()
    assert report.render_bytes(small, "pdf", **kw).startswith(b"%PDF")
    with pytest.raises(ValueError, match="unknown report format 'docx'"):
        report.render_bytes(small, "docx", **kw)
