"""The HTTP API against hostile clients: a real `xnode run` process, raw bytes on a socket.

aiohttp's client (and urllib) refuse to send most of what a hostile client sends (non-UTF-8
header values, control characters, duplicate headers, broken bodies), so requests here are
written byte for byte on a socket. The rules checked: no input produces a 500; whatever reaches
the API is answered with the JSON error body; a client's mistake is logged as one warning with
its reason and no stack; and an ``Idempotency-Key`` means "this request, once": the same key
with another request is refused (422 ``idempotency_key_reused``), also when both race.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import socket
import sqlite3
import threading
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node import submit, tokens
from node.audit import AuditEvent
from node.compose import build_node
from node.service import Node
from node.store.base import OutboundMessage, StoreFull
from node.store.sqlite import MIGRATIONS, SqliteStore
from tests import runtime_helpers
from tests.process_helpers import (
    BrokerProcess,
    init_nodes,
    node_env,
    read_store,
    spawn,
    stop,
    wait_for,
    xnode,
)
from tests.runtime_helpers import case_update

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
# What HTTP allows in a header value (RFC 9110 field-value: VCHAR, obs-text, SP, HTAB). A value
# made of these reaches the API, which must answer it in JSON; anything else (NUL, CR, LF, other
# control bytes) is refused by aiohttp's parser before the API, with a plain-text 400.
FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes

    def json(self) -> dict:
        assert self.content_type == "application/json", (self.status, self.body[:300])
        document = json.loads(self.body)
        assert isinstance(document, dict)
        return document


@dataclass
class Running:
    port: int
    admin: str  # xnt_... with scope admin
    sender: str  # send:mla only
    log: Path
    store: Path
    message_id: str  # one message sent, for GET /v1/messages/{id}

    def exchange(self, raw: bytes) -> Answer:
        """Send ``raw`` and read the answer: status, content type and body (an event stream
        is closed as soon as its headers arrive)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=20) as s:
            s.sendall(raw)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status = int(lines[0].split()[1])
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(b":") for line in lines[1:])
            }
            content_type = headers.get(b"content-type", b"").split(b";")[0].decode()
            if content_type != "text/event-stream":
                while chunk := s.recv(65536):
                    body += chunk
        return Answer(status, content_type, body)

    def request(
        self,
        method: str,
        path: bytes | str,
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes | None = None,
        token: str | None = "admin",
        content_type: bytes | None = b"application/json",
    ) -> Answer:
        lines = [f"{method} ".encode() + (path.encode() if isinstance(path, str) else path)
                 + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]  # fmt: skip
        if token is not None:
            lines.append(b"Authorization: Bearer " + getattr(self, token).encode())
        if body is not None:
            if content_type is not None:
                lines.append(b"Content-Type: " + content_type)
            lines.append(b"Content-Length: " + str(len(body)).encode())
        lines += [name + b": " + value for name, value in headers or []]
        return self.exchange(b"\r\n".join(lines) + b"\r\n\r\n" + (body or b""))

    def post(self, document: object, key: bytes | None = None, token: str = "admin") -> Answer:
        headers = [(b"Idempotency-Key", key)] if key is not None else []
        return self.request("POST", "/v1/messages", headers, json.dumps(document).encode(),
                            token=token)  # fmt: skip

    def log_lines(self) -> list[dict]:
        lines = []
        for text in self.log.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(text))
            except ValueError:
                lines.append({"event": text, "level": "unparsed"})
        return lines

    def outbox(self, key_suffix: str = "") -> list[tuple]:
        return read_store(
            self.store,
            "SELECT message_id, idempotency_key, request_sha256 FROM outbox"
            " WHERE idempotency_key LIKE ?",
            (f"%{key_suffix}",),
        )


