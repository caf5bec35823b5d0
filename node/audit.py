"""The audit log: an append-only, hash-chained record of what a node did (DESIGN §6).

Each entry's hash covers the previous entry's hash and the entry itself, so deleting, editing or
reordering any entry breaks every later link. Entries carry metadata and content hashes only —
never payload plaintext, tokens or key material — so the log can be shown to an auditor.

A valid chain cannot show entries cut off its end; signed checkpoints kept outside the
database (:mod:`node.checkpoint`, docs/audit.md) do.

Pure: building, hashing and verifying entries. The store persists them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64

EVENTS = (
    "submitted",
    "published",
    "publish-failed",
    "received",
    "duplicate",
    "receipt-sent",
    "receipted",
    "rejected",
    "expired",
    "receipt-after-expiry",
    "receipt-not-sealed",
    "id-collision",
    "thread-held-apart",
    "quarantine-evicted",
    "quarantined",
    "peer-added",
    "peer-updated",
    "peer-removed",
    "peer-revoked",
    "peer-unrevoked",
    "trust-list-applied",
    "trust-list-refused",
    "descriptor-refused",
    "key-changed",
    "key-rotation-requested",
    "key-destroyed",
    "messages-rewrapped",
    "purged",
    "acked",
    "webhook-delivered",
    "webhook-failed",
    "webhook-retry",
    "token-created",
    "token-revoked",
    # the officer console: who signed in, and every action a person took there
    "console-login",
    "console-login-failed",
    "console-locked",
    "console-logout",
    "console-action",
    "user-added",
    "user-changed",
    # data protection (docs/data-protection.md): erasure asked by a message's sender, legal holds
    "erased",
    "erasure-held",
    "erasure-refused",
    "erasure-failed",
    "hold-recorded",
    "hold-released",
    "forwarded",
    "forward-refused",
    "forward-decided",
    # procedures (docs/procedures.md)
    "procedure-override",
    "procedure-out-of-order",
    "overdue",
    # statistics (docs/statistics.md): local case records imported, a release received (a
    # release replacing an earlier one for the same period names it: both stay here)
    "cases-imported",
    "statistics-received",
)


@dataclass(frozen=True)
class AuditEvent:
    """What happened, before it has a place in the chain."""

    event: str
    at: dt.datetime
    message_id: str | None = None
    peer: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"unknown audit event {self.event!r}")


@dataclass(frozen=True)
class AuditEntry:
    """An event in the chain."""

    seq: int
    event: AuditEvent
    prev_hash: str
    hash: str


def canonical(seq: int, event: AuditEvent) -> bytes:
    """The bytes an entry's hash covers: sorted-key JSON, UTC microseconds, no whitespace."""
    body = {
        "seq": seq,
        "event": event.event,
        "at": event.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "message_id": event.message_id,
        "peer": event.peer,
        "detail": dict(event.detail),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def link(seq: int, event: AuditEvent, prev_hash: str) -> AuditEntry:
    digest = hashlib.sha256(prev_hash.encode("ascii") + canonical(seq, event)).hexdigest()
    return AuditEntry(seq, event, prev_hash, digest)


@dataclass(frozen=True)
class ChainReport:
    length: int
    broken_at: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify(entries: Iterable[AuditEntry]) -> ChainReport:
    """Check every link; report the first broken one."""
    prev, expected_seq, count = GENESIS, 1, 0
    for entry in entries:
        count += 1
        if entry.seq != expected_seq:
            return ChainReport(
                count, entry.seq, f"entry {expected_seq} is missing (found {entry.seq})"
            )
        if entry.prev_hash != prev:
            return ChainReport(count, entry.seq, "does not link to the previous entry")
        if link(entry.seq, entry.event, prev).hash != entry.hash:
            return ChainReport(count, entry.seq, "content does not match its hash (altered)")
        prev, expected_seq = entry.hash, expected_seq + 1
    return ChainReport(count)
