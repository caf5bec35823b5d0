"""Procedures in running nodes (two nodes in one process, the bundled broker, a clock the test
moves): a step out of order is refused by the sender unless overridden, kept and flagged by
the recipient; a thread shows its procedure; an MLA request past its deadline is overdue on
both sides — metric, one status event, the API — until the final answer arrives."""

from __future__ import annotations

import datetime as dt

import pytest
from aiohttp import web

from node import submit
from node.adapters import requests
from node.codec import format_timestamp
from node.compose import build_node
from node.transport.broker import EmbeddedBroker, free_port
from tests.process_helpers import metric
from tests.runtime_helpers import case_update, create_nodes, eventually, example, node_env

pytestmark = pytest.mark.asyncio


class Hook:
    """A local system's webhook receiver: what it was posted, by event type."""

    def __init__(self) -> None:
        self.posts: list[tuple[str | None, dict]] = []
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        async def handle(request: web.Request) -> web.Response:
            self.posts.append((request.headers.get("X-Xnode-Event"), await request.json()))
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return f"http://127.0.0.1:{self.port}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def overdue(self) -> list[dict]:
        return [
            doc for event, doc in self.posts if event == "status" and doc["status"] == "overdue"
        ]


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


def response(request_id: str, status: str) -> dict:
    payload = example("mla-response.json")
    payload["request_id"], payload["status"] = request_id, status
    return payload


async def audit_events(node, message_id: str) -> list[str]:
    return [e.event.event for e in await node._run(node.store.audit_entries, message_id)]