def mla(note: str = "Suspect arrested in Lusaka.", **extra: object) -> dict:
    return {"kind": "mla", "to": ["zw-police"], "schema": "CaseUpdate",
            "payload": case_update(note), **extra}  # fmt: skip


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """zm-police as an `xnode run` process on a broker process; zw-police exists as a peer."""
    root = tmp_path_factory.mktemp("hostile")
    broker = BrokerProcess(root)
    broker.start()
    dirs = init_nodes(root, {"zm-police": "law-enforcement", "zw-police": "law-enforcement"})
    zm = dirs["zm-police"]
    admin = xnode("token", "create", "--dir", zm, "--name", "fuzz", "--scopes", "admin")
    sender = xnode("token", "create", "--dir", zm, "--name", "cases", "--scopes", "send:mla")
    log = root / "zm-police.log"
    process = spawn("run", "--dir", zm, env=node_env(broker.bootstrap), log=log)
    try:
        wait_for(lambda: "api_listening" in log.read_text(), 30, "the API to listen")
        url = next(json.loads(x)["url"] for x in log.read_text().splitlines()
                   if "api_listening" in x)  # fmt: skip
        running = Running(
            port=int(url.rsplit(":", 1)[1]), admin=admin.stdout.split()[0],
            sender=sender.stdout.split()[0], log=log, store=zm / "node.db", message_id="",
        )  # fmt: skip
        running.message_id = running.post(mla("Seen at Nakonde.")).json()["id"]
        yield running
    finally:
        stop(process)
        broker.stop()


# -- Idempotency-Key: validated at the edge ---------------------------------------------------


def test_a_non_utf8_idempotency_key_is_a_400_and_queues_nothing(node: Running):
    before = len(node.outbox())
    answer = node.post(mla("Seen at Chirundu."), key=b"\xff\xfe-ZP-0142")
    assert answer.status == 400
    assert answer.json() == {
        "error": "Idempotency-Key must be 1 to 255 printable ASCII characters (space to ~)",
        "field": "Idempotency-Key", "code": "invalid_header",
    }  # fmt: skip
    assert len(node.outbox()) == before


@pytest.mark.parametrize(
    ("key", "status"),
    [
        (b"k" * 255, 202),
        (b"ZP CHR 2026/0142 #1", 202),  # spaces and punctuation are printable ASCII
        (b"k" * 256, 400),
        (b"", 400),
        ("Sesheke-é".encode(), 400),  # UTF-8, but not ASCII
        (b"a\tb", 400),  # HTTP allows the tab in a header value; a key may not hold it
    ],
)
def test_idempotency_key_limits(node: Running, key: bytes, status: int):
    answer = node.post(mla(f"Key limits {key[:20]!r}"), key=key)
    assert answer.status == status, answer.body
    if status == 400:
        assert answer.json()["field"] == "Idempotency-Key"


def test_repeated_headers_are_refused(node: Running):
    answer = node.request("POST", "/v1/messages", [(b"Idempotency-Key", b"a"),
                          (b"Idempotency-Key", b"b")], json.dumps(mla()).encode())  # fmt: skip
    assert answer.status == 400 and answer.json()["field"] == "Idempotency-Key"
    answer = node.request("GET", "/v1/inbox/stream", [(b"Last-Event-ID", b"1"),
                          (b"Last-Event-ID", b"2")])  # fmt: skip
    assert answer.status == 400 and answer.json()["field"] == "Last-Event-ID"


@pytest.mark.parametrize("value", [b"\xc2\xb2", b"-1", b" 7x", b"1" * 20, b"\xd9\xa1"])
def test_a_malformed_last_event_id_is_a_400(node: Running, value: bytes):
    answer = node.request("GET", "/v1/inbox/stream", [(b"Last-Event-ID", value)])
    assert answer.status == 400
    assert answer.json()["field"] == "Last-Event-ID"


# -- Idempotency-Key: same key, same request -> same answer; different request -> 422 ----------


def test_same_key_same_request_returns_the_original_answer(node: Running):
    first = node.post(mla("Seen boarding at Beitbridge."), key=b"ZP-BB-0001")
    assert first.status == 202
    again = node.post(mla("Seen boarding at Beitbridge."), key=b"ZP-BB-0001")
    assert (again.status, again.json()) == (202, first.json())
    # the same request written differently: key order, spacing, handling beside the payload
    document = mla("Seen boarding at Beitbridge.")
    handling = document["payload"].pop("handling")
    reordered = {k: document[k] for k in reversed(document)} | {"handling": handling}
    body = json.dumps(reordered, indent=3).encode()
    answer = node.request("POST", "/v1/messages", [(b"Idempotency-Key", b"ZP-BB-0001")], body)
    assert (answer.status, answer.json()) == (202, first.json())
    [(message_id, _, fingerprint)] = node.outbox(":ZP-BB-0001")
    assert message_id == first.json()["id"] and re.fullmatch(r"[0-9a-f]{64}", fingerprint)


