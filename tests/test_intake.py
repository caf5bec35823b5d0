"""Storing a batch of inbound records in one transaction (node/intake.py), against a real
SQLite store: what a batch keeps, what it answers, and in how many receipts.

- every message of a batch kept, and answered by one receipt per sender that lists them all;
- a second copy inside the same batch kept once and answered once; another envelope under
  the same id inside the batch refused as a replay;
- a record whose write fails keeps nothing and is left out of the receipt, the others are
  kept; a disk that refuses the transaction keeps nothing at all;
- receipts of both shapes applied: a batched one (every answer) and one written by a node of
  Receipt version 2 (no ``also``), which is how every node answered before batching.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import io
from typing import Any

import fastavro
import pytest

from node import delivery, envelope, intake, quarantine, submit
from node.audit import AuditEvent
from node.codec import (
    SchemaRegistry,
    _info_of,
    default_registry,
    history_versions,
    schemas_directory,
)
from node.store.base import StoreFull
from node.store.sqlite import SqliteStore
from tests.conftest import CASE_UPDATE_JSON, NOW, MemNode, peers_of
from tests.test_classify import MW, ZM, ZW, context


@dataclasses.dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    value: bytes


def ctx_for(node: MemNode, registry: SchemaRegistry, *peers: MemNode) -> intake.IntakeContext:
    return intake.IntakeContext(
        registry=registry, node_id=node.node_id, identity=node.identity,
        peers={p.node_id: p.descriptor for p in peers}, max_lifetime=dt.timedelta(days=400),
        quarantine_limits=quarantine.QuarantineLimits(), duplicate_interval=dt.timedelta(minutes=1),
        receipt_batch=200,
    )  # fmt: skip


def sealed(registry: SchemaRegistry, note: str, sender: MemNode = ZM, **extra: Any) -> bytes:
    payload = registry.from_json("xnode.payload.CaseUpdate", {**CASE_UPDATE_JSON, "note": note})
    return envelope.seal(
        registry, identity=sender.identity, sender_id=sender.node_id, kind="alert",
        schema_name="CaseUpdate", payload=payload, recipients=[ZW.descriptor], now=NOW,
        expires_at=NOW + dt.timedelta(days=7), **extra,
    ).data  # fmt: skip


def classified(
    registry: SchemaRegistry, store: SqliteStore, raws: list[bytes]
) -> list[intake.Item]:
    ctx = context(registry, peers=peers_of(ZM, MW))
    return [
        intake.Item(Rec("xchg.zw-police.alert", 0, i, raw),
                    delivery.classify(ctx, raw, NOW, store.seen))
        for i, raw in enumerate(raws)
    ]  # fmt: skip


def receipts_queued(store: SqliteStore, registry: SchemaRegistry, to: MemNode) -> list[dict]:
    """Every receipt in the outbox, opened as its recipient would."""
    rows = store._conn.execute("SELECT envelope FROM outbox WHERE kind = 'receipt'").fetchall()
    opened = []
    for (data,) in rows:
        parsed = envelope.parse(registry, data, envelope.DEFAULT_MAX_ENVELOPE_BYTES)
        if to.node_id not in parsed.header.recipient_ids:
            continue
        o = envelope.open_envelope(registry, data, own_id=to.node_id,
                                   own_keys=to.keys, peers=peers_of(ZW), now=NOW)  # fmt: skip
        opened.append(o.payload)
    return opened


def test_a_batch_is_kept_and_answered_by_one_receipt_per_sender(registry, store):
    raws = [sealed(registry, f"update {i} from Chirundu") for i in range(5)]
    raws += [sealed(registry, f"update {i} from Lilongwe", sender=MW) for i in range(3)]
    items = classified(registry, store, raws)
    result = intake.write_batch(store, ctx_for(ZW, registry, ZM, MW), items, NOW)
    assert [i.error for i in result.items] == [None] * 8
    assert len(store.inbox(0, None, 100)) == 8 and result.receipts == 2
    to_zm = receipts_queued(store, registry, ZM)
    answers = delivery.receipt_answers(next(r for r in to_zm if len(r["also"]) == 4))
    ids = [str(a["message_id"]) for a in answers]
    assert ids == [i.stored.message_id for i in items[:5]]  # in the order received
    assert {a["status"] for a in answers} == {"delivered"}
    assert [a["envelope_sha256"] for a in answers] == [
        hashlib.sha256(r).hexdigest() for r in raws[:5]
    ]
    # audit: each message received and answered, by id
    events = [(e.event.event, e.event.message_id) for e in store.audit_entries()]
    for item in items:
        assert ("received", item.stored.message_id) in events
        assert ("receipt-sent", item.stored.message_id) in events


def test_receipt_batch_bounds_the_answers_per_receipt(registry, store):
    items = classified(registry, store, [sealed(registry, f"n{i}") for i in range(7)])
    ctx = dataclasses.replace(ctx_for(ZW, registry, ZM), receipt_batch=3)
    assert intake.write_batch(store, ctx, items, NOW).receipts == 3  # 3 + 3 + 1


def test_a_copy_within_the_batch_is_kept_once_and_answered_once(registry, store):
    raw = sealed(registry, "seen at Beitbridge")
    items = classified(registry, store, [raw, raw])
    result = intake.write_batch(store, ctx_for(ZW, registry, ZM), items, NOW)
    assert len(store.inbox(0, None, 10)) == 1
    assert [i.copy_in_batch for i in result.items] == [False, True]
    (receipt,) = receipts_queued(store, registry, ZM)
    assert receipt["also"] == []


def test_copies_of_a_message_decided_earlier_are_answered_once_per_batch(registry, store):
    """A replay flood: a batch of copies of a message already delivered earns one answer and
    one audit entry, not one per copy (the rest are counted as unanswered duplicates)."""
    raw = sealed(registry, "seen at Nakonde")
    ctx = ctx_for(ZW, registry, ZM)
    intake.write_batch(store, ctx, classified(registry, store, [raw]), NOW)
    result = intake.write_batch(store, ctx, classified(registry, store, [raw] * 6), NOW)
    assert [i.answered for i in result.items] == [True] + [False] * 5
    assert [i.copy_in_batch for i in result.items] == [False] + [True] * 5
    events = [e.event.event for e in store.audit_entries()]
    assert events.count("duplicate") == 1 and events.count("receipt-sent") == 2
    assert result.receipts == 1


def test_another_envelope_under_the_same_id_within_the_batch_is_a_replay(registry, store):
    message_id = "01937a4e-8b1c-7d2e-9f3a-4b5c6d7e8f90"
    first = sealed(registry, "the original", message_id=message_id)
    other = sealed(registry, "a forgery of the same id", message_id=message_id)
    items = classified(registry, store, [first, other])
    result = intake.write_batch(store, ctx_for(ZW, registry, ZM), items, NOW)
    assert [m.message_id for m in store.inbox(0, None, 10)] == [message_id]
    assert result.items[1].quarantined == "replay"
    assert [q.reason for q in store.quarantined(10)] == ["replay"]


def test_a_failing_write_keeps_nothing_of_its_record_and_is_not_answered(
    registry, store, monkeypatch
):
    items = classified(registry, store, [sealed(registry, f"n{i}") for i in range(3)])
    real = store.record_inbound
    poisoned = items[1].outcome.opened.header.message_id

    def record_inbound(message, *args, **kwargs):
        result = real(message, *args, **kwargs)  # written, then the write fails: undone
        if message.message_id == poisoned:
            raise RuntimeError("a bug that only this message triggers")
        return result

    monkeypatch.setattr(store, "record_inbound", record_inbound)
    result = intake.write_batch(store, ctx_for(ZW, registry, ZM), items, NOW)
    assert [type(i.error).__name__ for i in result.items] == ["NoneType", "RuntimeError",
                                                              "NoneType"]  # fmt: skip
    kept = [m.message_id for m in store.inbox(0, None, 10)]
    assert poisoned not in kept and len(kept) == 2
    assert store.seen("zm-police", poisoned) is None  # read again, it is new
    (receipt,) = receipts_queued(store, registry, ZM)
    assert [str(a["message_id"]) for a in delivery.receipt_answers(receipt)] == kept


def test_a_disk_that_refuses_the_transaction_keeps_nothing(registry, store, monkeypatch):
    items = classified(registry, store, [sealed(registry, f"n{i}") for i in range(3)])

    def full(*args, **kwargs):
        raise StoreFull("no space left on the device holding the store")

    monkeypatch.setattr(store, "submit", full)  # the receipt's insert, the batch's last write
    with pytest.raises(StoreFull):
        intake.write_batch(store, ctx_for(ZW, registry, ZM), items, NOW)
    assert store.inbox(0, None, 10) == [] and store.audit_entries() == []
    assert all(store.seen("zm-police", i.outcome.opened.header.message_id) is None
               for i in items)  # fmt: skip


def sent_by_zm(registry: SchemaRegistry, store: SqliteStore, n: int) -> list[envelope.Sealed]:
    """n messages zm-police sent to zw-police, in zm-police's outbox."""
    out = []
    for i in range(n):
        payload = registry.from_json("xnode.payload.CaseUpdate",
                                     {**CASE_UPDATE_JSON, "note": f"m{i}"})  # fmt: skip
        s = envelope.seal(registry, identity=ZM.identity, sender_id="zm-police", kind="alert",
                          schema_name="CaseUpdate", payload=payload, recipients=[ZW.descriptor],
                          now=NOW, expires_at=NOW + dt.timedelta(days=7))  # fmt: skip
        store.submit(submit.outbound(s, "xnode.payload.CaseUpdate"),
                     AuditEvent("submitted", NOW, message_id=s.header.message_id))  # fmt: skip
        out.append(s)
    return out


