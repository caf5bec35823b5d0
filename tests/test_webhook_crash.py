"""The webhook across a crash: the receiving node is an `xnode run` process killed with SIGKILL
while a post is in flight, after its local system had accepted some posts but not all.

What "exactly once" can honestly mean here: the node records a post as done in its store after
the 2xx answer, so a crash between the two (the local system has the message, the node has no
record) makes the node post it again on restart — the documented contract is at least once.
What must never happen is a second post of a message whose 2xx the node had recorded before
the crash; a node that re-posted every delivered message on start would do exactly that.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from node.transport.broker import free_port
from tests.process_helpers import (
    EXAMPLES,
    BrokerProcess,
    http,
    init_nodes,
    kill,
    node_env,
    read_store,
    spawn,
    stop,
    wait_for,
    xnode,
)

SECRET = b"hmac-secret-of-the-zw-desk-for-tests"


class WebhookSink:
    """The local system's webhook endpoint, on the standard library's HTTP server (a thread).

    Every post is taken in (``accepted``, in arrival order); the first ``answer_first`` are
    answered 204 at once, the next one is held without an answer until :attr:`release` is set
    (as if the local system had stored it and the node died before reading the 2xx), and from
    then on every post is answered 204 again."""

    def __init__(self, secret: bytes, answer_first: int) -> None:
        sink = self
        self.secret, self.answer_first = secret, answer_first
        self.accepted: list[str] = []
        self.bad_signatures = 0
        self.held: str | None = None
        self.holding, self.release = threading.Event(), threading.Event()
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                good = "sha256=" + hmac.new(sink.secret, body, hashlib.sha256).hexdigest()
                message_id = json.loads(body)["id"]
                with sink._lock:
                    if not hmac.compare_digest(good, self.headers["X-Xnode-Signature"]):
                        sink.bad_signatures += 1
                    hold = sink.held is None and len(sink.accepted) == sink.answer_first
                    sink.accepted.append(message_id)
                    if hold:
                        sink.held = message_id
                        sink.holding.set()
                if hold:
                    sink.release.wait(120)
                try:
                    self.send_response(204)
                    self.end_headers()
                    self.wfile.flush()
                except OSError:  # the node that sent the held post is gone
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def _done(node_dir: Path) -> set[str]:
    """Messages the node's store records as posted (2xx answered and committed)."""
    rows = read_store(node_dir / "node.db", "SELECT message_id FROM adapter_deliveries"
                      " WHERE adapter = 'webhook' AND state = 'done'")  # fmt: skip
    return {r[0] for r in rows}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path)
    try:
        process.start()
        yield process
    finally:
        process.stop()


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    server = WebhookSink(SECRET, answer_first=4)
    yield server
    server.close()


def test_sigkill_mid_post_reposts_only_what_was_not_recorded(
    tmp_path: Path, broker: BrokerProcess, sink: WebhookSink
) -> None:
    dirs = init_nodes(tmp_path, {"zm-police": "law-enforcement", "zw-police": "law-enforcement"})
    zm, zw = dirs["zm-police"], dirs["zw-police"]
    token = xnode("token", "create", "--dir", zm, "--name", "case-system",
                  "--scopes", "send:mla").stdout.strip()  # fmt: skip
    (zw / "webhook.secret").write_bytes(SECRET + b"\n")
    (zw / "webhook.secret").chmod(0o600)
    port_a = free_port()
    env_a = node_env(broker.bootstrap, XNODE_API_PORT=str(port_a))
    env_b = node_env(broker.bootstrap, XNODE_WEBHOOK_URL=sink.url,
                     XNODE_WEBHOOK_SECRET_FILE="webhook.secret",
                     XNODE_WEBHOOK_RETRY_INITIAL_SECONDS="1", XNODE_WEBHOOK_RETRY_MAX_SECONDS="1",
                     XNODE_WEBHOOK_TIMEOUT_SECONDS="120")  # the held post outlives the node  # fmt: skip
    api_a = f"http://127.0.0.1:{port_a}"
    payload = json.loads((EXAMPLES / "case-update.json").read_text())

    def send(note: str, thread_id: str | None = None) -> str:
        body = {"kind": "mla", "to": ["zw-police"], "schema": "CaseUpdate",
                "payload": {**payload, "note": note}}  # fmt: skip
        if thread_id:
            body["thread_id"] = thread_id
        status, answer = http("POST", f"{api_a}/v1/messages", token, body)
        assert status == 202, answer
        return str(answer["id"])

    def ready() -> bool:
        try:
            return http("GET", f"{api_a}/readyz")[0] == 200
        except OSError:
            return False

    a = spawn("run", "--dir", zm, env=env_a, log=tmp_path / "zm.log")
    b = spawn("run", "--dir", zw, env=env_b, log=tmp_path / "zw.log")
    try:
        wait_for(ready, 30, "the sending node")
        places = ["Chirundu", "Nakonde", "Beitbridge"]
        threads = [send(f"Case at {p}, report 0.") for p in places]  # three cases ...
        sent = list(threads)
        for report in (1, 2):  # ... of three reports each, interleaved
            sent += [send(f"Case at {p}, report {report}.", t) for p, t in zip(places, threads)]

        # four posts answered 204 and recorded, the fifth taken in and held: kill the node now
        wait_for(sink.holding.is_set, 60, "the fifth post, held by the local system")
        wait_for(lambda: len(_done(zw)) == 4, 30, "four posts recorded as done")
        kill(b)
        recorded = _done(zw)  # what the store holds after the crash
        assert recorded == set(sink.accepted[:4]) and sink.held not in recorded
        assert len(sink.accepted) == 5  # some but not all of the nine

        # messages go on flowing while the receiving node is down; then it starts again
        sent += [send(f"Case at {p}, report 3.", t) for p, t in zip(places, threads)]
        sink.release.set()  # the held post's answer goes nowhere
        b = spawn("run", "--dir", zw, env=env_b, log=tmp_path / "zw-2.log")

        # Done means recorded: once all twelve are, the adapter has nothing left to post. A
        # re-post of an old message would come before the new ones anyway (per thread in
        # order, and each thread's new report arrived after its old ones).
        wait_for(lambda: _done(zw) == set(sent), 90, "all twelve posts recorded")
    finally:
        stop(b)
        stop(a)

    counts = Counter(sink.accepted)
    assert sink.held is not None
    assert set(counts) == set(sent)  # every message posted at least once
    assert counts[sink.held] == 2  # its 2xx was never recorded: posted again, as documented
    assert all(counts[m] == 1 for m in recorded)  # recorded as done: never posted again
    assert sum(counts.values()) == len(sent) + 1  # the held one is the only second post
    assert sink.bad_signatures == 0

    # per thread, first posts in the order the node received the messages
    inbox = read_store(zw / "node.db", "SELECT message_id, thread_id FROM inbox ORDER BY seq")
    first_post = {m: sink.accepted.index(m) for m in counts}
    for thread in threads:
        received = [m for m, t in inbox if t == thread]
        assert len(received) == 4
        assert sorted(received, key=first_post.__getitem__) == received
    for log in ("zm.log", "zw.log", "zw-2.log"):
        assert "Traceback" not in (tmp_path / log).read_text()
