"""Statistics over a node's store (docs/statistics.md): importing local case records, computing
the indicators, preparing a release and reading the releases received. Synchronous, over the
store: the running node calls it on the store's thread, ``xnode stats`` directly. The decisions
are in :mod:`node.stats`; this module only fetches and stores.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from node import submit
from node.audit import AuditEvent
from node.codec import parse_timestamp
from node.config import Config
from node.payloads import STATISTICS_SCHEMA, full_name
from node.routing.ids import country_of
from node.stats import cases, indicators, release, rollup
from node.stats.model import Method, ReleasedTable, Table
from node.stats.periods import Period, PeriodError, parse_period, span
from node.store.sqlite import SqliteStore
from node.store.stats import SentRelease
from node.trust import Descriptor

FACTS_LOOKBACK = dt.timedelta(days=730)  # a thread's first step may be long before its end


def import_cases(
    store: SqliteStore, text: str, media_type: str, now: dt.datetime, *, replace_all: bool,
    source: str,
) -> dict[str, int]:  # fmt: skip
    """Check every row, then store all of them or none (:class:`cases.ImportRefused`)."""
    records = cases.read(text, media_type, now.date())
    event = AuditEvent("cases-imported", now, detail={"source": source, "rows": len(records),
                                                       "replace_all": replace_all})  # fmt: skip
    return store.import_cases(records, now, replace_all, event)


def inputs(store: SqliteStore, periods: Sequence[Period]) -> indicators.Inputs:
    start = min(p.start for p in periods)
    since = dt.datetime.combine(start, dt.time(), dt.UTC) - FACTS_LOOKBACK
    return indicators.Inputs(list(store.local_cases()), store.stat_facts(since))


def compute(store: SqliteStore, period: Period, chosen: Sequence[str] | None = None) -> list[Table]:
    """The raw (unprotected) tables of one period: what the node itself may look at."""
    return indicators.compute_all(inputs(store, [period]), period, chosen)


def shown(tables: Sequence[Table], config: Config, raw: bool) -> list[ReleasedTable]:
    """Tables as a release would carry them (protected), or ``raw``: every cell with its
    margins, unprotected, for this node only."""
    if raw:
        return [ReleasedTable(t.indicator, t.dimensions, t.cube()) for t in tables]
    settings = config.statistics
    return release.protect_all(tables, Method(settings.threshold, settings.rounding))


def coverage_of(config: Config) -> str:
    return "National" if "secretariat" in config.node.roles else "Agency"


def prepare(
    store: SqliteStore, config: Config, period: Period, now: dt.datetime,
    epsilon: float | None = None,
) -> release.Release:  # fmt: skip
    """The release this node would send for ``period``: protected, replacing the last one it
    sent for the same period, within its privacy budget. :class:`release.ReleaseError` says why
    not (wrong granularity, period not over, budget spent, a regional body)."""
    settings = config.statistics
    if "regional-body" in config.node.roles:
        raise release.ReleaseError("a regional body writes reports (xnode stats report); it "
                                   "does not release statistics of its own")  # fmt: skip
    if period.granularity != settings.period:
        raise release.ReleaseError(
            f"this node releases by {settings.period} ([statistics] period), not by "
            f"{period.granularity}: releases at two granularities give suppressed cells away"
        )
    if period.end > now.date():
        raise release.ReleaseError(f"{period.code} has not ended yet")
    earlier = store.sent_releases(period.code)
    chosen = settings.epsilon if epsilon is None else epsilon
    remaining = None
    if chosen:
        used = release.spent([r.epsilon for r in earlier])
        remaining = release.check_budget(used, chosen, settings.budget_per_period)
    method = Method(settings.threshold, settings.rounding, chosen or None)
    return release.make_release(
        compute(store, period), period, method, coverage=coverage_of(config),
        area=country_of(config.node.id).upper(),
        replaces=earlier[-1].release_id if earlier else None, budget_remaining=remaining,
    )  # fmt: skip


def request(made: release.Release, config: Config, to: Sequence[str]) -> submit.Request:
    """The submission of a release, like any other message."""
    handling = release.default_handling(config.statistics.legal_instrument)
    return submit.Request(kind="statistics", to=list(to), schema="StatisticsRelease",
                          payload=release.to_payload(made, handling))  # fmt: skip


def record_sent(store: SqliteStore, made: release.Release, message_id: str,
                recipients: Sequence[str], now: dt.datetime) -> None:  # fmt: skip
    sent = SentRelease(made.release_id, made.period.code, message_id, tuple(recipients),
                       made.method.epsilon, made.replaces, now)  # fmt: skip
    store.record_release(sent)


def default_recipients(config: Config, peers: Iterable[Descriptor]) -> list[str]:
    """Where a release goes when no one is named: an agency's own country's secretariat, a
    secretariat's regional bodies."""
    own = country_of(config.node.id)
    if "secretariat" in config.node.roles:
        wanted = [p.node_id for p in peers if "regional-body" in p.roles]
    else:
        wanted = [p.node_id for p in peers
                  if "secretariat" in p.roles and country_of(p.node_id) == own]  # fmt: skip
    if not wanted:
        raise release.ReleaseError("no recipient known for statistics: name one with --to")
    return sorted(set(wanted))


def received_releases(items: Iterable[Mapping[str, Any]]) -> list[rollup.Received]:
    """Received statistics messages (inbox items with their payload) as releases."""
    out = []
    for item in items:
        if full_name(str(item.get("payload_schema"))) != STATISTICS_SCHEMA:
            continue
        payload = item["payload"]
        try:
            period = parse_period(str(payload["period"]))
        except PeriodError:
            continue  # the receiving rules refused such a release already
        out.append(rollup.Received(str(item["sender"]), parse_timestamp(item["received_at"], "$"),
                                   release.from_payload(payload, period)))  # fmt: skip
    return out


def periods_of(text: str) -> list[Period]:
    """``2026-Q1..2026-Q4``, ``2026-Q2`` or ``2026`` (a year's quarters) -> periods."""
    if ".." in text:
        first, _, last = text.partition("..")
        return span(parse_period(first), parse_period(last))
    one = parse_period(text)
    return [one]
