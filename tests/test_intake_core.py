"""What :func:`node.intake.write_batch` writes for each kind of outcome, field by field.

``test_intake.py`` shows the batch as a whole (one transaction, one receipt per sender); these
pin what each record leaves behind — the quarantine entry, the remembered refusal, the audit
events and their details, the answer owed — because operators, the console and the sender's
status view read exactly those fields. Written to kill the mutants that survived the first
mutation run over ``node/intake.py`` (docs/mutation-testing.md). A real store in a temporary
directory; envelopes sealed in memory.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

from node import delivery, envelope, intake, quarantine
from node.audit import AuditEvent
from node.codec import SchemaRegistry
from node.store.sqlite import SqliteStore
from tests.conftest import NOW
from tests.test_classify import MW, SHELTER, ZM, ZW, context, peers_of
from tests.test_intake import (
    Rec,
    apply,
    ctx_for,
    receipt_from_zw,
    receipts_queued,
    sealed,
    sent_by_zm,
)

TOPIC = "xchg.zw-police.alert"


def decide(
    registry: SchemaRegistry, store: SqliteStore, raws: list[bytes], offset: int = 40
) -> list[intake.Item]:
    """Classify records as zw-police does, shelter included among its peers."""
    ctx = context(registry, peers=peers_of(ZM, MW, SHELTER))
    return [
        intake.Item(Rec(TOPIC, 2, offset + i, raw), delivery.classify(ctx, raw, NOW, store.seen))
        for i, raw in enumerate(raws)
    ]  # fmt: skip


def events(store: SqliteStore, name: str) -> list[AuditEvent]:
    return [e.event for e in store.audit_entries() if e.event.event == name]


def shelter_alert(registry: SchemaRegistry, note: str = "seen at Sesheke") -> bytes:
    """Shelters send no alerts under the default policy: refused, remembered, answered."""
    return sealed(registry, note, sender=SHELTER)


def test_a_refused_message_is_quarantined_remembered_and_answered(registry, store):
    raw = shelter_alert(registry)
    items = decide(registry, store, [raw])
    outcome = items[0].outcome
    assert isinstance(outcome, delivery.Rejected) and outcome.header is not None
    message_id, sha = outcome.header.message_id, hashlib.sha256(raw).hexdigest()
    result = intake.write_batch(store, ctx_for(ZW, registry, SHELTER), items, NOW)
    assert result.items[0].quarantined == "policy-denied" and result.receipts == 1
    (entry,) = store.quarantined(10)
    assert (entry.reason, entry.detail) == ("policy-denied", outcome.detail)
    assert (entry.sender, entry.message_id, entry.authenticated) == (SHELTER.node_id, message_id,
                                                                     True)  # fmt: skip
    assert (entry.topic, entry.partition, entry.offset) == (TOPIC, 2, 40)
    assert (entry.raw, entry.raw_sha256, entry.raw_length) == (raw, sha, len(raw))
    assert entry.received_at == NOW
    remembered = store.seen(SHELTER.node_id, message_id)
    assert remembered is not None
    assert (remembered.outcome, remembered.reason, remembered.envelope_sha256) == (
        "rejected", "policy-denied", sha
    )  # fmt: skip
    (quarantined,) = events(store, "quarantined")
    assert (quarantined.message_id, quarantined.peer, quarantined.at) == (message_id,
                                                                          SHELTER.node_id, NOW)  # fmt: skip
    assert quarantined.detail == {"reason": "policy-denied", "topic": TOPIC, "offset": 40}
    (sent,) = events(store, "receipt-sent")
    assert (sent.message_id, sent.peer) == (message_id, SHELTER.node_id)
    assert sent.detail == {"status": "rejected", "reason": "policy-denied"}
    (receipt,) = receipts_queued(store, registry, SHELTER)
    (answer,) = delivery.receipt_answers(receipt)
    assert (str(answer["message_id"]), answer["envelope_sha256"], answer["status"]) == (
        message_id, sha, "rejected"
    )  # fmt: skip
    assert delivery.reason_code(answer["reason"]) == "policy-denied"
    assert answer["detail"] == outcome.detail


def test_an_unauthenticated_record_is_kept_as_a_prefix_remembered_by_nobody(registry, store):
    raw = bytearray(sealed(registry, "tampered on the way to Harare. " * 200))  # > 4 KiB
    raw[-1] ^= 0x01  # the signature no longer verifies
    items = decide(registry, store, [bytes(raw)])
    result = intake.write_batch(store, ctx_for(ZW, registry, ZM), items, NOW)
    assert result.items[0].quarantined == "bad-signature" and result.receipts == 0
    (entry,) = store.quarantined(10)
    assert (entry.sender, entry.message_id, entry.authenticated) == (None, None, False)
    assert entry.raw_length == len(raw) and entry.raw == raw[:4096]  # a prefix only
    assert entry.raw_sha256 == hashlib.sha256(raw).hexdigest()
    claimed = envelope.parse(registry, sealed(registry, "x")).header  # any id: nothing kept
    assert store.seen(ZM.node_id, claimed.message_id) is None
    (quarantined,) = events(store, "quarantined")
    assert (quarantined.message_id, quarantined.peer) == (None, None)
    assert quarantined.detail == {"reason": "bad-signature", "topic": TOPIC, "offset": 40}
    assert events(store, "receipt-sent") == []


def test_a_reply_into_a_thread_its_sender_is_not_part_of_is_kept_apart(registry, store):
    """zm-police opens a case with zw-police; mw-police replying into it is not a participant:
    its message is stored but held apart from the thread, and that is audited."""
    opening = sealed(registry, "a case opened at Chirundu")
    thread = envelope.parse(registry, opening).header.message_id
    intake.write_batch(store, ctx_for(ZW, registry, ZM, MW), decide(registry, store, [opening]),
                       NOW)  # fmt: skip
    follow_up = sealed(registry, "more from Chirundu", thread_id=thread, in_reply_to=thread)
    intrusion = sealed(registry, "a reply from Lilongwe", sender=MW, thread_id=thread,
                       in_reply_to=thread)  # fmt: skip
    items = decide(registry, store, [follow_up, intrusion], offset=50)
    result = intake.write_batch(store, ctx_for(ZW, registry, ZM, MW), items, NOW)
    joined = [(i.joined, i.stored.thread_joined, i.stored.sender) for i in result.items]
    assert joined == [(True, True, ZM.node_id), (False, False, MW.node_id)]
    assert result.items[1].stored.recipients == (ZW.node_id,)
    (held,) = events(store, "thread-held-apart")
    assert (held.message_id, held.peer) == (result.items[1].stored.message_id, MW.node_id)
    assert held.detail == {"thread_id": thread, "participants": [ZM.node_id, ZW.node_id]}
    received = {e.message_id: e for e in events(store, "received")}
    stored = result.items[1].stored
    assert received[stored.message_id].peer == MW.node_id
    assert received[stored.message_id].detail == {"kind": "alert",
                                                  "envelope_sha256": stored.envelope_sha256}  # fmt: skip


def test_a_copy_of_a_refused_message_gets_the_same_answer_once_an_interval(registry, store):
    raw = shelter_alert(registry)
    ctx = ctx_for(ZW, registry, SHELTER)
    intake.write_batch(store, ctx, decide(registry, store, [raw]), NOW)
    later = NOW + dt.timedelta(minutes=2)  # past duplicate_interval (1 minute)
    first_copy = decide(registry, store, [raw], offset=70)
    assert isinstance(first_copy[0].outcome, delivery.Duplicate)
    result = intake.write_batch(store, ctx, first_copy, later)
    assert result.items[0].answered and result.receipts == 1
    (duplicate,) = events(store, "duplicate")
    assert (duplicate.peer, duplicate.at) == (SHELTER.node_id, later)
    assert duplicate.detail == {"topic": TOPIC, "offset": 70}
    answers = [delivery.receipt_answers(r)[0] for r in receipts_queued(store, registry, SHELTER)]
    assert [(a["status"], delivery.reason_code(a["reason"])) for a in answers] == [
        ("rejected", "policy-denied"), ("rejected", "policy-denied")
    ]  # fmt: skip
    # a further copy within the interval: counted, not answered, not audited again
    again = intake.write_batch(store, ctx, decide(registry, store, [raw], offset=80),
                               later + dt.timedelta(seconds=30))  # fmt: skip
    assert not again.items[0].answered and again.receipts == 0
    assert len(events(store, "duplicate")) == 1


def test_a_copy_of_a_receipt_is_counted_and_never_answered(registry, store):
    (sent,) = sent_by_zm(registry, store, 1)
    raw = receipt_from_zw(registry, delivery.receipt_payload(sent.header.message_id,
                                                             sent.sha256.hex(), NOW), sent)  # fmt: skip
    apply(registry, store, raw)
    ctx = context(registry, own_id=ZM.node_id, own_keys=ZM.keys, peers=peers_of(ZW))
    item = intake.Item(Rec("xchg.zm-police.receipt", 0, 1, raw),
                       delivery.classify(ctx, raw, NOW, store.seen))  # fmt: skip
    assert isinstance(item.outcome, delivery.Duplicate)
    copy = intake.write_batch(store, ctx_for(ZM, registry, ZW), [item], NOW)
    assert copy.items[0].answered and copy.receipts == 0  # noted as answered, nothing sent
    assert store._conn.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'receipt'").fetchone()[
        0
    ] == 0  # fmt: skip
    assert [e.peer for e in events(store, "duplicate")] == [ZW.node_id]


def test_each_answer_of_a_receipt_is_audited_and_the_receipt_remembered(registry, store):
    sent = sent_by_zm(registry, store, 3)
    owed = [delivery.Owed(s.header, s.sha256.hex()) for s in sent[:2]]
    owed.append(delivery.Owed(sent[2].header, sent[2].sha256.hex(), "policy-denied",
                              "zw-police takes no alerts from zm-police"))  # fmt: skip
    raw = receipt_from_zw(registry, delivery.batch_receipt_payload(owed, NOW), sent[0])
    result = apply(registry, store, raw)
    assert [m is not None for _, m in result.items[0].matches] == [True, True, True]
    by_id = {e.message_id: e for e in events(store, "receipted")}
    assert set(by_id) == {s.header.message_id for s in sent[:2]}
    assert all((e.peer, e.detail) == (ZW.node_id, {}) for e in by_id.values())
    (refused,) = events(store, "rejected")
    assert (refused.message_id, refused.peer) == (sent[2].header.message_id, ZW.node_id)
    assert refused.detail == {"reason": "policy-denied"}
    (status,) = store.message_status(sent[2].header.message_id)
    assert (status.state, status.reason) == ("rejected", "policy-denied")
    assert status.detail == "zw-police takes no alerts from zm-police"
    receipt_id = envelope.parse(registry, raw).header.message_id
    remembered = store.seen(ZW.node_id, receipt_id)
    assert remembered is not None and remembered.envelope_sha256 == hashlib.sha256(raw).hexdigest()


def test_a_receipt_answering_nothing_sent_is_quarantined_and_still_remembered(registry, store):
    (sent,) = sent_by_zm(registry, store, 1)
    stranger = dataclasses.replace(sent.header, message_id="01937a4e-8b1c-7d2e-9f3a-000000000002")
    raw = receipt_from_zw(registry, delivery.receipt_payload(stranger.message_id, "ab" * 32, NOW),
                          sent)  # fmt: skip
    apply(registry, store, raw)
    receipt_id = envelope.parse(registry, raw).header.message_id
    (entry,) = store.quarantined(10)
    assert (entry.reason, entry.sender, entry.message_id) == ("invalid-payload", ZW.node_id,
                                                              receipt_id)  # fmt: skip
    assert entry.detail == "receipt for a message this node did not send"
    (quarantined,) = events(store, "quarantined")
    assert (quarantined.message_id, quarantined.peer) == (receipt_id, ZW.node_id)
    assert quarantined.detail == {"reason": "invalid-payload"}
    assert store.seen(ZW.node_id, receipt_id) is not None  # a copy is a duplicate, not news


def test_a_receipt_that_cannot_be_sealed_is_audited_and_the_next_sender_still_answered(
    registry, store
):
    """zm-police's descriptor has no encryption key valid now: its receipt cannot be sealed.
    Its messages stay stored, each audited as receipt-not-sealed; mw-police, next in the
    batch, gets its receipt all the same."""
    raws = [sealed(registry, "from Nakonde"), sealed(registry, "from Nakonde again"),
            sealed(registry, "from Lilongwe", sender=MW)]  # fmt: skip
    items = decide(registry, store, raws)
    no_keys = dataclasses.replace(ZM.descriptor, encryption_keys=())
    ctx = dataclasses.replace(ctx_for(ZW, registry, ZM, MW),
                              peers={ZM.node_id: no_keys, MW.node_id: MW.descriptor})  # fmt: skip
    result = intake.write_batch(store, ctx, items, NOW)
    assert len(store.inbox(0, None, 10)) == 3 and result.receipts == 1
    (failed,) = result.not_sealed
    ids = tuple(i.stored.message_id for i in result.items[:2])
    assert (failed.peer, failed.message_ids, failed.error) == (ZM.node_id, ids, "SealError")
    unsealed = events(store, "receipt-not-sealed")
    assert [(e.message_id, e.peer, e.at) for e in unsealed] == [(m, ZM.node_id, NOW) for m in ids]
    assert all(e.detail["error"] == "SealError" and "zm-police" in e.detail["detail"]
               for e in unsealed)  # fmt: skip
    (to_mw,) = receipts_queued(store, registry, MW)
    assert (
        str(delivery.receipt_answers(to_mw)[0]["message_id"]) == result.items[2].stored.message_id
    )


def test_a_receipt_travels_on_the_thread_of_the_first_message_it_answers(registry, store):
    raws = [sealed(registry, f"update {i} from Beitbridge") for i in range(3)]
    items = decide(registry, store, raws)
    intake.write_batch(store, ctx_for(ZW, registry, ZM), items, NOW)
    (row,) = store._conn.execute("SELECT envelope FROM outbox WHERE kind = 'receipt'").fetchall()
    header = envelope.parse(registry, row[0]).header
    first = items[0].stored
    assert (header.thread_id, header.in_reply_to) == (first.thread_id, first.message_id)
    assert header.recipient_ids == (ZM.node_id,)
    longest = max(intake.receipt_expiry(i.outcome.opened.header, NOW, dt.timedelta(days=400))
                  for i in items)  # fmt: skip
    assert header.expires_at == longest


def test_parse_for_lookup_names_what_an_envelope_claims_and_trusts_nothing(registry):
    ctx = context(registry)
    raw = sealed(registry, "claimed, not yet verified")
    parsed, key = delivery.parse_for_lookup(ctx, raw)
    assert isinstance(parsed, envelope.ParsedEnvelope)
    assert key == (ZM.node_id, parsed.header.message_id)
    error, none = delivery.parse_for_lookup(ctx, b"\x00not an envelope")
    assert isinstance(error, envelope.EnvelopeError) and error.reason == "malformed"
    assert none is None
    too_big = delivery.parse_for_lookup(dataclasses.replace(ctx, max_bytes=len(raw) - 1), raw)
    assert isinstance(too_big[0], envelope.EnvelopeError) and too_big[0].reason == "too-large"


def test_a_kept_message_is_stored_received_remembered_delivered_and_answered(registry, store):
    opening = sealed(registry, "opened at Kazungula")
    thread = envelope.parse(registry, opening).header.message_id
    reply = sealed(registry, "and more", thread_id=thread, in_reply_to=thread)
    result = intake.write_batch(store, ctx_for(ZW, registry, ZM),
                                decide(registry, store, [opening, reply]), NOW)  # fmt: skip
    for item in result.items:
        kept = store.inbox_at(item.stored.seq)
        assert kept is not None and kept.message_id == item.stored.message_id
        assert (kept.state, kept.received_at) == ("received", NOW)
        remembered = store.seen(ZM.node_id, kept.message_id)
        assert remembered is not None and remembered.outcome == "delivered"
    assert store.inbox_at(result.items[1].stored.seq).in_reply_to == thread
    sent = events(store, "receipt-sent")
    assert [e.detail for e in sent] == [{"status": "delivered", "reason": None}] * 2
    # a receipt is never itself answered: the sender's outbox does not wait for one
    (expects,) = store._conn.execute("SELECT expects_receipt FROM outbox WHERE kind = 'receipt'")
    assert expects[0] == 0


def test_a_sender_over_its_quarantine_quota_is_kept_as_a_prefix(registry, store):
    raw = shelter_alert(registry, "refused, and the shelter's quota is spent")
    limits = dataclasses.replace(quarantine.QuarantineLimits(), sender_quota_bytes=100,
                                 prefix_bytes=64)  # fmt: skip
    ctx = dataclasses.replace(ctx_for(ZW, registry, SHELTER), quarantine_limits=limits)
    intake.write_batch(store, ctx, decide(registry, store, [raw]), NOW)
    (entry,) = store.quarantined(10)
    assert entry.authenticated and entry.raw == raw[:64] and entry.raw_length == len(raw)


def test_a_copy_decided_earlier_is_audited_by_its_id(registry, store):
    raw = sealed(registry, "seen twice at Beitbridge")
    ctx = ctx_for(ZW, registry, ZM)
    intake.write_batch(store, ctx, decide(registry, store, [raw]), NOW)
    intake.write_batch(store, ctx, decide(registry, store, [raw]), NOW + dt.timedelta(seconds=1))
    (duplicate,) = events(store, "duplicate")
    assert duplicate.message_id == envelope.parse(registry, raw).header.message_id


def test_a_receipt_lives_a_day_at_least_as_long_as_its_message_at_most_the_limit(registry):
    header = envelope.parse(registry, sealed(registry, "x")).header
    limit = dt.timedelta(days=30)

    def expiring(delta: dt.timedelta) -> dt.datetime:
        return intake.receipt_expiry(dataclasses.replace(header, expires_at=NOW + delta), NOW,
                                     limit)  # fmt: skip

    assert expiring(dt.timedelta(hours=1)) == NOW + dt.timedelta(days=1)
    assert expiring(-dt.timedelta(hours=1)) == NOW + dt.timedelta(days=1)
    assert expiring(dt.timedelta(days=10)) == NOW + dt.timedelta(days=10)
    assert expiring(dt.timedelta(days=90)) == NOW + limit
