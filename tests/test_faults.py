"""Faults the node must survive, each reproduced against the real broker and bounded in time."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import hashlib
import os

from aiokafka import AIOKafkaProducer

from node import envelope, submit
from node.codec import default_registry, format_timestamp
from node.compose import build_node
from node.crypto.keys import IdentityKey
from node.service import Node
from node.transport.broker import EmbeddedBroker
from tests.runtime_helpers import case_update, create_nodes, eventually, node_env, states

SPECS = {"zm-police": "law-enforcement", "zw-police": "law-enforcement"}


class LocalSide:
    """Counts what the node hands to the local system."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()

    async def __call__(self, opened, stored) -> None:
        self.calls[opened.header.message_id] += 1


async def started(node_dir, env, local: LocalSide | None = None) -> Node:
    node = build_node(node_dir, env=env)
    if local is not None:
        node.on_message(local)
    await node.start()
    return node


def request(i: int) -> submit.Request:
    return submit.Request(kind="mla", to=["zw-police"], payload=case_update(f"update {i}"),
                          schema="CaseUpdate", thread_id=None)  # fmt: skip


async def all_delivered(sender: Node, ids: list[str]) -> bool:
    for message_id in ids:
        if await states(sender, message_id) != {"zw-police": "delivered"}:
            return False
    return True


async def _count(node: Node, n: int) -> bool:
    return len(await node._run(node.store.inbox, 0, None, 1000)) == n


async def test_recipient_killed_mid_stream_and_restarted(tmp_path, broker):
    dirs = create_nodes(tmp_path, SPECS)
    env = node_env(broker.bootstrap_servers)
    local = LocalSide()
    a, b = await started(dirs["zm-police"], env), await started(dirs["zw-police"], env, local)
    try:
        ids = [await a.submit(request(i)) for i in range(100)]
        await eventually(lambda: _at_least(local, 20), 60, "the first deliveries")
        await b.kill()  # as a crash: loops cancelled mid-record, nothing more committed
        await asyncio.sleep(1)
        b = await started(dirs["zw-police"], env, local)
        await eventually(lambda: all_delivered(a, ids), 120, "all 100 receipts")
        inbox = await b._run(b.store.inbox, 0, None, 1000)
        assert sorted(m.message_id for m in inbox) == sorted(ids)
        assert max(local.calls.values()) == 1
    finally:
        await a.stop()
        await b.stop()


async def _at_least(local: LocalSide, n: int) -> bool:
    return len(local.calls) >= n


async def test_sender_killed_after_submit_before_publish(tmp_path):
    dirs = create_nodes(tmp_path, SPECS)
    broker = EmbeddedBroker()
    broker.port = __import__("node.transport.broker", fromlist=["free_port"]).free_port()
    env = node_env(broker.bootstrap_servers)
    a = await started(dirs["zm-police"], env)  # no broker yet: submissions must still succeed
    ids = [await a.submit(request(i)) for i in range(5)]
    assert {s for i in ids for s in (await states(a, i)).values()} == {"queued"}
    await a.kill()
    await broker.start()
    b = await started(dirs["zw-police"], env)
    a = await started(dirs["zm-police"], env)
    try:
        await eventually(lambda: all_delivered(a, ids), 60, "delivery after the restart")
    finally:
        await a.stop()
        await b.stop()
        await broker.stop()


