"""The receive classifier, :func:`node.delivery.classify`, on its own: bytes in, one outcome out.

Pure, so no broker and no store: envelopes are sealed in memory and the dedupe table is a dict.
What the running node does with each outcome rests on three fields, checked for every
outcome here: ``header`` (None unless the sender is authenticated — only then may a receipt
go to the sender the envelope names), ``remember`` (whether the message id is remembered, so a
copy gets the same answer) and ``answer_sender`` (whether a negative receipt is owed).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from node import delivery, envelope
from node.codec import SchemaRegistry, _schema_documents, avro_bytes, schemas_directory
from node.crypto import primitives
from node.delivery import (
    Accepted,
    Duplicate,
    ReceiptReceived,
    ReceiveContext,
    Rejected,
    RetryPolicy,
)
from node.policy import Policy
from node.store.base import DedupeEntry
from node.trust import PeerDirectory
from tests.conftest import CASE_UPDATE_JSON, NOW, MemNode, make_node, peers_of

SKEW = dt.timedelta(minutes=5)
ZM = make_node("zm-police")
ZW = make_node("zw-police")
MW = make_node("mw-police")
BW = make_node("bw-police")  # never introduced to zw-police
SHELTER = make_node("za-shelter-johannesburg", ("shelter",))


def context(registry: SchemaRegistry, **overrides: Any) -> ReceiveContext:
    """zw-police (law enforcement) receiving, with zm-police, mw-police and a shelter as peers."""
    fields: dict[str, Any] = {
        "registry": registry,
        "own_id": ZW.node_id,
        "own_keys": ZW.keys,
        "peers": peers_of(ZM, MW, SHELTER),
        "max_skew": SKEW,
        "max_bytes": envelope.DEFAULT_MAX_ENVELOPE_BYTES,
        "own_roles": ("law-enforcement",),
        "policy": Policy.from_config(),
    }
    fields.update(overrides)
    return ReceiveContext(**fields)


def seal(
    registry: SchemaRegistry,
    payload: dict[str, Any],
    sender: MemNode = ZM,
    to: tuple[MemNode, ...] = (ZW,),
    **overrides: Any,
) -> bytes:
    args: dict[str, Any] = {
        "identity": sender.identity,
        "sender_id": sender.node_id,
        "kind": "alert",
        "schema_name": "CaseUpdate",
        "payload": payload,
        "recipients": [r.descriptor for r in to],
        "now": NOW,
        "expires_at": NOW + dt.timedelta(days=7),
    }
    args.update(overrides)
    return envelope.seal(registry, **args).data


class Memory:
    """The dedupe table, as the shell fills it: one entry per remembered (sender, message id)."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], DedupeEntry] = {}

    def seen(self, sender: str, message_id: str) -> DedupeEntry | None:
        return self.entries.get((sender, message_id))

    def remember(self, message_id: str, sender: str, sha256_hex: str, reason: str | None = None):
        outcome = "delivered" if reason is None else "rejected"
        self.entries[(sender, message_id)] = DedupeEntry(
            message_id, sender, outcome, reason, sha256_hex, NOW, NOW + dt.timedelta(days=9)
        )


def classify(
    ctx: ReceiveContext,
    raw: bytes,
    now: dt.datetime = NOW,
    seen: Callable[[str, str], DedupeEntry | None] = lambda _sender, _id: None,
) -> delivery.Outcome:
    return delivery.classify(ctx, raw, now, seen)


def sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def rejected(outcome: delivery.Outcome, raw: bytes, reason: str) -> Rejected:
    """``outcome`` is a rejection for ``reason`` that names the refused bytes' hash."""
    assert isinstance(outcome, Rejected), outcome
    assert outcome.reason == reason, outcome
    assert outcome.detail
    assert outcome.envelope_sha256 == sha(raw)  # what the quarantine and the receipt name
    return outcome


def authenticated(outcome: Rejected, sender: MemNode, *, remember: bool) -> None:
    """A refusal of an authenticated sender's message: it gets a negative receipt."""
    assert outcome.header is not None and outcome.header.sender == sender.node_id
    assert outcome.answer_sender
    assert outcome.remember is remember


def unauthenticated(outcome: Rejected) -> None:
    """A refusal of bytes nobody is proven to have sent: no receipt to anyone, not remembered
    (remembering would let a forger occupy a real message id)."""
    assert outcome.header is None
    assert not outcome.answer_sender
    assert not outcome.remember


