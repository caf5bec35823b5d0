"""Every scope denial of the HTTP API, route by route and token by token.

The schemathesis run uses an admin token and cannot see a denial that should have happened, so
each (route, token) pair has its expected status written out here by hand, not derived from
``node.tokens`` (a derived table would share that module's bugs). Beside the status, the content
tests check what a token sees where a route filters rather than refuses: the inbox and its event
stream by kind, ``Last-Event-ID`` resumption, a thread's messages by kind, and a stream that ends
once its token is revoked.

One world for the module: zm-police sends zw-police an MLA case update (thread T), an alert in
the same thread T and a second MLA update in a thread of its own, each delivered before the
next is sent so the inbox cursors are in that order; zw-police replies in T (a sent MLA) and
sends an alert of its own. All requests go to zw-police's API.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from node import tokens
from node.compose import build_node
from node.service import Node
from node.transport.broker import EmbeddedBroker
from tests.runtime_helpers import case_update, create_nodes, eventually, example, node_env

pytestmark = pytest.mark.asyncio(loop_scope="module")

TOKENS = ["admin", "send:mla", "send:alert", "send:*", "read:mla", "read:alert", "read:*",
          "revoked", "unknown", "none"]  # fmt: skip
INVALID = {"revoked": 401, "unknown": 401, "none": 401}


@dataclass
class World:
    a: Node
    b: Node
    http: aiohttp.ClientSession
    secrets: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)  # mla1, alert, mla2, reply, sent_alert
    cursors: dict[str, int] = field(default_factory=dict)

    def headers(self, token: str) -> dict[str, str]:
        if token == "none":
            return {}
        return {"Authorization": f"Bearer {self.secrets[token]}"}

    async def call(self, method: str, path: str, token: str, body: object = None,
                   headers: dict[str, str] | None = None) -> tuple[int, object]:  # fmt: skip
        """Status and JSON body; an event stream that opens is closed at once (body None)."""
        async with self.http.request(method, f"{self.b.api_url}{path}", json=body,
                                     headers={**self.headers(token), **(headers or {})}) as r:  # fmt: skip
            if r.content_type == "text/event-stream":
                return r.status, None
            if r.content_type in ("text/csv", "text/html", "application/pdf"):  # a report
                return r.status, await r.read()
            return r.status, await r.json()

    async def events(self, path: str, token: str, count: int,
                     headers: dict[str, str] | None = None) -> list[dict]:  # fmt: skip
        """The first ``count`` events of a stream, as (cursor, inbox item)."""
        found: list[dict] = []
        async with self.http.get(f"{self.b.api_url}{path}",
                                 headers={**self.headers(token), **(headers or {})}) as r:  # fmt: skip
            assert r.status == 200, await r.text()
            cursor = None
            async for line in r.content:
                if line.startswith(b"id: "):
                    cursor = int(line[4:])
                elif line.startswith(b"data: "):
                    item = json.loads(line[6:])
                    assert item["cursor"] == cursor
                    found.append(item)
                    if len(found) == count:
                        return found
        return found


async def _token(node: Node, name: str, scopes: str) -> str:
    record, secret = tokens.new_token(name, tokens.parse_scopes(scopes), node.clock())
    await node._run(node.store.add_token, record)
    return secret


async def _send(node: Node, http: aiohttp.ClientSession, token: str, body: dict) -> str:
    async with http.post(f"{node.api_url}/v1/messages", json=body,
                         headers={"Authorization": f"Bearer {token}"}) as r:  # fmt: skip
        assert r.status == 202, await r.text()
        return str((await r.json())["id"])


async def _arrived(node: Node, message_id: str) -> int:
    """Wait until ``message_id`` is in the node's inbox; its cursor."""
    cursor: list[int] = []

    async def check() -> bool:
        items = await node.inbox_items(0, None, 500)
        cursor.extend(i["cursor"] for i in items if i["id"] == message_id)
        return bool(cursor)

    await eventually(check, 30, f"message {message_id} to arrive")
    return cursor[0]


def mla(to: str, note: str, **extra: object) -> dict:
    return {"kind": "mla", "to": [to], "schema": "CaseUpdate", "payload": case_update(note),
            **extra}  # fmt: skip


