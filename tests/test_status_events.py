"""Status events: the final outcome of every sent message, per recipient, told to the local
system that sent it (webhook, folder, API) instead of waiting for it to poll.

Store tests first (each final change writes exactly one event, in its own transaction, and
receipts this node owes never do); then real nodes on the embedded broker: a delivery that ends
because its recipient is revoked reaches the webhook (signed, ``X-Xnode-Event: status``) and
the folder, a delivered one too, a failing webhook gets the event again, and the API pages them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import os
import sqlite3
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from node import submit, tokens
from node.audit import AuditEvent
from node.cli import main as xnode_main
from node.compose import build_node
from node.nodedir import NodeDir
from node.store.base import OutboundMessage, Retention
from node.store.sqlite import SqliteStore
from node.views import status_event_item
from tests.runtime_helpers import (
    case_update,
    create_nodes,
    eventually,
    example,
    node_env,
    states,
)
from tests.test_adapters import SECRET, Receiver, adapter_env, request

T0 = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)
SHA = "ab" * 32


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def ev(event: str, seconds: float = 0, **kw) -> AuditEvent:
    return AuditEvent(event, at(seconds), **kw)


def outbound(message_id: str, recipients=("zw-police", "mw-police"), *, kind="mla",
             thread_id="case-lusaka-7", expires=3600, expects_receipt=True) -> OutboundMessage:  # fmt: skip
    return OutboundMessage(
        message_id=message_id, kind=kind, thread_id=thread_id, schema_name="xnode.payload.Case",
        priority="normal", envelope=b"sealed-" + message_id.encode(), envelope_sha256=SHA,
        created_at=T0, expires_at=at(expires), recipients=recipients,
        expects_receipt=expects_receipt,
    )  # fmt: skip


def receipt(store: SqliteStore, message_id: str, recipient: str, seconds: float,
            delivered: bool = True, reason: str | None = None, detail: str | None = None):  # fmt: skip
    return store.apply_receipt(message_id, recipient, SHA, delivered=delivered, reason=reason,
                               detail=detail, now=at(seconds),
                               audit=ev("receipted" if delivered else "rejected", seconds))  # fmt: skip


def outcomes(store: SqliteStore, after: int = 0) -> list[tuple]:
    return [(e.message_id, e.recipient, e.status, e.reason, e.detail)
            for e in store.status_events(after, 100)]  # fmt: skip


# -- store ----------------------------------------------------------------------------------------


def test_a_receipt_writes_one_event_and_a_repeated_receipt_none(store):
    store.submit(outbound("m1"), ev("submitted", message_id="m1"))
    assert store.status_events(0, 100) == []  # submitting and publishing are not final
    store.record_attempt("m1", "zw-police", published=True, now=at(1), next_attempt_at=at(31),
                         audit=ev("published", 1))  # fmt: skip
    assert store.status_events(0, 100) == []
    assert receipt(store, "m1", "zw-police", 2).first
    assert not receipt(store, "m1", "zw-police", 3).first  # a copy of the same receipt
    assert not receipt(store, "m1", "zw-police", 4, delivered=False, reason="policy-denied").first
    assert receipt(store, "m1", "mw-police", 5, delivered=False, reason="schema-invalid",
                   detail="payload.status: expected one of Active, Closed").first  # fmt: skip
    assert not receipt(store, "m1", "mw-police", 6).first  # final stays final
    [delivered, rejected] = store.status_events(0, 100)
    assert (delivered.message_id, delivered.recipient, delivered.status, delivered.reason,
            delivered.detail, delivered.at) == ("m1", "zw-police", "delivered", None, None, at(2))  # fmt: skip
    assert (rejected.recipient, rejected.status, rejected.reason, rejected.detail, rejected.at) == (
        "mw-police", "rejected", "schema-invalid",
        "payload.status: expected one of Active, Closed", at(5))  # fmt: skip
    # the kind and thread come from the sent message: a local system files the event with it
    assert {(e.kind, e.thread_id) for e in (delivered, rejected)} == {("mla", "case-lusaka-7")}
    assert delivered.seq < rejected.seq


def test_a_receipt_matching_nothing_writes_nothing(store):
    store.submit(outbound("m1"), ev("submitted", message_id="m1"))
    assert store.apply_receipt("m1", "zw-police", "cd" * 32, delivered=True, reason=None,
                               detail=None, now=at(1), audit=ev("receipted", 1)) is None  # fmt: skip
    assert receipt(store, "no-such-message", "zw-police", 1) is None
    assert store.status_events(0, 100) == []


def test_revoking_a_recipient_ends_its_open_deliveries_with_one_event_each(store):
    store.submit(outbound("m1"), ev("submitted", message_id="m1"))
    store.submit(outbound("m2", ("zw-police",), kind="referral"), ev("submitted", message_id="m2"))
    # a receipt this node owes zw-police: it ends too, but is no news to any local system
    store.submit(outbound("r1", ("zw-police",), kind="receipt", expects_receipt=False),
                 ev("submitted", message_id="r1"))  # fmt: skip
    receipt(store, "m1", "mw-police", 1)  # already delivered there: untouched
    why = "zw-police was revoked or suspended; nothing more is sent to it"
    assert store.reject_open("zw-police", "recipient-revoked", why, at(5)) == [
        ("m1", "mla"), ("m2", "referral")]  # fmt: skip
    assert outcomes(store) == [
        ("m1", "mw-police", "delivered", None, None),
        ("m1", "zw-police", "rejected", "recipient-revoked", why),
        ("m2", "zw-police", "rejected", "recipient-revoked", why),
    ]
    assert store.message_status("r1")[0].state == "rejected"  # ended, without an event
    assert store.reject_open("zw-police", "recipient-revoked", why, at(6)) == []
    assert not receipt(store, "m1", "zw-police", 7).first  # a late receipt changes nothing
    assert len(store.status_events(0, 100)) == 3


def test_expiry_writes_one_event_per_open_delivery_and_none_for_receipts(store):
    store.submit(outbound("m1", expires=60), ev("submitted", message_id="m1"))
    store.submit(outbound("r1", ("zw-police",), kind="receipt", expires=60,
                          expects_receipt=False), ev("submitted", message_id="r1"))  # fmt: skip
    receipt(store, "m1", "zw-police", 10)
    assert store.expire_due(at(59)) == []
    assert sorted(store.expire_due(at(60))) == [("m1", "mw-police"), ("r1", "zw-police")]
    assert outcomes(store) == [("m1", "zw-police", "delivered", None, None),
                               ("m1", "mw-police", "expired", None, None)]  # fmt: skip
    assert store.status_events(0, 100)[-1].at == at(60)
    assert store.expire_due(at(120)) == []
    assert not receipt(store, "m1", "mw-police", 130).first  # receipt-after-expiry: no event
    assert len(store.status_events(0, 100)) == 2


def test_a_receipt_closed_by_publication_writes_no_event(store):
    store.submit(outbound("r1", ("zm-police",), kind="receipt", expects_receipt=False),
                 ev("submitted", message_id="r1"))  # fmt: skip
    store.record_attempt("r1", "zm-police", published=True, now=at(1), next_attempt_at=None,
                         audit=ev("receipt-sent", 1))  # fmt: skip
    assert store.message_status("r1")[0].state == "delivered"
    assert store.status_events(0, 100) == []


def test_the_event_and_the_state_change_are_one_transaction(store):
    """Failure injection: the event cannot be written (a trigger refuses it). The delivery must
    stay open, so the outcome is recorded — with its event — when it is tried again."""
    store.submit(outbound("m1"), ev("submitted", message_id="m1"))
    store.submit(outbound("m2", expires=60), ev("submitted", message_id="m2"))
    audit_length = len(store.audit_entries())
    store._conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON status_events"
                        " BEGIN SELECT RAISE(ABORT, 'no room for the event'); END")  # fmt: skip
    for change in (lambda: receipt(store, "m1", "zw-police", 1),
                   lambda: store.reject_open("mw-police", "recipient-revoked", "gone", at(2)),
                   lambda: store.expire_due(at(60))):  # fmt: skip
        with pytest.raises(sqlite3.IntegrityError, match="no room for the event"):
            change()
    assert {s.state for m in ("m1", "m2") for s in store.message_status(m)} == {"queued"}
    assert len(store.audit_entries()) == audit_length  # nothing audited either
    store._conn.execute("DROP TRIGGER refuse")
    assert receipt(store, "m1", "zw-police", 3).first
    assert outcomes(store) == [("m1", "zw-police", "delivered", None, None)]


def test_pages_follow_the_cursor_and_filter_by_kind(store):
    for i, kind in enumerate(("mla", "alert", "mla", "referral", "mla")):
        store.submit(outbound(f"m{i}", ("zw-police",), kind=kind), ev("submitted"))
        receipt(store, f"m{i}", "zw-police", i + 1)
    every = store.status_events(0, 100)
    assert [e.message_id for e in every] == ["m0", "m1", "m2", "m3", "m4"]
    first = store.status_events(0, 2)
    assert [e.message_id for e in first] == ["m0", "m1"]
    assert [e.message_id for e in store.status_events(first[-1].seq, 2)] == ["m2", "m3"]
    assert store.status_events(every[-1].seq, 2) == []
    mla = store.status_events(0, 100, ("mla",))
    assert [e.message_id for e in mla] == ["m0", "m2", "m4"]
    assert [e.message_id for e in store.status_events(mla[0].seq, 1, ("mla", "referral"))] == [
        "m2"]  # fmt: skip
    assert store.status_events(0, 100, ()) == []


def test_events_are_purged_with_their_sent_message(store):
    day = 86400
    store.submit(outbound("old", ("zw-police",), expires=400 * day), ev("submitted"))
    store.submit(outbound("recent", ("zw-police",), expires=400 * day), ev("submitted"))
    store.submit(outbound("open", ("zw-police", "mw-police"), expires=400 * day), ev("submitted"))
    receipt(store, "old", "zw-police", 1 * day)
    receipt(store, "recent", "zw-police", 80 * day)
    receipt(store, "open", "zw-police", 1 * day)  # its other recipient has not answered
    cut = at(30 * day)
    counts = store.purge(at(100 * day), Retention(cut, cut, cut))
    assert counts["outbox"] == 1
    assert [e.message_id for e in store.status_events(0, 100)] == ["recent", "open"]


def test_the_cursor_only_moves_forward_and_is_audited_with_its_move(store):
    store.set_adapter_cursor("webhook-status", 5)
    store.set_adapter_cursor("webhook-status", 3)  # a stale writer cannot move it back
    assert store.adapter_cursor("webhook-status") == 5
    assert store.adapter_cursor("folder-status") == 0  # one cursor per adapter
    store.set_adapter_cursor("webhook-status", 6, [ev("webhook-failed", 9, message_id="m1",
                                                      detail={"seq": 6})])  # fmt: skip
    assert store.adapter_cursor("webhook-status") == 6
    assert store.audit_entries("m1")[-1].event.detail == {"seq": 6}


# -- real nodes: webhook, folder, API -------------------------------------------------------------


class StatusReceiver(Receiver):
    """A local system's webhook endpoint that also takes status events: each status post is
    kept as (answer given, headers, body), and answered from ``status_answers`` first, then 204
    (``refuse_status`` answers 503 to every status post while set)."""

    def __init__(self) -> None:
        super().__init__()
        self.status_posts: list[tuple[int, dict[str, str], dict]] = []
        self.status_answers: list[int] = []
        self.refuse_status = False
        self.refuse_messages = False

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("X-Xnode-Event") != "status":
            if self.refuse_messages:
                await request.read()
                self.refused.append(request.headers["X-Xnode-Message-Id"])
                return web.Response(status=503)
            return await super().handle(request)
        body = await request.read()
        expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        self.signatures_ok &= hmac.compare_digest(expected, request.headers["X-Xnode-Signature"])
        status = self.status_answers.pop(0) if self.status_answers else 204
        if self.refuse_status:
            status = 503
        self.status_posts.append((status, dict(request.headers), json.loads(body)))
        return web.Response(status=status)

    def told(self) -> list[dict]:
        """The status events answered 2xx, in the order they were posted."""
        return [doc for status, _, doc in self.status_posts if 200 <= status < 300]


@pytest.fixture
def offices(tmp_path: Path) -> dict[str, NodeDir]:
    """zm-police sends (with webhook, folder and API), zw-police receives."""
    return create_nodes(tmp_path, {"zm-police": "law-enforcement",
                                   "zw-police": "law-enforcement"})  # fmt: skip


@pytest.fixture
async def status_receiver():
    r = StatusReceiver()
    await r.start()
    yield r
    await r.stop()


def sender_env(broker, offices, receiver: StatusReceiver, **extra: str) -> dict[str, str]:
    """zm-police, the sending office: webhook to ``receiver``, folder, API on a free port."""
    return adapter_env(broker.bootstrap_servers, offices["zm-police"].path, receiver, **extra)


def status_dir(offices) -> Path:
    return offices["zm-police"].path / "exchange" / "status"


def status_file(offices, message_id: str, recipient: str) -> Path:
    return status_dir(offices) / f"{message_id}.{recipient}.json"


async def test_a_delivery_ended_by_revoking_the_recipient_is_told_to_webhook_and_folder(
    offices, broker, status_receiver
):
    """The case worker's referral will never arrive: zw-police is revoked while the message
    waits for its receipt (zw-police is offline, so none comes)."""
    b = build_node(offices["zw-police"], env=node_env(broker.bootstrap_servers))
    await b.start()  # creates its topics, then goes offline
    await b.stop()
    a = build_node(offices["zm-police"], env=sender_env(broker, offices, status_receiver))
    await a.start()
    try:
        message_id = await a.submit(request("Two girls seen boarding a bus to Harare."))

        async def published() -> bool:
            return (await states(a, message_id)) == {"zw-police": "sent"}

        await eventually(published, 30, "the message published, waiting for its receipt")
        assert status_receiver.status_posts == [] and not list(status_dir(offices).iterdir())
        node_dir = str(offices["zm-police"].path)
        assert xnode_main(["peers", "revoke", "--dir", node_dir, "zw-police",
                           "--reason", "key-compromise"]) == 0  # fmt: skip

        async def told() -> bool:  # within the node's 5-s peer reload
            return bool(status_receiver.told()) and status_file(offices, message_id,
                                                                "zw-police").exists()  # fmt: skip

        await eventually(told, 30, "the status event on the webhook and in the folder")
        [(_, headers, doc)] = status_receiver.status_posts
        assert headers["X-Xnode-Event"] == "status" and status_receiver.signatures_ok
        assert headers["X-Xnode-Node"] == "zm-police"
        assert headers["X-Xnode-Status-Seq"] == str(doc["seq"])
        assert "X-Xnode-Message-Id" not in headers  # that one names a received message
        assert (doc["event"], doc["message_id"], doc["recipient"], doc["kind"], doc["status"],
                doc["reason"]) == ("status", message_id, "zw-police", "mla", "rejected",
                                   "recipient-revoked")  # fmt: skip
        assert doc["thread_id"] == message_id and "revoked" in doc["detail"]
        assert doc["at"].endswith("Z")
        path = status_file(offices, message_id, "zw-police")
        assert json.loads(path.read_text()) == doc  # the folder holds the same JSON
        assert path.stat().st_mode & 0o777 == 0o600
        assert sorted(os.listdir(status_dir(offices))) == [path.name]  # no temporary file left
        assert await a._run(a.store.adapter_cursor, "folder-status") == doc["seq"]

        async def passed() -> bool:  # the cursor moves once the 2xx is recorded
            return await a._run(a.store.adapter_cursor, "webhook-status") == doc["seq"]

        await eventually(passed, 10, "the webhook's status cursor")
        delivered = [e.event for e in await a._run(a.store.audit_entries, message_id)
                     if e.event.event == "webhook-delivered"]  # fmt: skip
        assert [(e.peer, e.detail["seq"], e.detail["status"]) for e in delivered] == [
            ("zw-police", doc["seq"], "rejected")]  # fmt: skip
    finally:
        await a.stop()


async def test_a_delivered_message_is_told_as_delivered(offices, broker, status_receiver):
    a = build_node(offices["zm-police"], env=sender_env(broker, offices, status_receiver))
    b = build_node(offices["zw-police"], env=node_env(broker.bootstrap_servers))
    await a.start()
    await b.start()
    try:
        message_id = await a.submit(request("Suspect arrested in Lusaka."))

        async def told() -> bool:
            return bool(status_receiver.told()) and status_file(offices, message_id,
                                                                "zw-police").exists()  # fmt: skip

        await eventually(told, 30, "the delivered event on the webhook and in the folder")
        [doc] = status_receiver.told()
        assert (doc["message_id"], doc["recipient"], doc["status"], doc["reason"]) == (
            message_id, "zw-police", "delivered", None)  # fmt: skip
        assert status_receiver.signatures_ok
        assert json.loads(status_file(offices, message_id, "zw-police").read_text()) == doc
        assert (await a.sent_item(message_id))["status"] == "delivered"  # the same outcome
    finally:
        await a.stop()
        await b.stop()


async def test_a_status_event_answered_500_is_posted_again(offices, broker, status_receiver):
    status_receiver.status_answers = [500]  # the local system fails on the first try
    a = build_node(offices["zm-police"], env=sender_env(broker, offices, status_receiver))
    b = build_node(offices["zw-police"], env=node_env(broker.bootstrap_servers))
    await a.start()
    await b.start()
    try:
        message_id = await a.submit(request("Minibus stopped at Chirundu."))

        async def told() -> bool:
            return bool(status_receiver.told())

        await eventually(told, 30, "the status event posted again")
        [(first, first_headers, first_doc), (second, second_headers, second_doc)] = (
            status_receiver.status_posts
        )
        assert (first, second) == (500, 204)
        assert first_doc == second_doc and first_doc["message_id"] == message_id
        assert (first_headers["X-Xnode-Delivery-Attempt"],
                second_headers["X-Xnode-Delivery-Attempt"]) == ("1", "2")  # fmt: skip

        async def passed() -> bool:
            return await a._run(a.store.adapter_cursor, "webhook-status") == first_doc["seq"]

        await eventually(passed, 10, "the webhook's status cursor")
        audited = [e.event.detail for e in await a._run(a.store.audit_entries, message_id)
                   if e.event.event == "webhook-delivered"]  # fmt: skip
        assert [d["attempts"] for d in audited] == [2]
    finally:
        await a.stop()
        await b.stop()


async def test_a_status_event_given_up_on_is_audited_and_passed_over(offices, broker,
                                                                   status_receiver):  # fmt: skip
    status_receiver.refuse_status = True
    env = sender_env(broker, offices, status_receiver, XNODE_WEBHOOK_MAX_ATTEMPTS="2")
    a = build_node(offices["zm-police"], env=env)
    b = build_node(offices["zw-police"], env=node_env(broker.bootstrap_servers))
    await a.start()
    await b.start()
    try:
        lost = await a.submit(request("Report from Sesheke."))

        async def gave_up() -> bool:
            events = [e.event.event for e in await a._run(a.store.audit_entries, lost)]
            return "webhook-failed" in events

        await eventually(gave_up, 30, "the status event given up on")
        [failed] = [e.event for e in await a._run(a.store.audit_entries, lost)
                    if e.event.event == "webhook-failed"]  # fmt: skip
        assert failed.peer == "zw-police" and failed.detail["attempts"] == 2
        assert failed.detail["error"] == "HTTP 503" and failed.detail["status"] == "delivered"
        assert len(status_receiver.status_posts) == 2
        assert await a._run(a.store.adapter_cursor, "webhook-status") == failed.detail["seq"]
        assert "xnode_webhook_status_failures_total 1.0" in (await a.render_metrics()).decode()

        status_receiver.refuse_status = False  # fixed: the next event is posted, not the lost one
        later = await a.submit(request("Report from Livingstone."))

        async def told() -> bool:
            return bool(status_receiver.told())

        await eventually(told, 30, "the next status event")
        assert [d["message_id"] for d in status_receiver.told()] == [later]
        # the event given up on is still there for the API (and in the folder)
        assert status_file(offices, lost, "zw-police").exists()
    finally:
        await a.stop()
        await b.stop()


async def test_status_events_and_received_messages_do_not_hold_each_other_back(
    offices, broker, status_receiver
):
    status_receiver.refuse_status = True  # status posts fail and are retried (100 attempts)
    env = sender_env(broker, offices, status_receiver, XNODE_WEBHOOK_MAX_ATTEMPTS="100")
    a = build_node(offices["zm-police"], env=env)
    b = build_node(offices["zw-police"], env=node_env(broker.bootstrap_servers))
    await a.start()
    await b.start()
    try:
        first = await a.submit(request("Report from Kariba."))

        async def failing() -> bool:
            return len(status_receiver.status_posts) >= 2

        await eventually(failing, 30, "status posts failing")
        incoming = await b.submit(submit.Request(kind="mla", to=["zm-police"],
                                                 payload=case_update("Answer from Harare."),
                                                 schema="CaseUpdate"))  # fmt: skip

        async def message_posted() -> bool:
            return incoming in status_receiver.ids()

        await eventually(message_posted, 30, "the received message posted past the status event")
        assert status_receiver.told() == []  # the status event is still being retried

        # the other way round: messages refused, status events accepted
        status_receiver.refuse_status, status_receiver.refuse_messages = False, True
        second = await b.submit(submit.Request(kind="mla", to=["zm-police"],
                                               payload=case_update("Second answer from Harare."),
                                               schema="CaseUpdate"))  # fmt: skip

        async def status_posted() -> bool:
            return {d["message_id"] for d in status_receiver.told()} == {first} and (
                second in status_receiver.refused
            )

        await eventually(status_posted, 30, "the status event posted while a message fails")
        assert second not in status_receiver.ids()
    finally:
        await a.stop()
        await b.stop()


async def test_status_events_can_be_turned_off_for_the_webhook(offices, broker, status_receiver):
    env = sender_env(broker, offices, status_receiver, XNODE_WEBHOOK_STATUS_EVENTS="false")
    a = build_node(offices["zm-police"], env=env)
    b = build_node(offices["zw-police"], env=node_env(broker.bootstrap_servers))
    await a.start()
    await b.start()
    try:
        message_id = await a.submit(request("Suspect seen in Mongu."))

        async def in_folder() -> bool:  # the folder still writes them
            return status_file(offices, message_id, "zw-police").exists()

        await eventually(in_folder, 30, "the status file")
        await asyncio.sleep(1.5)  # the webhook would have posted by now
        assert status_receiver.status_posts == []
        assert await a._run(a.store.adapter_cursor, "webhook-status") == 0
    finally:
        await a.stop()
        await b.stop()


async def test_the_api_pages_status_events_by_cursor_and_scope(offices, broker, status_receiver):
    a = build_node(offices["zm-police"], env=sender_env(broker, offices, status_receiver))
    b = build_node(offices["zw-police"], env=node_env(broker.bootstrap_servers))
    await a.start()
    await b.start()
    try:
        sent = [await a.submit(request(f"Update {i} from Ndola.")) for i in range(3)]
        alert = await a.submit(submit.Request(kind="alert", to=["zw-police"],
                                              payload=example("alert.json")))  # fmt: skip

        async def all_final() -> bool:
            return len(await a._run(a.store.status_events, 0, 100)) == 4

        await eventually(all_final, 30, "four delivered messages")
        tokens_by_scope = {}
        for scope in ("send:mla", "read:alert", "admin", "ops"):
            record, secret = tokens.new_token(scope.replace(":", "-"), tokens.parse_scopes(scope),
                                              a.clock())  # fmt: skip
            await a._run(a.store.add_token, record)
            tokens_by_scope[scope] = secret

        async with aiohttp.ClientSession() as http:

            async def get(query: str, scope: str = "admin") -> tuple[int, dict]:
                async with http.get(
                    f"{a.api_url}/v1/status-events{query}",
                    headers={"Authorization": f"Bearer {tokens_by_scope[scope]}"},
                ) as r:
                    return r.status, await r.json()

            ids, after = [], 0
            for _ in range(5):  # pages of one, until an empty page repeats the cursor
                status, page = await get(f"?after={after}&limit=1")
                assert status == 200 and len(page["events"]) <= 1
                if not page["events"]:
                    assert page["next"] == after
                    break
                assert page["next"] == page["events"][0]["seq"] > after
                ids.append(page["events"][0]["message_id"])
                after = page["next"]
            assert ids == [e.message_id for e in await a._run(a.store.status_events, 0, 100)]
            assert sorted(ids) == sorted([*sent, alert])
            status, page = await get("")
            assert status == 200 and [e["message_id"] for e in page["events"]] == ids
            assert {e["status"] for e in page["events"]} == {"delivered"}
            assert page["events"][0] == status_event_item(
                (await a._run(a.store.status_events, 0, 1))[0]
            )
            # what a token may see of a message's status, it sees of its events
            status, page = await get("", "send:mla")
            assert [e["message_id"] for e in page["events"]] == [i for i in ids if i in sent]
            status, page = await get("", "read:alert")
            assert [e["message_id"] for e in page["events"]] == [alert]
            status, page = await get("", "ops")
            assert status == 403 and page["field"] == "scope"
            for query, field in (("?after=-1", "after"), ("?after=x", "after"),
                                 ("?after=1&after=2", "after"), ("?limit=0", "limit"),
                                 ("?limit=501", "limit")):  # fmt: skip
                status, page = await get(query)
                assert (status, page["field"], page["code"]) == (400, field, "invalid_query"), query
            async with http.get(f"{a.api_url}/v1/status-events") as r:
                assert r.status == 401
    finally:
        await a.stop()
        await b.stop()