def resign(registry: SchemaRegistry, raw: bytes, sender: MemNode, change: Callable) -> bytes:
    """Change the header of an envelope and sign it again with ``sender``'s real identity key:
    authentic, but no longer what the sender's sealing would have produced."""
    parsed = envelope.parse(registry, raw)
    record = change(copy.deepcopy(parsed.header.to_record()))
    header = registry.encode(envelope.HEADER_SCHEMA, record)
    signed = header + avro_bytes(parsed.ciphertext)
    signature = primitives.sign(sender.identity, envelope.ENVELOPE_DOMAIN, signed)
    return signed + avro_bytes(signature)


# -- accepted and duplicates ------------------------------------------------------------------


def test_a_new_message_is_accepted_opened_and_decoded(registry, payload):
    raw = seal(registry, payload, to=(MW, ZW))  # this node's entry is not the first
    outcome = classify(context(registry), raw)
    assert isinstance(outcome, Accepted)
    assert outcome.raw == raw  # the inbox keeps exactly the bytes that were verified
    opened = outcome.opened
    assert opened.payload == payload
    assert opened.sender == ZM.descriptor
    assert (opened.header.sender, opened.header.kind) == ("zm-police", "alert")
    assert opened.payload_schema.name == "xnode.payload.CaseUpdate"
    assert opened.envelope_sha256 == hashlib.sha256(raw).digest()


def test_a_byte_identical_copy_is_a_duplicate_answered_as_before(registry, payload):
    ctx, memory = context(registry), Memory()
    raw = seal(registry, payload)
    first = classify(ctx, raw, seen=memory.seen)
    assert isinstance(first, Accepted)
    # what the shell stores for an accepted message (node.service: opened.envelope_sha256.hex())
    message_id = first.opened.header.message_id
    memory.remember(message_id, "zm-police", first.opened.envelope_sha256.hex())

    again = classify(ctx, raw, NOW + dt.timedelta(hours=1), memory.seen)
    assert isinstance(again, Duplicate), again
    assert again.previous is memory.entries[("zm-police", message_id)]  # the answer to repeat
    assert again.header.message_id == message_id and again.header.sender == "zm-police"
    assert again.envelope_sha256 == sha(raw)


def test_a_byte_identical_copy_is_recognised_without_verifying_its_signature_again(
    registry, payload, monkeypatch
):
    """A backlog holds each message several times over (re-publications) and a replay flood
    nothing else: a copy of bytes verified before costs a hash, not a signature check."""
    ctx, memory = context(registry), Memory()
    raw = seal(registry, payload)
    first = classify(ctx, raw, seen=memory.seen)
    memory.remember(first.opened.header.message_id, "zm-police", sha(raw))
    verified = []
    real = envelope.verify_sender
    monkeypatch.setattr(
        envelope, "verify_sender", lambda *a, **k: verified.append(1) or real(*a, **k)
    )
    assert isinstance(classify(ctx, raw, seen=memory.seen), Duplicate)
    assert verified == []
    # one byte different: verified like any other envelope, and refused
    tampered = bytearray(raw)
    tampered[-1] ^= 0x01
    unauthenticated(rejected(classify(ctx, bytes(tampered), seen=memory.seen), bytes(tampered),
                             "bad-signature"))  # fmt: skip
    assert verified == [1]


def test_a_copy_from_a_sender_revoked_since_is_verified_and_refused(registry, payload):
    ctx, memory = context(registry), Memory()
    raw = seal(registry, payload)
    first = classify(ctx, raw, seen=memory.seen)
    memory.remember(first.opened.header.message_id, "zm-police", sha(raw))
    revoked = context(registry, peers=PeerDirectory.of([ZM.descriptor], revoked=["zm-police"]))
    unauthenticated(rejected(classify(revoked, raw, seen=memory.seen), raw, "revoked-sender"))


def test_a_copy_of_a_refused_message_is_a_duplicate_of_the_refusal(registry, payload):
    ctx, memory = context(registry), Memory()
    raw = seal(registry, payload, sender=SHELTER)
    first = rejected(classify(ctx, raw, seen=memory.seen), raw, "policy-denied")
    assert first.header is not None
    memory.remember(first.header.message_id, SHELTER.node_id, first.envelope_sha256,
                    "policy-denied")  # fmt: skip
    again = classify(ctx, raw, seen=memory.seen)
    assert isinstance(again, Duplicate)
    assert again.previous.reason == "policy-denied"


# -- replays: a seen id with other content, or from another sender -----------------------------