def alert(to: str, **extra: object) -> dict:
    return {"kind": "alert", "to": [to], "payload": example("alert.json"), **extra}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    root: Path = tmp_path_factory.mktemp("scopes")
    broker = EmbeddedBroker()
    await broker.start()
    dirs = create_nodes(root, {"zm-police": "law-enforcement", "zw-police": "law-enforcement"})
    env = node_env(broker.bootstrap_servers)
    a, b = build_node(dirs["zm-police"], env=env), build_node(dirs["zw-police"], env=env)
    await a.start()
    await b.start()
    async with aiohttp.ClientSession() as http:
        w = World(a, b, http)
        for scopes in TOKENS[:7]:
            w.secrets[scopes] = await _token(b, scopes.replace(":", "-").replace("*", "all"),
                                             scopes)  # fmt: skip
        w.secrets["revoked"] = await _token(b, "revoked", "read:*")
        assert (await w.call("GET", "/v1/inbox", "revoked"))[0] == 200  # worked before
        await b._run(b.store.revoke_token, "revoked", b.clock())
        w.secrets["unknown"] = "xnt_0123456789ab_" + "A" * 43  # well formed, never issued
        sender = await _token(a, "case-system", "send:*")
        w.ids["mla1"] = await _send(a, http, sender, mla("zw-police", "Seen at Chirundu."))
        w.cursors["mla1"] = await _arrived(b, w.ids["mla1"])
        w.ids["alert"] = await _send(a, http, sender, alert("zw-police", thread_id=w.ids["mla1"]))
        w.cursors["alert"] = await _arrived(b, w.ids["alert"])
        w.ids["mla2"] = await _send(a, http, sender, mla("zw-police", "Seen at Sesheke."))
        w.cursors["mla2"] = await _arrived(b, w.ids["mla2"])
        assert w.cursors["mla1"] < w.cursors["alert"] < w.cursors["mla2"]
        w.ids["reply"] = await _send(b, http, w.secrets["send:mla"], mla(
            "zm-police", "Records attached.", thread_id=w.ids["mla1"],
            in_reply_to=w.ids["mla1"]))  # fmt: skip
        w.ids["sent_alert"] = await _send(b, http, w.secrets["send:alert"], alert("zm-police"))
        # for the erasure routes: a message of its own thread, and one request already sent
        w.ids["erasable"] = await _send(b, http, w.secrets["send:mla"],
                                        mla("zm-police", "Sent to the wrong desk."))  # fmt: skip
        (request,) = await b.erasures.request(message_ids=[w.ids["erasable"]],
                                              reason="SentInError")  # fmt: skip
        w.ids["erasure"] = request["request_id"]
        yield w
    await a.stop()
    await b.stop()
    await broker.stop()


# -- the matrix: every route x every token -----------------------------------------------------

