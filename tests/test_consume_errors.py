"""The consume loop's error paths, with a real broker and failures injected where only a mock
can put them (the store refusing a write, an unexpected exception for one record).

- a store that cannot write: the record is not committed and is read again once it can;
- a record whose processing keeps failing: retried a few times, then quarantined as
  ``processing-failed`` and skipped, so the records behind it on its partition and on other
  partitions go on;
- a duplicate (the same envelope again) is answered with its receipt again, not quarantined.
"""

from __future__ import annotations

import datetime as dt

from aiokafka import AIOKafkaProducer

from node import delivery
from node.codec import default_registry
from node.compose import build_node
from node.nodedir import NodeDir
from node.service import MAX_RECORD_ATTEMPTS, utc_now
from node.store.base import StoreFull
from tests.runtime_helpers import create_nodes, eventually, node_env
from tests.test_faults import SPECS, LocalSide, all_delivered, request, started


async def test_a_record_that_keeps_failing_is_quarantined_and_the_partition_goes_on(
    tmp_path, broker, monkeypatch
):
    dirs = create_nodes(tmp_path, SPECS)
    env = node_env(broker.bootstrap_servers)
    local = LocalSide()
    a, b = await started(dirs["zm-police"], env), await started(dirs["zw-police"], env, local)
    poison = b"\x00poison record: crashes the classifier"
    real = delivery.classify
    seen = {"poison": 0}

    def classify(ctx, raw, now, seen_fn, **kwargs):
        if raw == poison:
            seen["poison"] += 1
            raise RuntimeError("a bug that only this record triggers")
        return real(ctx, raw, now, seen_fn, **kwargs)

    monkeypatch.setattr(delivery, "classify", classify)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await producer.start()
    try:
        # the poison record first, on every partition of the mla topic, then real messages
        for partition in range(3):
            await producer.send_and_wait("xchg.zw-police.mla", poison, partition=partition)
        ids = [await a.submit(request(i)) for i in range(6)]
        await eventually(lambda: all_delivered(a, ids), 60, "the messages behind the poison")

        async def quarantined() -> bool:
            rows = await b._run(b.store.quarantined, 100)
            return sum(q.reason == "processing-failed" for q in rows) == 3

        await eventually(quarantined, 30, "the poison quarantined on each partition")
        assert seen["poison"] == 3 * MAX_RECORD_ATTEMPTS  # bounded: no endless retry
        assert set(local.calls) == set(ids) and max(local.calls.values()) == 1
        entry = next(q for q in await b._run(b.store.quarantined, 100))
        assert entry.raw == poison and "RuntimeError" in entry.detail
        failures = b.metrics.record_failures.labels("xchg.zw-police.mla")._value.get()
        assert failures == 3 * MAX_RECORD_ATTEMPTS
    finally:
        await producer.stop()
        await a.stop()
        await b.stop()


async def test_a_store_that_cannot_write_keeps_the_record_for_later(tmp_path, broker, monkeypatch):
    dirs = create_nodes(tmp_path, SPECS)
    env = node_env(broker.bootstrap_servers)
    local = LocalSide()
    a, b = await started(dirs["zm-police"], env), await started(dirs["zw-police"], env, local)
    refusals = {"left": 4}
    real = b.store.record_inbound

    def record_inbound(*args, **kwargs):
        if refusals["left"] > 0:
            refusals["left"] -= 1
            raise StoreFull("no space left on the device holding the store")
        return real(*args, **kwargs)

    monkeypatch.setattr(b.store, "record_inbound", record_inbound)
    try:
        first = await a.submit(request(0))
        await eventually(lambda: all_delivered(a, [first]), 60, "delivery once the store writes")
        assert refusals["left"] == 0  # refused four times, then stored: never skipped
        assert local.calls == {first: 1}
        assert b.metrics.store_write_failures.labels("full")._value.get() >= 4
        assert not [q for q in await b._run(b.store.quarantined, 10)]  # not the record's fault
    finally:
        await a.stop()
        await b.stop()


async def test_a_duplicate_is_answered_again_and_not_quarantined(tmp_path, broker):
    """A sender whose receipt was lost re-publishes; the copy must get its receipt again."""
    dirs = create_nodes(tmp_path, SPECS)
    env = node_env(broker.bootstrap_servers)
    local = LocalSide()
    a, b = await started(dirs["zm-police"], env), await started(dirs["zw-police"], env, local)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await producer.start()
    try:
        first = await a.submit(request(0))
        await eventually(lambda: all_delivered(a, [first]), 60, "the first delivery")
        raw = (await b._run(b.store.inbox_message, first)).envelope

        def receipts() -> int:
            rows = b.store._conn.execute(
                "SELECT count(*) FROM outbox WHERE kind = 'receipt' AND thread_id IN"
                " (SELECT thread_id FROM inbox WHERE message_id = ?)",
                (first,),
            ).fetchone()
            return int(rows[0])

        assert await b._run(receipts) == 1
        await producer.send_and_wait("xchg.zw-police.mla", raw, key=b"again")

        async def answered_again() -> bool:
            return await b._run(receipts) == 2

        await eventually(answered_again, 30, "a second receipt for the copy")
        assert local.calls == {first: 1}
        assert not [q for q in await b._run(b.store.quarantined, 10)]
        assert b.metrics.duplicates.labels("zm-police")._value.get() == 1
    finally:
        await producer.stop()
        await a.stop()
        await b.stop()


