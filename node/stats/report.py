"""Reports: a :class:`~node.stats.rollup.RollUp` turned into files people read. The imperative
edge of :mod:`node.stats` (files, matplotlib, Jinja2); every figure in them was computed and
protected before, by the issuers' releases and :func:`~node.stats.rollup.roll_up`.

Three forms, from one RollUp:

- :func:`render_html`: one self-contained page (inline CSS, charts as inline SVG, no script and
  no external resource), so it opens offline, can be mailed, and can be served under a strict
  Content-Security-Policy.
- :func:`render_pdf`: the same content for print and archive.
- :func:`render_csv`: long format with SDMX-style columns, for the statistical databases that
  take figures from the region (SDG 16.2.2, UNODC).

What a reader sees is exactly what the issuers published: a suppressed cell is shown as such
(``·``, status ``C``), a combined cell with suppressed parts as the known lower bound
(``≥ n``, status ``L``); nothing is estimated, so the report discloses no more than the
releases did.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import functools
import gettext
import io
import itertools
import math
import re
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import matplotlib
import pycountry
from markupsafe import Markup
from matplotlib.axes import Axes
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import Bbox

from node import codes
from node.nodedir import write_atomically
from node.stats.indicators import AGE, BY_CODE, CHILD_BANDS, DIMENSIONS, EXPLOITATION, INDICATORS
from node.stats.indicators import SEX as SEX_DIMENSION
from node.stats.model import TOTAL, Codes, Dimension, Method
from node.stats.periods import Period
from node.stats.rollup import LATE, MISSING, NOT_DUE, ON_TIME, Cell, RollUp

COMBINED = "combined"  # the ISSUER of combined rows in the CSV
SUPPRESSED_MARK = "·"
NO_DATA_MARK = "—"
RTL_LANGUAGES = frozenset({"ar", "fa", "he", "ur"})
FILE_MODE = 0o600  # aggregates, but still official figures not yet meant for everyone
VICTIMS = "victims_detected"
ADULT_BANDS = ("Y18T24", "Y25T34", "Y35T49", "Y_GE50")
_TEMPLATES = Path(__file__).parent / "templates"
_A4 = (8.27, 11.69)  # inches, portrait
# Okabe-Ito: distinguishable with the common colour-vision deficiencies
_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
_MARKERS = ("o", "s", "D", "v", "P", "X", "<", ">")
_STATUS_SYMBOL = {ON_TIME: "✓", LATE: "!", MISSING: "✗", NOT_DUE: "…"}
_STATUS_COLOUR = {ON_TIME: "#d4edda", LATE: "#ffe8a8", MISSING: "#f6c6c6", NOT_DUE: "#e8e8e8"}
_SVG_METADATA: dict[str, str | None] = {"Date": None, "Creator": None, "Format": None,
                                        "Type": None}  # fmt: skip

# --- static text ----------------------------------------------------------------------------

UI: Mapping[str, Mapping[str, str]] = {
    "en": {
        "periods": "Periods covered",
        "generated": "Generated",
        "how_heading": "How to read this report",
        "how_text": (
            "Counts from 1 to {below} are suppressed (the threshold is {threshold}), together "
            "with the other cells that would reveal them. A suppressed cell is shown as "
            "“{sup}”. A combined cell with suppressed parts shows what is known, a lower "
            "bound: “≥ n”. “{none}” means no release was received. All figures are "
            "anonymised aggregates: this report holds no data about any person."
        ),
        "submissions": "Submissions",
        "issuer": "Issuer",
        ON_TIME: "On time",
        LATE: "Late",
        MISSING: "Missing",
        NOT_DUE: "Not yet due",
        "received": "received {date}",
        "replaced": "replaces {n} earlier",
        "problems": "Problems",
        "no_problems": "Every release due has arrived on time.",
        "charts": "Charts",
        "trend": "Detected victims per period",
        "sex_age": "Detected victims by sex and age, {period} (combined)",
        "exploitation": "Detected victims by form of exploitation, {period} (combined)",
        "combined": "Combined",
        "without": "{combined} {period}: without {issuers} (no release)",
        "incomplete": "Combined, releases missing",
        "not_shown": "Notes",
        "suppressed": "suppressed",
        "no_release": "no release",
        "lower_bound": "lower bound (parts suppressed)",
        "persons": "Persons",
        "period": "Period",
        "indicators": "Indicators",
        "definition": "Definition",
        "source": "Source",
        "unit": "Unit",
        "breakdowns": "Breakdowns, {period}",
        "totals": "Totals by issuer and period",
        "zeros_omitted": "Rows with only zeros are not shown.",
        "no_data": "No data.",
        "method": "Method",
        "threshold": "Suppression threshold: {threshold}, with secondary suppression.",
        "release_method": "{n} release(s): threshold {threshold}, rounding: {rounding}, {dp}.",
        "not_rounded": "none",
        "rounded": "multiples of {n}",
        "no_noise": "no differential-privacy noise",
        "noise": "differential privacy ε = {epsilon}",
        "aggregates": "Anonymised aggregates: no data about any person.",
        "page": "page {n}",
    },
    "fr": {
        "periods": "Périodes couvertes",
        "generated": "Généré le",
        "how_heading": "Comment lire ce rapport",
        "how_text": (
            "Les effectifs de 1 à {below} sont masqués (le seuil est {threshold}), ainsi que "
            "les autres cellules qui permettraient de les retrouver. Une cellule masquée est "
            "affichée « {sup} ». Une cellule d'ensemble dont une partie est masquée indique ce "
            "qui est connu, un minimum : « ≥ n ». « {none} » signifie qu'aucune publication "
            "n'a été reçue. Tous les chiffres sont des agrégats anonymisés : ce rapport ne "
            "contient aucune donnée sur une personne."
        ),
        "submissions": "Transmissions",
        "issuer": "Émetteur",
        ON_TIME: "À temps",
        LATE: "En retard",
        MISSING: "Manquante",
        NOT_DUE: "Pas encore due",
        "received": "reçue le {date}",
        "replaced": "remplace {n} version(s) antérieure(s)",
        "problems": "Problèmes",
        "no_problems": "Toutes les publications attendues sont arrivées à temps.",
        "charts": "Graphiques",
        "trend": "Victimes détectées par période",
        "sex_age": "Victimes détectées par sexe et âge, {period} (ensemble)",
        "exploitation": "Victimes détectées par forme d'exploitation, {period} (ensemble)",
        "combined": "Ensemble",
        "without": "{combined} {period} : sans {issuers} (aucune publication)",
        "incomplete": "Ensemble, publications manquantes",
        "not_shown": "Remarques",
        "suppressed": "masqué",
        "no_release": "aucune publication",
        "lower_bound": "minimum (parties masquées)",
        "persons": "Personnes",
        "period": "Période",
        "indicators": "Indicateurs",
        "definition": "Définition",
        "source": "Source",
        "unit": "Unité",
        "breakdowns": "Ventilations, {period}",
        "totals": "Totaux par émetteur et période",
        "zeros_omitted": "Les lignes ne contenant que des zéros ne sont pas affichées.",
        "no_data": "Aucune donnée.",
        "method": "Méthode",
        "threshold": "Seuil de masquage : {threshold}, avec masquage secondaire.",
        "release_method": "{n} publication(s) : seuil {threshold}, arrondi : {rounding}, {dp}.",
        "not_rounded": "aucun",
        "rounded": "multiples de {n}",
        "no_noise": "sans bruit de confidentialité différentielle",
        "noise": "confidentialité différentielle ε = {epsilon}",
        "aggregates": "Agrégats anonymisés : aucune donnée sur une personne.",
        "page": "page {n}",
    },
    "pt": {
        "periods": "Períodos abrangidos",
        "generated": "Gerado em",
        "how_heading": "Como ler este relatório",
        "how_text": (
            "As contagens de 1 a {below} são suprimidas (o limiar é {threshold}), juntamente "
            "com as outras células que as revelariam. Uma célula suprimida é mostrada como "
            "«{sup}». Uma célula de conjunto com partes suprimidas mostra o que se sabe, um "
            "limite inferior: «≥ n». «{none}» significa que não foi recebida nenhuma "
            "publicação. Todos os números são agregados anonimizados: este relatório não "
            "contém dados sobre nenhuma pessoa."
        ),
        "submissions": "Envios",
        "issuer": "Emissor",
        ON_TIME: "No prazo",
        LATE: "Atrasado",
        MISSING: "Em falta",
        NOT_DUE: "Prazo não vencido",
        "received": "recebido em {date}",
        "replaced": "substitui {n} anterior(es)",
        "problems": "Problemas",
        "no_problems": "Todas as publicações devidas chegaram no prazo.",
        "charts": "Gráficos",
        "trend": "Vítimas detetadas por período",
        "sex_age": "Vítimas detetadas por sexo e idade, {period} (conjunto)",
        "exploitation": "Vítimas detetadas por forma de exploração, {period} (conjunto)",
        "combined": "Conjunto",
        "without": "{combined} {period}: sem {issuers} (sem publicação)",
        "incomplete": "Conjunto, publicações em falta",
        "not_shown": "Notas",
        "suppressed": "suprimido",
        "no_release": "sem publicação",
        "lower_bound": "limite inferior (partes suprimidas)",
        "persons": "Pessoas",
        "period": "Período",
        "indicators": "Indicadores",
        "definition": "Definição",
        "source": "Fonte",
        "unit": "Unidade",
        "breakdowns": "Desagregações, {period}",
        "totals": "Totais por emissor e período",
        "zeros_omitted": "As linhas só com zeros não são mostradas.",
        "no_data": "Sem dados.",
        "method": "Método",
        "threshold": "Limiar de supressão: {threshold}, com supressão secundária.",
        "release_method": "{n} publicação(ões): limiar {threshold}, arredondamento: "
        "{rounding}, {dp}.",
        "not_rounded": "nenhum",
        "rounded": "múltiplos de {n}",
        "no_noise": "sem ruído de privacidade diferencial",
        "noise": "privacidade diferencial ε = {epsilon}",
        "aggregates": "Agregados anonimizados: nenhum dado sobre qualquer pessoa.",
        "page": "página {n}",
    },
}


def ui(language: str) -> Mapping[str, str]:
    """The report's own words in ``language``, English for a language they are not written in
    (labels of codes still come in that language from the code lists)."""
    return UI.get(language, UI["en"])


# --- labels ---------------------------------------------------------------------------------


_ACRONYMS = {"Mla": "MLA"}


def _translated(code_list: str, code: str, language: str) -> str:
    """A code's label; English where the translation is still a placeholder ("TODO ...")."""
    text = codes.get(code_list).label(code, language)
    return codes.get(code_list).label(code, "en") if text.startswith("TODO") else text