async def test_hostile_records_are_quarantined_and_the_next_good_message_arrives(tmp_path, broker):
    dirs = create_nodes(tmp_path, SPECS)
    env = node_env(broker.bootstrap_servers, XNODE_ENVELOPE_MAX_BYTES="65536")
    local = LocalSide()
    a, b = await started(dirs["zm-police"], env), await started(dirs["zw-police"], env, local)
    registry = default_registry()
    topic = "xchg.zw-police.mla"
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await producer.start()
    try:
        first = await a.submit(request(0))
        await eventually(lambda: all_delivered(a, [first]), 30, "the first message")
        stored = await b._run(b.store.inbox_message, first)
        good = stored.envelope

        zm = a.identity
        peers_of_a = a.peers
        now = dt.datetime.now(dt.UTC)

        def seal(
            identity: IdentityKey, sender_id: str, created: dt.datetime, ttl=dt.timedelta(days=1),
            message_id: str | None = None,
        ):  # fmt: skip
            return envelope.seal(
                registry, identity=identity, sender_id=sender_id, kind="mla",
                schema_name="CaseUpdate",
                payload=registry.from_json(
                    "xnode.payload.CaseUpdate",
                    {**case_update("hostile"), "recorded_at": format_timestamp(created)},
                ),
                recipients=[peers_of_a["zw-police"]], now=created, expires_at=created + ttl,
                message_id=message_id,
            ).data  # fmt: skip

        old = seal(zm, "zm-police", now - dt.timedelta(hours=3), dt.timedelta(hours=1))  # expired
        forged = seal(IdentityKey.generate(), "zm-police", now)  # not zm-police's key
        tampered = bytearray(seal(zm, "zm-police", now))
        tampered[-30] ^= 0x40
        duplicates_before = b.metrics.duplicates.labels("zm-police")._value.get()
        await producer.send_and_wait(topic, good, key=b"x")  # the same envelope published again
        hostile = {
            "replay": seal(zm, "zm-police", now, message_id=first),  # its id, other content
            "expired": old,
            "unknown-sender": forged,
            "bad-signature": bytes(tampered),
            "malformed": os.urandom(512),
            "too-large": os.urandom(100_000),
        }
        for value in hostile.values():
            await producer.send_and_wait(topic, value, key=b"x")

        second = await a.submit(request(1))
        await eventually(lambda: all_delivered(a, [second]), 30, "the next good message")

        async def quarantined() -> bool:
            reasons = {q.reason for q in await b._run(b.store.quarantined, 100)}
            return set(hostile) <= reasons

        await eventually(quarantined, 30, "every hostile record in quarantine")
        assert set(local.calls) == {first, second}
        assert max(local.calls.values()) == 1
        # the byte-identical copy is counted as a duplicate, not quarantined
        assert b.metrics.duplicates.labels("zm-police")._value.get() == duplicates_before + 1
        assert len(await b._run(b.store.quarantined, 100)) == len(hostile)
        entries = {q.reason: q for q in await b._run(b.store.quarantined, 100)}
        # unauthenticated: a prefix kept for inspection, with the hash and length of the whole
        too_large = entries["too-large"]
        assert too_large.raw == hostile["too-large"][:4096] and too_large.truncated
        assert too_large.raw_length == 100_000 and not too_large.authenticated
        assert too_large.raw_sha256 == hashlib.sha256(hostile["too-large"]).hexdigest()
        assert entries["expired"].raw == old and entries["expired"].authenticated  # whole
        assert entries["unknown-sender"].sender is None  # unauthenticated: nothing claimed
        # every quarantined record is counted, by reason, for the operators' alerts
        counted = {
            s.labels["reason"]: s.value
            for family in b.metrics.registry.collect()
            if family.name == "xnode_messages_quarantined"
            for s in family.samples
            if s.name.endswith("_total")
        }
        stored = [q.reason for q in await b._run(b.store.quarantined, 100)]
        assert counted == {r: float(stored.count(r)) for r in set(stored)}
    finally:
        await producer.stop()
        await a.stop()
        await b.stop()


async def test_clock_skew_refused_beyond_the_window_accepted_within(tmp_path, broker):
    dirs = create_nodes(tmp_path, SPECS)
    env = node_env(broker.bootstrap_servers, XNODE_ENVELOPE_CLOCK_SKEW_SECONDS="120")
    a, b = await started(dirs["zm-police"], env), await started(dirs["zw-police"], env)
    try:
        real = a.clock
        a.clock = lambda: real() + dt.timedelta(minutes=10)  # the sender's clock runs fast
        ahead = await a.submit(request(0))

        async def rejected() -> bool:
            return (await states(a, ahead))["zw-police"] == "rejected"

        await eventually(rejected, 30, "the negative receipt")
        a.clock = lambda: real() + dt.timedelta(seconds=60)  # within the 120 s allowed
        near = await a.submit(request(1))

        async def delivered() -> bool:
            return (await states(a, near))["zw-police"] == "delivered"

        await eventually(delivered, 30, "the delivery")
        rejected = (await a._run(a.store.message_status, ahead))[0]
        assert rejected.reason == "clock-skew"
        reasons = [q.reason for q in await b._run(b.store.quarantined, 10)]
        assert "clock-skew" in reasons
    finally:
        await a.stop()
        await b.stop()
