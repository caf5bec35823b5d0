"""What ``xnode send`` and ``xnode envelope seal`` share: the message options, and turning them
into a sealed message with the node's keys (the same :func:`node.submit.prepare` as the API)."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from node import envelope, submit
from node.audit import AuditEvent
from node.cli.support import now, read_json_file
from node.codec import SchemaRegistry
from node.config import Config
from node.nodedir import NodeDir
from node.payloads import KINDS
from node.store.base import OutboundMessage

MAX_TTL_DAYS = 3650


def submission(args: argparse.Namespace, registry: SchemaRegistry, to: list[str] | str) -> Any:
    """Validate and seal ``args.input`` for ``to`` with the node in ``args.dir``."""
    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    request = submit.Request(
        kind=args.kind,
        to=to,
        payload=read_json_file(args.input),
        schema=args.schema,
        thread_id=args.thread,
        in_reply_to=args.reply_to,
        priority=args.priority,
        ttl=dt.timedelta(days=args.ttl_days) if args.ttl_days is not None else None,
        procedure_override=getattr(args, "procedure_override", None),
    )
    return node_dir, config, request, seal_request(node_dir, config, registry, request)


def seal_request(
    node_dir: NodeDir, config: Config, registry: SchemaRegistry, request: submit.Request
) -> tuple[OutboundMessage, AuditEvent]:
    """Check the federation and the recipients, then unlock the keys and seal ``request``."""
    peers = {n: s.descriptor for n, s in node_dir.peers(registry).items()}
    revoked = node_dir.revocations()
    submit.check_federation(node_dir.trust_list(registry), now(),
                            dt.timedelta(days=config.federation.grace_days))  # fmt: skip
    submit.resolve_recipients(request.to, config, peers, revoked)  # before the passphrase
    keys = node_dir.load_keys(registry, node_dir.passphrase(config))
    return submit.prepare(
        registry, request, config=config, identity=keys.identity, peers=peers, now=now(),
        revoked=revoked,
    )  # fmt: skip


def ttl_days(text: str) -> int:
    """A whole number of days from 1 to :data:`MAX_TTL_DAYS`. 0 used to mean "the default" and
    a huge value overflowed the date arithmetic; both are command-line mistakes now."""
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of days, got {text!r}") from None
    if not 1 <= days <= MAX_TTL_DAYS:
        raise argparse.ArgumentTypeError(
            f"must be from 1 to {MAX_TTL_DAYS} days (ten years), got {days}; "
            "leave it out for the default from node.toml"
        )
    return days


def message_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", required=True, choices=[k for k in KINDS if k != "receipt"])
    p.add_argument("--in", dest="input", type=Path, required=True, help="payload JSON file")
    p.add_argument(
        "--schema",
        help="payload record, e.g. MlaResponse (default: the kind's main record; "
        "see xnode schemas list)",
    )
    p.add_argument("--thread", help="thread (case) id; default: a new thread")
    p.add_argument("--reply-to", help="message id this answers")
    p.add_argument("--priority", default="normal", choices=envelope.PRIORITIES)
    p.add_argument(
        "--ttl-days",
        type=ttl_days,
        help="days until expiry, at most envelope.max_lifetime_days (default: envelope."
        "default_ttl_days from node.toml)",
    )