async def test_order_overrides_flags_and_deadlines(tmp_path):
    broker = EmbeddedBroker()
    await broker.start()
    clock = Clock()
    dirs = create_nodes(tmp_path, {"zm-police": "law-enforcement", "zw-police": "law-enforcement"})
    env = node_env(broker.bootstrap_servers)
    hook = Hook()
    secret = dirs["zw-police"].path / "webhook.secret"
    secret.write_text("a-local-secret\n")
    secret.chmod(0o600)
    hooked = {**env, "XNODE_WEBHOOK_URL": await hook.start(),
              "XNODE_WEBHOOK_SECRET_FILE": "webhook.secret"}  # fmt: skip
    a = build_node(dirs["zm-police"], env=env, clock=clock)
    b = build_node(dirs["zw-police"], env=hooked, clock=clock)
    await a.start()
    await b.start()
    try:
        # a case update on a thread without a procedure keeps no step on either side
        update = await requests.send(a, submit.Request(
            kind="mla", to=["zw-police"], schema="CaseUpdate", payload=case_update()))  # fmt: skip

        async def update_arrived() -> bool:
            return any(m["id"] == update for m in await b.inbox_items(0, None, 10))

        await eventually(update_arrived, 30, "the case update at zw-police")
        assert await a._run(a.store.procedure_steps, update) == []
        assert await b._run(b.store.procedure_steps, update) == []
        assert await b.procedure(update) is None

        # an answer to nothing: refused before sealing, naming the missing step
        orphan = submit.Request(kind="mla", to=["zw-police"], schema="MlaResponse",
                                payload=response("01a1f4d0-1a2b-7c3d-9e4f-5a6b7c8d9e0f",
                                                 "PartiallyExecuted"))  # fmt: skip
        with pytest.raises(requests.Refusal) as refused:
            await requests.send(a, orphan)
        assert (refused.value.status, refused.value.field, refused.value.code) == (
            422,
            "schema",
            "out_of_order",
        )
        assert "missing: an MLA request" in refused.value.error
        # with a reason it goes, audited here and flagged there
        reason = "The request came by diplomatic bag before the node existed."
        forced = await requests.send(a, submit.Request(
            kind="mla", to=["zw-police"], schema="MlaResponse", procedure_override=reason,
            payload=orphan.payload))  # fmt: skip
        overrides = [e.event.detail for e in await a._run(a.store.audit_entries, forced)
                     if e.event.event == "procedure-override"]  # fmt: skip
        assert [o["reason"] for o in overrides] == [reason]

        async def flagged() -> bool:
            return "procedure-out-of-order" in await audit_events(b, forced)

        await eventually(flagged, 30, "the recipient to keep and flag the step")
        exposition = (await b.render_metrics()).decode()
        assert metric(exposition, "xnode_procedure_steps_out_of_order_total",
                      peer="zm-police") == 1.0  # fmt: skip
        forced_item = next(m for m in await b.inbox_items(0, None, 10) if m["id"] == forced)
        assert (await b.procedure(forced_item["thread_id"]))["flags"]

        # a request with a deadline in two days
        request_payload = example("mla-request.json")
        request_payload["deadline"] = format_timestamp(clock.now + dt.timedelta(days=2))
        request_id = await requests.send(a, submit.Request(
            kind="mla", to=["zw-police"], schema="MlaRequest", payload=request_payload))  # fmt: skip

        async def arrived() -> bool:
            return any(m["id"] == request_id for m in await b.inbox_items(0, None, 50))

        await eventually(arrived, 30, "the request at zw-police")
        view = await b.procedure(request_id)
        assert view is not None and view["next_expected"] == ["MlaResponse"]
        assert view["overdue"] is False and view["deadline"] == request_payload["deadline"]
        await a._check_overdue()
        assert await a.overdue() == []

        clock.now += dt.timedelta(days=3)  # nobody answered
        for node, direction in ((a, "sent"), (b, "received")):
            await node._check_overdue()
            (item,) = await node.overdue()
            assert (item["request_id"], item["direction"], item["owed_by"]) == (
                request_id,
                direction,
                ["zw-police"],
            )
            assert item["days_overdue"] == 1 and item["procedure"] == "mla"
            exposition = (await node.render_metrics()).decode()
            assert metric(exposition, "xnode_overdue_requests", procedure="mla",
                          direction=direction) == 1.0  # fmt: skip
            await node._check_overdue()  # announced once, not at every check
            events = [e for e in await node._run(node.store.status_events, 0, 100)
                      if e.status == "overdue"]  # fmt: skip
            assert [(e.message_id, e.recipient, e.reason) for e in events] == [
                (request_id, "zw-police", direction)
            ]
            assert "overdue" in await audit_events(node, request_id)

        # the local system of the node that owes the answer is told once, by its webhook
        async def posted() -> bool:
            return bool(hook.overdue())

        await eventually(posted, 30, "the overdue notice at zw-police's local system")
        (notice,) = hook.overdue()
        assert (notice["message_id"], notice["thread_id"], notice["kind"]) == (
            request_id,
            request_id,
            "mla",
        )
        assert "passed without an answer" in notice["detail"]

        # a partial answer does not meet the deadline; the final one does
        await requests.send(b, submit.Request(
            kind="mla", to=["zm-police"], schema="MlaResponse", thread_id=request_id,
            in_reply_to=request_id, payload=response(request_id, "PartiallyExecuted")))  # fmt: skip
        assert len(await b.overdue()) == 1
        final = await requests.send(b, submit.Request(
            kind="mla", to=["zm-police"], schema="MlaResponse", thread_id=request_id,
            in_reply_to=request_id, payload=response(request_id, "Executed")))  # fmt: skip
        assert await b.overdue() == []

        async def answered_at_a() -> bool:
            return any(m["id"] == final for m in await a.inbox_items(0, None, 50))

        await eventually(answered_at_a, 30, "the final answer at zm-police")
        assert await a.overdue() == []
        await a._check_overdue()
        exposition = (await a.render_metrics()).decode()
        assert metric(exposition, "xnode_overdue_requests", procedure="mla", direction="sent") == 0
        view = await a.procedure(request_id)
        assert view is not None and view["next_expected"] == []
        assert [s["outcome"] for s in view["steps_done"]] == [None, "PartiallyExecuted", "Executed"]
        # a second final answer is out of order now (the request is settled)
        with pytest.raises(requests.Refusal) as again:
            await requests.send(b, submit.Request(
                kind="mla", to=["zm-police"], schema="MlaResponse", thread_id=request_id,
                in_reply_to=request_id, payload=response(request_id, "Executed")))  # fmt: skip
        assert again.value.code == "out_of_order"
        assert len(hook.overdue()) == 1
    finally:
        await a.stop()
        await b.stop()
        await broker.stop()
        await hook.stop()