ROUTES: dict[str, tuple[str, str, dict[str, int]]] = {
    # route: (method, path with {placeholders}, expected status per token)
    "send mla": ("POST", "/v1/messages#mla", {
        "admin": 202, "send:mla": 202, "send:alert": 403, "send:*": 202,
        "read:mla": 403, "read:alert": 403, "read:*": 403}),
    "send alert": ("POST", "/v1/messages#alert", {
        "admin": 202, "send:mla": 403, "send:alert": 202, "send:*": 202,
        "read:mla": 403, "read:alert": 403, "read:*": 403}),
    "status of a sent mla": ("GET", "/v1/messages/{reply}", {
        "admin": 200, "send:mla": 200, "send:alert": 403, "send:*": 200,
        "read:mla": 200, "read:alert": 403, "read:*": 200}),
    "status of a sent alert": ("GET", "/v1/messages/{sent_alert}", {
        "admin": 200, "send:mla": 403, "send:alert": 200, "send:*": 200,
        "read:mla": 403, "read:alert": 200, "read:*": 200}),
    # every token here may send or read some kind: each sees the events of those kinds
    # (test_status_events checks which, and the 403 of a token that may do neither)
    "status events": ("GET", "/v1/status-events", dict.fromkeys(TOKENS[:7], 200)),
    "inbox": ("GET", "/v1/inbox", {
        "admin": 200, "send:mla": 403, "send:alert": 403, "send:*": 403,
        "read:mla": 200, "read:alert": 200, "read:*": 200}),
    "inbox of alerts": ("GET", "/v1/inbox?kind=alert", {
        "admin": 200, "send:mla": 403, "send:alert": 403, "send:*": 403,
        "read:mla": 403, "read:alert": 200, "read:*": 200}),
    "inbox of mla": ("GET", "/v1/inbox?kind=mla", {
        "admin": 200, "send:mla": 403, "send:alert": 403, "send:*": 403,
        "read:mla": 200, "read:alert": 403, "read:*": 200}),
    "stream": ("GET", "/v1/inbox/stream", {
        "admin": 200, "send:mla": 403, "send:alert": 403, "send:*": 403,
        "read:mla": 200, "read:alert": 200, "read:*": 200}),
    "stream of alerts": ("GET", "/v1/inbox/stream?kind=alert", {
        "admin": 200, "send:mla": 403, "send:alert": 403, "send:*": 403,
        "read:mla": 403, "read:alert": 200, "read:*": 200}),
    "ack an mla": ("POST", "/v1/inbox/{mla1}/ack", {
        "admin": 200, "send:mla": 403, "send:alert": 403, "send:*": 403,
        "read:mla": 200, "read:alert": 403, "read:*": 200}),
    "ack an alert": ("POST", "/v1/inbox/{alert}/ack", {
        "admin": 200, "send:mla": 403, "send:alert": 403, "send:*": 403,
        "read:mla": 403, "read:alert": 200, "read:*": 200}),
    "ack an unknown id": ("POST", "/v1/inbox/no-such-message/ack", {
        "admin": 404, "send:mla": 403, "send:alert": 403, "send:*": 403,
        "read:mla": 404, "read:alert": 404, "read:*": 404}),
    "thread": ("GET", "/v1/threads/{mla1}", {  # see test_a_thread_shows_only_what_the_token_may_see
        "admin": 200, "send:mla": 200, "send:alert": 404, "send:*": 200,
        "read:mla": 200, "read:alert": 200, "read:*": 200}),
    "peers": ("GET", "/v1/peers", dict.fromkeys(TOKENS[:7], 200)),
    "schemas": ("GET", "/v1/schemas", dict.fromkeys(TOKENS[:7], 200)),
    "codes": ("GET", "/v1/codes/gender", dict.fromkeys(TOKENS[:7], 200)),
    "quarantine": ("GET", "/v1/quarantine", {**dict.fromkeys(TOKENS[:7], 403), "admin": 200}),
    "erase an mla": ("POST", "/v1/erasures#erase", {
        "admin": 202, "send:mla": 202, "send:alert": 403, "send:*": 202,
        "read:mla": 403, "read:alert": 403, "read:*": 403}),
    "erasure status": ("GET", "/v1/erasures/{erasure}", {
        "admin": 200, "send:mla": 200, "send:alert": 403, "send:*": 200,
        "read:mla": 200, "read:alert": 403, "read:*": 200}),
    "holds": ("GET", "/v1/holds", {**dict.fromkeys(TOKENS[:7], 403), "admin": 200}),
    "record a hold": ("POST", "/v1/holds#hold", {**dict.fromkeys(TOKENS[:7], 403), "admin": 201}),
    "release an unknown hold": ("POST", "/v1/holds/999999/release#release",
                                {**dict.fromkeys(TOKENS[:7], 403), "admin": 404}),
    "forward an mla": ("POST", "/v1/forwards#forward", {  # to its own sender: refused, 422
        "admin": 422, "send:mla": 422, "send:alert": 403, "send:*": 422,
        "read:mla": 403, "read:alert": 403, "read:*": 403}),
    "ask to forward an mla": ("POST", "/v1/forward-permissions#ask", {
        "admin": 202, "send:mla": 202, "send:alert": 403, "send:*": 202,
        "read:mla": 403, "read:alert": 403, "read:*": 403}),
    "release a hold named by a non-ASCII digit": ("POST", "/v1/holds/%C2%B2/release#release",
                                                  {**dict.fromkeys(TOKENS[:7], 403), "admin": 404}),
    "overdue threads": ("GET", "/v1/threads?overdue=true", dict.fromkeys(TOKENS[:7], 200)),
    "decide on what is no request": ("POST", "/v1/forward-permissions/{mla1}/decision#decide",
                                     dict.fromkeys(TOKENS[:7], 404)),
    # statistics (docs/statistics.md): local case files are the agency's (admin); a release
    # from police with no secretariat known is refused (422) once the scope lets it through
    "import cases": ("POST", "/v1/cases#cases", {**dict.fromkeys(TOKENS[:7], 403), "admin": 200}),
    "statistics of a quarter": ("GET", "/v1/statistics/2026-Q2", {
        **dict.fromkeys(TOKENS[:7], 403), "admin": 200, "read:*": 200}),
    "raw statistics": ("GET", "/v1/statistics/2026-Q2?raw=true", {
        **dict.fromkeys(TOKENS[:7], 403), "admin": 200}),
    "send a release": ("POST", "/v1/statistics-releases#release_stats", {
        **dict.fromkeys(TOKENS[:7], 403), "admin": 422, "send:*": 422}),
    "statistics report": ("GET", "/v1/statistics-report?periods=2026-Q2&format=csv", {
        **dict.fromkeys(TOKENS[:7], 403), "admin": 200, "read:*": 200}),
}  # fmt: skip
BODIES = {
    "erase": lambda w: {"message_ids": [w.ids["erasable"]], "reason": "SentInError"},
    "hold": lambda w: {"thread_id": w.ids["mla1"], "reason": "CriminalInvestigation",
                       "note": "Case LSK/2026/41", "recorded_by": "Inspector Banda"},
    "release": lambda w: {"released_by": "Inspector Banda"},
    "forward": lambda w: {"message_id": w.ids["mla2"], "to": ["zm-police"]},
    "ask": lambda w: {"message_id": w.ids["mla2"], "forward_to": ["mw-police"],
                      "purpose": "The prosecutor in Lilongwe needs it."},
    "decide": lambda w: {"decision": "Granted", "decided_by": "Inspector Banda"},
    "cases": lambda w: {"cases": []},
    "release_stats": lambda w: {"period": "2026-Q2"},
}  # fmt: skip
CASES = [(route, token, {**INVALID, **expected}[token])
         for route, (_, _, expected) in ROUTES.items() for token in TOKENS]  # fmt: skip


