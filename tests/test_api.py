"""The local HTTP API against two real nodes on the embedded broker, with a real HTTP client."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import aiohttp
import pytest

from node import codes as code_lists
from node import tokens
from node.adapters.api import ApiServer, openapi_document
from node.compose import build_node
from node.service import Node
from tests.runtime_helpers import case_update, create_nodes, eventually, example, node_env

NODES = {
    "zm-police": "law-enforcement",
    "zw-police": "law-enforcement",
    "za-shelter-johannesburg": "shelter",
}


async def make_token(node: Node, name: str, scopes: str) -> str:
    record, secret = tokens.new_token(name, tokens.parse_scopes(scopes), node.clock())
    await node._run(node.store.add_token, record)
    return secret


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Pair:
    """Two running nodes, their API addresses and a few tokens."""

    def __init__(self, a: Node, b: Node, http: aiohttp.ClientSession) -> None:
        self.a, self.b, self.http = a, b, http

    async def post(self, token: str, body: object, **headers: str) -> tuple[int, dict]:
        async with self.http.post(
            f"{self.a.api_url}/v1/messages", json=body, headers={**bearer(token), **headers}
        ) as r:
            return r.status, await r.json()

    async def get(self, node: Node, path: str, token: str | None = None) -> tuple[int, dict]:
        headers = bearer(token) if token else {}
        async with self.http.get(f"{node.api_url}{path}", headers=headers) as r:
            return r.status, await r.json()


@pytest.fixture
async def pair(tmp_path: Path, broker):
    dirs = create_nodes(tmp_path, NODES)
    env = node_env(broker.bootstrap_servers, XNODE_API_MAX_BODY_BYTES="65536",
                   XNODE_ENVELOPE_MAX_BYTES="32768")  # fmt: skip
    a, b = build_node(dirs["zm-police"], env=env), build_node(dirs["zw-police"], env=env)
    await a.start()
    await b.start()
    async with aiohttp.ClientSession() as http:
        yield Pair(a, b, http)
    await a.stop()
    await b.stop()


def mla(note: str = "Suspect arrested in Lusaka.", **extra: object) -> dict:
    return {"kind": "mla", "to": ["zw-police"], "schema": "CaseUpdate",
            "payload": case_update(note), **extra}  # fmt: skip


async def test_posted_message_is_delivered_and_read_on_the_other_side(pair: Pair):
    send = await make_token(pair.a, "case-system", "send:mla,send:alert")
    read = await make_token(pair.b, "desk", "read:*")
    status, body = await pair.post(send, mla("Two girls seen in Chirundu."))
    assert status == 202 and body["status"] == "queued"
    message_id = body["id"]

    async def delivered() -> bool:
        _, doc = await pair.get(pair.a, f"/v1/messages/{message_id}", send)
        return doc["status"] == "delivered"

    await eventually(delivered, 20, "delivered status")
    _, doc = await pair.get(pair.a, f"/v1/messages/{message_id}", send)
    assert doc["recipients"][0]["node_id"] == "zw-police"
    assert doc["recipients"][0]["state"] == "delivered"

    status, page = await pair.get(pair.b, "/v1/inbox?kind=mla", read)
    assert status == 200
    [item] = page["messages"]
    assert item["id"] == message_id and item["sender"] == "zm-police"
    assert item["payload"]["note"] == "Two girls seen in Chirundu."
    assert item["handling_code"] == "H1" and page["next_cursor"] == item["cursor"]
    _, empty = await pair.get(pair.b, f"/v1/inbox?after={page['next_cursor']}", read)
    assert empty["messages"] == []

    # the reply lands in the same thread, which both sides can list
    reply = await make_token(pair.b, "reply", "send:mla")
    async with pair.http.post(f"{pair.b.api_url}/v1/messages", headers=bearer(reply), json={
        "kind": "mla", "to": ["zm-police"], "schema": "CaseUpdate", "thread_id": message_id,
        "in_reply_to": message_id, "payload": case_update("Records attached."),
    }) as r:  # fmt: skip
        assert r.status == 202
    _, thread = await pair.get(pair.b, f"/v1/threads/{message_id}", await make_token(
        pair.b, "both", "read:mla,send:mla"))  # fmt: skip
    assert [m["direction"] for m in thread["messages"]] == ["received", "sent"]

    async with pair.http.post(f"{pair.b.api_url}/v1/inbox/{message_id}/ack",
                              headers=bearer(read)) as r:  # fmt: skip
        assert r.status == 200 and (await r.json())["state"] == "acked"
    _, page = await pair.get(pair.b, "/v1/inbox", read)
    assert page["messages"][0]["state"] == "acked"


async def test_inbox_stream_sends_existing_and_new_messages(pair: Pair):
    send = await make_token(pair.a, "case-system", "send:*")
    read = await make_token(pair.b, "desk", "read:mla")
    first = (await pair.post(send, mla("first")))[1]["id"]
    seen: list[str] = []

    async def listen() -> None:
        async with pair.http.get(f"{pair.b.api_url}/v1/inbox/stream", headers=bearer(read)) as r:
            assert r.headers["Content-Type"].startswith("text/event-stream")
            async for line in r.content:
                if line.startswith(b"data: "):
                    seen.append(json.loads(line[6:])["id"])
                    if len(seen) == 2:
                        return

    listener = asyncio.create_task(listen())
    await eventually(lambda: _true_if(seen), 20, "first event")
    second = (await pair.post(send, mla("second")))[1]["id"]
    await asyncio.wait_for(listener, 20)
    assert seen == [first, second]


async def _true_if(items: list) -> bool:
    return bool(items)


async def test_every_error_code(pair: Pair, tmp_path: Path):
    send = await make_token(pair.a, "case-system", "send:mla")
    url = f"{pair.a.api_url}/v1/messages"

    async def raw(data: bytes, headers: dict[str, str]) -> tuple[int, dict]:
        async with pair.http.post(url, data=data, headers=headers) as r:
            return r.status, await r.json()

    # 400: not JSON
    status, body = await raw(b"{not json", {**bearer(send), "Content-Type": "application/json"})
    assert status == 400 and body["error"].startswith("invalid JSON")
    # 401: no token, malformed token, unknown token, revoked token
    status, body = await raw(b"{}", {"Content-Type": "application/json"})
    assert status == 401 and body == {
        "error": "a bearer token is required",
        "field": "Authorization",
        "code": "unauthenticated",
    }
    for token in ("nonsense", "xnt_000000000000_" + "A" * 43):
        assert (await pair.post(token, mla()))[0] == 401
    doomed = await make_token(pair.a, "doomed", "send:*")
    await pair.a._run(pair.a.store.revoke_token, "doomed", pair.a.clock())
    status, body = await pair.post(doomed, mla())
    assert status == 401 and body["error"] == "invalid or revoked token"
    # 403: scope, then role policy (law-enforcement may not send an alert to a shelter)
    status, body = await pair.post(send, {**mla(), "kind": "alert", "schema": "CaseUpdate"})
    assert status == 403 and body["field"] == "scope" and "send:alert" in body["error"]
    wide = await make_token(pair.a, "wide", "send:*")
    status, body = await pair.post(wide, {**mla(), "kind": "alert",
                                          "to": ["za-shelter-johannesburg"]})  # fmt: skip
    assert status == 403 and body["field"] == "to" and "policy does not allow" in body["error"]
    # 422 for an empty recipient list or "neighbours" with none configured (a mistake in the
    # request: nothing to look up); 404 for an unknown recipient
    status, body = await pair.post(send, {**mla(), "to": []})
    assert status == 422 and body["field"] == "to"
    status, body = await pair.post(send, {**mla(), "to": "neighbours"})
    assert status == 422 and body["field"] == "to" and "no neighbours configured" in body["error"]
    status, body = await pair.post(send, {**mla(), "to": ["mw-police"]})
    assert (
        status == 404 and body["field"] == "to" and "unknown recipient mw-police" in body["error"]
    )
    # 413: body above [api] max_body_bytes, and a sealed envelope above [envelope] max_bytes
    status, body = await raw(b" " * 70000, {**bearer(send), "Content-Type": "application/json"})
    assert status == 413
    status, body = await pair.post(send, mla("x" * 40000))
    assert status == 413 and "the limit is 32768" in body["error"]
    # 422: field paths from the codec, the business rules and the request itself
    bad = mla()
    bad["payload"]["status"] = "Dancing"
    status, body = await pair.post(send, bad)
    assert status == 422 and body["field"] == "payload.status"
    bad = mla()
    del bad["payload"]["handling"]
    status, body = await pair.post(send, bad)
    assert status == 422 and body["field"] == "payload.handling"
    status, body = await pair.post(send, {**mla(), "colour": "red"})
    assert status == 422 and body["field"] == "colour"
    status, body = await pair.post(send, {**mla(), "priority": "whenever"})
    assert status == 422 and body["field"] == "priority"
    status, body = await pair.post(send, {**mla(), "schema": "Alert"})
    assert status == 422 and body["field"] == "schema"
    referral = example("referral.json")
    referral["victim"].pop("consent", None)
    referral.pop("consent", None)
    shelter_token = await make_token(pair.a, "referrals", "send:referral")
    status, body = await pair.post(shelter_token, {"kind": "referral", "to": ["zw-police"],
                                                    "payload": referral})  # fmt: skip
    assert status == 422 and body["field"].startswith("payload.")
    # 404 for unknown ids, 400 for bad parameters (checked at the edge, like headers)
    assert (await pair.get(pair.a, "/v1/messages/nope", send))[0] == 404
    status, body = await pair.get(pair.a, "/v1/inbox?limit=0", await make_token(
        pair.a, "reader", "read:*"))  # fmt: skip
    assert status == 400 and body["field"] == "limit" and body["code"] == "invalid_query"
    status, body = await pair.get(pair.a, "/v1/inbox", send)
    assert status == 403  # send-only token reads nothing


async def test_idempotency_key_returns_the_first_result(pair: Pair):
    send = await make_token(pair.a, "case-system", "send:mla")
    other = await make_token(pair.a, "other-system", "send:mla")
    first = await pair.post(send, mla(), **{"Idempotency-Key": "ZP-2026-0142"})
    again = await pair.post(send, mla(), **{"Idempotency-Key": "ZP-2026-0142"})
    assert first == again and first[0] == 202
    # the same key with a different request is not a retry: 422, naming the key
    status, body = await pair.post(
        send, mla("Another note."), **{"Idempotency-Key": "ZP-2026-0142"}
    )
    assert status == 422 and body["code"] == "idempotency_key_reused"
    assert body["field"] == "Idempotency-Key" and "'ZP-2026-0142'" in body["error"]
    # another token using the same key is another request
    assert (await pair.post(other, mla(), **{"Idempotency-Key": "ZP-2026-0142"}))[1] != first[1]


async def test_reference_and_operations_routes(pair: Pair):
    token = await make_token(pair.a, "viewer", "read:alert")
    status, peers = await pair.get(pair.a, "/v1/peers", token)
    assert status == 200
    assert [p["node_id"] for p in peers["peers"]] == ["za-shelter-johannesburg", "zw-police"]
    status, schemas = await pair.get(pair.a, "/v1/schemas", token)
    assert "MlaResponse" in schemas["kinds"]["mla"]
    status, codes = await pair.get(pair.a, "/v1/codes/gender?lang=fr", token)
    assert status == 200 and codes["language"] == "fr" and codes["codes"]
    assert (await pair.get(pair.a, "/v1/codes/gender?lang=xx", token))[0] == 400
    status, codes = await pair.get(pair.a, "/v1/codes/exploitation_type?lang=sw", token)
    assert status == 200 and codes["language"] == "sw"
    assert {"code": "ForcedLabour", "label": "Kazi ya kulazimishwa"} in codes["codes"]
    status, codes = await pair.get(pair.a, "/v1/codes/methods_of_control?lang=ar", token)
    assert status == 200 and codes["language"] == "ar"
    assert {"code": "DebtBondage", "label": "عبودية الدين"} in codes["codes"]
    assert (await pair.get(pair.a, "/v1/codes/colours", token))[0] == 404
    assert (await pair.get(pair.a, "/v1/quarantine", token))[0] == 403
    admin = await make_token(pair.a, "operator", "admin")
    assert (await pair.get(pair.a, "/v1/quarantine", admin))[0] == 200
    assert (await pair.get(pair.a, "/healthz"))[1]["status"] == "ok"
    # ready once the broker has answered a probe (measured, not assumed: it may take a moment)
    await asyncio.wait_for(pair.a.connected.wait(), 60)
    status, ready = await pair.get(pair.a, "/readyz")
    assert status == 200 and set(ready["checks"]) == {"store", "broker", "keys"}
    async with pair.http.get(f"{pair.a.api_url}/metrics") as r:
        assert r.status == 200 and "xnode_build_info" in await r.text()


async def test_readyz_reports_a_missing_broker(tmp_path: Path):
    dirs = create_nodes(tmp_path, {"zm-police": "law-enforcement"})
    from node.transport.broker import free_port

    node = build_node(dirs["zm-police"], env=node_env(f"127.0.0.1:{free_port()}"))
    await node.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{node.api_url}/readyz") as r:
                body = await r.json()
        assert r.status == 503 and not body["ready"]
        assert body["checks"]["broker"]["ok"] is False and body["checks"]["store"]["ok"]
    finally:
        await node.stop()


def test_served_routes_and_openapi_document_agree(tmp_path: Path):
    dirs = create_nodes(tmp_path, {"zm-police": "law-enforcement"})
    node = build_node(dirs["zm-police"])  # not started: only its config is needed for the router
    node.config = dirs["zm-police"].load_config()
    routes = {
        (r.method.lower(), r.resource.canonical)
        for r in ApiServer(node).app().router.routes()
        if r.method != "HEAD"
    }
    document = openapi_document()
    documented = {(m, p) for p, ops in document["paths"].items() for m in ops}
    assert routes == documented
    assert document["openapi"].startswith("3.1")


def test_openapi_document_offers_the_code_list_languages():
    parameters = openapi_document()["paths"]["/v1/codes/{list}"]["get"]["parameters"]
    lang = next(p for p in parameters if p["name"] == "lang")
    assert lang["schema"]["enum"] == list(code_lists.LANGUAGES)
    assert lang["schema"]["default"] == "en"


async def test_schemathesis_finds_no_server_errors_and_no_schema_violations(tmp_path: Path, broker):
    """Property-based testing of the served OpenAPI document with the schemathesis CLI: every
    check (server errors, status codes, content types, response schemas, negative and positive
    data, auth) over the coverage, fuzzing and stateful phases. The SSE stream is excluded: it
    never ends by design (test_inbox_stream_sends_existing_and_new_messages covers it)."""
    import sys

    dirs = create_nodes(tmp_path, {"zm-police": "law-enforcement", "zw-police": "law-enforcement"})
    node = build_node(dirs["zm-police"], env=node_env(broker.bootstrap_servers))
    # A schema-valid POST /v1/messages may still be refused with 422: the payload record of each
    # kind (Avro), the business rules and the configured neighbours are not in the OpenAPI
    # document. Every other operation but the two below keeps schemathesis's defaults.
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        '[[operations]]\ninclude-path = "/v1/messages"\ninclude-method = "POST"\n'
        'checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "422"]\n'
        # case rows valid by the document may still break a rule (a date in the future, an
        # unknown code); a release may be refused (the period not over, no recipient known)
        '[[operations]]\ninclude-path = "/v1/cases"\ninclude-method = "POST"\n'
        'checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "415", "422"]\n'
        '[[operations]]\ninclude-path = "/v1/statistics-releases"\ninclude-method = "POST"\n'
        'checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "422"]\n'
        # a report spans at most 60 periods of one granularity: not expressible in the schema
        '[[operations]]\ninclude-path = "/v1/statistics-report"\n'
        'checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403"]\n'
    )
    await node.start()
    try:
        token = await make_token(node, "fuzz", "admin")
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "st"), "--config-file", str(config), "run",
            f"{node.api_url}/v1/openapi.json",
            "--url", node.api_url, "-H", f"Authorization: Bearer {token}", "--checks", "all",
            "--exclude-path", "/v1/inbox/stream", "--max-examples", "40",
            "--phases", "examples,coverage,fuzzing,stateful", "--request-timeout", "10",
            # fixed by default so CI is reproducible; XNODE_FUZZ_SEED=<n> explores other inputs
            "--seed", os.environ.get("XNODE_FUZZ_SEED", "20261122"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""},
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), 300)
    finally:
        await node.stop()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
    assert "passed" in text
