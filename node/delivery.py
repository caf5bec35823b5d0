"""Delivery decisions (DESIGN §6), free of I/O: when to re-publish, and what to do with bytes
read from an inbox topic.

The receive path is one pure function, :func:`classify`, that turns raw bytes into exactly one
:class:`Outcome`. The shell stores the outcome, answers with a receipt where one is due, and
only then commits the Kafka offset — so a crash at any point re-reads the record and reaches
the same decision, and dedupe keeps the local system from seeing it twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from node import codes, envelope
from node.codec import (
    SchemaError,
    SchemaInfo,
    SchemaRegistry,
    history_versions,
    released_info,
    schemas_directory,
)
from node.crypto.keys import EncryptionKey
from node.envelope import EnvelopeError, Header, ParsedEnvelope
from node.policy import Policy
from node.store.base import DedupeEntry
from node.trust import PeerDirectory

RECEIPT_SCHEMA = "xnode.payload.Receipt"
# Reasons that may change with time or an upgrade: not remembered, so a re-publication is
# judged afresh. Everything else an authenticated sender is told is final.
TRANSIENT_REASONS = frozenset({"clock-skew", "schema-unsupported"})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter for re-publishing until a receipt arrives."""

    initial: dt.timedelta = dt.timedelta(seconds=5)
    factor: float = 2.0
    maximum: dt.timedelta = dt.timedelta(minutes=10)
    jitter: float = 0.2

    def delay(self, attempts: int, rand: float) -> dt.timedelta:
        """Wait after the ``attempts``-th attempt; ``rand`` in [0, 1) spreads retries out."""
        # The exponent is bounded: a peer silent for weeks reaches attempt counts whose power
        # overflows a float, and the wait is at its maximum long before that.
        base = self.initial.total_seconds() * self.factor ** min(max(attempts - 1, 0), 64)
        base = min(base, self.maximum.total_seconds())
        spread = 1 + self.jitter * (2 * rand - 1)
        return dt.timedelta(seconds=base * spread)

    def next_attempt(
        self, attempts: int, now: dt.datetime, rand: Callable[[], float] = random.random
    ) -> dt.datetime:
        return now + self.delay(attempts, rand())


# -- receive ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """A new, verified, decrypted and valid message for this node."""

    opened: envelope.Opened
    raw: bytes


@dataclass(frozen=True)
class Duplicate:
    """A byte-identical copy of an envelope seen before: answer as before, hand nothing to the
    local side again, and keep it out of quarantine (re-publication is normal after a broker
    loss; quarantine is for what an operator must look at)."""

    header: Header
    previous: DedupeEntry
    envelope_sha256: str


@dataclass(frozen=True)
class ReceiptReceived:
    """A recipient's answer to one of our messages."""

    header: Header
    receipt: Mapping[str, Any]


@dataclass(frozen=True)
class Rejected:
    """Refused. ``header`` is set when the sender is authenticated: it gets a negative receipt
    (unless the refused message was itself a receipt)."""

    reason: str
    detail: str
    header: Header | None
    envelope_sha256: str
    remember: bool

    @property
    def answer_sender(self) -> bool:
        return self.header is not None and self.header.kind != "receipt"


Outcome = Accepted | Duplicate | ReceiptReceived | Rejected


@dataclass(frozen=True)
class ReceiveContext:
    registry: SchemaRegistry
    own_id: str
    own_keys: Mapping[str, EncryptionKey]
    peers: PeerDirectory
    max_skew: dt.timedelta
    max_bytes: int
    own_roles: tuple[str, ...] = ()
    policy: Policy = field(default_factory=Policy.from_config)
    max_lifetime: dt.timedelta = envelope.DEFAULT_MAX_LIFETIME