async def test_forged_heartbeats_and_receipts_for_unknown_messages_change_nothing(tmp_path, broker):
    """A heartbeat signed with another key must not move the claimed peer's last-seen; a validly
    signed receipt for a message this node never sent is quarantined."""
    import datetime as dt

    from node import control, delivery, envelope
    from node.codec import default_registry
    from node.crypto.keys import IdentityKey

    dirs = create_nodes(tmp_path, SPECS)
    env = node_env(broker.bootstrap_servers, XNODE_DELIVERY_HEARTBEAT_SECONDS="3600")
    a, b = await started(dirs["zm-police"], env), await started(dirs["zw-police"], env)
    registry = default_registry()
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await producer.start()
    try:
        first = await a.submit(request(0))  # both nodes up and reading
        await eventually(lambda: all_delivered(a, [first]), 60, "a first delivery")
        seen_before = b.metrics.peer_last_seen.labels("zm-police")._value.get()
        now = dt.datetime.now(dt.UTC)
        forged = control.issue_heartbeat(
            registry, IdentityKey.generate(),
            control.Heartbeat("zm-police", now, 1, a.identity.key_id),
        )  # fmt: skip
        await producer.send_and_wait("xchg.control", forged, key=b"zm-police")

        # a real receipt from zm-police about a message zw-police never sent
        payload = delivery.receipt_payload("01a20000-0000-7000-8000-000000000000", "ab" * 32, now)
        stray = envelope.seal(
            registry, identity=a.identity, sender_id="zm-police", kind="receipt",
            schema_name=delivery.RECEIPT_SCHEMA, payload=payload, recipients=[b.own_descriptor],
            now=now, expires_at=now + dt.timedelta(days=1),
        ).data  # fmt: skip
        await producer.send_and_wait("xchg.zw-police.receipt", stray, key=b"stray")

        async def stray_quarantined() -> bool:
            rows = await b._run(b.store.quarantined, 10)
            return any("did not send" in q.detail for q in rows)

        await eventually(stray_quarantined, 30, "the stray receipt in quarantine")

        def ignored() -> float:
            return sum(
                s.value for family in b.metrics.registry.collect()
                if family.name == "xnode_control_records_ignored" for s in family.samples
                if s.name.endswith("_total")
            )  # fmt: skip

        async def forged_seen() -> bool:
            return ignored() >= 1

        await eventually(forged_seen, 30, "the forged heartbeat read and ignored")
        assert b.metrics.peer_last_seen.labels("zm-police")._value.get() == seen_before
    finally:
        await producer.stop()
        await a.stop()
        await b.stop()


async def test_a_receipt_that_cannot_be_sealed_is_recorded_and_the_message_kept(tmp_path, broker):
    """The sender's encryption key expires (no attacker needed): the receiver keeps and hands
    over the message, records ``receipt-not-sealed`` and moves on; the partition never stalls."""
    registry = default_registry()
    now = dt.datetime.now(dt.UTC)
    zm, zw = NodeDir(tmp_path / "zm-police"), NodeDir(tmp_path / "zw-police")
    short = zm.create(registry, node_id="zm-police", roles=("law-enforcement",), name="zm",
                      now=now - dt.timedelta(days=1), passphrase=None, key_valid_days=2)  # fmt: skip
    long = zw.create(registry, node_id="zw-police", roles=("law-enforcement",), name="zw",
                     now=now - dt.timedelta(days=1), passphrase=None)  # fmt: skip
    zm.add_peer(registry, "zm-police", long, now)
    zw.add_peer(registry, "zw-police", short, now)
    env = node_env(broker.bootstrap_servers)
    local = LocalSide()
    a = await started(zm, env)
    b = build_node(zw, env=env, clock=lambda: utc_now() + dt.timedelta(days=1, hours=12))
    b.on_message(local)
    await b.start()
    try:
        ids = [await a.submit(request(i)) for i in range(3)]

        async def kept() -> bool:
            return set(local.calls) == set(ids)

        await eventually(kept, 30, "every message handed over despite the unsealable receipts")
        events = [e.event for e in await b._run(b.store.audit_entries)]
        unsealed = [e for e in events if e.event == "receipt-not-sealed"]
        assert {e.message_id for e in unsealed} == set(ids)
        assert all(e.peer == "zm-police" and "SealError" in e.detail["error"] for e in unsealed)
        assert b.metrics.receipts_not_sealed.labels("zm-police")._value.get() >= 3
        assert b.metrics.record_failures.labels("xchg.zw-police.mla")._value.get() == 0
        assert max(local.calls.values()) == 1
    finally:
        await a.stop()
        await b.stop()
