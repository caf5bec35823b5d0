"""Two nodes in two processes, created and driven only through the `xnode` command line.

The broker runs as `xnode broker`, each node as `xnode run`; messages go in with `xnode send`
and are checked with `xnode status` and `xnode inbox`. A plain aiokafka consumer (no xnode
code) then reads the raw topics and finds only ciphertext.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from node.store.sqlite import SqliteStore
from node.transport.broker import free_port
from tests.runtime_helpers import EXAMPLES

XNODE = [str(Path(sys.executable).parent / "xnode")]


def xnode(*args, env=None, check=True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*XNODE, *map(str, args)], capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    if check:
        assert result.returncode == 0, result.stderr
    return result


def spawn(*args, env=None, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*XNODE, *map(str, args)], stdout=log.open("wb"), stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(30)


@pytest.fixture
def broker_process(tmp_path):
    port = free_port()
    process = spawn("broker", "--port", port, log=tmp_path / "broker.log")
    wait_for(lambda: "listening on" in (tmp_path / "broker.log").read_text(), 15, "the broker")
    yield f"127.0.0.1:{port}"
    stop(process)


def test_two_node_processes_exchange_through_the_cli(tmp_path, broker_process):
    zm, zw = tmp_path / "zm-police", tmp_path / "zw-police"
    xnode("init", "--dir", zm, "--id", "zm-police", "--roles", "law-enforcement")
    xnode("init", "--dir", zw, "--id", "zw-police", "--roles", "law-enforcement")
    xnode("peers", "export", "--dir", zm, "--out", tmp_path / "zm.xnd")
    xnode("peers", "export", "--dir", zw, "--out", tmp_path / "zw.xnd")
    xnode("peers", "add", "--dir", zm, tmp_path / "zw.xnd", "--yes")
    xnode("peers", "add", "--dir", zw, tmp_path / "zm.xnd", "--yes")
    env = {"XNODE_KAFKA_BOOTSTRAP_SERVERS": broker_process, "XNODE_API_PORT": "0",
           "XNODE_DELIVERY_RETRY_INITIAL_SECONDS": "1"}  # fmt: skip

    sender = spawn("run", "--dir", zm, env=env, log=tmp_path / "zm.log")
    receiver = spawn("run", "--dir", zw, env=env, log=tmp_path / "zw.log")
    try:
        sent = xnode("send", "--dir", zm, "--kind", "alert", "--to", "zw-police",
                     "--in", EXAMPLES / "alert.json", env=env)  # fmt: skip
        message_id = sent.stdout.strip()

        def delivered() -> bool:
            out = xnode("status", "--dir", zm, message_id, "--json").stdout
            return json.loads(out)["recipients"][0]["state"] == "delivered"

        wait_for(delivered, 60, "delivery and receipt")
        inbox = json.loads(xnode("inbox", "--dir", zw, "--json").stdout)
        assert [m["id"] for m in inbox] == [message_id]
        assert inbox[0]["sender"] == "zm-police"
        assert (
            inbox[0]["payload"]["title"]
            == json.loads((EXAMPLES / "alert.json").read_text())["title"]
        )
        assert "Audit chain intact" in xnode("audit", "verify", "--dir", zw).stdout
        events = [
            e["event"]
            for e in json.loads(
                xnode("audit", "show", "--dir", zm, "--message", message_id, "--json").stdout
            )
        ]
        assert events[0] == "submitted" and "published" in events and "receipted" in events
    finally:
        assert stop(sender) == 0
        assert stop(receiver) == 0
    assert "Traceback" not in (tmp_path / "zm.log").read_text()

    raw = asyncio.run(read_all_topics(broker_process))
    assert set(raw) >= {"xchg.zw-police.alert", "xchg.zm-police.receipt"}
    plaintexts = [b"Beitbridge", b"Chipo", b"Mwale", b"minibus", b"ALZ 4471", b"Kelvin"]
    for topic, values in raw.items():
        for value in values:
            assert not any(p in value for p in plaintexts), topic


async def read_all_topics(bootstrap: str) -> dict[str, list[bytes]]:
    """An independent reader: plain aiokafka, no xnode code, every xchg topic from the start."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    try:
        topics = [t for t in await consumer.topics() if t.startswith("xchg.")]
        consumer.subscribe(topics)
        found: dict[str, list[bytes]] = {}
        idle = 0
        while idle < 5:
            batch = await consumer.getmany(timeout_ms=300)
            idle = 0 if batch else idle + 1
            for tp, messages in batch.items():
                found.setdefault(tp.topic, []).extend(m.value for m in messages)
        return found
    finally:
        await consumer.stop()