def test_same_key_different_request_is_422_naming_the_key(node: Running):
    first = node.post(mla("Two girls seen at Chirundu."), key=b"ZP-CHR-0142")
    assert first.status == 202
    for changed in (mla("Three girls seen at Chirundu."), {**mla("Two girls seen at Chirundu."),
                    "priority": "urgent"}):  # fmt: skip
        answer = node.post(changed, key=b"ZP-CHR-0142")
        assert answer.status == 422
        error = answer.json()
        assert error["code"] == "idempotency_key_reused"
        assert error["field"] == "Idempotency-Key"
        assert "'ZP-CHR-0142'" in error["error"] and first.json()["id"] in error["error"]
    assert len(node.outbox(":ZP-CHR-0142")) == 1
    # keys are scoped to the token: another system's same key is another request
    other = node.post(mla("Three girls seen at Chirundu."), key=b"ZP-CHR-0142", token="sender")
    assert other.status == 202 and other.json()["id"] != first.json()["id"]


def test_concurrent_requests_under_one_key_store_one_message(node: Running):
    """Ten clients at once, two different bodies under one key: the store's check and insert
    are one transaction, so one body wins, all its requests get one id and every request with
    the other body gets 422 (with the check outside the transaction, the losers hit the unique
    constraint: 500s, or the other body's id)."""
    bodies = [mla("Race at Lilongwe."), mla("Race at Harare.")]
    barrier = threading.Barrier(10)
    answers: list[tuple[int, Answer]] = []

    def client(i: int) -> None:
        barrier.wait()
        answers.append((i % 2, node.post(bodies[i % 2], key=b"ZP-RACE-7")))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 10
    [(winner_id, _, _)] = node.outbox(":ZP-RACE-7")
    for _, answer in answers:
        assert answer.status in (202, 422), answer.body
    accepted = {variant for variant, a in answers if a.status == 202}
    assert len(accepted) == 1, "both bodies were accepted under one key"
    for variant, answer in answers:
        if variant in accepted:
            assert answer.json()["id"] == winner_id
        else:
            assert answer.json()["code"] == "idempotency_key_reused"


# -- bodies, paths and query parameters ---------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "extra", "field"),
    [
        (b"[" * 20000 + b"]" * 20000, [], None),  # deeper than the JSON parser's recursion
        (b'{"kind": ' + b"[" * 40 + b"]" * 40 + b"}", [], "kind"),  # deeper than MAX_DEPTH
        (b'{"ttl_seconds": ' + b"9" * 5000 + b"}", [], None),  # int() refuses 5000 digits
        (b'{"ttl_seconds": NaN}', [], None),
        (b'{"thread_id": "\\ud800"}', [], "thread_id"),  # a lone surrogate
        (b'{"kind": "\xff"}', [], None),  # not UTF-8
        (b"not gzip at all", [(b"Content-Encoding", b"gzip")], None),
    ],
)
def test_malformed_bodies_are_400_json(node: Running, body: bytes, extra: list, field: str | None):
    answer = node.request("POST", "/v1/messages", extra, body)
    assert answer.status == 400
    error = answer.json()
    assert error["code"] == "invalid_json"
    assert error["field"] == field or error["field"].startswith(f"{field}[0][0]")


def test_a_broken_chunked_body_is_refused_by_the_http_server(node: Running):
    """Broken framing never reaches the API: aiohttp answers 400 itself (plain text)."""
    raw = (b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer "
           + node.admin.encode() + b"\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\nzz\r\n")  # fmt: skip
    assert node.exchange(raw).status == 400


@pytest.mark.parametrize(
    ("path", "field"),
    [(b"/v1/threads/a%00b", "thread_id"), (b"/v1/threads/" + b"t" * 201, "thread_id"),
     (b"/v1/messages/a%1Fb", "id"), (b"/v1/inbox/a%7Fb/ack", "id")],
)  # fmt: skip
def test_malformed_path_parameters_are_400(node: Running, path: bytes, field: str):
    answer = node.request("GET" if b"ack" not in path else "POST", path)
    assert answer.status == 400
    error = answer.json()
    assert error["field"] == field and error["code"] == "invalid_path"