def receipt_from_zw(registry: SchemaRegistry, payload: dict, first: envelope.Sealed,
                    writer: Any = None) -> bytes:  # fmt: skip
    return envelope.seal(
        registry, identity=ZW.identity, sender_id="zw-police", kind="receipt",
        schema_name=delivery.RECEIPT_SCHEMA, payload=payload, recipients=[ZM.descriptor],
        now=NOW, expires_at=NOW + dt.timedelta(days=7), thread_id=first.header.thread_id,
        in_reply_to=first.header.message_id, writer=writer,
    ).data  # fmt: skip


def states(store: SqliteStore) -> dict[str, str]:
    rows = store._conn.execute("SELECT message_id, state FROM outbox_recipients").fetchall()
    return {r[0]: r[1] for r in rows}


def apply(registry: SchemaRegistry, store: SqliteStore, raw: bytes) -> intake.BatchResult:
    ctx = context(registry, own_id="zm-police", own_keys=ZM.keys, peers=peers_of(ZW))
    item = intake.Item(Rec("xchg.zm-police.receipt", 0, 0, raw),
                       delivery.classify(ctx, raw, NOW, store.seen))  # fmt: skip
    assert isinstance(item.outcome, delivery.ReceiptReceived), item.outcome
    return intake.write_batch(store, ctx_for(ZM, registry, ZW), [item], NOW)