def classify(
    ctx: ReceiveContext,
    raw: bytes,
    now: dt.datetime,
    seen: Callable[[str, str], DedupeEntry | None],
    parsed: ParsedEnvelope | EnvelopeError | None = None,
) -> Outcome:
    """Verify -> dedupe -> policy -> age -> decrypt -> decode -> validate; first failure wins.

    ``seen(sender, message_id)`` looks up what was decided before; ``parsed`` is what
    :func:`parse_for_lookup` made of ``raw`` already, if anything. A message is identified by
    its authenticated sender *and* its id: another member using the same id is a different
    message, so it can neither suppress this one nor be mistaken for a replay of it."""
    digest = hashlib.sha256(raw).hexdigest()
    try:
        if parsed is None:
            parsed = envelope.parse(ctx.registry, raw, ctx.max_bytes)
        elif isinstance(parsed, EnvelopeError):
            raise parsed
        claimed = parsed.header
        previous = seen(claimed.sender, claimed.message_id)
        if previous is not None and _verified_before(ctx, claimed.sender, previous, digest):
            return Duplicate(claimed, previous, digest)
        envelope.verify_sender(parsed, ctx.peers, now=now)
    except EnvelopeError as exc:
        return Rejected(exc.reason, exc.detail, None, digest, remember=False)
    header = parsed.header
    if previous is not None:
        if previous.envelope_sha256 != digest:
            # The same sender reusing one of its ids for other content: an operator must look.
            return Rejected(
                "replay", "message id already used for a different envelope", header, digest,
                remember=False,
            )  # fmt: skip
        # A byte-identical copy (a re-publication, a broker replay): answered as before, counted.
        return Duplicate(header, previous, digest)
    sender_roles = ctx.peers.peers[header.sender].roles
    if not ctx.policy.allows(header.kind, sender_roles, ctx.own_roles):
        detail = f"this node's policy does not accept {header.kind} from role(s) " + ", ".join(
            sender_roles
        )
        return Rejected("policy-denied", detail, header, digest, remember=True)
    try:
        envelope.check_age(header, now, ctx.max_skew, ctx.max_lifetime)
        plaintext = envelope.decrypt(parsed, ctx.own_id, ctx.own_keys)
        schema, payload = envelope.decode_payload(ctx.registry, header, plaintext)
    except EnvelopeError as exc:
        return Rejected(exc.reason, exc.detail, header, digest, exc.reason not in TRANSIENT_REASONS)
    if header.kind == "receipt":
        return ReceiptReceived(header, payload)
    opened = envelope.Opened(header, ctx.peers.peers[header.sender], schema, payload, parsed.sha256)
    return Accepted(opened, raw)


def _verified_before(ctx: ReceiveContext, sender: str, previous: DedupeEntry, digest: str) -> bool:
    """Whether ``raw`` is byte for byte an envelope this node verified before (its SHA-256 is
    the one remembered for the sender and id it names), from a sender still trusted: then it is
    a copy, and verifying its signature again would only cost time. A sender's backlog after an
    outage holds every message several times over (each re-publication), and a replay flood
    is made of nothing else, so copies must be cheap. Nothing is trusted on the way: a
    different byte changes the hash, and then the envelope is verified like any other."""
    return (
        previous.envelope_sha256 == digest
        and sender in ctx.peers.peers
        and sender not in ctx.peers.revoked
    )


def parse_for_lookup(
    ctx: ReceiveContext, raw: bytes
) -> tuple[ParsedEnvelope | EnvelopeError, tuple[str, str] | None]:
    """Parse ``raw`` before :func:`classify` so that what was decided before about the (sender,
    id) it *claims* can be looked up for a whole batch at once. Nothing is trusted yet: the
    parse goes to :func:`classify`, which verifies before it uses the answer."""
    try:
        parsed = envelope.parse(ctx.registry, raw, ctx.max_bytes)
    except EnvelopeError as exc:
        return exc, None
    return parsed, (parsed.header.sender, parsed.header.message_id)


def keep_until(
    header: Header, now: dt.datetime, max_lifetime: dt.timedelta, margin: dt.timedelta
) -> dt.datetime:
    """How long a (sender, id) decision is remembered: past the envelope's expiry (after which
    a copy is refused as expired anyway), bounded by the maximum lifetime from now so that a
    hostile expiry near year 9999 cannot overflow the date arithmetic."""
    return min(header.expires_at, now + max_lifetime) + margin