def test_receiver_process_killed_with_sigkill_loses_and_duplicates_nothing(
    tmp_path, broker_process
):
    zm, zw = tmp_path / "zm-police", tmp_path / "zw-police"
    for node, node_id in ((zm, "zm-police"), (zw, "zw-police")):
        xnode("init", "--dir", node, "--id", node_id, "--roles", "law-enforcement")
        xnode("peers", "export", "--dir", node, "--out", tmp_path / f"{node_id}.xnd")
    xnode("peers", "add", "--dir", zm, tmp_path / "zw-police.xnd", "--yes")
    xnode("peers", "add", "--dir", zw, tmp_path / "zm-police.xnd", "--yes")
    env = {"XNODE_KAFKA_BOOTSTRAP_SERVERS": broker_process, "XNODE_API_PORT": "0",
           "XNODE_DELIVERY_RETRY_INITIAL_SECONDS": "1", "XNODE_DELIVERY_RETRY_MAX_SECONDS": "3"}  # fmt: skip
    payload = tmp_path / "update.json"
    payload.write_text((EXAMPLES / "case-update.json").read_text())
    ids = [
        xnode("send", "--dir", zm, "--kind", "mla", "--schema", "CaseUpdate", "--to", "zw-police",
              "--in", payload, env=env).stdout.strip()
        for _ in range(25)
    ]  # fmt: skip
    sender = spawn("run", "--dir", zm, env=env, log=tmp_path / "zm.log")
    receiver = spawn("run", "--dir", zw, env=env, log=tmp_path / "zw.log")
    try:

        def received(n: int) -> bool:
            return len(json.loads(xnode("inbox", "--dir", zw, "--json").stdout)) >= n

        wait_for(lambda: received(5), 60, "the first messages")
        receiver.send_signal(signal.SIGKILL)
        receiver.wait(10)
        receiver = spawn("run", "--dir", zw, env=env, log=tmp_path / "zw-2.log")

        def all_delivered() -> bool:  # read the sender's store file from outside its process
            store = SqliteStore.open(zm / "node.db")
            try:
                return all(store.message_status(i)[0].state == "delivered" for i in ids)
            finally:
                store.close()

        wait_for(all_delivered, 120, "all 25 receipts")
        last = json.loads(xnode("status", "--dir", zm, ids[-1], "--json").stdout)
        assert last["recipients"][0]["state"] == "delivered"
        inbox = json.loads(xnode("inbox", "--dir", zw, "--json").stdout)
        assert sorted(m["id"] for m in inbox) == sorted(ids)
    finally:
        stop(sender)
        stop(receiver)
    assert "Audit chain intact" in xnode("audit", "verify", "--dir", zw).stdout