@pytest.mark.parametrize(
    "query",
    ["after=-1", "after=%D9%A1", "after=1e3", "after=9223372036854775808", "limit=0",
     "limit=501", "limit=+5", "kind=%FF", "kind=receipt", "kind=mla&kind=alert", "after="],
)  # fmt: skip
def test_malformed_query_parameters_are_400(node: Running, query: str):
    answer = node.request("GET", f"/v1/inbox?{query}")
    assert answer.status == 400
    error = answer.json()
    assert error["code"] == "invalid_query" and error["field"] == query.split("=")[0]


# -- fuzzing: no input yields a 500 --------------------------------------------------------------

ROUTES = [("POST", "/v1/messages"), ("GET", "/v1/inbox"), ("GET", "/v1/inbox/stream"),
          ("GET", "/v1/messages/{id}"), ("POST", "/v1/inbox/{id}/ack"), ("GET", "/v1/threads/{id}"),
          ("GET", "/v1/codes/gender"), ("GET", "/v1/quarantine"), ("GET", "/v1/peers"),
          ("GET", "/healthz")]  # fmt: skip
HEADERS = [b"Idempotency-Key", b"Last-Event-ID", b"Authorization", b"Content-Type", b"Accept",
           b"Content-Encoding", b"X-Case-Reference"]  # fmt: skip
# each header where the API reads it, half the time; any header on any route otherwise
TARGETED = [(b"Idempotency-Key", ("POST", "/v1/messages")),
            (b"Last-Event-ID", ("GET", "/v1/inbox/stream")),
            (b"Content-Type", ("POST", "/v1/messages")),
            (b"Content-Encoding", ("POST", "/v1/messages"))]  # fmt: skip
# values random bytes rarely hit: non-UTF-8, overlong and surrogate encodings, digits that
# str.isdigit() takes and int() does not, numbers past 64 bits, white space only
TRICKY = [b"\xff\xfe", b"\xc0\x80", b"\xed\xa0\x80", "\u00b2".encode(), "\u0661\u0662".encode(),
          b"9" * 25, b"-1", b" ", b"\t", b"gzip", b"deflate", b"br", b"text/plain",
          b"application/json; charset=latin-1"]  # fmt: skip


@settings(FUZZ, max_examples=300)
@given(
    target=st.sampled_from(TARGETED) | st.tuples(st.sampled_from(HEADERS), st.sampled_from(ROUTES)),
    value=st.binary(max_size=80) | st.sampled_from(TRICKY),
)
def test_fuzzed_header_values_never_yield_a_500(node: Running, target, value: bytes):
    name, (method, template) = target
    path = template.replace("{id}", node.message_id)
    body = json.dumps(mla("Fuzzing at Nakonde.")).encode() if method == "POST" else None
    token = None if name == b"Authorization" else "admin"
    content_type = None if name == b"Content-Type" else b"application/json"
    answer = node.request(method, path, [(name, value)], body, token, content_type)
    assert answer.status < 500, answer.body
    if not FIELD_VALUE.fullmatch(value) or (name == b"Content-Encoding" and answer.status == 400):
        # refused by the HTTP parser, before the API: bytes HTTP does not allow, or a body
        # encoding aiohttp cannot decode (br without the Brotli package)
        assert answer.status == 400
    elif answer.content_type != "text/event-stream":
        document = answer.json()  # what reaches the API is answered in JSON
        if answer.status >= 400:
            assert set(document) == {"error", "field", "code"}


@FUZZ
@given(
    path=st.sampled_from(["/v1/inbox", "/v1/inbox/stream", "/v1/codes/gender", "/v1/quarantine"]),
    name=st.sampled_from(["after", "kind", "limit", "lang"]),
    value=st.binary(max_size=40),
)
def test_fuzzed_query_parameters_never_yield_a_500(node: Running, path: str, name: str,
                                                   value: bytes):  # fmt: skip
    query = f"{name}={urllib.parse.quote_from_bytes(value, safe='')}"
    answer = node.request("GET", f"{path}?{query}")
    assert answer.status < 500, answer.body
    if answer.content_type != "text/event-stream":
        document = answer.json()
        if answer.status >= 400:
            assert document["code"] == "invalid_query" and document["field"] == name


