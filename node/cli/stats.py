"""``xnode stats import|compute|send|report|releases``: anonymised statistics (docs/statistics.md).

The shell around :mod:`node.statistics` and :mod:`node.stats`: it reads files and the node
directory, prints, and writes reports readable only by their owner.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from node import statistics, submit, views
from node.cli.sealing import seal_request
from node.cli.support import (
    EXIT_FAILED,
    EXIT_OK,
    CommandFailed,
    Subcommands,
    node_dir_arg,
    now,
    print_json,
    read_bytes,
)
from node.codec import SchemaRegistry
from node.nodedir import NodeDir
from node.routing.ids import parse_id_list
from node.service import open_store
from node.stats import cases, release
from node.stats.indicators import BY_CODE, INDICATORS
from node.stats.model import TOTAL, Codes, Dimension, ReleasedTable
from node.stats.periods import Period, PeriodError, parse_period
from node.store.sqlite import SqliteStore

SHOWN_ERRORS = 50
PAGE = 500


def cmd_import(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    try:
        text = read_bytes(args.file).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CommandFailed(f"{args.file}: not UTF-8 text") from None
    media = args.format or args.file.suffix.lower()
    with open_store(node_dir, config) as store:
        try:
            counts = statistics.import_cases(store, text, media, now(), replace_all=args.replace,
                                             source=args.file.name)  # fmt: skip
        except cases.ImportRefused as exc:
            for error in exc.errors[:SHOWN_ERRORS]:
                print(f"{args.file.name}: {error}", file=sys.stderr)
            more = len(exc.errors) - SHOWN_ERRORS
            if more > 0:
                print(f"... and {more} more", file=sys.stderr)
            raise CommandFailed(
                f"{len(exc.errors)} error(s) in {args.file.name}; nothing was imported"
            ) from None
        except ValueError as exc:
            raise CommandFailed(str(exc)) from None
        total = store.local_case_count()
    if args.json:
        print_json({**counts, "total": total})
    else:
        print(
            f"Imported {args.file.name}: {counts['added']} added, {counts['replaced']} "
            f"replaced, {counts['removed']} removed; {total} local case records in all."
        )
        print("They stay on this node: only anonymised counts leave it (xnode stats send).")
    return EXIT_OK


def _label(value: int | None) -> str:
    return "·" if value is None else str(value)


def _margins(dimensions: Sequence[Dimension], cells: Mapping[Codes, int | None]) -> list[str]:
    """One line per dimension: each code's count with the others at their total."""
    lines = []
    for k, dimension in enumerate(dimensions):
        parts = []
        for code in dimension.codes:
            key = tuple(code if i == k else TOTAL for i in range(len(dimensions)))
            value = cells.get(key)
            if value != 0:
                parts.append(f"{code} {_label(value)}")
        lines.append(f"    {dimension.name}: {', '.join(parts) or 'none'}")
    return lines


def _print_tables(tables: Iterable[ReleasedTable], period: str) -> None:
    print(f"Period {period} (· = suppressed; codes with 0 not shown)")
    for table in tables:
        total = table.cells.get(tuple(TOTAL for _ in table.dimensions))
        print(f"  {BY_CODE[table.indicator].title} ({table.indicator}): {_label(total)}")
        if total:
            print("\n".join(_margins(table.dimensions, table.cells)))


def _table_json(table: ReleasedTable) -> dict[str, Any]:
    return {"indicator": table.indicator, "dimensions": [d.name for d in table.dimensions],
            "cells": [{"codes": list(c), "value": v} for c, v in table.cells.items()]}  # fmt: skip