@functools.cache
def _country_names(language: str) -> Callable[[str], str]:
    if language == "en":
        return lambda message: message
    try:
        return gettext.translation("iso3166-1", pycountry.LOCALES_DIR, [language]).gettext
    except OSError:
        return lambda message: message


def _country(code: str, language: str) -> str:
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return code
    if language == "en":
        return str(getattr(country, "common_name", None) or country.name)
    return _country_names(language)(str(country.name))


def label(dimension: str, code: str, language: str = "en") -> str:
    """How a code of ``dimension`` is shown: from the code lists (statistics categories, forms
    of exploitation, referral answers), country names from pycountry, request types (payload
    record names) split into words; the code itself for anything unknown."""
    category = codes.get("statistics_category")
    if code == TOTAL or (code == "U" and dimension == "citizenship"):
        return _translated("statistics_category", code, language)
    if dimension == "citizenship":
        return _country(code, language)
    if dimension == "exploitation" and code in codes.get("exploitation_type").labels:
        return _translated("exploitation_type", code, language)
    if dimension == "outcome" and code in codes.get("referral_response_status").labels:
        return _translated("referral_response_status", code, language)
    if dimension == "request":
        words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", code).split()
        words = [_ACRONYMS.get(w, w.lower() if n else w) for n, w in enumerate(words)]
        return " ".join(words) or code
    if code in category.labels:
        return _translated("statistics_category", code, language)
    return code


def dimension_label(name: str, language: str = "en") -> str:
    if name in codes.get("statistics_dimension").labels:
        return _translated("statistics_dimension", name, language)
    return name


def indicator_title(code: str, language: str = "en") -> str:
    if code in codes.get("statistics_indicator").labels:
        return _translated("statistics_indicator", code, language)
    return BY_CODE[code].title


