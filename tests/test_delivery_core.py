"""Receipts and refusal details of :mod:`node.delivery` (docs/mutation-testing.md).

test_classify.py covers which outcome each envelope gets; this file pins what the sender reads
in the receipt it is owed — sealed and opened again, as it travels — and the refusal details an
operator sees in the quarantine.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import uuid
from typing import Any

import pytest

from node import delivery, envelope
from node.codec import SchemaRegistry
from node.delivery import ReceiveContext, Rejected
from node.store.base import DedupeEntry
from tests.conftest import NOW, MemNode, make_node, peers_of

ZM = make_node("zm-police")
ZW = make_node("zw-police")
SHELTER = make_node("za-shelter-johannesburg", ("shelter", "ngo"))
MESSAGE_ID = "01a1f4d0-1a2b-7c3d-9e4f-5a6b7c8d9e0f"
SHA = hashlib.sha256(b"the refused envelope").hexdigest()


def receiving(registry: SchemaRegistry) -> ReceiveContext:
    """zw-police (law enforcement) receiving from zm-police and a shelter."""
    return ReceiveContext(
        registry=registry,
        own_id=ZW.node_id,
        own_keys=ZW.keys,
        peers=peers_of(ZM, SHELTER),
        max_skew=dt.timedelta(minutes=5),
        max_bytes=envelope.DEFAULT_MAX_ENVELOPE_BYTES,
        own_roles=("law-enforcement",),
    )


def sealed(registry: SchemaRegistry, payload: dict[str, Any], sender: MemNode = ZM) -> bytes:
    return envelope.seal(
        registry, identity=sender.identity, sender_id=sender.node_id, kind="alert",
        schema_name="CaseUpdate", payload=payload, recipients=[ZW.descriptor], now=NOW,
        expires_at=NOW + dt.timedelta(days=7),
    ).data  # fmt: skip


def entry(raw: bytes, sender: str) -> DedupeEntry:
    sha = hashlib.sha256(raw).hexdigest()
    return DedupeEntry("id", sender, "delivered", None, sha, NOW, NOW + dt.timedelta(days=9))


def as_received(registry: SchemaRegistry, payload: dict[str, Any]) -> dict[str, Any]:
    """A receipt payload sealed by zw-police to zm-police and opened there."""
    data = envelope.seal(
        registry, identity=ZW.identity, sender_id=ZW.node_id, kind="receipt",
        schema_name=delivery.RECEIPT_SCHEMA, payload=payload, recipients=[ZM.descriptor],
        now=NOW, expires_at=NOW + dt.timedelta(days=1),
    ).data  # fmt: skip
    opened = envelope.open_envelope(
        registry, data, own_id=ZM.node_id, own_keys=ZM.keys, peers=peers_of(ZW), now=NOW
    )
    return opened.payload


HANDLING = {
    "code": "H0",
    "conditions": None,
    "legal_basis": "xnode delivery receipt",
    "legal_instrument": None,
    "language": "en",
    "retention_days": 365,
    "sender_reference": None,
}


def test_a_delivered_receipt_as_the_sender_reads_it(registry):
    payload = delivery.receipt_payload(MESSAGE_ID, SHA, NOW)
    assert as_received(registry, payload) == {
        "handling": HANDLING,
        "message_id": uuid.UUID(MESSAGE_ID),
        "envelope_sha256": SHA,
        "status": "delivered",
        "reason": None,
        "detail": None,
        "received_at": NOW,
        "also": [],
    }


def test_a_negative_receipt_as_the_sender_reads_it(registry):
    detail = "this node's policy does not accept alert from role(s) shelter " + "x" * 600
    payload = delivery.receipt_payload(MESSAGE_ID, SHA, NOW, "policy-denied", detail)
    received = as_received(registry, payload)
    assert received == {
        "handling": HANDLING,
        "message_id": uuid.UUID(MESSAGE_ID),
        "envelope_sha256": SHA,
        "status": "rejected",
        "reason": "policy_denied",
        "detail": detail[:500],
        "received_at": NOW,
        "also": [],
    }
    assert delivery.reason_code(received["reason"]) == "policy-denied"


@pytest.mark.parametrize(
    ("reason", "symbol"),
    [("bad-signature", "bad_signature"), ("clock-skew", "clock_skew"),
     ("something-new", "unknown")],
)  # fmt: skip
def test_reason_codes_become_receipt_symbols_and_back(reason, symbol):
    assert delivery.reason_symbol(reason) == symbol
    assert delivery.reason_code(delivery.reason_symbol("not-a-recipient")) == "not-a-recipient"
    assert delivery.reason_code(None) is None


def test_dedupe_is_asked_for_the_authenticated_sender_and_the_id(registry, payload):
    raw = sealed(registry, payload)
    asked: list[tuple[str, str]] = []

    def seen(sender: str, message_id: str) -> DedupeEntry | None:
        asked.append((sender, message_id))
        return None

    outcome = delivery.classify(receiving(registry), raw, NOW, seen)
    assert not isinstance(outcome, Rejected)
    assert asked == [("zm-police", envelope.parse(registry, raw).header.message_id)]


def test_a_seen_id_with_other_content_is_named(registry, payload):
    raw = sealed(registry, payload)
    outcome = delivery.classify(
        receiving(registry), raw, NOW, lambda _s, _i: entry(b"", "zm-police")
    )
    assert isinstance(outcome, Rejected)
    assert (outcome.reason, outcome.detail, outcome.remember) == (
        "replay",
        "message id already used for a different envelope",
        False,
    )


def test_a_policy_refusal_names_every_role_of_the_sender(registry, payload):
    outcome = delivery.classify(
        receiving(registry), sealed(registry, payload, SHELTER), NOW, lambda _s, _i: None
    )
    assert isinstance(outcome, Rejected)
    assert (outcome.reason, outcome.detail) == (
        "policy-denied",
        "this node's policy does not accept alert from role(s) shelter, ngo",
    )


def test_a_duplicate_is_answered_first_then_at_most_once_per_interval():
    minute = dt.timedelta(minutes=1)
    assert delivery.answer_duplicate(None, NOW, minute)  # the first copy: always
    assert not delivery.answer_duplicate(NOW, NOW, minute)  # answered this very moment
    assert not delivery.answer_duplicate(NOW, NOW + minute - dt.timedelta(microseconds=1), minute)
    assert delivery.answer_duplicate(NOW, NOW + minute, minute)  # the interval has passed
    assert delivery.answer_duplicate(NOW, NOW - dt.timedelta(seconds=1), minute)  # clock went back


def test_a_decision_is_kept_past_expiry_but_never_beyond_the_lifetime_from_now(registry, payload):
    header = envelope.parse(registry, sealed(registry, payload)).header
    margin, lifetime = dt.timedelta(days=2), dt.timedelta(days=90)
    assert delivery.keep_until(header, NOW, lifetime, margin) == header.expires_at + margin
    far = dataclasses.replace(header, expires_at=dt.datetime(9999, 12, 30, tzinfo=dt.UTC))
    assert delivery.keep_until(far, NOW, lifetime, margin) == NOW + lifetime + margin