def test_same_sender_reusing_an_id_for_another_envelope_is_a_replay(registry, payload):
    ctx, memory = context(registry), Memory()
    first_raw = seal(registry, payload)
    first = classify(ctx, first_raw, seen=memory.seen)
    assert isinstance(first, Accepted)
    message_id = first.opened.header.message_id
    memory.remember(message_id, "zm-police", sha(first_raw))

    other = seal(registry, payload, message_id=message_id)  # same id, fresh keys and nonce
    assert other != first_raw
    outcome = rejected(classify(ctx, other, seen=memory.seen), other, "replay")
    assert "different envelope" in outcome.detail
    # told, but not remembered: the id's entry (and its answer to copies) stays the first one's
    authenticated(outcome, ZM, remember=False)
    assert outcome.header is not None and outcome.header.message_id == message_id


def test_another_sender_using_a_seen_id_is_another_message(registry, payload):
    """A message is (sender, id): a second member using the id is neither a replay of the first
    nor refused, and the first sender's own later copy is still recognised as its own."""
    ctx, memory = context(registry), Memory()
    first_raw = seal(registry, payload)
    first = classify(ctx, first_raw, seen=memory.seen)
    assert isinstance(first, Accepted)
    message_id = first.opened.header.message_id
    memory.remember(message_id, "zm-police", sha(first_raw))

    squatter = seal(registry, payload, sender=MW, message_id=message_id)
    outcome = classify(ctx, squatter, seen=memory.seen)
    assert isinstance(outcome, Accepted) and outcome.opened.header.sender == "mw-police"
    memory.remember(message_id, "mw-police", sha(squatter))
    again = classify(ctx, first_raw, seen=memory.seen)
    assert isinstance(again, Duplicate) and again.previous.sender == "zm-police"


def test_a_squatter_first_does_not_make_the_real_message_a_replay(registry, payload):
    ctx, memory = context(registry), Memory()
    real = seal(registry, payload)
    message_id = envelope.parse(registry, real).header.message_id
    squatter = seal(registry, payload, sender=MW, message_id=message_id)
    assert isinstance(classify(ctx, squatter, seen=memory.seen), Accepted)
    memory.remember(message_id, "mw-police", sha(squatter))
    outcome = classify(ctx, real, seen=memory.seen)
    assert isinstance(outcome, Accepted) and outcome.opened.header.sender == "zm-police"


def test_a_lifetime_of_exactly_the_maximum_is_accepted(registry, payload):
    ctx = context(registry)
    raw = seal(registry, payload, expires_at=NOW + ctx.max_lifetime)
    assert isinstance(classify(ctx, raw), Accepted)


def test_a_lifetime_beyond_the_maximum_is_refused_and_remembered_safely(registry, payload):
    """An expiry near year 9999 is refused by lifetime, not by an overflow, and the date the
    decision is remembered until stays finite."""
    ctx = context(registry)
    far = seal(registry, payload, expires_at=dt.datetime(9999, 12, 30, tzinfo=dt.UTC),
               max_lifetime=dt.timedelta(days=3_000_000))  # fmt: skip
    outcome = rejected(classify(ctx, far), far, "lifetime-exceeded")
    authenticated(outcome, ZM, remember=True)
    assert outcome.header is not None
    keep = delivery.keep_until(outcome.header, NOW, ctx.max_lifetime, dt.timedelta(days=2))
    assert keep == NOW + ctx.max_lifetime + dt.timedelta(days=2)


# -- policy, age, recipients -----------------------------------------------------------------


def test_policy_denied_is_remembered_and_answered(registry, payload):
    raw = seal(registry, payload, sender=SHELTER)  # shelters send no alerts by default
    outcome = rejected(classify(context(registry), raw), raw, "policy-denied")
    assert "shelter" in outcome.detail and "alert" in outcome.detail
    authenticated(outcome, SHELTER, remember=True)


def test_policy_is_judged_on_the_kind_the_receivers_roles_and_its_own_rules(registry, payload):
    # the same sender may refer a victim (a case update on a referral) but not raise an alert
    referral = seal(registry, payload, sender=SHELTER, kind="referral")
    assert isinstance(classify(context(registry), referral), Accepted)
    # zm-police may alert law enforcement, not a node that is only a shelter
    raw = seal(registry, payload)
    rejected(classify(context(registry, own_roles=("shelter",)), raw), raw, "policy-denied")
    # the node's own [policy] rules decide, not the defaults
    alert = seal(registry, payload, sender=SHELTER)
    own_rules = Policy.from_config(["alert: shelter -> law-enforcement"])
    assert isinstance(classify(context(registry, policy=own_rules), alert), Accepted)