class WebhookSink:
    """The local system's webhook endpoint, on the standard library's HTTP server (a thread)."""

    def __init__(self, secret: bytes) -> None:
        import http.server
        import threading

        sink = self
        self.secret, self.received, self.bad_signatures = secret, [], 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                import hashlib
                import hmac

                body = self.rfile.read(int(self.headers["Content-Length"]))
                good = "sha256=" + hmac.new(sink.secret, body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(good, self.headers["X-Xnode-Signature"]):
                    sink.bad_signatures += 1
                sink.received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def http_json(method: str, url: str, token: str | None = None, body: object = None):
    """A plain urllib client: (status, JSON body)."""
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_api_webhook_and_folder_between_two_node_processes(tmp_path, broker_process):
    zm, zw = tmp_path / "zm-police", tmp_path / "zw-police"
    for path, node_id in ((zm, "zm-police"), (zw, "zw-police")):
        xnode("init", "--dir", path, "--id", node_id, "--roles", "law-enforcement")
        xnode("peers", "export", "--dir", path, "--out", tmp_path / f"{node_id}.xnd")
    xnode("peers", "add", "--dir", zm, tmp_path / "zw-police.xnd", "--yes")
    xnode("peers", "add", "--dir", zw, tmp_path / "zm-police.xnd", "--yes")
    send_token = xnode("token", "create", "--dir", zm, "--name", "case-system",
                       "--scopes", "send:mla,send:alert").stdout.strip()  # fmt: skip
    read_token = xnode("token", "create", "--dir", zw, "--name", "desk",
                       "--scopes", "read:*").stdout.strip()  # fmt: skip
    listed = json.loads(xnode("token", "list", "--dir", zm, "--json").stdout)
    assert [t["name"] for t in listed] == ["case-system"] and send_token not in json.dumps(listed)
    secret = b"hmac-secret-of-the-zw-desk"
    (zw / "webhook.secret").write_bytes(secret + b"\n")
    sink = WebhookSink(secret)
    port_a, port_b = free_port(), free_port()
    common = {
        "XNODE_KAFKA_BOOTSTRAP_SERVERS": broker_process,
        "XNODE_FOLDER_PATH": "exchange",
        "XNODE_FOLDER_POLL_INTERVAL_MS": "200",
        "XNODE_DELIVERY_RETRY_INITIAL_SECONDS": "1",
    }
    env_a = {**common, "XNODE_API_PORT": str(port_a)}
    env_b = {**common, "XNODE_API_PORT": str(port_b), "XNODE_WEBHOOK_URL": sink.url,
             "XNODE_WEBHOOK_SECRET_FILE": "webhook.secret"}  # fmt: skip
    a = spawn("run", "--dir", zm, env=env_a, log=tmp_path / "zm.log")
    b = spawn("run", "--dir", zw, env=env_b, log=tmp_path / "zw.log")
    api_a, api_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    try:

        def ready(api: str) -> bool:
            try:
                return http_json("GET", f"{api}/readyz")[0] == 200
            except OSError:
                return False

        wait_for(lambda: ready(api_a) and ready(api_b), 30, "both nodes ready")
        payload = json.loads((EXAMPLES / "case-update.json").read_text())
        status, body = http_json("POST", f"{api_a}/v1/messages", send_token, {
            "kind": "mla", "to": ["zw-police"], "schema": "CaseUpdate", "payload": payload})  # fmt: skip
        assert status == 202, body
        message_id = body["id"]
        wait_for(lambda: http_json("GET", f"{api_a}/v1/messages/{message_id}", send_token)[1]
                 ["status"] == "delivered", 60, "delivered")  # fmt: skip
        _, page = http_json("GET", f"{api_b}/v1/inbox", read_token)
        assert [m["id"] for m in page["messages"]] == [message_id]
        assert page["messages"][0]["payload"]["note"] == payload["note"]
        wait_for(lambda: len(sink.received) == 1, 30, "the webhook")
        assert sink.received[0]["id"] == message_id and sink.bad_signatures == 0
        in_folder = zw / "exchange" / "inbox" / "mla" / f"{message_id}.json"
        wait_for(in_folder.exists, 30, "the inbox folder")

        # a file dropped into A's outbox folder arrives on B, in all three places
        request = {"kind": "alert", "to": ["zw-police"],
                   "payload": json.loads((EXAMPLES / "alert.json").read_text())}  # fmt: skip
        staging = zm / "exchange" / "outbox" / ".alert-0007.json"
        staging.write_text(json.dumps(request))
        os.replace(staging, zm / "exchange" / "outbox" / "alert-0007.json")
        wait_for(lambda: any((zm / "exchange" / "sent").glob("*.json")), 30, "sent/")
        [sent] = list((zm / "exchange" / "sent").glob("*.json"))
        wait_for((zw / "exchange" / "inbox" / "alert" / sent.name).exists, 60, "alert on B")
        wait_for(lambda: len(sink.received) == 2, 30, "second webhook")
        _, page = http_json("GET", f"{api_b}/v1/inbox?kind=alert", read_token)
        assert [m["id"] for m in page["messages"]] == [sent.stem]
    finally:
        assert stop(a) == 0
        assert stop(b) == 0
        sink.close()
    for log in ("zm.log", "zw.log"):
        text = (tmp_path / log).read_text()
        assert "Traceback" not in text
        assert payload["note"] not in text and send_token not in text and read_token not in text
