"""Webhook and folder adapters on two real nodes and the embedded broker, including restarts."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
from pathlib import Path

import pytest
from aiohttp import web

from node import submit
from node.adapters import folder as folder_module
from node.compose import build_node
from node.transport.broker import free_port
from tests.runtime_helpers import case_update, create_nodes, eventually, node_env

SECRET = b"shared-secret-for-tests-only"


class Receiver:
    """A local system's webhook endpoint: records what arrives, answers as told."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/xnode"
        self.received: list[dict] = []
        self.answers: list[int] = []  # status codes to give first; then 204
        self.refuse_notes: set[str] = set()  # messages with these notes get 503, every time
        self.refused: list[str] = []  # ids of the messages answered 503 that way
        self.signatures_ok = True
        self.events: list[str | None] = []  # the X-Xnode-Event header of each message post
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        self.signatures_ok &= hmac.compare_digest(expected, request.headers["X-Xnode-Signature"])
        self.events.append(request.headers.get("X-Xnode-Event"))
        status = self.answers.pop(0) if self.answers else 204
        doc = json.loads(body)
        assert request.headers["X-Xnode-Message-Id"] == doc["id"]
        if doc["payload"]["note"] in self.refuse_notes:
            self.refused.append(doc["id"])
            status = 503
        if 200 <= status < 300:
            self.received.append(doc)
        return web.Response(status=status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/xnode", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    def ids(self) -> list[str]:
        return [d["id"] for d in self.received]


@pytest.fixture
async def receiver():
    r = Receiver()
    yield r
    await r.stop()


def adapter_env(bootstrap: str, node_dir: Path, receiver: Receiver | None, **extra: str) -> dict:
    # files are renamed into outbox/ here: the settle time (tests/test_folder_settle.py) is kept
    # short so that these tests do not wait for it
    env = node_env(bootstrap, XNODE_FOLDER_PATH="exchange", XNODE_FOLDER_POLL_INTERVAL_MS="100",
                   XNODE_FOLDER_SETTLE_MS="50", **extra)  # fmt: skip
    if receiver is not None:
        secret = node_dir / "webhook.secret"
        secret.write_bytes(SECRET + b"\n")
        secret.chmod(0o600)
        env.update(XNODE_WEBHOOK_URL=receiver.url, XNODE_WEBHOOK_SECRET_FILE="webhook.secret",
                   XNODE_WEBHOOK_RETRY_INITIAL_SECONDS="1", XNODE_WEBHOOK_RETRY_MAX_SECONDS="1")  # fmt: skip
    return env


def request(note: str, thread_id: str | None = None) -> submit.Request:
    return submit.Request(kind="mla", to=["zw-police"], payload=case_update(note),
                          schema="CaseUpdate", thread_id=thread_id)  # fmt: skip


@pytest.fixture
def dirs(tmp_path: Path):
    return create_nodes(tmp_path, {"zm-police": "law-enforcement", "zw-police": "law-enforcement"})


async def test_webhook_posts_signed_messages_in_thread_order_with_retries(dirs, broker, receiver):
    await receiver.start()
    receiver.answers = [500, 503]  # the local system hiccups twice
    a = build_node(dirs["zm-police"], env=node_env(broker.bootstrap_servers))
    b = build_node(dirs["zw-police"], env=adapter_env(broker.bootstrap_servers, dirs["zw-police"].path,
                                                receiver))  # fmt: skip
    await a.start()
    await b.start()
    try:
        first = await a.submit(request("Suspect seen at Chirundu."))
        rest = [await a.submit(request(f"Update {i}", thread_id=first)) for i in range(3)]

        async def all_posted() -> bool:
            return len(receiver.received) == 4

        await eventually(all_posted, 30, "four webhook deliveries")
        # one thread: strictly in the order B received them (the webhook's promise; the order
        # on the wire is the sender's business)
        arrived = [m.message_id for m in await b._run(b.store.inbox, 0, None, 10)]
        assert receiver.ids() == arrived and sorted(arrived) == sorted([first, *rest])
        assert receiver.signatures_ok
        assert set(receiver.events) == {"message"}  # told apart from status events
        assert receiver.received[0]["payload"]["note"] == "Suspect seen at Chirundu."
        # Nothing posted twice once answered 2xx: a fifth message of the thread is posted only
        # once none of the four is pending any more, so a post the node failed to record as
        # done would come again (or hold the fifth back) before this condition holds.
        last = await a.submit(request("Update 3", thread_id=first))

        async def fifth_posted() -> bool:
            return last in receiver.ids()

        await eventually(fifth_posted, 30, "the fifth webhook delivery")
        assert receiver.ids() == [*arrived, last]
        events = [e.event.event for e in await b._run(b.store.audit_entries, first)]
        assert "webhook-delivered" in events
    finally:
        await a.stop()
        await b.stop()


async def test_webhook_survives_a_restart_without_loss_or_duplicates(dirs, broker, receiver):
    # The receiver is down while messages arrive; the node is then stopped abruptly and started
    # again. Node.kill() lets the adapters stop, so this is no crash and nothing was posted yet:
    # posts cut off by SIGKILL are tested on `xnode run` processes in test_webhook_crash.py.
    env_b = adapter_env(broker.bootstrap_servers, dirs["zw-police"].path, receiver)
    a = build_node(dirs["zm-police"], env=node_env(broker.bootstrap_servers))
    b = build_node(dirs["zw-police"], env=env_b)
    await a.start()
    await b.start()
    try:
        ids = [await a.submit(request(f"Report {i} from Nakonde")) for i in range(5)]

        async def stored() -> bool:
            return len(await b._run(b.store.inbox, 0, None, 10)) == 5

        await eventually(stored, 30, "five messages stored on B")
        await b.kill()  # the webhook has posted nothing yet
        await receiver.start()
        b = build_node(dirs["zw-police"], env=env_b)
        await b.start()

        async def all_posted() -> bool:
            return len(receiver.received) >= 5

        await eventually(all_posted, 30, "posts after restart")
        # a message received after the five is posted after them (the adapter goes through the
        # queue in arrival order): by then a second post of any of them would have come
        later = await a.submit(request("Report 5 from Nakonde"))

        async def later_posted() -> bool:
            return later in receiver.ids()

        await eventually(later_posted, 30, "the sixth post")
        assert sorted(receiver.ids()) == sorted([*ids, later]) and len(receiver.ids()) == 6
    finally:
        await a.stop()
        await b.stop()


async def test_webhook_a_failing_message_holds_back_its_own_thread_only(dirs, broker, receiver):
    await receiver.start()
    receiver.refuse_notes = {"Stuck at Beitbridge."}  # the local system chokes on this one
    env_b = adapter_env(broker.bootstrap_servers, dirs["zw-police"].path, receiver,
                        XNODE_WEBHOOK_MAX_ATTEMPTS="100")  # fmt: skip
    a = build_node(dirs["zm-police"], env=node_env(broker.bootstrap_servers))
    b = build_node(dirs["zw-police"], env=env_b)
    await a.start()
    await b.start()
    try:

        async def send_and_store(note: str, thread_id: str | None = None) -> str:
            """One at a time, so that B receives them in this order (the webhook's order)."""
            message_id = await a.submit(request(note, thread_id))

            async def stored() -> bool:
                return await b._run(b.store.inbox_message, message_id) is not None

            await eventually(stored, 30, "the message stored on B")
            return message_id

        stuck = await send_and_store("Stuck at Beitbridge.")
        behind = await send_and_store("Behind it, Beitbridge.", stuck)
        other = await send_and_store("Another case, Lilongwe.")
        others = [other, await send_and_store("Follow-up, Lilongwe.", other),
                  await send_and_store("A third case, Harare.")]  # fmt: skip

        async def others_through() -> bool:
            return set(others) <= set(receiver.ids()) and receiver.refused.count(stuck) >= 3

        await eventually(others_through, 30, "the other threads posted while one fails")
        assert stuck not in receiver.ids() and behind not in receiver.ids()  # still waiting
        assert receiver.refused == [stuck] * len(receiver.refused)  # never `behind` before it

        receiver.refuse_notes = set()  # the local system is fixed

        async def all_posted() -> bool:
            return {stuck, behind} <= set(receiver.ids())

        await eventually(all_posted, 30, "the held-back thread")
        posted = receiver.ids()
        assert len(posted) == 5
        assert posted.index(stuck) < posted.index(behind)  # per thread, in order
        assert posted.index(others[0]) < posted.index(others[1])
    finally:
        await a.stop()
        await b.stop()


async def test_webhook_gives_up_after_max_attempts_and_says_so(dirs, broker, receiver):
    await receiver.start()
    receiver.answers = [503] * 100
    env_b = adapter_env(broker.bootstrap_servers, dirs["zw-police"].path, receiver,
                        XNODE_WEBHOOK_MAX_ATTEMPTS="2")  # fmt: skip
    a = build_node(dirs["zm-police"], env=node_env(broker.bootstrap_servers))
    b = build_node(dirs["zw-police"], env=env_b)
    await a.start()
    await b.start()
    try:
        message_id = await a.submit(request("Report from Sesheke"))

        async def failed() -> bool:
            m = await b._run(b.store.inbox_message, message_id)
            return m is not None and m.state == "webhook-failed"

        await eventually(failed, 30, "webhook-failed state")
        assert "xnode_webhook_failures_total 1.0" in (await b.render_metrics()).decode()
        events = [e.event.event for e in await b._run(b.store.audit_entries, message_id)]
        assert events.count("webhook-failed") == 1
        # the message itself is intact and readable through the API's inbox view
        [item] = await b.inbox_items(0, None, 10)
        assert (
            item["state"] == "webhook-failed" and item["payload"]["note"] == "Report from Sesheke"
        )

        # the operator fixes the receiver and queues the message again from the command line
        from node.cli import main as xnode_main

        receiver.answers = []
        node_dir = str(dirs["zw-police"].path)
        assert xnode_main(["webhook", "retry", "--dir", node_dir, "--all-failed"]) == 0

        async def posted() -> bool:
            return receiver.ids() == [message_id]

        await eventually(posted, 20, "the retried post")
        assert (await b._run(b.store.inbox_message, message_id)).state == "received"
        assert xnode_main(["webhook", "retry", "--dir", node_dir, message_id]) == 1  # none left
    finally:
        await a.stop()
        await b.stop()


def drop(folder: Path, name: str, body: object) -> None:
    """The documented convention: write under a hidden name, then rename into outbox/."""
    tmp = folder / "outbox" / f".{name}"
    tmp.write_text(json.dumps(body) if not isinstance(body, str) else body)
    os.replace(tmp, folder / "outbox" / name)


async def test_folder_outbox_to_folder_inbox(dirs, broker):
    env = adapter_env(broker.bootstrap_servers, dirs["zm-police"].path, None)
    a, b = build_node(dirs["zm-police"], env=env), build_node(dirs["zw-police"], env=env)
    await a.start()
    await b.start()
    out, inbox = dirs["zm-police"].path / "exchange", dirs["zw-police"].path / "exchange"
    try:
        (out / "outbox" / ".half-written.json").write_text("{")  # ignored: hidden
        (out / "outbox" / "draft.json.tmp").write_text("{")  # ignored: not *.json
        drop(out, "case-0142.json", {"kind": "mla", "to": ["zw-police"], "schema": "CaseUpdate",
                                     "payload": case_update("Vehicle seen at Kazungula.")})  # fmt: skip
        bad = case_update()
        bad["status"] = "Dancing"
        drop(out, "broken.json", {"kind": "mla", "to": ["zw-police"], "schema": "CaseUpdate",
                                  "payload": bad})  # fmt: skip
        drop(out, "not-json.json", "{this is not json")

        async def settled() -> bool:
            names = os.listdir(out / "outbox")
            return not [n for n in names if folder_module.is_request_file(n)]

        await eventually(settled, 20, "outbox emptied")
        [sent] = list((out / "sent").glob("*.json"))
        message_id = sent.stem
        error = (out / "failed" / "broken.json.error.txt").read_text()
        assert "field: payload.status" in error and "Dancing" in error
        assert (out / "failed" / "broken.json").exists()
        assert "invalid JSON" in (out / "failed" / "not-json.json.error.txt").read_text()
        assert (out / "outbox" / ".half-written.json").exists()

        target = inbox / "inbox" / "mla" / f"{message_id}.json"

        async def arrived() -> bool:
            return target.exists()

        await eventually(arrived, 20, "the file on B")
        doc = json.loads(target.read_text())
        assert (
            doc["sender"] == "zm-police" and doc["payload"]["note"] == "Vehicle seen at Kazungula."
        )
        assert target.stat().st_mode & 0o777 == 0o600
        assert await a.sent_item(message_id) is not None
    finally:
        await a.stop()
        await b.stop()


async def test_folder_without_inbox_files_keeps_no_plaintext_but_still_sends(dirs, broker):
    """folder.inbox_files = false: received messages are not written in plain text; the folder
    still sends and reports outcomes. Folders made looser before are made 0700 again."""
    loose = dirs["zw-police"].path / "exchange" / "inbox"
    loose.mkdir(parents=True, mode=0o755)
    loose.chmod(0o755)
    env = adapter_env(broker.bootstrap_servers, dirs["zm-police"].path, None,
                      XNODE_FOLDER_INBOX_FILES="false")  # fmt: skip
    a, b = build_node(dirs["zm-police"], env=env), build_node(dirs["zw-police"], env=env)
    await a.start()
    await b.start()
    out, there = dirs["zm-police"].path / "exchange", dirs["zw-police"].path / "exchange"
    try:
        assert loose.stat().st_mode & 0o777 == 0o700
        drop(out, "case-0143.json", {"kind": "mla", "to": ["zw-police"], "schema": "CaseUpdate",
                                     "payload": case_update("Seen at Kasumbalesa.")})  # fmt: skip

        async def reported() -> bool:
            return bool(list((out / "status").glob("*.zw-police.json")))

        await eventually(reported, 30, "the delivered status file on A")
        assert [m["payload"]["note"] for m in await b.inbox_items(0, None, 10)] == [
            "Seen at Kasumbalesa."
        ]
        assert [p for p in (there / "inbox").rglob("*") if p.is_file()] == []
    finally:
        await a.stop()
        await b.stop()


async def test_folder_restart_mid_file_neither_loses_nor_duplicates(dirs, broker, monkeypatch):
    env = adapter_env(broker.bootstrap_servers, dirs["zm-police"].path, None)
    a, b = build_node(dirs["zm-police"], env=env), build_node(dirs["zw-police"], env=env)
    await b.start()
    out = dirs["zm-police"].path / "exchange"
    (out / "outbox").mkdir(parents=True)
    drop(out, "case-0143.json", {"kind": "mla", "to": ["zw-police"], "schema": "CaseUpdate",
                                 "payload": case_update("Minibus stopped at Beitbridge.")})  # fmt: skip
    # Failure injection: the process dies between submitting the file and moving it to sent/.
    crashed = asyncio.Event()
    real_move = folder_module.move

    def crash_on_move(source: Path, target: Path) -> None:
        crashed.set()
        raise OSError("simulated crash before the move")

    monkeypatch.setattr(folder_module, "move", crash_on_move)
    await a.start()
    try:
        await asyncio.wait_for(crashed.wait(), 20)
        await a.kill()
        assert (out / "outbox" / "case-0143.json").exists()  # still there: not yet moved
        monkeypatch.setattr(folder_module, "move", real_move)
        a = build_node(dirs["zm-police"], env=env)
        await a.start()

        async def moved() -> bool:
            return not (out / "outbox" / "case-0143.json").exists()

        await eventually(moved, 20, "file moved after restart")
        [sent] = list((out / "sent").glob("*.json"))
        target = dirs["zw-police"].path / "exchange" / "inbox" / "mla" / f"{sent.stem}.json"

        async def arrived() -> bool:
            return target.exists()

        await eventually(arrived, 20, "the file on B")
        # one message only: the re-submission after the crash found the first by its key
        assert len(await b._run(b.store.inbox, 0, None, 10)) == 1
        assert len(list(target.parent.glob("*.json"))) == 1
    finally:
        await a.stop()
        await b.stop()


async def test_webhook_and_folder_settings_are_checked(dirs, broker):
    env = node_env(broker.bootstrap_servers, XNODE_WEBHOOK_URL="http://127.0.0.1:9/x",
                   XNODE_WEBHOOK_SECRET_FILE="missing.secret")  # fmt: skip
    node = build_node(dirs["zm-police"], env=env)
    with pytest.raises(Exception, match=r"missing\.secret"):
        await node.start()
    from node.config import ConfigError

    with pytest.raises(ConfigError, match=r"webhook\.secret_file is required"):
        dirs["zm-police"].load_config({"XNODE_WEBHOOK_URL": "http://127.0.0.1:9/x"})
    with pytest.raises(ConfigError, match="must start with http"):
        dirs["zm-police"].load_config({"XNODE_WEBHOOK_URL": "ftp://x",
                                       "XNODE_WEBHOOK_SECRET_FILE": "s"})  # fmt: skip


def test_receiver_can_verify_the_signature_documented_in_the_readme():
    from node.adapters.webhook import signature

    body = b'{"id":"x"}'
    assert signature(SECRET, body) == "sha256=" + hmac.new(SECRET, body, "sha256").hexdigest()
