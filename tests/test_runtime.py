"""The running node against the real (embedded) broker."""

from __future__ import annotations

import pytest

from node import submit
from node.service import Node
from node.transport.broker import EmbeddedBroker
from tests.runtime_helpers import case_update, create_nodes, eventually, node_env, states


@pytest.fixture
async def broker():
    b = EmbeddedBroker()
    await b.start()
    yield b
    await b.stop()


async def test_message_delivered_and_receipted(tmp_path, broker):
    dirs = create_nodes(tmp_path, {"zm-police": "law-enforcement", "zw-police": "law-enforcement"})
    env = node_env(broker.bootstrap_servers)
    a, b = Node(dirs["zm-police"], env=env), Node(dirs["zw-police"], env=env)
    received = []

    async def handler(opened, stored):
        received.append((opened.header.message_id, opened.payload["note"], stored.seq))

    b.on_message(handler)
    await a.start()
    await b.start()
    try:
        message_id = await a.submit(
            submit.Request(kind="mla", to=["zw-police"], payload=case_update(), schema="CaseUpdate")
        )

        async def delivered() -> bool:
            return await states(a, message_id) == {"zw-police": "delivered"}

        await eventually(delivered, what="the receipt from zw-police")
        assert [r[:2] for r in received] == [(message_id, "Suspect arrested in Lusaka.")]
        inbox = await b._run(b.store.inbox, 0, None, 10)
        assert [m.message_id for m in inbox] == [message_id]
    finally:
        await a.stop()
        await b.stop()