# --- cells as shown -------------------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """A cell as a reader sees it: its text and what kind of figure it is (``value``,
    ``suppressed``, ``bound`` or ``none`` when there was no release)."""

    text: str
    kind: str
    note: str = ""


def number(n: int, language: str = "en") -> str:
    """``n`` with the thousands separator readers of ``language`` expect."""
    text = f"{n:,}"
    return text.replace(",", {"fr": "\u202f", "pt": "."}.get(language, ","))


def shown_issuer(value: int | None, t: Mapping[str, str], language: str) -> Shown:
    if value is None:
        return Shown(SUPPRESSED_MARK, "suppressed", t["suppressed"])
    return Shown(number(value, language), "value")


def shown_combined(cell: Cell | None, t: Mapping[str, str], language: str) -> Shown:
    """A combined cell: its value, else the known lower bound, else suppressed (a bound of 0
    says nothing)."""
    if cell is None:
        return Shown(NO_DATA_MARK, "none", t["no_release"])
    if cell.value is not None:
        return Shown(number(cell.value, language), "value")
    if cell.at_least > 0:
        return Shown(f"≥ {number(cell.at_least, language)}", "bound", t["lower_bound"])
    return Shown(SUPPRESSED_MARK, "suppressed", t["suppressed"])


def _grand(dimensions: Sequence[Dimension]) -> Codes:
    return tuple(TOTAL for _ in dimensions)


def _one_way(dimensions: Sequence[Dimension], index: int, code: str) -> Codes:
    return tuple(code if i == index else TOTAL for i in range(len(dimensions)))


def incomplete(rollup: RollUp, indicator: str) -> dict[str, tuple[str, ...]]:
    """Per period, the issuers whose ``indicator`` is missing from the combined figures though
    they released it for another period of the report: those combined figures do not compare
    with the others (an issuer that released nothing at all is left out everywhere alike)."""
    released = {i for (code, _, i) in rollup.tables if code == indicator}
    out = {}
    for period in rollup.periods:
        combined = rollup.combined.get((indicator, period.code))
        if combined is None:
            continue
        absent = tuple(sorted(released - set(combined.issuers)))
        if absent:
            out[period.code] = absent
    return out


def _without(rollup: RollUp, indicator: str, t: Mapping[str, str]) -> list[str]:
    return [t["without"].format(combined=t["combined"], period=period, issuers=", ".join(absent))
            for period, absent in incomplete(rollup, indicator).items()]  # fmt: skip


def _last_period(rollup: RollUp, indicator: str) -> Period | None:
    """The latest period for which some issuer released ``indicator``."""
    with_data = [p for p in rollup.periods if (indicator, p.code) in rollup.combined]
    return with_data[-1] if with_data else None


# --- view model -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    """A table: column headings, rows of a heading and cells, an optional note below."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[Shown, ...]], ...]
    caption: str = ""
    note: str = ""


@dataclass(frozen=True)
class Section:
    code: str
    title: str
    definition: str
    source: str
    unit: str
    period: str
    margins: tuple[Grid, ...]
    totals: Grid


@dataclass(frozen=True)
class SubmissionCell:
    status: str
    text: str
    detail: str
    symbol: str


@dataclass(frozen=True)
class Chart:
    """One chart: the figure is drawn on demand (HTML and PDF size it differently)."""

    title: str
    draw: Callable[[Axes], list[str]]  # draws, returns the notes (points not shown)
    size: tuple[float, float] = (8.0, 4.2)


@dataclass(frozen=True)
class View:
    """Everything the HTML and PDF show, in the reader's language."""

    title: str
    language: str
    t: Mapping[str, str]
    periods: tuple[str, ...]
    generated: str
    how_to_read: str
    issuers: tuple[str, ...]
    submissions: tuple[tuple[str, tuple[SubmissionCell, ...]], ...]
    problems: tuple[str, ...]
    charts: tuple[Chart, ...]
    sections: tuple[Section, ...]
    method: tuple[str, ...]


def _submissions(rollup: RollUp, t: Mapping[str, str]) -> tuple[
    tuple[tuple[str, tuple[SubmissionCell, ...]], ...], tuple[str, ...]
]:  # fmt: skip
    rows, problems = [], []
    for issuer in rollup.issuers:
        cells = []
        for period in rollup.periods:
            sub = rollup.submission(issuer, period)
            details = []
            if sub.received is not None and sub.status == LATE:
                details.append(t["received"].format(date=sub.received.received_at.date()))
            if sub.replaced:
                details.append(t["replaced"].format(n=sub.replaced))
            cells.append(SubmissionCell(sub.status, t[sub.status], "; ".join(details),
                                        _STATUS_SYMBOL[sub.status]))  # fmt: skip
            if sub.status in (MISSING, LATE):
                extra = f" ({details[0]})" if sub.status == LATE else ""
                problems.append(f"{issuer}: {period.code} {t[sub.status].lower()}{extra}")
        rows.append((issuer, tuple(cells)))
    return tuple(rows), tuple(problems)


def _margins(rollup: RollUp, code: str, period: Period, language: str,
             t: Mapping[str, str]) -> tuple[Grid, ...]:  # fmt: skip
    """One table per dimension: its codes against the total of the others (one-way margins),
    a column per issuer that released the indicator, and the combined column."""
    combined = rollup.combined[(code, period.code)]
    dims = combined.dimensions
    issuers = combined.issuers
    columns = (*issuers, t["combined"])
    grids = []
    for index, dim in enumerate(dims):
        rows = []
        omitted = False
        for value_code in (*dim.codes, TOTAL):
            key = _one_way(dims, index, value_code)
            parts = tuple(
                shown_issuer(rollup.tables[(code, period.code, i)].cells.get(key), t, language)
                for i in issuers
            )
            whole = shown_combined(combined.cells.get(key), t, language)
            cells = (*parts, whole)
            if len(dim.codes) > 20 and value_code != TOTAL and all(c.text == "0" for c in cells):
                omitted = True  # e.g. the 250 countries of citizenship
                continue
            rows.append((label(dim.name, value_code, language), cells))
        grids.append(Grid(columns, tuple(rows), dimension_label(dim.name, language),
                          t["zeros_omitted"] if omitted else ""))  # fmt: skip
    return tuple(grids)


