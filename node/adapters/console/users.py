"""Managing console accounts on a node's store: what ``xnode users`` does, callable from
tests and the demo too. Synchronous (the CLI and the store thread call it)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from node.adapters.console.accounts import (
    AccountError,
    Passwords,
    check_kinds,
    check_name,
    check_password,
    check_role,
)
from node.audit import AuditEvent
from node.store.base import ConsoleUser
from node.store.sqlite import SqliteStore


def add_user(
    store: SqliteStore,
    name: str,
    role: str,
    password: str,
    now: dt.datetime,
    *,
    kinds: Sequence[str] = (),
    language: str | None = None,
    display_name: str = "",
    passwords: Passwords | None = None,
) -> ConsoleUser:
    name = check_name(name)
    user = ConsoleUser(
        name=name,
        role=check_role(role),
        password_hash=(passwords or Passwords()).hash(check_password(password, name)),
        created_at=now,
        language=language,
        kinds=check_kinds(kinds),
        display_name=display_name,
    )
    event = AuditEvent("user-added", now, detail={"user": name, "role": role,
                                                   "kinds": list(user.kinds)})  # fmt: skip
    store.add_console_user(user, event)
    return user


def disable_user(store: SqliteStore, name: str, now: dt.datetime, enable: bool = False) -> None:
    change = "enabled" if enable else "disabled"
    event = AuditEvent("user-changed", now, detail={"user": name, "change": change})
    if store.update_console_user(name, [event], disabled_at=None if enable else now) is None:
        raise AccountError(f"no console user named {name!r}")


def reset_password(
    store: SqliteStore, name: str, password: str, now: dt.datetime,
    passwords: Passwords | None = None,
) -> None:  # fmt: skip
    """A new password; also lifts a lock-out (what an operator is asked to do)."""
    event = AuditEvent("user-changed", now, detail={"user": name, "change": "password-reset"})
    hashed = (passwords or Passwords()).hash(check_password(password, name))
    changed = store.update_console_user(
        name, [event], password_hash=hashed, failed_logins=0, locked_until=None
    )
    if changed is None:
        raise AccountError(f"no console user named {name!r}")
