"""Console accounts: roles and what each may do, password hashing, lock-out.

Pure apart from Argon2id itself (CPU only): the shell loads and stores :class:`ConsoleUser`
records and asks these functions what to do.

Roles (README: Officer console):

- ``officer`` — compose, inbox, threads and sent messages of the kinds his agency handles
  (the node's policy), narrowed further by the user's own ``kinds`` if set;
- ``supervisor`` — what an officer does for every kind the node handles, and the audit log;
- ``operator`` — node health, peers, quarantine, webhook failures, audit verification; no
  case data;
- ``auditor`` — the audit log and its verification only.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from node.policy import Policy
from node.store.base import ConsoleUser
from node.tokens import SENDABLE_KINDS

ROLES = ("officer", "supervisor", "operator", "auditor")
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # Argon2 hashes anything; a cap keeps one request from costing seconds


class Permission(enum.Enum):
    CASES = "cases"  # inbox, compose, threads, sent, drafts
    AUDIT = "audit"  # read and verify the audit chain
    OPERATE = "operate"  # health, peers, quarantine, webhook failures


GRANTS: dict[str, frozenset[Permission]] = {
    "officer": frozenset({Permission.CASES}),
    "supervisor": frozenset({Permission.CASES, Permission.AUDIT}),
    "operator": frozenset({Permission.OPERATE, Permission.AUDIT}),
    "auditor": frozenset({Permission.AUDIT}),
}


class AccountError(ValueError):
    """A user name, role, kind or password that cannot be used; the message says why."""


def may(role: str, permission: Permission) -> bool:
    """Deny by default: an unknown role may do nothing."""
    return permission in GRANTS.get(role, frozenset())


def handled_kinds(policy: Policy, own_roles: Sequence[str]) -> tuple[str, ...]:
    """The kinds this node's policy lets it send or receive at all (an agency's remit). Not
    statistics: releases are made by ``xnode stats send`` or the API from the node's own counts,
    never composed by hand (docs/statistics.md)."""
    own = set(own_roles)
    return tuple(
        kind
        for kind in SENDABLE_KINDS
        if kind != "statistics"
        and any(
            not rule.senders or not rule.recipients or own & (rule.senders | rule.recipients)
            for rule in policy.rules.get(kind, ())
        )
    )


def user_kinds(user: ConsoleUser, node_kinds: Sequence[str]) -> tuple[str, ...]:
    """What ``user`` may see and send: none without the cases permission; a supervisor every
    kind the node handles; an officer those narrowed by his own list, if he has one."""
    if not may(user.role, Permission.CASES):
        return ()
    if user.role == "supervisor" or not user.kinds:
        return tuple(node_kinds)
    return tuple(k for k in node_kinds if k in user.kinds)


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise AccountError(
            f"user name {name!r}: 2 to 63 characters, lower-case letters, digits, '.', '_' or"
            " '-', starting with a letter or digit"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"role {role!r}: one of {', '.join(ROLES)}")
    return role


def check_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    result = tuple(k.strip() for k in kinds if k.strip())
    unknown = [k for k in result if k not in SENDABLE_KINDS]
    if unknown:
        raise AccountError(f"unknown kind {unknown[0]!r}; kinds: {', '.join(SENDABLE_KINDS)}")
    return result


def check_password(password: str, name: str) -> str:
    """Length is what matters (NIST SP 800-63B): at least 12 characters, not the user name."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password must have at most {MAX_PASSWORD} characters")
    if password.strip().lower() == name.lower():
        raise AccountError("the password must not be the user name")
    return password


class Passwords:
    """Argon2id with argon2-cffi's defaults (RFC 9106 low-memory profile)."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        # verified against when the user does not exist, so that an unknown name costs the
        # same time as a wrong password and does not reveal which names exist
        self._dummy = self._hasher.hash("not a password of anyone")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        if len(password) > MAX_PASSWORD:
            return False
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


@dataclass(frozen=True)
class LoginDecision:
    """What a sign-in attempt leads to: ``ok``, and the user's new lock-out state."""

    ok: bool
    reason: str  # signed-in | wrong-password | locked | disabled | unknown-user
    failed_logins: int
    locked_until: dt.datetime | None

    @property
    def just_locked(self) -> bool:
        return self.reason == "wrong-password" and self.locked_until is not None


def decide_login(
    user: ConsoleUser | None,
    password_ok: bool,
    now: dt.datetime,
    max_failures: int,
    lockout: dt.timedelta,
) -> LoginDecision:
    """A locked or disabled account is refused even with the right password (so guessing
    goes on costing nothing but time); the ``max_failures``-th wrong password in a row locks
    the account for ``lockout``; a success clears the count."""
    if user is None:
        return LoginDecision(False, "unknown-user", 0, None)
    if user.disabled_at is not None:
        return LoginDecision(False, "disabled", user.failed_logins, user.locked_until)
    if user.locked_until is not None and now < user.locked_until:
        return LoginDecision(False, "locked", user.failed_logins, user.locked_until)
    if password_ok:
        return LoginDecision(True, "signed-in", 0, None)
    failures = user.failed_logins + 1
    if user.locked_until is not None:  # a lock that has run out starts a fresh count
        failures = 1
    locked = now + lockout if failures >= max_failures else None
    return LoginDecision(False, "wrong-password", failures, locked)