def _totals(rollup: RollUp, code: str, language: str, t: Mapping[str, str]) -> Grid:
    rows = []
    for issuer in rollup.issuers:
        cells = []
        for period in rollup.periods:
            table = rollup.tables.get((code, period.code, issuer))
            cells.append(
                Shown(NO_DATA_MARK, "none", t["no_release"]) if table is None
                else shown_issuer(table.cells.get(_grand(table.dimensions)), t, language)
            )  # fmt: skip
        rows.append((issuer, tuple(cells)))
    rows.append((t["combined"], tuple(
        shown_combined(rollup.total(code, p), t, language) for p in rollup.periods
    )))  # fmt: skip
    return Grid(tuple(p.code for p in rollup.periods), tuple(rows), t["totals"],
                " ".join(_without(rollup, code, t)))  # fmt: skip


def _sections(rollup: RollUp, language: str, t: Mapping[str, str]) -> tuple[Section, ...]:
    out = []
    for indicator in INDICATORS:
        period = _last_period(rollup, indicator.code)
        if period is None:
            continue
        out.append(Section(
            indicator.code, indicator_title(indicator.code, language), indicator.definition,
            indicator.source, indicator.unit, period.code,
            _margins(rollup, indicator.code, period, language, t),
            _totals(rollup, indicator.code, language, t),
        ))  # fmt: skip
    return tuple(out)


def _methods(rollup: RollUp, threshold: int, t: Mapping[str, str]) -> tuple[str, ...]:
    """The report's threshold, then each distinct method the releases in force used."""
    used: dict[Method, int] = {}
    for sub in rollup.submissions:
        if sub.received is not None:
            method = sub.received.release.method
            used[method] = used.get(method, 0) + 1
    lines = [t["threshold"].format(threshold=threshold)]
    for method, n in sorted(used.items(), key=lambda m: (m[0].threshold, m[0].rounding,
                                                          m[0].epsilon or 0.0)):  # fmt: skip
        rounding = (t["not_rounded"] if method.rounding == 1
                    else t["rounded"].format(n=method.rounding))  # fmt: skip
        dp = (t["noise"].format(epsilon=f"{method.epsilon:g}") if method.epsilon
              else t["no_noise"])  # fmt: skip
        lines.append(t["release_method"].format(n=n, threshold=method.threshold,
                                                rounding=rounding, dp=dp))  # fmt: skip
    lines.append(t["aggregates"])
    return tuple(lines)


def build_view(rollup: RollUp, *, title: str, language: str, generated_at: dt.datetime,
               threshold: int) -> View:  # fmt: skip
    """What both the HTML and the PDF show: computed once, so the two never disagree."""
    t = ui(language)
    submissions, problems = _submissions(rollup, t)
    how = t["how_text"].format(below=max(threshold - 1, 1), threshold=threshold,
                               sup=SUPPRESSED_MARK, none=NO_DATA_MARK)  # fmt: skip
    return View(
        title=title,
        language=language,
        t=t,
        periods=tuple(p.code for p in rollup.periods),
        generated=generated_at.isoformat(sep=" ", timespec="minutes"),
        how_to_read=how,
        issuers=rollup.issuers,
        submissions=submissions,
        problems=problems,
        charts=_charts(rollup, language, t),
        sections=_sections(rollup, language, t),
        method=_methods(rollup, threshold, t),
    )


# --- charts ---------------------------------------------------------------------------------


def _chart_style() -> contextlib.AbstractContextManager[None]:
    """matplotlib settings for every chart: text kept as text in SVG (the browser shapes any
    script, readers can select and search it) and ids that do not change from run to run."""
    return matplotlib.rc_context(
        {"svg.fonttype": "none", "svg.hashsalt": "xnode-report", "font.family": "sans-serif"}
    )


def _charts(rollup: RollUp, language: str, t: Mapping[str, str]) -> tuple[Chart, ...]:
    """Trend of detected victims, then for the last period with data: by sex and age, and by
    form of exploitation (combined). None when no issuer released victims."""
    last = _last_period(rollup, VICTIMS)
    if last is None:
        return ()
    return (
        Chart(t["trend"], functools.partial(_draw_trend, rollup=rollup, t=t)),
        Chart(t["sex_age"].format(period=last.code),
              functools.partial(_draw_sex_age, rollup=rollup, period=last, language=language,
                                t=t), (8.0, 4.6)),
        Chart(t["exploitation"].format(period=last.code),
              functools.partial(_draw_exploitation, rollup=rollup, period=last,
                                language=language, t=t), (8.0, 5.2)),
    )  # fmt: skip


def _draw_trend(ax: Axes, *, rollup: RollUp, t: Mapping[str, str]) -> list[str]:
    """Grand total of detected victims per period, a line per issuer and the combined line;
    suppressed points are left out (a gap) and listed in the notes, never guessed."""
    xs = list(range(len(rollup.periods)))
    notes = []
    for n, issuer in enumerate(rollup.issuers):
        ys = []
        for period in rollup.periods:
            cell = rollup.total(VICTIMS, period, issuer)
            ys.append(math.nan if cell is None or cell.value is None else float(cell.value))
            if cell is not None and cell.value is None:
                notes.append(f"{issuer} {period.code}: {t['suppressed']}")
            elif cell is None and rollup.submission(issuer, period).status != NOT_DUE:
                notes.append(f"{issuer} {period.code}: {t['no_release']}")
        if all(math.isnan(y) for y in ys):
            continue
        ax.plot(xs, ys, marker=_MARKERS[n % len(_MARKERS)], color=_PALETTE[n % len(_PALETTE)],
                label=issuer, linewidth=1.5)  # fmt: skip
    ys, bounds, partial = [], [], []
    absent = incomplete(rollup, VICTIMS)
    for period in rollup.periods:
        cell = rollup.total(VICTIMS, period)
        value = math.nan if cell is None or cell.value is None else float(cell.value)
        ys.append(math.nan if period.code in absent else value)
        partial.append(value if period.code in absent else math.nan)
        bound = cell is not None and cell.value is None and cell.at_least > 0
        bounds.append(float(cell.at_least) if cell is not None and bound else math.nan)
        if cell is not None and cell.value is None:
            notes.append(f"{t['combined']} {period.code}: "
                         f"{shown_combined(cell, t, 'en').text} ({t['lower_bound']})")  # fmt: skip
    ax.plot(xs, ys, color="black", linewidth=2.5, marker="o", label=t["combined"])
    if absent:  # not joined to the line: a drop that is only a missing release
        ax.plot(xs, partial, linestyle="none", marker="o", markerfacecolor="white",
                markeredgecolor="black", markersize=8, label=t["incomplete"])  # fmt: skip
        notes.extend(_without(rollup, VICTIMS, t))
    if not all(math.isnan(b) for b in bounds):
        ax.plot(xs, bounds, linestyle="none", marker="^", markerfacecolor="white",
                markeredgecolor="black", markersize=8, label=t["lower_bound"])  # fmt: skip
    ax.set_xticks(xs, [p.code for p in rollup.periods])
    ax.set_xlabel(t["period"])
    ax.set_ylabel(t["persons"])
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return notes


