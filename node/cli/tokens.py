"""``xnode token``: bearer tokens of the local HTTP API (only their hashes are kept)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from node import audit, tokens
from node.cli.support import (
    EXIT_OK,
    CommandFailed,
    Subcommands,
    node_dir_arg,
    now,
    open_node_store,
    print_listing,
)
from node.codec import SchemaRegistry, format_timestamp


def cmd_token_create(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    with open_node_store(args) as store:
        record, secret = tokens.new_token(args.name, tokens.parse_scopes(args.scopes), now())
        store.add_token(record)
        detail = {"token_id": record.token_id, "name": record.name, "scopes": list(record.scopes)}
        store.append_audit([audit.AuditEvent("token-created", now(), detail=detail)])
    print(secret)
    print(
        f"Token {record.name} ({record.token_id}) with scopes {' '.join(record.scopes)}. "
        "This is the only time it is shown; only its hash is kept.",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_token_list(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    with open_node_store(args) as store:
        records = store.tokens()
    rows: list[dict[str, Any]] = [
        {
            "id": t.token_id,
            "name": t.name,
            "scopes": list(t.scopes),
            "created_at": format_timestamp(t.created_at),
            "revoked_at": format_timestamp(t.revoked_at) if t.revoked_at else None,
        }
        for t in records
    ]
    return print_listing(
        rows, args.json,
        "No tokens. Create one with: xnode token create --dir DIR --name NAME --scopes S",
        lambda r: f"{r['id']}  {r['name']:<24} {' '.join(r['scopes']):<40} "
                  + (f"revoked {r['revoked_at']}" if r["revoked_at"] else "active"),
    )  # fmt: skip


def cmd_token_revoke(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    with open_node_store(args) as store:
        record = store.revoke_token(args.token, now())
        if record is not None:
            store.append_audit([audit.AuditEvent("token-revoked", now(), detail={
                "token_id": record.token_id, "name": record.name})])  # fmt: skip
    if record is None:
        raise CommandFailed(f"no token named or with id {args.token!r}")
    print(f"Revoked token {record.name} ({record.token_id}).")
    return EXIT_OK


def register(sub: Subcommands) -> None:
    """Add ``xnode token ...`` to the CLI's subcommands."""
    token_sub = sub.add_parser("token", help="bearer tokens of the local HTTP API").add_subparsers(
        dest="token_command", required=True, metavar="ACTION"
    )
    p = token_sub.add_parser("create", help="create a token; prints it once")
    node_dir_arg(p)
    p.add_argument("--name", required=True, help="who uses it, e.g. case-system")
    p.add_argument(
        "--scopes",
        required=True,
        help="comma-separated: send:<kind>, send:*, read:<kind>, read:*, ops (/metrics and /readyz"
        " when [api] ops_token_required), admin",
    )
    p.set_defaults(handler=cmd_token_create)
    p = token_sub.add_parser("list", help="tokens with their scopes (never the secrets)")
    node_dir_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_token_list)
    p = token_sub.add_parser("revoke", help="revoke a token by name or id; effective at once")
    node_dir_arg(p)
    p.add_argument("token", help="token name or id")
    p.set_defaults(handler=cmd_token_revoke)