def test_expired_is_remembered_and_answered(registry, payload):
    raw = seal(registry, payload, now=NOW - dt.timedelta(minutes=20), expires_at=NOW)
    outcome = rejected(classify(context(registry), raw), raw, "expired")
    authenticated(outcome, ZM, remember=True)
    just_in_time = NOW - dt.timedelta(milliseconds=1)
    assert isinstance(classify(context(registry), raw, just_in_time), Accepted)


def test_clock_skew_is_transient_not_remembered(registry, payload):
    raw = seal(registry, payload, now=NOW + SKEW + dt.timedelta(seconds=1),
               expires_at=NOW + dt.timedelta(days=1))  # fmt: skip
    outcome = rejected(classify(context(registry), raw), raw, "clock-skew")
    # answered, yet not remembered: once the clocks agree the same bytes are judged afresh
    authenticated(outcome, ZM, remember=False)
    later = NOW + dt.timedelta(seconds=2)
    assert isinstance(classify(context(registry), raw, later), Accepted)
    within = seal(registry, payload, now=NOW + SKEW, expires_at=NOW + dt.timedelta(days=1))
    assert isinstance(classify(context(registry), within), Accepted)


def test_unknown_payload_schema_is_transient_not_remembered(registry, payload):
    # a sender on a release whose CaseUpdate this node does not know (an upgrade may fix it)
    newer = [
        (src, _with_extra_field(doc) if doc.get("name") == "CaseUpdate" else doc)
        for src, doc in _schema_documents(schemas_directory())
    ]
    sender_registry = SchemaRegistry.from_documents(newer)
    data = sender_registry.from_json("xnode.payload.CaseUpdate", CASE_UPDATE_JSON, "payload")
    raw = seal(sender_registry, data)
    outcome = rejected(classify(context(registry), raw), raw, "schema-unsupported")
    authenticated(outcome, ZM, remember=False)