def test_a_batched_receipt_settles_every_message_it_answers(registry, store):
    sent = sent_by_zm(registry, store, 4)
    owed = [delivery.Owed(s.header, s.sha256.hex()) for s in sent[:3]]
    owed.append(delivery.Owed(sent[3].header, sent[3].sha256.hex(), "policy-denied", "no"))
    raw = receipt_from_zw(registry, delivery.batch_receipt_payload(owed, NOW), sent[0])
    result = apply(registry, store, raw)
    assert result.items[0].quarantined is None
    assert states(store) == {**{s.header.message_id: "delivered" for s in sent[:3]},
                             sent[3].header.message_id: "rejected"}  # fmt: skip


def test_a_batched_receipt_naming_a_message_never_sent_is_quarantined_after_the_rest(
    registry, store
):
    sent = sent_by_zm(registry, store, 1)
    stranger = dataclasses.replace(
        sent[0].header, message_id="01937a4e-8b1c-7d2e-9f3a-000000000001"
    )
    owed = [delivery.Owed(sent[0].header, sent[0].sha256.hex()), delivery.Owed(stranger, "ab" * 32)]
    raw = receipt_from_zw(registry, delivery.batch_receipt_payload(owed, NOW), sent[0])
    result = apply(registry, store, raw)
    assert states(store) == {sent[0].header.message_id: "delivered"}
    assert result.items[0].quarantined == "invalid-payload"


def version_2() -> dict[str, Any]:
    """Receipt as released before batching, the current version of a node not yet upgraded."""
    document = history_versions(schemas_directory(), delivery.RECEIPT_SCHEMA)[1]
    assert "also" not in {f["name"] for f in document["fields"]}
    return fastavro.parse_schema(document)


def test_a_receipt_from_a_node_before_batching_is_still_applied(registry, store):
    sent = sent_by_zm(registry, store, 1)
    v2 = _info_of(history_versions(schemas_directory(), delivery.RECEIPT_SCHEMA)[1])
    payload = delivery.receipt_payload(sent[0].header.message_id, sent[0].sha256.hex(), NOW)
    del payload["also"]  # version 2 has no such field
    raw = receipt_from_zw(registry, payload, sent[0], writer=v2)
    parsed = envelope.parse(registry, raw, envelope.DEFAULT_MAX_ENVELOPE_BYTES)
    assert parsed.header.payload_schema.hex() == v2.fingerprint_hex  # really written as v2
    apply(registry, store, raw)
    assert states(store) == {sent[0].header.message_id: "delivered"}