@pytest.mark.parametrize(("route", "token", "status"), CASES,
                         ids=[f"{r}-{t}-{s}" for r, t, s in CASES])  # fmt: skip
async def test_route_and_scope(world: World, route: str, token: str, status: int):
    method, template, _ = ROUTES[route]
    path, _, kind = template.partition("#")
    body = None
    if kind in BODIES:
        body = BODIES[kind](world)
    elif kind:
        body = mla("zm-police", f"Scope test by {token}.") if kind == "mla" else alert("zm-police")
    got, document = await world.call(method, path.format(**world.ids), token, body)
    assert got == status, document
    if status >= 400:
        assert isinstance(document, dict)
        assert document["code"] == {401: "unauthenticated", 403: "forbidden",
                                    404: "not_found", 422: "invalid_content"}[status]  # fmt: skip
    if status == 401:
        assert document["field"] == "Authorization"


async def test_the_matrix_covers_every_route_of_the_api():
    """A route added later without a line here fails this test (the OpenAPI document lists
    every route; test_api keeps it in step with the router)."""
    from node.adapters.api import OPEN_PATHS, openapi_document

    documented = {(m.upper(), p) for p, ops in openapi_document()["paths"].items() for m in ops}
    covered = {(m, t.split("?")[0].split("#")[0]) for m, t, _ in ROUTES.values()}
    covered = {(m, p.replace("{reply}", "{id}").replace("{sent_alert}", "{id}")
                .replace("{mla1}", "{id}").replace("{alert}", "{id}")
                .replace("no-such-message", "{id}").replace("{erasure}", "{id}")
                .replace("forward-permissions/{mla1}", "forward-permissions/{id}")
                .replace("999999", "{id}").replace("%C2%B2", "{id}")
                .replace("/v1/statistics/2026-Q2", "/v1/statistics/{period}")) for m, p in covered}  # fmt: skip
    covered = {(m, "/v1/threads/{thread_id}") if p == "/v1/threads/{id}" else (m, p)
               for m, p in covered}  # fmt: skip
    covered = {(m, "/v1/codes/{list}") if p == "/v1/codes/gender" else (m, p) for m, p in covered}
    assert documented - covered == {("GET", p) for p in OPEN_PATHS}


async def test_open_routes_need_no_token(world: World):
    for path in ("/healthz", "/readyz", "/metrics", "/v1/openapi.json"):
        async with world.http.get(f"{world.b.api_url}{path}") as r:
            assert r.status == 200, path


# -- what a token sees where a route filters -----------------------------------------------------


