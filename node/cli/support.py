"""Small helpers every command module of the CLI shares: exit statuses, the one-line failure,
the clock, JSON output, reading a file, asking for confirmation, the ``--dir`` option, the
node's store and its audit log.

Kept apart from the command groups so that each group module imports only this and the node,
never another group."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeAlias

from node import audit
from node.codec import SchemaRegistry, format_timestamp
from node.config import Config
from node.nodedir import NodeDir
from node.service import open_store
from node.store.sqlite import SqliteStore
from node.trust import SignedDescriptor

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

# What a command runs: the parsed command line and the schemas; returns the exit status.
Handler = Callable[[argparse.Namespace, SchemaRegistry], int]
# What ``add_subparsers`` returns: each command group's ``register`` adds its commands to it.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class CommandFailed(Exception):
    """A command could not do what was asked; the message is the one line shown to the user."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def print_listing(
    rows: list[dict[str, Any]], as_json: bool, empty: str, line: Callable[[dict[str, Any]], str]
) -> int:
    """What every listing command prints: ``rows`` as JSON (``--json``), or one line per row,
    or ``empty`` (what to do next) when there are none."""
    if as_json:
        print_json(rows)
        return EXIT_OK
    if not rows:
        print(empty)
    for row in rows:
        print(line(row))
    return EXIT_OK


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CommandFailed(f"{path}: cannot read ({exc.strerror})") from exc


def read_json_file(path: Path) -> Any:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise CommandFailed(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandFailed(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc


def confirm(question: str, assume_yes: bool) -> None:
    if assume_yes:
        return
    if not sys.stdin.isatty():
        raise CommandFailed("not confirmed: compare the fingerprint, then run again with --yes")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise CommandFailed("not confirmed; nothing changed")


def node_dir_arg(p: argparse.ArgumentParser) -> None:
    """The ``--dir`` option of every command that works on one node."""
    p.add_argument("--dir", type=Path, required=True, help="node directory")


def open_node_store(args: argparse.Namespace) -> SqliteStore:
    """The store of the node in ``args.dir``; use as a context manager, which closes it."""
    node_dir = NodeDir(args.dir)
    return open_store(node_dir, node_dir.load_config())


def audit_change(
    node_dir: NodeDir, config: Config, event: str, peer: str | None, detail: dict[str, Any]
) -> None:
    """Record a trust or key change in the node's audit log."""
    with open_store(node_dir, config) as store:
        store.append_audit([audit.AuditEvent(event, now(), peer=peer, detail=detail)])


def descriptor_summary(signed: SignedDescriptor) -> dict[str, Any]:
    """A descriptor as ``keys show`` and ``peers list`` print it."""
    d = signed.descriptor
    return {
        "node_id": d.node_id,
        "display_name": d.display_name,
        "country": d.country,
        "roles": list(d.roles),
        "descriptor_version": d.descriptor_version,
        "identity_key_id": d.identity_key_id,
        "fingerprint": d.fingerprint,
        "encryption_keys": [
            {
                "key_id": k.key_id,
                "valid_from": format_timestamp(k.valid_from),
                "valid_until": format_timestamp(k.valid_until),
            }
            for k in d.encryption_keys
        ],
    }