def test_a_receipt_of_one_answer_is_written_so_a_node_before_batching_reads_it(registry, store):
    """Mixed versions during an upgrade: a receipt of one answer is written with Receipt v2,
    which the not yet upgraded sender knows (it would quarantine v3 as schema-unsupported);
    a receipt of several answers needs v3."""
    ctx = dataclasses.replace(ctx_for(ZW, registry, ZM),
                              single_answer_writer=delivery.single_answer_writer(registry))  # fmt: skip
    v2 = _info_of(history_versions(schemas_directory(), delivery.RECEIPT_SCHEMA)[1])
    intake.write_batch(store, ctx, classified(registry, store, [sealed(registry, "one")]), NOW)
    intake.write_batch(store, ctx, classified(registry, store, [sealed(registry, "a"),
                                                                sealed(registry, "b")]), NOW)  # fmt: skip
    rows = store._conn.execute("SELECT envelope FROM outbox WHERE kind = 'receipt' ORDER BY rowid")
    headers = [envelope.parse(registry, r[0], envelope.DEFAULT_MAX_ENVELOPE_BYTES)
               for r in rows.fetchall()]  # fmt: skip
    assert [p.header.payload_schema.hex() for p in headers] == [
        v2.fingerprint_hex, registry.schema(delivery.RECEIPT_SCHEMA).fingerprint_hex,
    ]  # fmt: skip
    # the old node opens it with v2 as its own current schema
    plain = envelope.decrypt(headers[0], ZM.node_id, ZM.keys)
    old = fastavro.schemaless_reader(io.BytesIO(plain), version_2(), None)
    assert old["status"] == "delivered" and "also" not in old
    assert [a["status"] for a in delivery.receipt_answers(receipts_queued(store, registry, ZM)[1])] == [
        "delivered", "delivered"
    ]  # fmt: skip


def test_receipt_groups_split_per_sender_in_order_and_by_size():
    def owed(sender: str, n: int) -> delivery.Owed:
        header = dataclasses.replace(_HEADER, sender=sender, message_id=f"{n:08d}")
        return delivery.Owed(header, "00")

    items = [owed("a", 1), owed("b", 2), owed("a", 3), owed("a", 4), owed("b", 5)]
    groups = delivery.receipt_groups(items, 2)
    assert [[o.header.message_id[-1] for o in g] for g in groups] == [["1", "3"], ["4"],
                                                                      ["2", "5"]]  # fmt: skip
    assert delivery.receipt_groups(items, 0) == delivery.receipt_groups(items, 1)
    assert len(delivery.receipt_groups(items, 1)) == 5


_HEADER = envelope.parse(
    default_registry(),
    envelope.seal(
        default_registry(), identity=ZM.identity, sender_id="zm-police", kind="alert",
        schema_name="CaseUpdate",
        payload=default_registry().from_json("xnode.payload.CaseUpdate", CASE_UPDATE_JSON),
        recipients=[ZW.descriptor], now=NOW, expires_at=NOW + dt.timedelta(days=7),
    ).data,
    envelope.DEFAULT_MAX_ENVELOPE_BYTES,
).header  # fmt: skip


async def test_two_running_nodes_answer_a_burst_with_few_receipts(tmp_path, broker):
    """End to end: 120 messages submitted at once; each is stored once, handed over once and
    receipted, with far fewer receipt envelopes than messages (one per sender per batch)."""
    from tests.runtime_helpers import create_nodes, eventually, node_env
    from tests.test_faults import SPECS, LocalSide, all_delivered, request, started

    dirs = create_nodes(tmp_path, SPECS)
    env = node_env(broker.bootstrap_servers, XNODE_DELIVERY_RETRY_INITIAL_SECONDS="30")
    local = LocalSide()
    a, b = await started(dirs["zm-police"], env), await started(dirs["zw-police"], env, local)
    try:
        await a.connected.wait()
        await b.connected.wait()
        ids = await asyncio.gather(*(a.submit(request(i)) for i in range(120)))
        await eventually(lambda: all_delivered(a, list(ids)), 60, "every receipt applied")
        assert set(local.calls) == set(ids) and max(local.calls.values()) == 1
        receipts = await b._run(
            lambda: b.store._conn.execute(
                "SELECT count(*) FROM outbox WHERE kind = 'receipt'"
            ).fetchone()[0]
        )
        assert 1 <= receipts <= 40, receipts
        assert a._group.batches < a._group.writes  # submissions shared commits
    finally:
        await a.stop()
        await b.stop()