def _bar_cells(cells: Sequence[Cell | None]) -> tuple[list[float], list[float], list[int]]:
    """Heights of known values, heights of lower bounds, positions of cells not known at all."""
    known = [float(c.value) if c is not None and c.value is not None else 0.0 for c in cells]
    bound = [float(c.at_least) if c is not None and c.value is None else 0.0 for c in cells]
    unknown = [i for i, c in enumerate(cells) if c is None or (c.value is None and not c.at_least)]
    return known, bound, unknown


def _draw_sex_age(ax: Axes, *, rollup: RollUp, period: Period, language: str,
                  t: Mapping[str, str]) -> list[str]:  # fmt: skip
    """Combined victims by sex (bars) and age band (groups): the sex-by-age margin at the total
    of exploitation. Lower bounds hatched, fully suppressed cells listed."""
    combined = rollup.combined[(VICTIMS, period.code)]
    zero = Cell(0, 0)
    sexes = [s for s in SEX_DIMENSION.codes
             if any(combined.cells.get((s, a, TOTAL)) != zero for a in AGE.codes)]  # fmt: skip
    width = 0.8 / max(len(sexes), 1)
    notes = []
    bound_drawn = False
    for n, sex in enumerate(sexes):
        cells = [combined.cells.get((sex, age, TOTAL)) for age in AGE.codes]
        known, bound, unknown = _bar_cells(cells)
        xs = [i + (n - (len(sexes) - 1) / 2) * width for i in range(len(AGE.codes))]
        colour = _PALETTE[n % len(_PALETTE)]
        ax.bar(xs, known, width, color=colour, label=label("sex", sex, language))
        if any(bound):
            ax.bar(xs, bound, width, color="white", edgecolor=colour, hatch="///")
            bound_drawn = True
        for i in unknown:
            notes.append(f"{label('sex', sex, language)}, {label('age', AGE.codes[i], language)}"
                         f": {t['suppressed']}")  # fmt: skip
    ax.set_xticks(range(len(AGE.codes)), [label("age", a, language) for a in AGE.codes],
                  rotation=20, ha="right")  # fmt: skip
    ax.set_ylabel(t["persons"])
    ax.grid(axis="y", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if bound_drawn:
        handles.append(_bound_patch())
        labels.append(t["lower_bound"])
    ax.legend(handles, labels, fontsize=8, frameon=False, loc="upper left",
              bbox_to_anchor=(1.0, 1.0))  # fmt: skip
    return notes


def _bound_patch() -> Patch:
    """The legend's key for a lower bound, in no issuer's or sex's colour."""
    return Patch(facecolor="white", edgecolor="#444444", hatch="///")


def _draw_exploitation(ax: Axes, *, rollup: RollUp, period: Period, language: str,
                       t: Mapping[str, str]) -> list[str]:  # fmt: skip
    """Combined victims by form of exploitation (horizontal bars, the first form on top)."""
    combined = rollup.combined[(VICTIMS, period.code)]
    forms = EXPLOITATION.codes
    cells = [combined.cells.get((TOTAL, TOTAL, f)) for f in forms]
    known, bound, unknown = _bar_cells(cells)
    ys = list(range(len(forms)))
    ax.barh(ys, known, color=_PALETTE[0], label=t["persons"])
    if any(bound):
        ax.barh(ys, bound, color="white", edgecolor=_PALETTE[0], hatch="///",
                label=t["lower_bound"])  # fmt: skip
        ax.legend(fontsize=8, frameon=False, loc="lower right")
    ax.set_yticks(ys, [label("exploitation", f, language) for f in forms])
    ax.invert_yaxis()
    ax.set_xlabel(t["persons"])
    ax.grid(axis="x", alpha=0.3)
    return [f"{label('exploitation', forms[i], language)}: {t['suppressed']}" for i in unknown]


def _chart_svg(chart: Chart, index: int) -> tuple[str, list[str]]:
    """The chart as inline SVG (no XML prolog, no DOCTYPE, no namespace URIs: the HTML parser
    puts inline ``<svg>`` in the SVG namespace by itself), ids prefixed so that several charts
    can share one page."""
    with _chart_style():
        figure = Figure(figsize=chart.size, layout="constrained")
        notes = chart.draw(figure.add_subplot())
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata=_SVG_METADATA)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    svg = re.sub(r'\s(width|height)="[^"]*pt"', "", svg, count=2)
    prefix = f"chart{index}-"
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", svg)
    svg = svg.replace("<svg", f'<svg class="chart" role="img" aria-labelledby="{prefix}title"',
                      1)  # fmt: skip
    return svg, notes


