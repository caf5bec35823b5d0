"""``xnode erasure``, ``xnode hold`` and ``xnode overdue``: data protection and procedures
from the command line
(docs/data-protection.md), on the node's own store file beside the running node or while it
is stopped — the running node publishes what is queued and carries out what is received."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

from node import casework, codes, submit, views
from node.adapters import requests
from node.cli.support import (
    EXIT_OK,
    CommandFailed,
    Subcommands,
    node_dir_arg,
    now,
    print_json,
)
from node.codec import SchemaRegistry
from node.erasures import ErasureDesk, ErasureRefused
from node.nodedir import NodeDir
from node.service import open_store
from node.store.base import InboxMessage
from node.store.sqlite import SqliteStore


def _desk(args: argparse.Namespace, registry: SchemaRegistry, store: SqliteStore) -> ErasureDesk:
    """An erasure desk over the store file: sealing with this node's keys, reading received
    answers with them (the passphrase is asked once, when first needed)."""
    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    peers = {n: s.descriptor for n, s in node_dir.peers(registry).items()}
    keys: list[Any] = []

    def loaded() -> Any:
        if not keys:
            keys.append(node_dir.load_keys(registry, node_dir.passphrase(config)))
        return keys[0]

    async def run(fn: Callable[..., Any], *a: Any, **kw: Any) -> Any:
        return fn(*a, **kw)

    async def send(request: submit.Request) -> str:
        revoked = node_dir.revocations()
        message, event = submit.prepare(
            registry, request, config=config, identity=loaded().identity, peers=peers,
            now=now(), revoked=revoked,
        )  # fmt: skip
        return store.submit(message, event)

    def payload_of(message: InboxMessage) -> Mapping[str, Any] | None:
        item = views.inbox_item(registry, message, own_id=config.node.id,
                                own_keys=loaded().encryption,
                                peers=node_dir.peer_directory(registry))  # fmt: skip
        payload: Mapping[str, Any] | None = item.get("payload")
        return payload

    return ErasureDesk(config.node.id, store, run, send, payload_of, now)


def cmd_erasure_request(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    try:
        fields = requests.erasure_from_json({
            "message_ids": args.message or [], "thread_id": args.thread, "reason": args.reason,
            "note": args.note,
        })  # fmt: skip
    except requests.Refusal as exc:
        raise CommandFailed(str(exc)) from exc
    node_dir = NodeDir(args.dir)
    with open_store(node_dir, node_dir.load_config()) as store:
        try:
            with contextlib.redirect_stdout(sys.stderr):  # stdout is the answer; logs go aside
                found = asyncio.run(_desk(args, registry, store).request(**fields))
        except ErasureRefused as exc:
            raise CommandFailed(f"{exc.field}: {exc}") from exc
    if args.json:
        print_json({"requests": found})
        return EXIT_OK
    for r in found:
        print(f"{r['request_id']}  {r['kind']} thread {r['thread_id']}: "
              f"{len(r['message_ids'])} message(s) to {', '.join(r['recipients'])}")  # fmt: skip
    return EXIT_OK


def cmd_erasure_status(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    with open_store(node_dir, node_dir.load_config()) as store:
        with contextlib.redirect_stdout(sys.stderr):
            status = asyncio.run(_desk(args, registry, store).status(args.request_id))
    if status is None:
        raise CommandFailed(f"no erasure request {args.request_id} sent by this node")
    if args.json:
        print_json(status)
        return EXIT_OK
    for row in status["recipients"]:
        print(f"{row['node_id']:<32} {row['status']:<12} (request {row['delivery']})")
        for item in row["results"]:
            why = f"  {item['hold_reason']}: {item['note']}" if item.get("hold_reason") else ""
            print(f"    {item['message_id']}  {item['outcome']}{why}")
    return EXIT_OK


def cmd_hold_add(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    body = {"message_id": args.message, "thread_id": args.thread, "reason": args.reason,
            "note": args.note, "recorded_by": args.by}  # fmt: skip
    try:
        hold = requests.hold_from_json({k: v for k, v in body.items() if v is not None}, now())
    except requests.Refusal as exc:
        raise CommandFailed(str(exc)) from exc
    node_dir = NodeDir(args.dir)
    with open_store(node_dir, node_dir.load_config()) as store:
        print(store.add_hold(hold))
    return EXIT_OK


def cmd_hold_release(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    with open_store(node_dir, node_dir.load_config()) as store:
        if not store.release_hold(args.hold_id, args.by, now()):
            raise CommandFailed(f"no hold {args.hold_id} in force")
    return EXIT_OK


def cmd_hold_list(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    with open_store(node_dir, node_dir.load_config()) as store:
        holds = [views.hold_item(h) for h in store.holds(include_released=args.all)]
    if args.json:
        print_json({"holds": holds})
        return EXIT_OK
    for h in holds:
        scope = f"message {h['message_id']}" if h["message_id"] else f"thread {h['thread_id']}"
        released = (
            f"  released {h['released_at']} by {h['released_by']}" if h["released_at"] else ""
        )
        print(f"{h['hold_id']:>4}  {scope}  {h['reason']}  by {h['recorded_by']}"
              f" {h['recorded_at']}: {h['note']}{released or ''}")  # fmt: skip
    return EXIT_OK


def cmd_overdue(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    with open_store(node_dir, config) as store:
        items = casework.overdue(store, config.procedures.defaults(), config.node.id, now())
    if args.json:
        print_json({"threads": items})
        return EXIT_OK
    if not items:
        print("No request is past its deadline.")
    for item in items:
        who = "we wait for " if item["direction"] == "sent" else "we owe it, asked by "
        party = ", ".join(item["owed_by"]) if item["direction"] == "sent" else item["requested_by"]
        print(f"{item['deadline']}  {item['days_overdue']:>4} days overdue  {item['procedure']:<12}"
              f" thread {item['thread_id']}: {who}{party}; {item['state']}")  # fmt: skip
    return EXIT_OK


def register(sub: Subcommands) -> None:
    """Add ``xnode erasure request|status``, ``xnode hold add|release|list`` and
    ``xnode overdue``."""
    p = sub.add_parser("overdue", help="requests past their response deadline without an answer")
    node_dir_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_overdue)
    erasure_sub = sub.add_parser(
        "erasure", help="ask the recipients of sent messages to erase them, and see the answers"
    ).add_subparsers(dest="erasure_command", required=True, metavar="ACTION")
    p = erasure_sub.add_parser(
        "request", help="ask every recipient to erase messages this node sent (and erase ours)"
    )
    node_dir_arg(p)
    p.add_argument("--message", action="append", metavar="ID", help="a sent message (repeat)")
    p.add_argument("--thread", metavar="ID", help="every message this node sent in the thread")
    p.add_argument("--reason", required=True, choices=codes.get("erasure_reason").codes)
    p.add_argument("--note", help="the reason in words, without personal data")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_erasure_request)
    p = erasure_sub.add_parser("status", help="what each recipient answered to a request")
    node_dir_arg(p)
    p.add_argument("request_id")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_erasure_status)

    hold_sub = sub.add_parser(
        "hold", help="legal holds: data kept despite erasure requests and retention"
    ).add_subparsers(dest="hold_command", required=True, metavar="ACTION")
    p = hold_sub.add_parser("add", help="record a legal hold on a message or a thread")
    node_dir_arg(p)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--message", metavar="ID")
    target.add_argument("--thread", metavar="ID")
    p.add_argument("--reason", required=True, choices=codes.get("hold_reason").codes)
    p.add_argument("--note", required=True, help="e.g. the court case number")
    p.add_argument("--by", required=True, help="who decided: name and function")
    p.set_defaults(handler=cmd_hold_add)
    p = hold_sub.add_parser("release", help="end a legal hold")
    node_dir_arg(p)
    p.add_argument("hold_id", type=int)
    p.add_argument("--by", required=True, help="who decided: name and function")
    p.set_defaults(handler=cmd_hold_release)
    p = hold_sub.add_parser("list", help="legal holds in force")
    node_dir_arg(p)
    p.add_argument("--all", action="store_true", help="released ones too")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_hold_list)
