"""``xnode users``: accounts of the officer console (docs/console.md). Only Argon2id hashes of
the passwords are kept; every change enters the audit chain."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from node.adapters.console import users
from node.adapters.console.accounts import ROLES, AccountError
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
from node.tokens import SENDABLE_KINDS


def _password(args: argparse.Namespace, name: str) -> str:
    """From standard input (``--password-stdin``, first line) or asked twice at the terminal."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise CommandFailed("no terminal to ask for the password; use --password-stdin")
    first = getpass.getpass(f"New password for {name}: ")
    if getpass.getpass("The same again: ") != first:
        raise CommandFailed("the two passwords differ; nothing changed")
    return first


def cmd_users_add(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    password = _password(args, args.name)
    try:
        with open_node_store(args) as store:
            user = users.add_user(
                store, args.name, args.role, password, now(),
                kinds=args.kinds.split(",") if args.kinds else (), language=args.language,
                display_name=args.display_name or "",
            )  # fmt: skip
    except AccountError as exc:
        raise CommandFailed(str(exc)) from exc
    kinds = ", ".join(user.kinds) or "every kind the node handles"
    print(f"Added console user {user.name} ({user.role}; {kinds}).")
    return EXIT_OK


def cmd_users_reset(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    password = _password(args, args.name)
    try:
        with open_node_store(args) as store:
            users.reset_password(store, args.name, password, now())
    except AccountError as exc:
        raise CommandFailed(str(exc)) from exc
    print(f"New password set for {args.name}; any lock-out is lifted and open sessions end.")
    return EXIT_OK


def _set_disabled(args: argparse.Namespace, enable: bool) -> int:
    try:
        with open_node_store(args) as store:
            users.disable_user(store, args.name, now(), enable=enable)
    except AccountError as exc:
        raise CommandFailed(str(exc)) from exc
    print(f"{'Enabled' if enable else 'Disabled'} console user {args.name}.")
    return EXIT_OK


def cmd_users_disable(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    return _set_disabled(args, enable=False)


def cmd_users_enable(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    return _set_disabled(args, enable=True)


def cmd_users_list(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    with open_node_store(args) as store:
        records = store.console_users()
    moment = now()
    rows: list[dict[str, Any]] = []
    for u in records:
        if u.disabled_at is not None:
            state = "disabled"
        elif u.locked_until is not None and u.locked_until > moment:
            state = f"locked until {format_timestamp(u.locked_until)}"
        else:
            state = "active"
        rows.append({"name": u.name, "role": u.role, "display_name": u.display_name,
                     "kinds": list(u.kinds), "language": u.language, "state": state,
                     "created_at": format_timestamp(u.created_at)})  # fmt: skip
    return print_listing(
        rows, args.json,
        "No console users. Add one with: xnode users add --dir DIR NAME --role ROLE",
        lambda r: f"{r['name']:<20} {r['role']:<11} {','.join(r['kinds']) or '*':<28} "
                  f"{r['state']}  {r['display_name']}",
    )  # fmt: skip


def register(sub: Subcommands) -> None:
    """Add ``xnode users ...`` to the CLI's subcommands."""
    users_sub = sub.add_parser("users", help="accounts of the officer console").add_subparsers(
        dest="users_command", required=True, metavar="ACTION"
    )

    def password_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--password-stdin", action="store_true",
                       help="read the password from the first line of standard input")  # fmt: skip

    p = users_sub.add_parser("add", help="create a console account (asks for its password)")
    node_dir_arg(p)
    p.add_argument("name", help="user name: lower-case letters, digits, '.', '_' or '-'")
    p.add_argument("--role", required=True, choices=ROLES, help="what the person may do")
    p.add_argument("--kinds", help=f"officers: only these kinds ({','.join(SENDABLE_KINDS)});"
                   " default: every kind the node's policy handles")  # fmt: skip
    p.add_argument("--name", dest="display_name", help="the person's full name, for display")
    p.add_argument("--language", choices=("en", "fr", "pt", "sw", "ar"),
                   help="interface language (default: the browser's)")  # fmt: skip
    password_arg(p)
    p.set_defaults(handler=cmd_users_add)
    p = users_sub.add_parser("reset", help="set a new password; lifts a lock-out")
    node_dir_arg(p)
    p.add_argument("name")
    password_arg(p)
    p.set_defaults(handler=cmd_users_reset)
    p = users_sub.add_parser("disable", help="refuse the account's sign-in; ends its sessions")
    node_dir_arg(p)
    p.add_argument("name")
    p.set_defaults(handler=cmd_users_disable)
    p = users_sub.add_parser("enable", help="allow a disabled account again")
    node_dir_arg(p)
    p.add_argument("name")
    p.set_defaults(handler=cmd_users_enable)
    p = users_sub.add_parser("list", help="console accounts, roles and states (never passwords)")
    node_dir_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_users_list)
