"""Records and the store interface. Implementations are synchronous; the asyncio shell runs
them on a dedicated thread so the event loop never waits on the disk."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from node.audit import AuditEntry, AuditEvent
from node.stats.facts import Fact

# Per-recipient states of an outbound message.
QUEUED, SENT, DELIVERED, REJECTED, EXPIRED = "queued", "sent", "delivered", "rejected", "expired"
OPEN_STATES = (QUEUED, SENT)
ERASED_STATE = "erased"  # a received message whose payload was erased (the metadata stays)
WITHDRAWN = "withdrawn"  # the reason of a delivery ended because the sender erased its message
FINAL_STATES = (DELIVERED, REJECTED, EXPIRED)
T = TypeVar("T")


class StoreError(Exception):
    """The store cannot do what was asked (not a transient disk problem)."""


class StoreUnavailable(StoreError):
    """The store cannot write now — the disk is failing or read-only — but may again later.

    Nothing of the failed transaction was kept; the caller keeps its input (a record is read
    again, a submission is refused with 507) and the node keeps probing until writes work.
    """


class StoreFull(StoreUnavailable):
    """The file system holding the store has no space left."""


@dataclass(frozen=True)
class OutboundMessage:
    message_id: str
    kind: str
    thread_id: str
    schema_name: str
    priority: str
    envelope: bytes
    envelope_sha256: str
    created_at: dt.datetime
    expires_at: dt.datetime
    recipients: tuple[str, ...]
    expects_receipt: bool = True
    idempotency_key: str | None = None
    # SHA-256 of the request's canonical form (node.submit.fingerprint), kept beside the key so
    # that the key reused with a different request is refused instead of answered as a retry
    request_sha256: str | None = None


@dataclass(frozen=True)
class Delivery:
    """One (message, recipient) pair due for publication."""

    message_id: str
    recipient: str
    kind: str
    thread_id: str
    envelope: bytes
    attempts: int
    expires_at: dt.datetime
    expects_receipt: bool


@dataclass(frozen=True)
class Attempt:
    """The outcome of one publication attempt, to be recorded."""

    message_id: str
    recipient: str
    published: bool
    at: dt.datetime
    next_attempt_at: dt.datetime | None
    audit: AuditEvent


@dataclass(frozen=True)
class RecipientStatus:
    recipient: str
    state: str
    attempts: int
    updated_at: dt.datetime
    last_attempt_at: dt.datetime | None
    next_attempt_at: dt.datetime | None
    reason: str | None
    detail: str | None


@dataclass(frozen=True)
class StatusEvent:
    """A sent message's final outcome for one recipient: ``delivered`` (a positive receipt),
    ``rejected`` (a negative receipt, or the recipient was revoked: reason
    ``recipient-revoked``) or ``expired``. Written in the transaction that makes the delivery
    final, so a local system told through an adapter learns of every outcome exactly as the
    store recorded it; ``seq`` orders the events and is the adapters' and the API's cursor."""

    seq: int
    message_id: str
    recipient: str
    kind: str
    thread_id: str
    status: str  # delivered | rejected | expired
    reason: str | None
    detail: str | None
    at: dt.datetime


@dataclass(frozen=True)
class InboxMessage:
    seq: int
    message_id: str
    sender: str
    kind: str
    thread_id: str
    in_reply_to: str | None
    schema_name: str
    handling_code: str
    envelope: bytes
    envelope_sha256: str
    created_at: dt.datetime
    expires_at: dt.datetime
    received_at: dt.datetime
    state: str
    recipients: tuple[str, ...] = ()  # everyone the envelope was addressed to
    thread_joined: bool = True  # False: named a thread its sender does not take part in here
    # (key id, wrapped content key): the content key re-wrapped to this node's current key once
    # the key the envelope was sealed to was destroyed (the envelope itself stays as signed)
    local_wrap: tuple[str, bytes] | None = None
    # the sender's limit (handling.retention_days after receipt): purged then at the latest
    retain_until: dt.datetime | None = None
    # the identifiers it names, as index digests (node/identifiers.py); written with the
    # message, never read back into this record
    subject_digests: tuple[bytes, ...] = ()

    @property
    def erased(self) -> bool:
        return self.state == ERASED_STATE


@dataclass(frozen=True)
class ProcedureStep:
    """One step of a thread's procedure as a node keeps it: who took it (``party``: the
    sender), in which direction, and only the codes and dates the procedure tables read
    (:func:`node.procedures.essentials`) — nothing in plain text about a person."""

    thread_id: str
    message_id: str
    party: str
    direction: str  # sent | received
    procedure: str
    schema_name: str
    kept: dict[str, Any]
    sent_at: dt.datetime
    override_reason: str | None = None


@dataclass(frozen=True)
class LegalHold:
    """A supervisor's record that data must be kept, on one message or on a whole thread:
    erasure requests are answered ``Held`` and retention does not purge it while in force."""

    hold_id: int
    reason: str  # xnode.codes.HoldReason
    note: str
    recorded_by: str
    recorded_at: dt.datetime
    message_id: str | None = None
    thread_id: str | None = None
    released_at: dt.datetime | None = None
    released_by: str | None = None

    def covers(self, message_id: str, thread_id: str) -> bool:
        return message_id == self.message_id or thread_id == self.thread_id


@dataclass(frozen=True)
class InboundResult:
    """What storing a received message found: its inbox cursor, and the other senders that
    used the same message id here (a collision operators must see; nobody is refused)."""

    seq: int
    id_also_used_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class DedupeEntry:
    """A (sender, message id) already handled, with what we answered, kept past the maximum
    message age and as long as the inbox holds the message."""

    message_id: str
    sender: str
    outcome: str  # delivered | rejected
    reason: str | None
    envelope_sha256: str
    seen_at: dt.datetime
    keep_until: dt.datetime
    answered_at: dt.datetime | None = None  # when a copy was last answered with a receipt


@dataclass(frozen=True)
class QuarantineEntry:
    """A refused record. ``raw`` is what was kept: everything for an authenticated sender within
    its quota, otherwise a prefix; ``raw_sha256`` and ``raw_length`` describe the whole."""

    received_at: dt.datetime
    reason: str
    detail: str
    raw: bytes
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    sender: str | None = None
    message_id: str | None = None
    id: int | None = None
    authenticated: bool = False
    raw_sha256: str | None = None
    raw_length: int | None = None

    @property
    def truncated(self) -> bool:
        return self.raw_length is not None and len(self.raw) < self.raw_length


@dataclass(frozen=True)
class QuarantineUsage:
    """How much quarantine holds, by whether the sender was authenticated (metrics)."""

    entries: dict[bool, int]
    raw_bytes: dict[bool, int]


@dataclass(frozen=True)
class ReceiptMatch:
    """The sent message a receipt answers: its kind and creation time (for latency), and
    whether this receipt changed its state (False for a repeated receipt)."""

    kind: str
    created_at: dt.datetime
    first: bool


@dataclass(frozen=True)
class ApiToken:
    """A bearer token of the local API. Only a hash of its secret is kept."""

    token_id: str
    name: str
    scopes: tuple[str, ...]
    secret_sha256: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None


@dataclass(frozen=True)
class ConsoleUser:
    """A person who signs in to the officer console. Only an Argon2id hash of the password is
    kept; ``kinds`` narrows what an officer handles (empty: every kind the node handles)."""

    name: str
    role: str
    password_hash: str
    created_at: dt.datetime
    language: str | None = None
    kinds: tuple[str, ...] = ()
    display_name: str = ""
    disabled_at: dt.datetime | None = None
    failed_logins: int = 0
    locked_until: dt.datetime | None = None


@dataclass(frozen=True)
class Draft:
    """A message being written in the console, sealed to the node's own encryption key (no
    plaintext at rest): ``sealed`` is opened by the console only for its owner."""

    draft_id: int
    owner: str
    kind: str
    schema_name: str
    sealed: bytes
    updated_at: dt.datetime


@dataclass(frozen=True)
class AdapterDelivery:
    """One received message on its way to a local system through an adapter (the webhook)."""

    seq: int
    message_id: str
    thread_id: str
    state: str  # pending | done | failed
    attempts: int
    next_attempt_at: dt.datetime | None
    last_error: str | None


@dataclass(frozen=True)
class Snapshot:
    """Gauges read from the store when metrics are scraped."""

    outbox_depth: dict[str, int]  # open deliveries per peer
    oldest_open: dict[str, dt.datetime]  # creation time of the oldest unreceipted, per peer
    audit_length: int
    webhook_failed: int
    quarantine: QuarantineUsage | None = None


@dataclass(frozen=True)
class Retention:
    """Cut-off times: what is older goes (DESIGN §6, retention)."""

    inbox_before: dt.datetime  # received before
    outbox_before: dt.datetime  # final before
    quarantine_before: dt.datetime  # refused before


class Store(Protocol):
    """Everything the node persists. Each method is one transaction."""

    def close(self) -> None: ...

    # outbox
    def submit(
        self,
        message: OutboundMessage,
        audit: AuditEvent | Sequence[AuditEvent],
        step: ProcedureStep | None = None,
        fact: Fact | None = None,
    ) -> str: ...
    def batch(self, writes: Sequence[Callable[[], T]]) -> list[T | Exception]: ...
    def find_by_idempotency_key(
        self, key: str, request_sha256: str | None = None
    ) -> str | None: ...
    def outbox_message(self, message_id: str) -> OutboundMessage | None: ...
    def due_deliveries(self, now: dt.datetime, limit: int) -> list[Delivery]: ...
    def record_attempt(
        self,
        message_id: str,
        recipient: str,
        *,
        published: bool,
        now: dt.datetime,
        next_attempt_at: dt.datetime | None,
        audit: AuditEvent,
    ) -> None: ...
    def record_attempts(self, attempts: Sequence[Attempt]) -> None: ...
    def apply_receipt(
        self,
        message_id: str,
        recipient: str,
        envelope_sha256: str,
        *,
        delivered: bool,
        reason: str | None,
        detail: str | None,
        now: dt.datetime,
        audit: AuditEvent,
        seen: DedupeEntry | None = None,
    ) -> ReceiptMatch | None: ...
    def retry_open_now(self, now: dt.datetime) -> int: ...
    def reject_open(
        self, recipient: str, reason: str, detail: str, now: dt.datetime
    ) -> list[tuple[str, str]]: ...
    def expire_due(self, now: dt.datetime) -> list[tuple[str, str]]: ...
    def purge(self, now: dt.datetime, retention: Retention) -> dict[str, int]: ...
    def message_status(self, message_id: str) -> list[RecipientStatus]: ...
    def status_events(
        self, after: int, limit: int, kinds: Sequence[str] | None = None
    ) -> list[StatusEvent]: ...
    def outbox_depth(self) -> dict[str, int]: ...
    def snapshot(self) -> Snapshot: ...

    # inbound
    def seen(self, sender: str, message_id: str) -> DedupeEntry | None: ...
    def seen_many(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], DedupeEntry]: ...
    def mark_answered(self, sender: str, message_id: str, at: dt.datetime) -> None: ...
    def record_inbound(
        self,
        message: InboxMessage,
        dedupe: DedupeEntry,
        audit: Sequence[AuditEvent],
        receipt: tuple[OutboundMessage, AuditEvent] | None = None,
        step: ProcedureStep | None = None,
        fact: Fact | None = None,
    ) -> InboundResult: ...
    def procedure_steps(self, thread_id: str) -> list[ProcedureStep]: ...
    def record_rejection(
        self,
        dedupe: DedupeEntry | None,
        quarantine: QuarantineEntry,
        audit: Sequence[AuditEvent],
        *,
        keep_unauthenticated: int | None = None,
    ) -> int: ...
    def quarantine_bytes(self, sender: str) -> int: ...
    def inbox(
        self,
        after: int,
        kind: str | Sequence[str] | None,
        limit: int,
        naming: Sequence[bytes] | None = None,
    ) -> list[InboxMessage]: ...
    def inbox_at(self, seq: int) -> InboxMessage | None: ...
    def inbox_message(self, message_id: str, sender: str | None = None) -> InboxMessage | None: ...
    def inbox_messages(self, message_id: str) -> list[InboxMessage]: ...
    def set_local_wraps(self, wraps: Sequence[tuple[int, str, bytes]]) -> None: ...
    def ack(self, seq: int, now: dt.datetime) -> bool: ...
    def quarantined(self, limit: int) -> list[QuarantineEntry]: ...

    def thread(self, thread_id: str) -> tuple[list[OutboundMessage], list[InboxMessage]]: ...
    def thread_participants(self, thread_id: str) -> frozenset[str]: ...
    def set_inbox_state(self, seq: int, state: str) -> None: ...

    # adapters
    def adapter_cursor(self, adapter: str) -> int: ...
    def set_adapter_cursor(
        self, adapter: str, seq: int, audit: Sequence[AuditEvent] = ()
    ) -> None: ...
    def enqueue_adapter(self, adapter: str, limit: int) -> int: ...
    def adapter_pending(self, adapter: str, limit: int) -> list[AdapterDelivery]: ...
    def record_adapter_attempt(
        self, adapter: str, seq: int, *, state: str, now: dt.datetime,
        next_attempt_at: dt.datetime | None, error: str | None, audit: Sequence[AuditEvent],
    ) -> None: ...  # fmt: skip
    def adapter_failures(self, adapter: str) -> int: ...
    def retry_adapter(self, adapter: str, message_id: str | None, now: dt.datetime) -> int: ...

    # API tokens
    def add_token(self, token: ApiToken) -> None: ...
    def token(self, token_id: str) -> ApiToken | None: ...
    def tokens(self) -> list[ApiToken]: ...
    def revoke_token(self, name_or_id: str, now: dt.datetime) -> ApiToken | None: ...

    # audit
    def append_audit(self, events: Sequence[AuditEvent]) -> None: ...
    def probe_write(self) -> None: ...
    def audit_entries(self, message_id: str | None = None) -> list[AuditEntry]: ...
    def audit_head(self, at: int | None = None) -> tuple[int, str | None]: ...