# --- HTML -----------------------------------------------------------------------------------


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(rollup: RollUp, *, title: str, language: str = "en",
                generated_at: dt.datetime, threshold: int) -> str:  # fmt: skip
    """One self-contained HTML page: inline CSS, charts as inline SVG, no script and nothing
    fetched from anywhere, so it opens offline and can be served with a Content-Security-Policy
    of ``default-src 'none'; style-src 'unsafe-inline'``. ``lang`` and ``dir`` follow
    ``language`` (right to left for Arabic); the report's own words are in English, French or
    Portuguese (English otherwise), the labels of codes in ``language`` where the code lists
    have it."""
    view = build_view(rollup, title=title, language=language, generated_at=generated_at,
                      threshold=threshold)  # fmt: skip
    charts = []
    for index, chart in enumerate(view.charts, start=1):
        svg, notes = _chart_svg(chart, index)
        charts.append({"id": f"chart{index}", "title": chart.title, "svg": Markup(svg),  # noqa: S704 - matplotlib's own SVG; its text is escaped
                       "notes": notes})  # fmt: skip
    ui_language = language if language in UI else "en"
    # text not in the page's language (the report's words, the definitions: English) says so,
    # and takes its direction from its own script
    ui_attr = Markup(' lang="{}" dir="auto"').format(ui_language) if ui_language != language else ""
    en_attr = Markup(' lang="en" dir="auto"') if language != "en" else ""
    template = _environment().get_template("report.html.j2")
    return template.render(
        view=view,
        ui_attr=ui_attr,
        en_attr=en_attr,
        t=view.t,
        charts=charts,
        direction="rtl" if language.split("-")[0] in RTL_LANGUAGES else "ltr",
        status_colour=_STATUS_COLOUR,
        status_symbol=_STATUS_SYMBOL,
    )


# --- PDF ------------------------------------------------------------------------------------


class _Pages:
    """A4 pages filled top to bottom with text and tables, a new page when one is full
    (matplotlib has no flowing layout of its own)."""

    margin = 0.6
    row = 0.21

    def __init__(self, pdf: PdfPages, footer: str, t: Mapping[str, str]) -> None:
        self.pdf, self.footer, self.t = pdf, footer, t
        self.figure: Figure | None = None
        self.y = 0.0
        self.count = 0

    def new_page(self) -> Figure:
        self.flush()
        self.figure = Figure(figsize=_A4)
        self.count += 1
        self.figure.text(0.5, 0.3 / _A4[1], self.footer_text(), ha="center", fontsize=7,
                         color="#555555")  # fmt: skip
        self.y = _A4[1] - self.margin
        return self.figure

    def footer_text(self) -> str:
        return f"{self.footer} — {self.t['page'].format(n=self.count)}"

    def flush(self) -> None:
        if self.figure is not None:
            self.pdf.savefig(self.figure)  # type: ignore[no-untyped-call]
            self.figure = None

    def need(self, height: float) -> Figure:
        if self.figure is None or self.y - height < self.margin:
            return self.new_page()
        return self.figure

    def keep(self, rows: int, extra: float = 0.0) -> None:
        """Start a new page unless a table of ``rows`` rows (and ``extra`` inches of heading)
        fits on this one, if it fits on a page at all: tables are not split needlessly."""
        height = (rows + 1) * self.row + extra
        if height <= _A4[1] - 2 * self.margin - 0.3:
            self.need(height)

    def text(self, text: str, size: float = 9, weight: str = "normal", wrap: int = 100,
             colour: str = "black") -> None:  # fmt: skip
        lines = textwrap.wrap(text, wrap) or [""]
        height = len(lines) * size * 1.35 / 72
        figure = self.need(height)
        figure.text(self.margin / _A4[0], self.y / _A4[1], "\n".join(lines), fontsize=size,
                    weight=weight, va="top", ha="left", linespacing=1.25, color=colour)  # fmt: skip
        self.y -= height + 0.08

    def table(
        self, columns: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]],
        colours: Sequence[Sequence[str]] | None = None, first: float = 0.34,
    ) -> None:  # fmt: skip
        """A table, split over pages (heading row repeated) when it does not fit."""
        width = _A4[0] - 2 * self.margin
        n_columns = len(columns) + 1
        others = (1 - first) / max(n_columns - 1, 1)
        widths = [first, *([others] * (n_columns - 1))]
        start = 0
        while True:
            figure = self.need(2 * self.row)
            fit = max(int((self.y - self.margin) / self.row) - 1, 1)
            chunk = rows[start : start + fit]
            height = (len(chunk) + 1) * self.row
            ax = figure.add_axes((self.margin / _A4[0], (self.y - height) / _A4[1],
                                  width / _A4[0], height / _A4[1]))  # fmt: skip
            ax.axis("off")
            text = [[heading, *cells] for heading, cells in chunk] or [["", *([""] * len(columns))]]
            colour = None
            if colours is not None:
                colour = [["white", *c] for c in colours[start : start + fit]] or None
            table = ax.table(cellText=text, colLabels=["", *columns], cellColours=colour,
                             colWidths=widths, bbox=Bbox.from_bounds(0, 0, 1, 1),
                             cellLoc="right")  # fmt: skip
            table.auto_set_font_size(False)
            table.set_fontsize(7.5)
            for (r, c), cell in table.get_celld().items():
                cell.set_edgecolor("#bbbbbb")
                if r == 0:
                    cell.set_text_props(weight="bold")
                    cell.set_facecolor("#eeeeee")
                if c == 0:
                    cell.get_text().set_horizontalalignment("left")
                    cell.PAD = 0.02
            self.y -= height + 0.15
            start += len(chunk)
            if start >= len(rows):
                return

    def chart(self, chart: Chart) -> None:
        """A chart on a page of its own, its notes below."""
        self.flush()
        self.count += 1
        with _chart_style():
            figure = Figure(figsize=_A4, layout="constrained")
            grid = figure.add_gridspec(2, 1, height_ratios=(5, 3))
            figure.suptitle(chart.title, fontsize=12, weight="bold")
            notes = chart.draw(figure.add_subplot(grid[0]))
            ax = figure.add_subplot(grid[1])
            ax.axis("off")
            if notes:
                ax.text(0, 1, f"{self.t['not_shown']}:\n" + "\n".join(notes[:40]), va="top",
                        fontsize=8, transform=ax.transAxes)  # fmt: skip
            ax.text(0.5, 0, self.footer_text(), ha="center", fontsize=7, color="#555555",
                    transform=ax.transAxes)  # fmt: skip
            self.pdf.savefig(figure)  # type: ignore[no-untyped-call]


def _texts(grid: Grid) -> list[tuple[str, list[str]]]:
    return [(heading, [c.text for c in cells]) for heading, cells in grid.rows]