def cmd_compute(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    period = _period(args.period)
    with open_store(node_dir, config) as store:
        tables = statistics.compute(store, period, args.indicator or None)
    shown = statistics.shown(tables, config, args.raw)
    if args.json:
        print_json({"period": period.code, "protected": not args.raw,
                    "tables": [_table_json(t) for t in shown]})  # fmt: skip
    else:
        _print_tables(shown, period.code)
        if args.raw:
            print("Raw counts: for this node only. What a release sends is protected "
                  "(run without --raw to see it).")  # fmt: skip
    return EXIT_OK


def _period(text: str) -> Period:
    try:
        return parse_period(text)
    except PeriodError as exc:
        raise CommandFailed(str(exc)) from None


def cmd_send(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    period = _period(args.period)
    peers = [s.descriptor for s in node_dir.peers(registry).values()]
    at = now()
    with open_store(node_dir, config) as store:
        try:
            to = parse_id_list(args.to) if args.to else statistics.default_recipients(config, peers)
            made = statistics.prepare(store, config, period, at, args.epsilon)
        except release.ReleaseError as exc:
            raise CommandFailed(str(exc)) from None
        req = statistics.request(made, config, to)
        message, event = seal_request(node_dir, config, registry, req)
        message_id = store.submit(message, [event], None, submit.sent_fact(req, message))
        statistics.record_sent(store, made, message_id, to, at)
    suppressed = sum(v is None for t in made.tables for v in t.cells.values())
    cells = sum(len(t.cells) for t in made.tables)
    if args.json:
        print_json({"message_id": message_id, "release_id": made.release_id,
                    "period": period.code, "to": to, "replaces": made.replaces,
                    "cells": cells, "suppressed": suppressed, "epsilon": made.method.epsilon,
                    "budget_remaining": made.budget_remaining})  # fmt: skip
        return EXIT_OK
    print(f"Release {made.release_id} for {period.code} queued to {', '.join(to)} as message "
          f"{message_id}.")  # fmt: skip
    print(f"{len(made.tables)} tables, {cells} cells, {suppressed} suppressed "
          f"(threshold {made.method.threshold}).")  # fmt: skip
    if made.replaces:
        print(f"It replaces release {made.replaces}; the receivers keep both in their audit.")
    if made.method.epsilon:
        print(f"Differential privacy: epsilon {made.method.epsilon:g} spent, "
              f"{made.budget_remaining:g} left for {period.code}.")  # fmt: skip
    print("The running node publishes it; `xnode status MESSAGE_ID` shows the receipts.")
    return EXIT_OK


def received(node_dir: NodeDir, registry: SchemaRegistry,
             store: SqliteStore) -> list[dict[str, Any]]:  # fmt: skip
    """Every received statistics message, opened (inbox items with their payload)."""
    config = node_dir.load_config()
    messages, after = [], 0
    while True:
        page = store.inbox(after, "statistics", PAGE)
        messages.extend(page)
        if len(page) < PAGE:
            break
        after = page[-1].seq
    if not messages:
        return []
    keys = node_dir.load_keys(registry, node_dir.passphrase(config))
    peers = node_dir.peer_directory(registry)
    return [views.inbox_item(registry, m, own_id=config.node.id, own_keys=keys.encryption,
                             peers=peers) for m in messages if not m.erased]  # fmt: skip


def cmd_report(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    from node.stats import report, rollup  # matplotlib: loaded only for reports

    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    try:
        periods = statistics.periods_of(args.periods)
    except PeriodError as exc:
        raise CommandFailed(str(exc)) from None
    with open_store(node_dir, config) as store:
        items = received(node_dir, registry, store)
    releases = statistics.received_releases(items)
    at = now()
    data = rollup.roll_up(releases, periods, config.statistics.expected_from, at.date(),
                          config.statistics.due_days)  # fmt: skip
    title = args.title or f"Statistics received by {config.node.name} ({config.node.id})"
    try:
        report.write_report(data, args.output, title=title, language=args.language,
                            generated_at=at, threshold=config.statistics.threshold)  # fmt: skip
    except ValueError as exc:
        raise CommandFailed(str(exc)) from None
    problems = [s for s in data.submissions if s.status in (rollup.LATE, rollup.MISSING)]
    print(f"Wrote {args.output} (mode 0600): {len(releases)} release(s) from "
          f"{len(data.issuers)} issuer(s), {len(periods)} period(s).")  # fmt: skip
    for s in problems:
        print(f"  {s.issuer}: {s.period.code} {s.status}")
    return EXIT_OK if not (args.strict and problems) else EXIT_FAILED


def cmd_releases(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    with open_store(node_dir, config) as store:
        sent = store.sent_releases()
        items = received(node_dir, registry, store) if args.received else []
    rows: list[dict[str, Any]] = [
        {"direction": "sent", "period": r.period, "release_id": r.release_id,
         "message_id": r.message_id, "with": list(r.recipients), "replaces": r.replaces,
         "epsilon": r.epsilon, "at": views.timestamp(r.created_at)}
        for r in sent
    ]  # fmt: skip
    for item in items:
        p = item["payload"]
        rows.append({"direction": "received", "period": p["period"],
                     "release_id": p["release_id"], "message_id": item["id"],
                     "with": [item["sender"]], "replaces": p.get("replaces"),
                     "epsilon": p["method"].get("epsilon"), "at": item["received_at"]})  # fmt: skip
    if args.json:
        print_json(rows)
        return EXIT_OK
    if not rows:
        print("No release sent" + (" or received." if args.received else "."))
    for row in rows:
        arrow = "to" if row["direction"] == "sent" else "from"
        again = f" replaces {row['replaces']}" if row["replaces"] else ""
        print(f"{row['at']}  {row['direction']:<8} {row['period']:<8} {arrow} "
              f"{','.join(row['with'])}  {row['release_id']}{again}")  # fmt: skip
    return EXIT_OK


def register(sub: Subcommands) -> None:
    """Add ``xnode stats import|compute|send|report|releases``."""
    stats_sub = sub.add_parser(
        "stats", help="anonymised statistics: import local cases, compute, send, report"
    ).add_subparsers(dest="stats_command", required=True, metavar="ACTION")
    p = stats_sub.add_parser("import", help="import local case records (CSV or JSON, HTCDS "
                             "column names); all rows or none")  # fmt: skip
    node_dir_arg(p)
    p.add_argument("file", type=Path, help="a .csv or .json file (docs/statistics.md)")
    p.add_argument("--format", choices=("csv", "json"), help="when the suffix does not say")
    p.add_argument("--replace", action="store_true",
                   help="remove every earlier record first (a full re-import)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_import)

    p = stats_sub.add_parser("compute", help="the indicators of one period, as a release "
                             "would carry them (or --raw)")  # fmt: skip
    node_dir_arg(p)
    p.add_argument("period", help="2026, 2026-Q3 or 2026-07")
    p.add_argument("--indicator", action="append", choices=[i.code for i in INDICATORS],
                   help="only this indicator (repeat)")  # fmt: skip
    p.add_argument("--raw", action="store_true", help="unprotected counts, for this node only")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_compute)

    p = stats_sub.add_parser("send", help="send one period's protected release up the chain")
    node_dir_arg(p)
    p.add_argument("period", help="a period of the node's granularity ([statistics] period)")
    p.add_argument("--to", help="node ids, comma-separated (default: the country's secretariat "
                   "for an agency, regional bodies for a secretariat)")  # fmt: skip
    p.add_argument("--epsilon", type=float, help="differential privacy for this release "
                   "(default [statistics] epsilon; 0 = none)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_send)

    p = stats_sub.add_parser("report", help="combine the releases received into a report")
    node_dir_arg(p)
    p.add_argument("periods", help="2026-Q1..2026-Q4, or one period")
    p.add_argument("--output", "-o", type=Path, required=True,
                   help="report.html, report.pdf or report.csv (SDG/UNODC codes)")  # fmt: skip
    p.add_argument("--language", default="en", help="en, fr, pt, sw or ar (labels)")
    p.add_argument("--title", help="the report's title")
    p.add_argument("--strict", action="store_true", help="exit 1 when a release is missing or late")
    p.set_defaults(handler=cmd_report)

    p = stats_sub.add_parser("releases", help="releases sent (and with --received, received)")
    node_dir_arg(p)
    p.add_argument("--received", action="store_true", help="also those received (unlocks keys)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_releases)
