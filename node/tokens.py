"""Bearer tokens of the local API and what their scopes allow. Pure.

A token reads ``xnt_<id>_<secret>``: the id finds the stored record, the secret is compared in
constant time against the SHA-256 kept in the store (the secret is 256 random bits, so a fast
hash suffices; it is shown once, at creation, and never stored). Scopes:

* ``send:<kind>`` / ``send:*`` — submit messages of that kind and read their status;
* ``read:<kind>`` / ``read:*`` — read and acknowledge received messages of that kind;
* ``ops`` — ``/metrics`` and ``/readyz`` when ``[api] ops_token_required`` is set (a
  Prometheus scraper or a load balancer's probe: no case data);
* ``admin`` — everything, including the quarantine and ``ops``.

Deny by default: a token without a matching scope is refused (HTTP 403).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

from node.payloads import KINDS
from node.store.base import ApiToken

PREFIX = "xnt"
ACTIONS = ("send", "read")
OPS = "ops"
SENDABLE_KINDS = tuple(k for k in KINDS if k != "receipt")
_TOKEN = re.compile(rf"^{PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class TokenError(ValueError):
    """A token name or scope that cannot be used; the message says which."""


def parse_scopes(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"send:alert,read:*"`` -> validated scopes, no repeats, in the given order."""
    items = text.split(",") if isinstance(text, str) else list(text)
    scopes: list[str] = []
    for raw in items:
        scope = raw.strip()
        if not scope:
            continue
        action, _, kind = scope.partition(":")
        if scope in ("admin", OPS):
            pass
        elif action not in ACTIONS or (kind != "*" and kind not in SENDABLE_KINDS):
            raise TokenError(
                f"unknown scope {scope!r}; use admin, ops, send:<kind>, send:*, read:<kind> or"
                " read:*"
                f" with kind one of {', '.join(SENDABLE_KINDS)}"
            )
        if scope not in scopes:
            scopes.append(scope)
    if not scopes:
        raise TokenError("at least one scope is required")
    return tuple(scopes)


def new_token(name: str, scopes: tuple[str, ...], now: dt.datetime) -> tuple[ApiToken, str]:
    """A fresh token record and the secret text to show once."""
    if not _NAME.match(name):
        raise TokenError(
            f"token name {name!r}: 1-64 letters, digits, '.', '_' or '-', starting alphanumeric"
        )
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    record = ApiToken(token_id, name, parse_scopes(scopes), _digest(secret), now)
    return record, f"{PREFIX}_{token_id}_{secret}"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def split(text: str) -> tuple[str, str] | None:
    """The (id, secret) of a well-formed token, else None."""
    match = _TOKEN.match(text)
    return None if match is None else (match.group(1), match.group(2))


def secret_matches(record: ApiToken, secret: str) -> bool:
    return hmac.compare_digest(record.secret_sha256, _digest(secret))


def allows(scopes: Iterable[str], action: str, kind: str) -> bool:
    """May a token with ``scopes`` do ``action`` (send/read) on messages of ``kind``?"""
    granted = set(scopes)
    return bool(granted & {"admin", f"{action}:*", f"{action}:{kind}"})


def may_see(scopes: Iterable[str], kind: str) -> bool:
    """A sent message's status (and what answers it) is visible to who may send or read its
    kind."""
    return allows(scopes, "send", kind) or allows(scopes, "read", kind)


def allows_ops(scopes: Iterable[str]) -> bool:
    """May a token with ``scopes`` read the operational endpoints (metrics, readiness)?"""
    return bool(set(scopes) & {"admin", OPS})


def readable_kinds(scopes: Iterable[str]) -> tuple[str, ...]:
    return tuple(k for k in SENDABLE_KINDS if allows(scopes, "read", k))