@pytest.mark.parametrize(
    ("token", "visible", "kinds"),
    [("read:mla", ["mla1", "mla2"], {"mla"}), ("read:alert", ["alert"], {"alert"}),
     ("read:*", ["mla1", "alert", "mla2"], {"mla", "alert"}),
     ("admin", ["mla1", "alert", "mla2"], {"mla", "alert"})],
)  # fmt: skip
async def test_the_inbox_shows_only_kinds_the_token_may_read(world, token, visible, kinds):
    known = {world.ids[n]: n for n in ("mla1", "alert", "mla2")}
    status, page = await world.call("GET", "/v1/inbox", token)
    assert status == 200
    assert [known[m["id"]] for m in page["messages"] if m["id"] in known] == visible
    assert {m["kind"] for m in page["messages"]} == kinds


@pytest.mark.parametrize(
    ("token", "visible"),
    [("read:mla", [("received", "mla1"), ("sent", "reply")]),
     ("read:alert", [("received", "alert")]),
     ("send:mla", [("sent", "reply")]),
     ("send:*", [("sent", "reply")]),
     ("read:*", [("received", "mla1"), ("received", "alert"), ("sent", "reply")]),
     ("admin", [("received", "mla1"), ("received", "alert"), ("sent", "reply")])],
)  # fmt: skip
async def test_a_thread_shows_only_what_the_token_may_see(world, token, visible):
    names = {v: k for k, v in world.ids.items()}
    status, thread = await world.call("GET", f"/v1/threads/{world.ids['mla1']}", token)
    assert status == 200
    assert [(m["direction"], names[m["id"]]) for m in thread["messages"]] == visible


async def test_the_stream_sends_only_kinds_the_token_may_read(world: World):
    # cursors: mla1 < alert < mla2; a read:mla stream must skip the alert between them
    events = await world.events("/v1/inbox/stream", "read:mla", 2)
    assert [e["id"] for e in events] == [world.ids["mla1"], world.ids["mla2"]]
    events = await world.events("/v1/inbox/stream", "read:alert", 1)
    assert [e["id"] for e in events] == [world.ids["alert"]]
    events = await world.events("/v1/inbox/stream?kind=mla", "read:*", 2)
    assert [e["id"] for e in events] == [world.ids["mla1"], world.ids["mla2"]]


async def test_the_stream_resumes_after_last_event_id(world: World):
    c = world.cursors
    resume = {"Last-Event-ID": str(c["mla1"])}
    events = await world.events("/v1/inbox/stream", "read:*", 1, resume)
    assert [e["id"] for e in events] == [world.ids["alert"]]
    resume = {"Last-Event-ID": str(c["alert"])}
    events = await world.events("/v1/inbox/stream?after=0", "read:*", 1, resume)
    assert [e["id"] for e in events] == [world.ids["mla2"]]  # the later of the two wins
    events = await world.events(f"/v1/inbox/stream?after={c['alert']}", "read:*", 1,
                                {"Last-Event-ID": str(c["mla1"])})  # fmt: skip
    assert [e["id"] for e in events] == [world.ids["mla2"]]
    # resumed past the alert, a read:mla stream goes on with mla2, still without alerts
    events = await world.events("/v1/inbox/stream", "read:mla", 1,
                                {"Last-Event-ID": str(c["mla1"])})  # fmt: skip
    assert [e["id"] for e in events] == [world.ids["mla2"]]


async def test_a_stream_ends_when_its_token_is_revoked(world: World):
    """Runs last: it adds a message to the inbox. An open stream outlives its first check; the
    next message must not reach a token revoked meanwhile."""
    secret = await _token(world.b, "desk-soon-gone", "read:*")
    world.secrets["soon-gone"] = secret
    seen: list[str] = []
    opened = asyncio.Event()

    async def listen() -> None:
        async with world.http.get(f"{world.b.api_url}/v1/inbox/stream",
                                  headers=world.headers("soon-gone")) as r:  # fmt: skip
            assert r.status == 200
            async for line in r.content:
                if line.startswith(b"data: "):
                    item = json.loads(line[6:])
                    if item["payload_schema"] == "ErasureResult":  # the erasure routes' answers
                        continue
                    seen.append(item["id"])
                    if len(seen) == 3:
                        opened.set()

    listener = asyncio.create_task(listen())
    await asyncio.wait_for(opened.wait(), 20)
    await world.b._run(world.b.store.revoke_token, "desk-soon-gone", world.b.clock())
    sender = await _token(world.a, "late-sender", "send:mla")
    late = await _send(world.a, world.http, sender, mla("zw-police", "Seen at Beitbridge."))
    await _arrived(world.b, late)
    await asyncio.wait_for(listener, 20)  # the stream ends (its task returns at end of body)
    assert late not in seen
    assert seen == [world.ids[n] for n in ("mla1", "alert", "mla2")]
