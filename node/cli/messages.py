"""``xnode send``, ``status``, ``inbox``, ``quarantine`` and ``webhook retry``: messages in the
node's own store file, beside the running node or while it is stopped."""

from __future__ import annotations

import argparse

from node import casework, identifiers, submit, views
from node.cli.sealing import message_args, submission
from node.cli.support import (
    EXIT_OK,
    CommandFailed,
    Subcommands,
    node_dir_arg,
    now,
    open_node_store,
    print_json,
    print_listing,
)
from node.codec import SchemaRegistry, format_timestamp
from node.nodedir import NodeDir
from node.payloads import KINDS
from node.procedures import OutOfOrder
from node.routing.ids import country_of, parse_id_list
from node.service import open_store


def _recipients_arg(text: str) -> list[str] | str:
    return "neighbours" if text == "neighbours" else parse_id_list(text)


def cmd_send(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir, config, request, (message, event) = submission(
        args, registry, _recipients_arg(args.to)
    )
    with open_store(node_dir, config) as store:
        try:
            step, events = casework.sent_step(store, registry, request, message, config.node.id,
                                              config.procedures.defaults())  # fmt: skip
        except OutOfOrder as exc:
            raise CommandFailed(f"{exc} (or give --procedure-override REASON)") from exc
        message_id = store.submit(
            message, [event, *events], step, submit.sent_fact(request, message)
        )
    print(message_id)
    return EXIT_OK


def cmd_status(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    with open_node_store(args) as store:
        statuses = store.message_status(args.message_id)
    if not statuses:
        raise CommandFailed(f"no message {args.message_id} in this node's outbox")
    rows = [
        {
            "recipient": s.recipient,
            "state": s.state,
            "attempts": s.attempts,
            "updated_at": format_timestamp(s.updated_at),
            "reason": s.reason,
            "detail": s.detail,
        }
        for s in statuses
    ]
    if args.json:
        print_json({"message_id": args.message_id, "recipients": rows})
        return EXIT_OK
    for row in rows:
        reason = f"  {row['reason']}: {row['detail'] or ''}" if row["reason"] else ""
        print(f"{row['recipient']:<32} {row['state']:<10} attempts {row['attempts']:<3} "
              f"{row['updated_at']}{reason}")  # fmt: skip
    return EXIT_OK


def cmd_inbox(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    naming = None
    if args.match is not None:
        region = country_of(config.node.id).upper()
        naming = identifiers.searched(node_dir.index_secret(), args.match, region)
    with open_store(node_dir, config) as store:
        messages = store.inbox(args.after, args.kind, args.limit, naming)
    keys = node_dir.load_keys(registry, node_dir.passphrase(config)) if messages else None
    peers = node_dir.peer_directory(registry)
    items = [
        views.inbox_item(registry, m, own_id=config.node.id, own_keys=keys.encryption, peers=peers)
        for m in messages
        if keys is not None
    ]
    return print_listing(
        items, args.json,
        "No received message names that." if args.match is not None
        else "Inbox empty." if args.after == 0 else "No messages after that cursor.",
        lambda item: f"[{item['cursor']}] {item['received_at']}  {item['kind']:<12} "
                     f"from {item['sender']:<26} {item['payload_schema']:<28} "
                     f"{item['handling_code']}  {item['id']}",
    )  # fmt: skip


def cmd_quarantine(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    with open_node_store(args) as store:
        entries = store.quarantined(args.limit)
    rows = [views.quarantine_item(q) for q in entries]
    return print_listing(
        rows, args.json, "Quarantine empty.",
        lambda r: f"#{r['id']} {r['received_at']}  {r['reason']:<18} {r['size']:>8} B  "
                  f"{r['sender'] or '-':<24} {r['detail']}",
    )  # fmt: skip


def cmd_webhook_retry(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    if not args.all_failed and not args.message_id:
        raise CommandFailed("name a message id, or --all-failed")
    with open_node_store(args) as store:
        count = store.retry_adapter("webhook", None if args.all_failed else args.message_id, now())
    if count == 0 and args.all_failed:
        print("Nothing to retry: no message is webhook-failed.")
        return EXIT_OK
    if count == 0:
        raise CommandFailed(f"message {args.message_id} is not webhook-failed; nothing to retry")
    print(f"Queued {count} message(s) for the webhook again; the running node posts them.")
    return EXIT_OK


def register(sub: Subcommands) -> None:
    """Add ``xnode send``, ``status``, ``inbox``, ``quarantine`` and ``webhook ...`` to the CLI's
    subcommands."""
    p = sub.add_parser("send", help="queue a message in the outbox (the running node publishes it)")
    node_dir_arg(p)
    p.add_argument(
        "--to", required=True, help='recipient node ids, comma-separated, or "neighbours"'
    )
    message_args(p)
    p.add_argument("--procedure-override", metavar="REASON",
                   help="why this step is sent out of its procedure's order (audited)")  # fmt: skip
    p.set_defaults(handler=cmd_send)
    p = sub.add_parser("status", help="delivery state of a sent message, per recipient")
    node_dir_arg(p)
    p.add_argument("message_id")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_status)
    p = sub.add_parser("inbox", help="received messages, decrypted for display")
    node_dir_arg(p)
    p.add_argument("--kind", choices=KINDS)
    p.add_argument("--after", type=int, default=0, help="cursor: show messages after this one")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument(
        "--match",
        metavar="IDENTIFIER",
        help="only messages naming this phone number, account, handle, e-mail, web "
        "address, document, vehicle or registration number, or crossing point "
        "(prefix phone:, ref:, handle:... to ask for one kind; docs/payloads.md)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output, with payloads")
    p.set_defaults(handler=cmd_inbox)
    p = sub.add_parser("quarantine", help="refused inbound records and why")
    node_dir_arg(p)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_quarantine)
    webhook_sub = sub.add_parser("webhook", help="the webhook adapter").add_subparsers(
        dest="webhook_command", required=True, metavar="ACTION"
    )
    p = webhook_sub.add_parser(
        "retry", help="post webhook-failed messages again (after the receiver is fixed)"
    )
    node_dir_arg(p)
    p.add_argument("message_id", nargs="?", help="one message id")
    p.add_argument("--all-failed", action="store_true", help="every webhook-failed message")
    p.set_defaults(handler=cmd_webhook_retry)