# -- logging: the client's mistakes are warnings, without a stack ------------------------------


def test_client_mistakes_are_warnings_with_a_reason_and_no_stack(node: Running):
    """Sends one of each kind of client mistake, waits until each is logged, then reads the
    whole log of the process (every test of this module sent only mistakes): nothing from the
    API or aiohttp at error level, no traceback, and never the token (aiohttp's parser quotes
    the offending header line, which here is the Authorization line)."""
    poisoned = (b"GET /v1/inbox HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer "
                + node.admin.encode() + b"\x01\r\n\r\n")  # fmt: skip
    assert node.exchange(poisoned).status == 400
    assert node.post(mla(), key=b"\xff").status == 400
    assert node.request("POST", "/v1/messages", [], b"{not json").status == 400
    assert node.request("GET", "/v1/inbox", token=None, headers=[
        (b"Authorization", b"Bearer xnt_000000000000_" + b"A" * 43)]).status == 401  # fmt: skip
    assert node.request("POST", "/v1/messages", [(b"Content-Encoding", b"gzip")], b"\x1f\x8b!",
                        ).status == 400  # fmt: skip
    with socket.create_connection(("127.0.0.1", node.port), timeout=20) as s:  # leaves mid-body
        s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                  + node.admin.encode() + b"\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 5000\r\n\r\n{\"kind\": ")  # fmt: skip

    def logged(event: str, **fields: object) -> bool:
        return any(line.get("event") == event and all(line.get(k) == v for k, v in fields.items())
                   for line in node.log_lines())  # fmt: skip

    wait_for(lambda: logged("api_bad_http_request", level="warning")
             and logged("api_request_refused", reason="invalid_header", field="Idempotency-Key")
             and logged("api_request_refused", reason="invalid_json")
             and logged("api_request_refused", reason="unauthenticated")
             and logged("api_client_disconnected", level="warning"),
             20, "a warning for each mistake")  # fmt: skip
    api_lines = [line for line in node.log_lines()
                 if str(line.get("event", "")).startswith("api_")
                 or str(line.get("logger", "")).startswith("aiohttp")]  # fmt: skip
    assert [line for line in api_lines if line.get("level") not in ("info", "warning")] == []
    text = node.log.read_text(errors="replace")
    assert "Traceback" not in text and '"exception"' not in text
    assert node.admin.split("_", 2)[2] not in text  # the secret (it may itself hold "_")
    reasons = {line["reason"] for line in api_lines if line["event"] == "api_bad_http_request"}
    assert "BadHttpMessage: Invalid header value char" in reasons


# -- in process: the store's transaction decides; fingerprints; a failing disk ---------------


@pytest.fixture
async def zm(tmp_path: Path, broker) -> AsyncIterator[Node]:
    dirs = runtime_helpers.create_nodes(
        tmp_path, {"zm-police": "law-enforcement", "zw-police": "law-enforcement"}
    )
    node = build_node(dirs["zm-police"], env=runtime_helpers.node_env(broker.bootstrap_servers))
    await node.start()
    yield node
    await node.stop()


def keyed(note: str, key: str = "0123456789ab:ZP-9") -> submit.Request:
    return submit.Request(kind="mla", to=["zw-police"], schema="CaseUpdate",
                          payload=case_update(note), idempotency_key=key)  # fmt: skip


async def test_the_store_transaction_decides_between_concurrent_submissions(zm: Node):
    """Both submissions look the key up before either is stored (the node's store thread runs
    its calls in order: lookup, lookup, insert, insert), so only the check inside the insert's
    transaction can tell the second one that the key is taken by another request."""
    first, second = await asyncio.gather(
        zm.submit(keyed("Seen at Lusaka.")), zm.submit(keyed("Seen at Harare.")),
        return_exceptions=True,
    )  # fmt: skip
    assert isinstance(first, str)
    assert isinstance(second, submit.IdempotencyKeyReused) and second.message_id == first
    again = await asyncio.gather(*(zm.submit(keyed("Seen at Lusaka.")) for _ in range(3)))
    assert again == [first] * 3


