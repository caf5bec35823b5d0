"""Storing what a batch of inbound records decided, in one store transaction (group commit).

The consumer reads up to a few hundred records at a time and :func:`node.delivery.classify`
decides each one (in worker threads: verifying and decrypting is most of the work). This module
then writes every decision — the message kept, the refusal quarantined, the receipt applied,
the copy counted — and the receipts owed to each sender, **one receipt per sender per batch**,
in one transaction: a batch costs one fsync and one signature per sender instead of one of each
per message.

The guarantees are those of one record at a time: each record's writes are all or nothing (a
savepoint), a receipt is queued in the same transaction as the messages it acknowledges (never
a "delivered" for what was not stored), and the offsets are committed only after the
transaction, so a crash anywhere re-reads the batch and dedupe hands nothing over twice.

It runs on the store's thread and does no I/O besides the store's; the asyncio shell
(:mod:`node.service`) logs, counts and notifies the adapters afterwards.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from node import delivery, envelope, identifiers, procedures, quarantine, submit, threads
from node.audit import AuditEvent
from node.codec import SchemaInfo, SchemaRegistry
from node.crypto.keys import IdentityKey
from node.delivery import Accepted, Duplicate, Outcome, Owed, ReceiptReceived, Rejected
from node.forwarding import FORWARD_SCHEMA, inner_payload
from node.payloads import STATISTICS_SCHEMA
from node.stats import facts
from node.store.base import (
    DedupeEntry,
    InboxMessage,
    ProcedureStep,
    QuarantineEntry,
    ReceiptMatch,
    Store,
)
from node.transport.offsets import Positioned
from node.trust import Descriptor

DEDUPE_MARGIN = dt.timedelta(days=2)


class Record(Positioned, Protocol):
    """What intake needs of a record read from the broker: where it was read, and its bytes."""

    @property
    def value(self) -> bytes: ...


@dataclass(frozen=True)
class IntakeContext:
    """What writing a batch needs of the node, taken once per batch."""

    registry: SchemaRegistry
    node_id: str
    identity: IdentityKey
    peers: Mapping[str, Descriptor]
    max_lifetime: dt.timedelta
    quarantine_limits: quarantine.QuarantineLimits
    duplicate_interval: dt.timedelta
    receipt_batch: int = 500
    single_answer_writer: SchemaInfo | None = None  # see delivery.single_answer_writer
    procedure_defaults: Mapping[str, dt.timedelta] = field(default_factory=dict)
    index_secret: bytes = b""  # keys the identifier index; empty: nothing is indexed


@dataclass
class Item:
    """One record, what :func:`classify` decided, and — after :func:`write_batch` — what was
    stored for it. ``error`` set means nothing of it was stored (try the record again)."""

    record: Record
    outcome: Outcome | None
    error: Exception | None = None
    stored: InboxMessage | None = None  # Accepted: the message as kept, with its inbox seq
    collisions: tuple[str, ...] = ()  # Accepted: other senders that used the same id
    joined: bool = True  # Accepted: False when held apart from the thread it names
    out_of_order: bool = False  # Accepted: a procedure step before the steps it needs
    copy_in_batch: bool = False  # a second copy of a message earlier in the same batch
    answered: bool = False  # Duplicate: answered again (else only counted)
    matches: list[tuple[Mapping[str, Any], ReceiptMatch | None]] = field(default_factory=list)
    quarantined: str | None = None  # the reason, when the record went to quarantine
    evicted: int = 0  # unauthenticated quarantine entries pushed out by this one


@dataclass(frozen=True)
class NotSealed:
    """A receipt that could not be sealed (the sender's encryption key expired, say)."""

    peer: str
    message_ids: tuple[str, ...]
    error: str


@dataclass
class BatchResult:
    items: list[Item]
    receipts: int = 0  # receipts queued
    not_sealed: list[NotSealed] = field(default_factory=list)


def receipt_expiry(
    header: envelope.Header, now: dt.datetime, max_lifetime: dt.timedelta
) -> dt.datetime:
    """A receipt lives as long as the message it answers (the sender waits for it until then),
    at least a day, and never beyond the maximum lifetime its recipient accepts."""
    return min(max(header.expires_at, now + dt.timedelta(days=1)), now + max_lifetime)


def dedupe_entry(
    header: envelope.Header,
    sha: str,
    now: dt.datetime,
    max_lifetime: dt.timedelta,
    outcome: str,
    reason: str | None,
) -> DedupeEntry:
    keep = delivery.keep_until(header, now, max_lifetime, DEDUPE_MARGIN)
    return DedupeEntry(
        message_id=header.message_id, sender=header.sender, outcome=outcome, reason=reason,
        envelope_sha256=sha, seen_at=now, keep_until=keep,
    )  # fmt: skip


def quarantine_entry(
    store: Store,
    limits: quarantine.QuarantineLimits,
    record: Record,
    now: dt.datetime,
    reason: str,
    detail: str,
    sender: str | None,
    message_id: str | None,
) -> QuarantineEntry:
    """What quarantine keeps of a refused record: ``sender`` is set only when it was
    authenticated; see :mod:`node.quarantine` for how much is kept."""
    used = 0 if sender is None else store.quarantine_bytes(sender)
    kept = quarantine.kept_bytes(record.value, sender is not None, used, limits)
    return QuarantineEntry(
        received_at=now, reason=reason, detail=detail, raw=kept, topic=record.topic,
        partition=record.partition, offset=record.offset, sender=sender, message_id=message_id,
        authenticated=sender is not None,
        raw_sha256=hashlib.sha256(record.value).hexdigest(), raw_length=len(record.value),
    )  # fmt: skip


def write_batch(
    store: Store, ctx: IntakeContext, items: Sequence[Item], now: dt.datetime
) -> BatchResult:
    """Store every item's decision and the receipts owed, in one transaction (see the module
    docstring). Items with an ``error`` already (classify failed) are left alone."""
    owed: list[Owed] = []
    decided: dict[tuple[str, str], str] = {}  # (sender, id) -> envelope hash, in this batch
    result = BatchResult(list(items))

    def one(item: Item) -> None:
        owed.extend(_write_item(store, ctx, item, now, decided))

    todo = [item for item in items if item.error is None]
    writes: list[Callable[[], None]] = [functools.partial(one, item) for item in todo]
    writes.append(functools.partial(_queue_receipts, store, ctx, owed, now, result))
    outcomes = store.batch(writes)
    for item, outcome in zip(todo, outcomes, strict=False):
        if isinstance(outcome, Exception):
            item.error = outcome
    if isinstance(outcomes[-1], Exception):  # not expected: _queue_receipts audits its failures
        raise outcomes[-1]
    return result


def _key(item: Item) -> tuple[tuple[str, str], str] | None:
    """(sender, id) and envelope hash of an item with an authenticated sender."""
    outcome = item.outcome
    if isinstance(outcome, Accepted):
        h = outcome.opened.header
        return (h.sender, h.message_id), outcome.opened.envelope_sha256.hex()
    if isinstance(outcome, ReceiptReceived):
        h = outcome.header
        return (h.sender, h.message_id), hashlib.sha256(item.record.value).hexdigest()
    if outcome is None or outcome.header is None:
        return None
    return (outcome.header.sender, outcome.header.message_id), outcome.envelope_sha256


def _header(outcome: Outcome) -> envelope.Header | None:
    return outcome.opened.header if isinstance(outcome, Accepted) else outcome.header


def _write_item(
    store: Store,
    ctx: IntakeContext,
    item: Item,
    now: dt.datetime,
    decided: dict[tuple[str, str], str],
) -> list[Owed]:
    """One record's writes (inside its savepoint); the answers it owes its sender."""
    outcome = item.outcome
    assert outcome is not None
    key = _key(item)
    if key is not None and key[0] in decided:
        # classify looked up what was decided *before* the batch: a second copy within it
        # (of a new message, or of one decided earlier: a replay flood) is answered once
        if decided[key[0]] == key[1] or isinstance(outcome, Duplicate):
            item.copy_in_batch = True  # answered with the first copy, counted as a duplicate
            return []
        header = _header(outcome)
        assert header is not None
        outcome = item.outcome = Rejected(
            "replay", "message id already used for a different envelope", header, key[1],
            remember=False,
        )  # fmt: skip
    if isinstance(outcome, Accepted):
        answers = _accept(store, ctx, item, outcome, now)
    elif isinstance(outcome, Duplicate):
        answers = _duplicate(store, ctx, item, outcome, now)
    elif isinstance(outcome, ReceiptReceived):
        answers = _receipt(store, ctx, item, outcome, now)
    else:
        answers = _reject(store, ctx, item, outcome, now)
    if key is not None and (not isinstance(outcome, Rejected) or outcome.remember):
        decided[key[0]] = key[1]
    return answers


def sender_retention(payload: Mapping[str, Any], now: dt.datetime) -> dt.datetime:
    """The latest time the sender lets this node keep its message (``handling.retention_days``
    counted from receipt); the node's own ``store.inbox_retention_days`` may end it sooner."""
    return now + dt.timedelta(days=int(payload["handling"]["retention_days"]))


def _accept(
    store: Store, ctx: IntakeContext, item: Item, outcome: Accepted, now: dt.datetime
) -> list[Owed]:
    header = outcome.opened.header
    sha = outcome.opened.envelope_sha256.hex()
    participants = store.thread_participants(header.thread_id)
    joined = threads.joins_thread(
        header.sender, header.recipient_ids, participants, ctx.node_id,
        opens=header.thread_id == header.message_id,
    )  # fmt: skip
    message = InboxMessage(
        seq=0, message_id=header.message_id, sender=header.sender, kind=header.kind,
        thread_id=header.thread_id, in_reply_to=header.in_reply_to,
        schema_name=outcome.opened.payload_schema.name,
        handling_code=outcome.opened.payload["handling"]["code"], envelope=outcome.raw,
        envelope_sha256=sha, created_at=header.created_at, expires_at=header.expires_at,
        received_at=now, state="received", recipients=header.recipient_ids,
        thread_joined=joined, retain_until=sender_retention(outcome.opened.payload, now),
        subject_digests=_subject_digests(ctx, outcome),
    )  # fmt: skip
    remembered = dedupe_entry(header, sha, now, ctx.max_lifetime, "delivered", None)
    events = [AuditEvent("received", now, message_id=header.message_id, peer=header.sender,
                         detail={"kind": header.kind, "envelope_sha256": sha})]  # fmt: skip
    if not joined:
        events.append(AuditEvent(
            "thread-held-apart", now, message_id=header.message_id, peer=header.sender,
            detail={"thread_id": header.thread_id, "participants": sorted(participants)},
        ))  # fmt: skip
    step = _procedure_step(store, ctx, outcome, now, events) if joined else None
    item.out_of_order = any(e.event == "procedure-out-of-order" for e in events)
    fact = facts.fact_of(
        message.schema_name,
        outcome.opened.payload,
        message_id=header.message_id,
        direction="received",
        thread_id=header.thread_id,
        at=header.created_at,
    )
    if message.schema_name == STATISTICS_SCHEMA:
        release = outcome.opened.payload
        events.append(AuditEvent("statistics-received", now, message_id=header.message_id,
                                 peer=header.sender, detail={
                                     "release_id": str(release["release_id"]),
                                     "period": release["period"],
                                     "replaces": None if release.get("replaces") is None
                                     else str(release["replaces"])}))  # fmt: skip
    stored = store.record_inbound(message, remembered, events, step=step, fact=fact)
    item.stored = dataclasses.replace(message, seq=stored.seq)
    item.collisions, item.joined = stored.id_also_used_by, joined
    return [Owed(header, sha)]


def _subject_digests(ctx: IntakeContext, outcome: Accepted) -> tuple[bytes, ...]:
    """The index entries of the identifiers a message names (a forward: those of the payload
    it carries), so a later search finds it (node/identifiers.py)."""
    if not ctx.index_secret:
        return ()
    opened = outcome.opened
    name, payload = opened.payload_schema.name, opened.payload
    if name == FORWARD_SCHEMA:
        name, payload = inner_payload(ctx.registry, payload)
    keys = identifiers.match_keys(ctx.registry, name, payload)
    return identifiers.digests(ctx.index_secret, keys)


def _procedure_step(
    store: Store, ctx: IntakeContext, outcome: Accepted, now: dt.datetime,
    events: list[AuditEvent],
) -> ProcedureStep | None:  # fmt: skip
    """The step a received message takes in its thread's procedure. Never refused for its
    order (the network may reorder, the sender may have overridden): a step out of order is
    kept and audited as ``procedure-out-of-order`` with what was missing. Only for a message
    that joined its thread: one held apart (a sender not taking part) cannot close a case or
    answer a request (:mod:`node.threads`)."""
    opened = outcome.opened
    header, schema = opened.header, opened.payload_schema.name
    if not procedures.tracked(schema):
        return None
    steps = store.procedure_steps(header.thread_id)
    before, after = procedures.next_state(
        steps, schema, opened.payload, sent_at=header.created_at, received=True,
        defaults=ctx.procedure_defaults,
    )  # fmt: skip
    if before is None or after is None:  # no procedure on this thread (an alert's case update)
        return None
    if len(after.flags) > len(before.flags):
        problem = after.flags[-1]
        detail = {"step": problem.step, "missing": list(problem.missing)}
        events.append(AuditEvent("procedure-out-of-order", now, message_id=header.message_id,
                                 peer=header.sender, detail=detail))  # fmt: skip
    return procedures.kept_step(header.thread_id, header.message_id, header.sender, "received",
                                schema, opened.payload, header.created_at)  # fmt: skip


def _duplicate(
    store: Store, ctx: IntakeContext, item: Item, outcome: Duplicate, now: dt.datetime
) -> list[Owed]:
    """A copy of what was decided before: answered (and audited) at most once per
    ``duplicate_interval``, so replaying a valid envelope cannot make this node seal and store
    receipts, or audit entries, without bound."""
    header, previous = outcome.header, outcome.previous
    if not delivery.answer_duplicate(previous.answered_at, now, ctx.duplicate_interval):
        return []
    record = item.record
    event = AuditEvent("duplicate", now, message_id=header.message_id, peer=header.sender,
                       detail={"topic": record.topic, "offset": record.offset})  # fmt: skip
    store.append_audit([event])
    store.mark_answered(header.sender, header.message_id, now)
    item.answered = True
    if header.kind == "receipt":  # receipts are not answered
        return []
    # answered as before, so a sender whose receipt was lost stops re-publishing
    return [Owed(header, previous.envelope_sha256, previous.reason)]


def _receipt(
    store: Store, ctx: IntakeContext, item: Item, outcome: ReceiptReceived, now: dt.datetime
) -> list[Owed]:
    """Apply every answer a receipt carries. One that matches nothing this node sent sends the
    record to quarantine (an operator must look), after the others are applied."""
    header = outcome.header
    sha = hashlib.sha256(item.record.value).hexdigest()
    remembered = dedupe_entry(header, sha, now, ctx.max_lifetime, "delivered", None)
    for answer in delivery.receipt_answers(outcome.receipt):
        delivered = answer["status"] == "delivered"
        reason = delivery.reason_code(answer.get("reason"))
        event = AuditEvent(
            "receipted" if delivered else "rejected", now, message_id=str(answer["message_id"]),
            peer=header.sender, detail={"reason": reason} if reason else {},
        )  # fmt: skip
        matched = store.apply_receipt(
            str(answer["message_id"]), header.sender, answer["envelope_sha256"],
            delivered=delivered, reason=reason, detail=answer.get("detail"), now=now,
            audit=event, seen=remembered,
        )  # fmt: skip
        item.matches.append((answer, matched))
    if all(m is not None for _, m in item.matches):
        return []
    entry = quarantine_entry(
        store, ctx.quarantine_limits, item.record, now, "invalid-payload",
        "receipt for a message this node did not send", header.sender, header.message_id,
    )  # fmt: skip
    event = AuditEvent("quarantined", now, message_id=header.message_id, peer=header.sender,
                       detail={"reason": "invalid-payload"})  # fmt: skip
    applied_any = any(m is not None for _, m in item.matches)
    store.record_rejection(None if applied_any else remembered, entry, [event])
    item.quarantined = "invalid-payload"
    return []


def _reject(
    store: Store, ctx: IntakeContext, item: Item, outcome: Rejected, now: dt.datetime
) -> list[Owed]:
    header, record = outcome.header, item.record
    remembered = (
        dedupe_entry(header, outcome.envelope_sha256, now, ctx.max_lifetime, "rejected",
                     outcome.reason)
        if header is not None and outcome.remember
        else None
    )  # fmt: skip
    entry = quarantine_entry(
        store, ctx.quarantine_limits, record, now, outcome.reason, outcome.detail,
        header.sender if header else None, header.message_id if header else None,
    )  # fmt: skip
    event = AuditEvent(
        "quarantined", now, message_id=header.message_id if header else None,
        peer=header.sender if header else None,
        detail={"reason": outcome.reason, "topic": record.topic, "offset": record.offset},
    )  # fmt: skip
    item.evicted = store.record_rejection(
        remembered, entry, [event], keep_unauthenticated=ctx.quarantine_limits.unauthenticated_max
    )
    item.quarantined = outcome.reason
    if header is None or not outcome.answer_sender:
        return []
    return [Owed(header, outcome.envelope_sha256, outcome.reason, outcome.detail)]


def _queue_receipts(
    store: Store, ctx: IntakeContext, owed: Sequence[Owed], now: dt.datetime, result: BatchResult
) -> None:
    """Seal and queue one receipt per sender (per ``receipt_batch`` answers) for what the
    batch's writes owe. A receipt that cannot be sealed (the sender's encryption key expired,
    say) is audited as ``receipt-not-sealed`` for each message it would have answered: the
    messages are kept, and a later copy is answered again once the key is renewed."""
    for group in delivery.receipt_groups(owed, ctx.receipt_batch):
        first = group[0].header
        sender = ctx.peers.get(first.sender)
        if sender is None:
            continue
        try:
            sealed = envelope.seal(
                ctx.registry, identity=ctx.identity, sender_id=ctx.node_id, kind="receipt",
                schema_name=delivery.RECEIPT_SCHEMA,
                payload=delivery.batch_receipt_payload(group, now), recipients=[sender],
                now=now, expires_at=max(receipt_expiry(o.header, now, ctx.max_lifetime)
                                        for o in group),
                thread_id=first.thread_id, in_reply_to=first.message_id,
                writer=ctx.single_answer_writer if len(group) == 1 else None,
            )  # fmt: skip
        except Exception as exc:  # e.g. the sender's encryption key expired: keep the messages
            result.not_sealed.append(NotSealed(
                first.sender, tuple(o.header.message_id for o in group), type(exc).__name__
            ))  # fmt: skip
            store.append_audit([
                AuditEvent(
                    "receipt-not-sealed", now, message_id=o.header.message_id, peer=first.sender,
                    detail={"error": type(exc).__name__, "detail": str(exc)[:200]},
                )
                for o in group
            ])  # fmt: skip
            continue
        message = submit.outbound(sealed, delivery.RECEIPT_SCHEMA, expects_receipt=False)
        store.submit(message, [
            AuditEvent(
                "receipt-sent", now, message_id=o.header.message_id, peer=first.sender,
                detail={"status": "delivered" if o.reason is None else "rejected",
                        "reason": o.reason},
            )
            for o in group
        ])  # fmt: skip
        result.receipts += 1