def render_pdf(rollup: RollUp, path: Path, *, title: str, language: str = "en",
               generated_at: dt.datetime, threshold: int) -> None:  # fmt: skip
    """The report as a PDF at ``path`` (atomically, mode 0600): a summary page (periods, how to
    read, submissions, problems), a page per chart, then each indicator's tables.

    For right-to-left languages the PDF is in English: matplotlib's PDF text is neither shaped
    nor reordered (the HTML report has them right)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, pdf_bytes(rollup, title=title, language=language,
                                     generated_at=generated_at, threshold=threshold),
                     FILE_MODE)  # fmt: skip


def pdf_bytes(rollup: RollUp, *, title: str, language: str = "en",
              generated_at: dt.datetime, threshold: int) -> bytes:  # fmt: skip
    """The PDF of :func:`render_pdf`, in memory."""
    if language.split("-")[0] in RTL_LANGUAGES:
        language = "en"
    view = build_view(rollup, title=title, language=language, generated_at=generated_at,
                      threshold=threshold)  # fmt: skip
    t = view.t
    buffer = io.BytesIO()
    metadata = {"Title": title, "CreationDate": generated_at, "Creator": "xnode",
                "Subject": f"{t['periods']}: {', '.join(view.periods)}"}  # fmt: skip
    with PdfPages(buffer, metadata=metadata) as pdf:
        pages = _Pages(pdf, title, t)
        pages.text(title, size=16, weight="bold", wrap=60)
        pages.text(f"{t['periods']}: {', '.join(view.periods)}", size=10)
        pages.text(f"{t['generated']}: {view.generated}", size=10)
        pages.text(t["how_heading"], size=12, weight="bold")
        pages.text(view.how_to_read)
        pages.text(t["submissions"], size=12, weight="bold")
        pages.table(
            view.periods,
            [(issuer, [f"{c.symbol} {c.text}" + (f" ({c.detail})" if c.detail else "")
                       for c in cells]) for issuer, cells in view.submissions],
            [[_STATUS_COLOUR[c.status] for c in cells] for _, cells in view.submissions],
            first=0.28,
        )  # fmt: skip
        pages.text(t["problems"], size=12, weight="bold")
        for problem in view.problems or (t["no_problems"],):
            pages.text(f"• {problem}")
        pages.text(t["method"], size=12, weight="bold")
        for line in view.method:
            pages.text(line)
        for chart in view.charts:
            pages.chart(chart)
        pages.new_page()
        for section in view.sections:
            pages.keep(min(len(section.margins[0].rows), 8), 1.6)
            pages.text(section.title, size=12, weight="bold")
            pages.text(f"{t['definition']}: {section.definition}", size=8, wrap=120)
            pages.text(f"{t['source']}: {section.source}  ·  {t['unit']}: {section.unit}",
                       size=8, wrap=120, colour="#444444")  # fmt: skip
            pages.text(t["breakdowns"].format(period=section.period), size=10, weight="bold")
            for grid in section.margins:
                pages.keep(min(len(grid.rows), 12), 0.3)
                pages.text(grid.caption, size=9, weight="bold")
                pages.table(grid.columns, _texts(grid))
                if grid.note:
                    pages.text(grid.note, size=7, colour="#444444")
            pages.keep(len(section.totals.rows), 0.3)
            pages.text(section.totals.caption, size=10, weight="bold")
            pages.table(section.totals.columns, _texts(section.totals), first=0.28)
            if section.totals.note:
                pages.text(section.totals.note, size=7, colour="#444444")
            pages.y -= 0.2
        pages.flush()
    return buffer.getvalue()


# --- CSV ------------------------------------------------------------------------------------

_SEX_SDMX = {"F": "F", "M": "M", "O": "_O", "U": "_U", TOTAL: TOTAL}
_SERIES_BY_FORM = {
    "SexualExploitation": "VC_HTF_DETVSX",
    "ForcedLabour": "VC_HTF_DETVFL",
    "Servitude": "VC_HTF_DETVFL",
    "OrganRemoval": "VC_HTF_DETVOG",
}
_NOT_A_FORM = ("Multiple", "U")  # several forms, unknown: no SDG series
DIMENSION_COLUMNS = tuple(name.upper() for name in DIMENSIONS)
CSV_COLUMNS = ("SERIES", "INDICATOR", "ISSUER", "REF_AREA", "TIME_PERIOD", *DIMENSION_COLUMNS,
               "OBS_VALUE", "OBS_STATUS", "LOWER_BOUND", "UNIT_MEASURE")  # fmt: skip


def area_of(issuer: str) -> str:
    """The ISO 3166-1 alpha-2 country of a node: its id starts with it (``zm-secretariat``)."""
    return issuer.split("-", 1)[0].upper()


def series(indicator: str, dimensions: Sequence[Dimension], cell: Codes) -> str:
    """The SDG global database series of a cell, or "" where none applies."""
    if indicator != VICTIMS:
        return ""
    form = dict(zip((d.name for d in dimensions), cell, strict=True)).get("exploitation", TOTAL)
    if form == TOTAL:
        return "VC_HTF_DETV"
    if form in _NOT_A_FORM:
        return ""
    return _SERIES_BY_FORM.get(form, "VC_HTF_DETVOP")


def _sdmx_code(dimension: str, code: str) -> str:
    if dimension == "sex":
        return _SEX_SDMX.get(code, code)
    return "_U" if code == "U" else code


def _ordered(dimensions: Sequence[Dimension], cells: Mapping[Codes, Any]) -> Iterator[Codes]:
    for key in itertools.product(*((*d.codes, TOTAL) for d in dimensions)):
        if key in cells:
            yield key


def _derived_ages(dimensions: Sequence[Dimension],
                  known: Mapping[Codes, int | None]) -> Iterator[tuple[Codes, int]]:  # fmt: skip
    """Child (Y0T17) and adult (Y_GE18) cells of victims by age, the SDG's age groups, summed
    from our bands where every band in the sum was published (nothing new is disclosed: the
    sum of published cells)."""
    index = [d.name for d in dimensions].index("age")
    others = [(*d.codes, TOTAL) for i, d in enumerate(dimensions) if i != index]
    for rest in itertools.product(*others):
        for group, bands in (("Y0T17", CHILD_BANDS), ("Y_GE18", ADULT_BANDS)):
            values = [known.get((*rest[:index], band, *rest[index:])) for band in bands]
            if all(v is not None for v in values):
                yield (*rest[:index], group, *rest[index:]), sum(v for v in values if v)


def render_csv(rollup: RollUp) -> str:
    """Every cell of every table as one row of a long-format CSV, for statistical databases.

    Columns, after SDMX conventions (``_T`` = total of a dimension):

    - ``SERIES``: the SDG global database series (indicator 16.2.2) where one applies, for
      ``victims_detected`` only: ``VC_HTF_DETV`` (all forms: exploitation ``_T``),
      ``VC_HTF_DETVSX`` (SexualExploitation), ``VC_HTF_DETVFL`` (ForcedLabour and
      Servitude: add their rows), ``VC_HTF_DETVOG`` (OrganRemoval), ``VC_HTF_DETVOP`` (every
      other form); empty for Multiple, unknown and every other indicator.
    - ``INDICATOR``: the xnode indicator code (docs/statistics.md).
    - ``ISSUER``: the node that released the figure, or ``combined`` for the sum of the
      issuers; ``REF_AREA``: the issuer's ISO 3166-1 alpha-2 country (the start of its node
      id), for combined rows the areas summed, ``;``-joined.
    - ``TIME_PERIOD``: ``2026``, ``2026-Q3`` or ``2026-07`` (SDMX time formats).
    - one column per dimension of any indicator (``SEX``, ``AGE``, ``EXPLOITATION``...),
      empty where the indicator has no such dimension. ``SEX`` in SDMX codes: F, M, ``_O``
      (other), ``_U`` (unknown), ``_T``; an unknown value of any dimension is ``_U``; ``AGE``
      keeps the xnode bands (Y0T11, Y12T17...), with added rows for victims_detected in the
      SDG's groups Y0T17 (child) and Y_GE18 (adult) where all the bands they sum were
      published.
    - ``OBS_VALUE``: the count, empty when not known; ``OBS_STATUS``: ``A`` (published),
      ``C`` (confidential: suppressed), ``L`` (lower bound: a combined cell with suppressed
      parts, the sum of the parts published in ``LOWER_BOUND``, ``OBS_VALUE`` empty).
    - ``UNIT_MEASURE``: persons, alerts, subjects, referrals, returns or requests.
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS)
    writer.writeheader()
    for period in rollup.periods:
        for indicator in INDICATORS:
            for issuer in rollup.issuers:
                table = rollup.tables.get((indicator.code, period.code, issuer))
                if table is not None:
                    values = {k: table.cells[k] for k in _ordered(table.dimensions, table.cells)}
                    derived = dict(_derived_ages(table.dimensions, values)
                                   if indicator.code == VICTIMS else ())  # fmt: skip
                    for key, value in itertools.chain(values.items(), derived.items()):
                        cell = Cell(value, value or 0)
                        writer.writerow(_csv_row(indicator.code, table.dimensions, key, issuer,
                                                 area_of(issuer), period, cell,
                                                 combined=False))  # fmt: skip
            combined = rollup.combined.get((indicator.code, period.code))
            if combined is None:
                continue
            areas = ";".join(sorted({area_of(i) for i in combined.issuers}))
            cells = {k: combined.cells[k] for k in _ordered(combined.dimensions, combined.cells)}
            known = {k: c.value for k, c in cells.items()}
            extra = (_derived_ages(combined.dimensions, known)
                     if indicator.code == VICTIMS else iter(()))  # fmt: skip
            for key, cell in itertools.chain(cells.items(), ((k, Cell(v, v)) for k, v in extra)):
                writer.writerow(_csv_row(indicator.code, combined.dimensions, key, COMBINED,
                                         areas, period, cell, combined=True))  # fmt: skip
    return buffer.getvalue()