def test_the_fingerprint_is_of_the_request_not_its_spelling():
    base = keyed("Seen at Sesheke.")
    same = submit.Request(**{**base.__dict__, "payload": dict(reversed(base.payload.items()))})
    assert submit.fingerprint(same) == submit.fingerprint(base)
    assert submit.fingerprint(submit.Request(**{**base.__dict__, "idempotency_key": "x"})) == (
        submit.fingerprint(base)
    )  # the key is not part of the request
    for change in ({"priority": "urgent"}, {"to": ["mw-police"]}, {"thread_id": "t-1"},
                   {"ttl": dt.timedelta(days=2)}, {"payload": case_update("Seen at Nakonde.")}):  # fmt: skip
        assert submit.fingerprint(submit.Request(**{**base.__dict__, **change})) != (
            submit.fingerprint(base)
        ), change


def _outbound(message_id: str, key: str, sha256: str | None) -> OutboundMessage:
    now = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)
    return OutboundMessage(
        message_id=message_id, kind="mla", thread_id=message_id, schema_name="CaseUpdate",
        priority="normal", envelope=b"sealed", envelope_sha256="ab" * 32, created_at=now,
        expires_at=now + dt.timedelta(days=1), recipients=("zw-police",), idempotency_key=key,
        request_sha256=sha256,
    )  # fmt: skip


def _submitted(message_id: str) -> AuditEvent:
    return AuditEvent("submitted", dt.datetime(2026, 11, 22, tzinfo=dt.UTC), message_id=message_id)


def test_the_store_refuses_a_key_with_another_fingerprint(tmp_path: Path):
    with SqliteStore.open(tmp_path / "node.db") as store:
        assert store.submit(_outbound("m1", "k", "aa" * 32), _submitted("m1")) == "m1"
        assert store.submit(_outbound("m2", "k", "aa" * 32), _submitted("m2")) == "m1"
        with pytest.raises(submit.IdempotencyKeyReused) as refused:
            store.submit(_outbound("m3", "k", "bb" * 32), _submitted("m3"))
        assert refused.value.message_id == "m1"
        with pytest.raises(submit.IdempotencyKeyReused):
            store.find_by_idempotency_key("k", "bb" * 32)
        assert store.find_by_idempotency_key("k", "aa" * 32) == "m1"
        assert store.outbox_message("m2") is None and store.outbox_message("m3") is None


def test_keys_stored_before_fingerprints_still_answer_retries(tmp_path: Path):
    """A store at schema 2 with a keyed message is migrated; its key has no fingerprint, so a
    retry is answered with the first id as before (nothing proves the requests differ)."""
    path = tmp_path / "node.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for script in MIGRATIONS[:2]:
        conn.executescript(script)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    conn.execute(
        "INSERT INTO outbox (message_id, kind, thread_id, schema_name, priority, envelope,"
        " envelope_sha256, created_at, expires_at, expects_receipt, idempotency_key)"
        " VALUES ('old', 'mla', 'old', 'CaseUpdate', 'normal', x'00', '', 0, 0, 1, 'k')"
    )
    conn.commit()
    conn.close()
    with SqliteStore.open(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        assert store.find_by_idempotency_key("k", "cc" * 32) == "old"
        assert store.submit(_outbound("new", "k", "cc" * 32), _submitted("new")) == "old"


async def test_a_store_that_cannot_write_is_a_507(zm: Node, monkeypatch: pytest.MonkeyPatch):
    record, secret = tokens.new_token("cases", ("send:mla",), zm.clock())
    await zm._run(zm.store.add_token, record)

    def full(*_: object) -> str:
        raise StoreFull("node.db: no space left on the device holding the store")

    monkeypatch.setattr(zm.store, "submit", full)  # a failure injected, the rest is real
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{zm.api_url}/v1/messages", json=mla(),
                             headers={"Authorization": f"Bearer {secret}"}) as r:  # fmt: skip
            assert r.status == 507
            assert (await r.json())["code"] == "store_unavailable"
