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

from node.transport.broker import free_port
from tests.runtime_helpers import EXAMPLES
from tests.runtime_helpers import example as dated_example

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
        alert_file = tmp_path / "alert.json"
        alert_file.write_text(json.dumps(dated_example("alert.json")))
        sent = xnode("send", "--dir", zm, "--kind", "alert", "--to", "zw-police",
                     "--in", alert_file, env=env)  # fmt: skip
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
    """SIGKILL of the receiving `xnode run` while deliveries are still open (checked before
    the kill), restart: every message arrives, each handed to the local side exactly once."""
    from tests.process_helpers import http, init_nodes, read_store

    dirs = init_nodes(tmp_path, {"zm-police": "law-enforcement", "zw-police": "law-enforcement"})
    zm, zw = dirs["zm-police"], dirs["zw-police"]
    token = xnode("token", "create", "--dir", zm, "--name", "case", "--scopes", "send:*").stdout
    port = free_port()
    env = {"XNODE_KAFKA_BOOTSTRAP_SERVERS": broker_process, "XNODE_API_PORT": "0",
           "XNODE_DELIVERY_RETRY_INITIAL_SECONDS": "1", "XNODE_DELIVERY_RETRY_MAX_SECONDS": "3"}  # fmt: skip
    sender = spawn("run", "--dir", zm, env={**env, "XNODE_API_PORT": str(port)},
                   log=tmp_path / "zm.log")  # fmt: skip
    payload = json.loads((EXAMPLES / "case-update.json").read_text())

    def submit(i: int) -> str:
        status, body = http("POST", f"http://127.0.0.1:{port}/v1/messages", token.strip(), {
            "kind": "mla", "to": ["zw-police"], "schema": "CaseUpdate",
            "payload": {**payload, "note": f"update {i} from Sesheke"}})  # fmt: skip
        assert status == 202, body
        return str(body["id"])

    def api_up() -> bool:
        try:
            return http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200
        except OSError:
            return False

    wait_for(api_up, 60, "the sender's API")
    ids = [submit(i) for i in range(150)]
    receiver = spawn("run", "--dir", zw, env=env, log=tmp_path / "zw.log")
    try:

        def received() -> int:
            try:
                return int(read_store(zw / "node.db", "SELECT count(*) FROM inbox")[0][0])
            except Exception:
                return 0

        def open_deliveries() -> int:
            rows = read_store(zm / "node.db", "SELECT state FROM outbox_recipients")
            return sum(1 for (state,) in rows if state != "delivered")

        wait_for(lambda: received() >= 10, 60, "the first messages")
        receiver.send_signal(signal.SIGKILL)
        receiver.wait(10)
        # a crash in the middle of the stream, not after it
        assert open_deliveries() > 0, "everything was already receipted before the kill"
        receiver = spawn("run", "--dir", zw, env=env, log=tmp_path / "zw-2.log")
        wait_for(lambda: open_deliveries() == 0, 180, "all 150 receipts")
        inbox = read_store(zw / "node.db", "SELECT message_id FROM inbox")
        assert sorted(m for (m,) in inbox) == sorted(ids)
        # handed to the local side once each, across the crash
        events = json.loads(xnode("audit", "show", "--dir", zw, "--json").stdout)
        received_events = [e["message_id"] for e in events if e["event"] == "received"]
        assert sorted(received_events) == sorted(ids)
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
                   "payload": dated_example("alert.json")}  # fmt: skip
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