def _csv_row(
    indicator: str, dimensions: Sequence[Dimension], key: Codes, issuer: str, area: str,
    period: Period, cell: Cell, *, combined: bool,
) -> dict[str, str]:  # fmt: skip
    row = dict.fromkeys(CSV_COLUMNS, "")
    row.update(SERIES=series(indicator, dimensions, key), INDICATOR=indicator, ISSUER=issuer,
               REF_AREA=area, TIME_PERIOD=period.code,
               UNIT_MEASURE=BY_CODE[indicator].unit)  # fmt: skip
    for dimension, code in zip(dimensions, key, strict=True):
        row[dimension.name.upper()] = _sdmx_code(dimension.name, code)
    if cell.value is not None:
        row.update(OBS_VALUE=str(cell.value), OBS_STATUS="A")
    elif combined and cell.at_least > 0:
        row.update(OBS_STATUS="L", LOWER_BOUND=str(cell.at_least))
    else:
        row.update(OBS_STATUS="C")
    return row


# --- files ----------------------------------------------------------------------------------

FORMATS = ("html", "pdf", "csv")


def render_bytes(
    rollup: RollUp, fmt: str, *, title: str = "Trafficking in persons statistics",
    language: str = "en", generated_at: dt.datetime, threshold: int,
) -> bytes:  # fmt: skip
    """The report in ``fmt`` (html, pdf or csv) as bytes (UTF-8 for text): what
    :func:`write_report` writes and the API serves, from one place."""
    if fmt == "pdf":
        return pdf_bytes(rollup, title=title, language=language, generated_at=generated_at,
                         threshold=threshold)  # fmt: skip
    if fmt == "csv":
        return render_csv(rollup).encode("utf-8")
    if fmt == "html":
        return render_html(rollup, title=title, language=language, generated_at=generated_at,
                           threshold=threshold).encode("utf-8")  # fmt: skip
    raise ValueError(f"unknown report format {fmt!r}; choose from {', '.join(FORMATS)}")


def write_report(rollup: RollUp, path: Path, *, title: str = "Trafficking in persons statistics",
                 language: str = "en", generated_at: dt.datetime | None = None,
                 threshold: int = 5) -> None:  # fmt: skip
    """Write the report in the form ``path``'s suffix names (.html, .pdf, .csv), atomically
    (readers never see half a file) and readable by the owner only (mode 0600: aggregates, but
    official figures whose circulation the secretariat decides)."""
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(
            f"cannot write a report as {path.name!r}: the file name must end in "
            f"{', '.join('.' + f for f in FORMATS)}"
        )
    when = generated_at or dt.datetime.now(dt.UTC)
    data = render_bytes(rollup, fmt, title=title, language=language, generated_at=when,
                        threshold=threshold)  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, data, FILE_MODE)