def _with_extra_field(doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["fields"].append({"name": "reviewed_by", "type": ["null", "string"], "default": None})
    return doc


def test_not_a_recipient_is_remembered_and_answered(registry, payload):
    raw = seal(registry, payload, to=(MW,))
    outcome = rejected(classify(context(registry), raw), raw, "not-a-recipient")
    assert "not among the recipients" in outcome.detail
    authenticated(outcome, ZM, remember=True)


def test_authentic_but_undecryptable_is_an_invalid_payload(registry, payload):
    def spoil_wrapped_key(header: dict[str, Any]) -> dict[str, Any]:
        entry = header["recipients"][0]
        entry["wrapped_key"] = bytes(b ^ 0xFF for b in entry["wrapped_key"])
        return header

    raw = resign(registry, seal(registry, payload), ZM, spoil_wrapped_key)
    outcome = rejected(classify(context(registry), raw), raw, "invalid-payload")
    authenticated(outcome, ZM, remember=True)


# -- bytes nobody is proven to have sent --------------------------------------------------------


def test_unknown_sender_gets_no_answer(registry, payload):
    raw = seal(registry, payload, sender=BW)
    unauthenticated(rejected(classify(context(registry), raw), raw, "unknown-sender"))


def test_revoked_sender_gets_no_answer(registry, payload):
    raw = seal(registry, payload)
    ctx = context(registry, peers=PeerDirectory.of([ZM.descriptor], revoked=["zm-police"]))
    unauthenticated(rejected(classify(ctx, raw), raw, "revoked-sender"))


def test_bad_signature_claiming_a_real_sender_sends_nothing_to_that_sender(registry, payload):
    raw = bytearray(seal(registry, payload))
    raw[-1] ^= 0x01  # last byte of the signature
    outcome = rejected(classify(context(registry), bytes(raw)), bytes(raw), "bad-signature")
    unauthenticated(outcome)  # no receipt to zm-police for bytes zm-police never signed


def test_forged_copy_of_a_seen_id_is_refused_before_dedupe(registry, payload):
    # Were dedupe consulted first, the forgery would count as a duplicate of zm-police's message
    # and zm-police would be sent a receipt for bytes it never signed.
    ctx, memory = context(registry), Memory()
    raw = seal(registry, payload)
    first = classify(ctx, raw, seen=memory.seen)
    assert isinstance(first, Accepted)
    memory.remember(first.opened.header.message_id, "zm-police", sha(raw))
    tampered = bytearray(raw)
    tampered[-envelope.SIGNATURE_FIELD_BYTES - 1] ^= 0x01  # last byte of the ciphertext
    outcome = classify(ctx, bytes(tampered), seen=memory.seen)
    unauthenticated(rejected(outcome, bytes(tampered), "bad-signature"))


def test_forger_with_the_real_senders_key_id_is_a_bad_signature(registry, payload, monkeypatch):
    forger = dataclasses.replace(BW, node_id="zm-police")
    real_key_id = ZM.identity.key_id
    monkeypatch.setattr(type(forger.identity), "key_id", property(lambda self: real_key_id))
    raw = seal(registry, payload, sender=forger)
    monkeypatch.undo()
    unauthenticated(rejected(classify(context(registry), raw), raw, "bad-signature"))


@pytest.mark.parametrize("raw", [b"", b"\x00", b"not an envelope at all", b"\xff" * 300])
def test_malformed_bytes_get_no_answer(registry, raw):
    unauthenticated(rejected(classify(context(registry), raw), raw, "malformed"))


def test_too_large_is_refused_before_decoding(registry, payload):
    raw = seal(registry, payload)
    outcome = rejected(classify(context(registry, max_bytes=len(raw) - 1), raw), raw, "too-large")
    unauthenticated(outcome)
    assert isinstance(classify(context(registry, max_bytes=len(raw)), raw), Accepted)


# -- receipts ---------------------------------------------------------------------------------


def receipt_from(registry: SchemaRegistry, sender: MemNode, to: MemNode, **overrides: Any) -> bytes:
    body = delivery.receipt_payload("019a2b3c-0000-7000-8000-000000000001", "ab" * 32, NOW)
    args: dict[str, Any] = {"kind": "receipt", "schema_name": delivery.RECEIPT_SCHEMA}
    args.update(overrides)
    return seal(registry, body, sender=sender, to=(to,), **args)


def test_a_receipt_is_received_not_accepted(registry):
    raw = receipt_from(registry, SHELTER, ZW)  # receipts pass any role policy: no case data
    outcome = classify(context(registry), raw)
    assert isinstance(outcome, ReceiptReceived), outcome
    assert (outcome.header.kind, outcome.header.sender) == ("receipt", SHELTER.node_id)
    assert str(outcome.receipt["message_id"]) == "019a2b3c-0000-7000-8000-000000000001"
    assert outcome.receipt["envelope_sha256"] == "ab" * 32
    assert outcome.receipt["status"] == "delivered"


def test_a_refused_receipt_is_never_answered(registry):
    # a receipt for another node: authenticated and remembered, but a receipt is not answered
    raw = receipt_from(registry, ZM, MW)
    outcome = rejected(classify(context(registry), raw), raw, "not-a-recipient")
    assert outcome.header is not None and outcome.header.kind == "receipt"
    assert outcome.remember
    assert not outcome.answer_sender
    expired = receipt_from(registry, ZM, ZW, now=NOW - dt.timedelta(hours=1), expires_at=NOW)
    late = rejected(classify(context(registry), expired), expired, "expired")
    assert late.header is not None and not late.answer_sender


# -- retry policy ---------------------------------------------------------------------------------

POLICY = RetryPolicy(initial=dt.timedelta(seconds=5), maximum=dt.timedelta(minutes=10))


@pytest.mark.parametrize(
    ("attempts", "base"), [(0, 5), (1, 5), (2, 10), (3, 20), (7, 320), (8, 600), (40, 600)]
)
def test_retry_delay_doubles_up_to_the_maximum_within_the_jitter(attempts, base):
    seconds = [POLICY.delay(attempts, r).total_seconds() for r in (0.0, 0.5, 0.999999)]
    assert seconds[1] == pytest.approx(base)  # the middle of the spread is the plain backoff
    assert seconds[0] == pytest.approx(base * 0.8)  # jitter 0.2: never earlier than 80 %
    assert base * 1.19 < seconds[2] < base * 1.2  # ... nor later than 120 %


def test_next_attempt_is_now_plus_the_delay():
    assert POLICY.next_attempt(3, NOW, lambda: 0.5) == NOW + dt.timedelta(seconds=20)


def test_retry_delay_stays_bounded_for_a_peer_silent_for_weeks():
    assert POLICY.delay(1025, 0.5) == dt.timedelta(minutes=10)
    assert POLICY.delay(10**6, 0.5) == dt.timedelta(minutes=10)
