"""A member with a valid key behaving badly: it asks a node to erase a message another member
sent. Three nodes in one process on the bundled broker; the hostile node crafts the request
by hand (its own software need not use the erasure route)."""

from __future__ import annotations

import pytest

from node import erasure, submit
from node.compose import build_node
from node.transport.broker import EmbeddedBroker
from tests.runtime_helpers import case_update, create_nodes, eventually, node_env

pytestmark = pytest.mark.asyncio
UNKNOWN = "01937a4e-5b2c-7d10-8a3f-2c9e4b7d1a05"


async def test_only_the_originator_may_have_its_message_erased(tmp_path):
    broker = EmbeddedBroker()
    await broker.start()
    dirs = create_nodes(tmp_path, {n: "law-enforcement" for n in
                                   ("zm-police", "zw-police", "mw-police")})  # fmt: skip
    env = node_env(broker.bootstrap_servers)
    a, b, c = (build_node(dirs[n], env=env) for n in ("zm-police", "zw-police", "mw-police"))
    for node in (a, b, c):
        await node.start()
    try:
        original = await a.submit(submit.Request(kind="mla", to=["zw-police"], schema="CaseUpdate",
                                                 payload=case_update("Seen at Beitbridge.")))  # fmt: skip

        async def arrived() -> bool:
            return any(m["id"] == original for m in await b.inbox_items(0, None, 10))

        await eventually(arrived, 30, "the message at zw-police")
        payload = erasure.request_payload([original, UNKNOWN], None, "ConsentWithdrawn", None,
                                          c.clock())  # fmt: skip
        forged = await c.submit(submit.Request(
            kind="mla", to=["zw-police"], schema="ErasureRequest", payload=payload,
            procedural=True))  # fmt: skip

        async def answered() -> list:
            return [m for m in await c.inbox_items(0, None, 10)
                    if m["payload_schema"] == "ErasureResult"]  # fmt: skip

        await eventually(answered, 30, "zw-police's answer to mw-police")
        (result,) = await answered()
        assert result["in_reply_to"] == forged
        assert [(r["message_id"], r["outcome"]) for r in result["payload"]["results"]] == [
            (original, "Refused"),
            (UNKNOWN, "NotFound"),
        ]
        kept = [m for m in await b.inbox_items(0, None, 10) if m["id"] == original]
        assert (
            kept[0]["payload"]["note"] == "Seen at Beitbridge." and "payload_error" not in kept[0]
        )
        refusals = [e.event for e in await b._run(b.store.audit_entries, original)
                    if e.event.event == "erasure-refused"]  # fmt: skip
        assert [(e.peer, e.detail["senders"]) for e in refusals] == [("mw-police", ["zm-police"])]
        # the generic send path does not let a local system hand-craft one either
        with pytest.raises(Exception, match="sent by the node itself"):
            await c.submit(submit.Request(kind="mla", to=["zw-police"], schema="ErasureRequest",
                                          payload=payload))  # fmt: skip
    finally:
        for node in (a, b, c):
            await node.stop()
        await broker.stop()


async def test_a_thread_erasure_spares_the_request_and_is_answered_once(tmp_path):
    broker = EmbeddedBroker()
    await broker.start()
    dirs = create_nodes(tmp_path, {n: "law-enforcement" for n in ("zm-police", "zw-police")})
    env = node_env(broker.bootstrap_servers)
    a, b = (build_node(dirs[n], env=env) for n in ("zm-police", "zw-police"))
    for node in (a, b):
        await node.start()
    try:
        first = await a.submit(submit.Request(kind="mla", to=["zw-police"], schema="CaseUpdate",
                                              payload=case_update("Seen at Nakonde.")))  # fmt: skip
        second = await a.submit(submit.Request(kind="mla", to=["zw-police"], schema="CaseUpdate",
                                               thread_id=first,
                                               payload=case_update("Seen at Chirundu.")))  # fmt: skip

        async def both() -> bool:
            return {first, second} <= {m["id"] for m in await b.inbox_items(0, None, 10)}

        await eventually(both, 30, "both messages at zw-police")
        (request,) = await a.erasures.request(thread_id=first, reason="DataInaccurate")
        assert request["message_ids"] == [first, second]

        async def answered() -> list:
            return [m for m in await a.inbox_items(0, None, 10)
                    if m["payload_schema"] == "ErasureResult"]  # fmt: skip

        await eventually(answered, 30, "the answer at zm-police")
        (result,) = await answered()
        assert [(r["message_id"], r["outcome"]) for r in result["payload"]["results"]] == [
            (first, "Erased"),
            (second, "Erased"),
        ]
        kept = {m["id"]: m for m in await b.inbox_items(0, None, 10)}
        assert kept[request["request_id"]]["payload"]["reason"] == "DataInaccurate"
        assert kept[first]["payload_error"] == "erased"
        # carried out again (as after a crash before the cursor moved): answered once only
        await b._run(b.store._conn.execute, "UPDATE adapter_cursors SET seq = 0"
                     " WHERE adapter = 'erasure'")  # fmt: skip
        assert await b.erasures.run_once() == 1
        answers = (await b._run(b.store.thread, first))[0]
        assert [m.schema_name for m in answers].count("xnode.payload.ErasureResult") == 1
        events = [e.event.event for e in await b._run(b.store.audit_entries)]
        assert "erasure-failed" not in events and events.count("erased") == 2
    finally:
        for node in (a, b):
            await node.stop()
        await broker.stop()