def answer_duplicate(
    answered_at: dt.datetime | None, now: dt.datetime, interval: dt.timedelta
) -> bool:
    """Whether a copy of an envelope already decided gets its receipt again. The first copy
    always does (``answered_at`` is None until then): after a broker loses the receipts it held,
    each sender re-publishes once and hears back at once. Later copies are answered at most once
    per ``interval``, so replaying one valid envelope a million times costs one receipt a
    minute."""
    return answered_at is None or now - answered_at >= interval or now < answered_at


def single_answer_writer(registry: SchemaRegistry) -> SchemaInfo | None:
    """The Receipt version to write a receipt of *one* answer with: the last release before
    batching (without ``also``), which every node in a region reads, even one not yet upgraded
    to batched receipts. A receipt of several answers needs the current version. So a region
    upgrading node by node sets ``receipt_batch = 1`` and nobody misses a receipt. None when the
    registry holds no such release (then the current version is written)."""
    for document in reversed(history_versions(schemas_directory(), RECEIPT_SCHEMA)):
        if all(f["name"] != "also" for f in document["fields"]):
            try:
                return released_info(registry, document)
            except SchemaError:
                return None
    return None


@dataclass(frozen=True)
class Owed:
    """One answer this node owes an authenticated sender: delivered (``reason`` None) or
    rejected. Answers owed to one sender within a batch travel in one receipt."""

    header: Header
    envelope_sha256: str
    reason: str | None = None
    detail: str | None = None


def receipt_groups(owed: Sequence[Owed], size: int) -> list[list[Owed]]:
    """The answers owed, one group per receipt: per sender, in the order owed, at most ``size``
    to a receipt (``size`` 1 is one receipt per message, as every node before batching did)."""
    by_sender: dict[str, list[Owed]] = {}
    for item in owed:
        by_sender.setdefault(item.header.sender, []).append(item)
    step = max(size, 1)
    return [items[i : i + step] for items in by_sender.values() for i in range(0, len(items), step)]


def batch_receipt_payload(group: Sequence[Owed], now: dt.datetime) -> dict[str, Any]:
    """The Receipt record answering every envelope in ``group`` (one sender): the first in the
    record's own fields, the others in ``also``."""
    first, *rest = group
    payload = receipt_payload(
        first.header.message_id, first.envelope_sha256, now, first.reason, first.detail
    )
    payload["also"] = [_answer(o.header.message_id, o.envelope_sha256, o.reason, o.detail)
                       for o in rest]  # fmt: skip
    return payload


def receipt_answers(receipt: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every answer a Receipt carries, the first one first; a receipt written before batching
    (no ``also``) carries one."""
    return [receipt, *(receipt.get("also") or ())]


def _answer(
    message_id: str, envelope_sha256: str, reason: str | None, detail: str | None
) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "envelope_sha256": envelope_sha256,
        "status": "delivered" if reason is None else "rejected",
        "reason": None if reason is None else reason_symbol(reason),
        "detail": None if detail is None else detail[:500],
    }


def receipt_payload(
    message_id: str,
    envelope_sha256: str,
    now: dt.datetime,
    reason: str | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    """The Receipt record answering one envelope (delivered when ``reason`` is None)."""
    return {
        "handling": {
            "code": "H0",
            "conditions": None,
            "legal_basis": "xnode delivery receipt",
            "legal_instrument": None,
            "language": "en",
            "retention_days": 365,
            "sender_reference": None,
        },
        **_answer(message_id, envelope_sha256, reason, detail),
        "received_at": now,
        "also": [],
    }


def reason_symbol(reason: str) -> str:
    """``bad-signature`` -> ``bad_signature``: Avro symbols cannot hold '-'. Unknown -> unknown."""
    symbol = reason.replace("-", "_")
    return symbol if symbol in codes.get("receipt_reason").codes else "unknown"


def reason_code(symbol: str | None) -> str | None:
    return None if symbol is None else symbol.replace("_", "-")
