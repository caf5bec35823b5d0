"""Erasure at the originator's request, between three `xnode run` processes (issue: data
protection). A shelter in Johannesburg refers a woman to social welfare in Lusaka and in
Lilongwe, then she withdraws her consent. Lilongwe has a legal hold on the case; Lusaka has
not. Seen from outside only: the API, the folder adapter's files, the store files' raw bytes
and `xnode audit verify`.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.transport.broker import free_port
from tests.process_helpers import (
    BrokerProcess,
    http,
    init_nodes,
    node_env,
    read_store,
    spawn,
    stop,
    wait_for,
    xnode,
)
from tests.runtime_helpers import example

pytestmark = pytest.mark.slow

ORIGIN, LUSAKA, LILONGWE = "za-shelter-johannesburg", "zm-social-welfare", "mw-social-welfare"


def raw_bytes(directory: Path) -> bytes:
    """Every byte of every file under a node directory (store, WAL, folder files, logs)."""
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


def referral(marker: str) -> dict:
    payload = example("referral.json")
    payload["consent"]["share_with_nodes"] = [LUSAKA, LILONGWE]
    payload["cas_OutgoingReferralDetails"] = f"Ms Phiri ({marker}) wishes to return home."
    return payload


@contextlib.contextmanager
def three_nodes(tmp_path: Path) -> Iterator[tuple[dict[str, Path], dict[str, str], dict[str, str]]]:
    """A broker and the three nodes as `xnode run` processes with their API and folder
    adapter: (node directories, API tokens, API urls)."""
    broker = BrokerProcess(tmp_path)
    broker.start()
    dirs = init_nodes(tmp_path, {ORIGIN: "shelter", LUSAKA: "social-welfare",
                                 LILONGWE: "social-welfare"})  # fmt: skip
    tokens = {
        ORIGIN: xnode("token", "create", "--dir", dirs[ORIGIN], "--name", "case",
                      "--scopes", "send:referral,read:referral").stdout.strip(),
        LILONGWE: xnode("token", "create", "--dir", dirs[LILONGWE], "--name", "supervisor",
                        "--scopes", "admin,read:referral").stdout.strip(),
        LUSAKA: xnode("token", "create", "--dir", dirs[LUSAKA], "--name", "desk",
                      "--scopes", "send:referral,read:referral").stdout.strip(),
    }  # fmt: skip
    ports = {node: free_port() for node in dirs}
    api = {node: f"http://127.0.0.1:{port}" for node, port in ports.items()}
    processes = {
        node: spawn("run", "--dir", path, log=tmp_path / f"{node}.log", env=node_env(
            broker.bootstrap, XNODE_API_PORT=str(ports[node]), XNODE_FOLDER_PATH="exchange",
            XNODE_FOLDER_POLL_INTERVAL_MS="200"))
        for node, path in dirs.items()
    }  # fmt: skip
    try:
        wait_for(lambda: all(_ready(a) for a in api.values()), 60, "three nodes ready")
        yield dirs, tokens, api
    finally:
        for process in processes.values():
            stop(process)
        broker.stop()


def assert_erased_everywhere(dirs: dict[str, Path], marker: str, ciphertext: bytes) -> None:
    """No file of any node directory holds the plaintext or the ciphertext; every audit chain
    verifies."""
    for node, path in dirs.items():
        data = raw_bytes(path)
        assert marker.encode() not in data, f"{node} still holds the plaintext"
        assert ciphertext not in data, f"{node} still holds the ciphertext"
        assert xnode("audit", "verify", "--dir", path).returncode == 0


def delivered(api: str, token: str, message_id: str) -> bool:
    return http("GET", f"{api}/v1/messages/{message_id}", token)[1]["status"] == "delivered"


def erasure_status(api: str, token: str, request_id: str) -> dict[str, str]:
    _, view = http("GET", f"{api}/v1/erasures/{request_id}", token)
    return {r["node_id"]: r["status"] for r in view["recipients"]}


def test_an_erasure_reaches_every_recipient_and_leaves_no_byte_behind(tmp_path: Path):
    marker = f"consent-marker-{secrets.token_hex(8)}"
    with three_nodes(tmp_path) as (dirs, tokens, api):
        status, body = http("POST", f"{api[ORIGIN]}/v1/messages", tokens[ORIGIN], {
            "kind": "referral", "to": [LUSAKA, LILONGWE], "schema": "Referral",
            "payload": referral(marker)})  # fmt: skip
        assert status == 202, body
        message_id = body["id"]
        wait_for(lambda: http("GET", f"{api[ORIGIN]}/v1/messages/{message_id}",
                              tokens[ORIGIN])[1]["status"] == "delivered", 60, "delivered")  # fmt: skip
        folder_file = dirs[LUSAKA] / "exchange" / "inbox" / "referral" / f"{message_id}.json"
        wait_for(folder_file.exists, 30, "the Lusaka folder file")
        assert marker in folder_file.read_text()
        assert oct(folder_file.stat().st_mode & 0o777) == "0o600"
        assert oct(folder_file.parent.parent.stat().st_mode & 0o777) == "0o700"
        envelope = read_store(dirs[LUSAKA] / "node.db",
                              "SELECT envelope, thread_id FROM inbox WHERE message_id = ?",
                              (message_id,))[0]  # fmt: skip
        ciphertext, thread_id = bytes(envelope[0])[-160:-80], envelope[1]

        # Lilongwe's supervisor records a legal hold on the case
        status, body = http("POST", f"{api[LILONGWE]}/v1/holds", tokens[LILONGWE], {
            "thread_id": thread_id, "reason": "JudicialProceedings",
            "note": "Exhibit in case HC/2026/88", "recorded_by": "Registrar, Lilongwe"})  # fmt: skip
        assert status == 201, body
        hold_id = body["hold_id"]

        # a node that did not send the message may not ask for its erasure
        status, body = http("POST", f"{api[LUSAKA]}/v1/erasures", tokens[LUSAKA], {
            "message_ids": [message_id], "reason": "ConsentWithdrawn"})  # fmt: skip
        assert status == 403 or (status == 404 and body["field"] == "message_ids[0]"), body

        status, body = http("POST", f"{api[ORIGIN]}/v1/erasures", tokens[ORIGIN], {
            "message_ids": [message_id], "reason": "ConsentWithdrawn",
            "note": "Withdrawn at the shelter on 1 December"})  # fmt: skip
        assert status == 202, body
        (request,) = body["requests"]
        assert request["recipients"] == sorted([LUSAKA, LILONGWE])

        def erasure_status() -> dict[str, str]:
            _, view = http("GET", f"{api[ORIGIN]}/v1/erasures/{request['request_id']}",
                           tokens[ORIGIN])  # fmt: skip
            return {r["node_id"]: r["status"] for r in view["recipients"]}

        wait_for(lambda: erasure_status() == {LUSAKA: "erased", LILONGWE: "held"}, 60,
                 "Lusaka erased, Lilongwe held")  # fmt: skip
        _, view = http("GET", f"{api[ORIGIN]}/v1/erasures/{request['request_id']}",
                       tokens[ORIGIN])  # fmt: skip
        held = next(r for r in view["recipients"] if r["node_id"] == LILONGWE)
        assert held["results"] == [{"message_id": message_id, "outcome": "Held",
                                    "hold_reason": "JudicialProceedings",
                                    "note": "Exhibit in case HC/2026/88"}]  # fmt: skip
        wait_for(lambda: not folder_file.exists(), 10, "the folder file removed")
        # Lusaka's view of the message: metadata left, payload gone
        _, page = http("GET", f"{api[LUSAKA]}/v1/inbox?kind=referral", tokens[LUSAKA])
        item = next(m for m in page["messages"] if m["id"] == message_id)
        assert item["payload"] is None and item["payload_error"] == "erased"
        # Lilongwe still holds it, readable
        lilongwe = raw_bytes(dirs[LILONGWE])
        assert ciphertext in lilongwe

        # the hold is released; asked again, Lilongwe erases too
        status, _ = http("POST", f"{api[LILONGWE]}/v1/holds/{hold_id}/release",
                         tokens[LILONGWE], {"released_by": "Registrar, Lilongwe"})  # fmt: skip
        assert status == 200
        status, body = http("POST", f"{api[ORIGIN]}/v1/erasures", tokens[ORIGIN], {
            "message_ids": [message_id], "reason": "ConsentWithdrawn"})  # fmt: skip
        assert status == 202, body
        again = body["requests"][0]["request_id"]
        wait_for(lambda: {r["node_id"]: r["status"] for r in http(
            "GET", f"{api[ORIGIN]}/v1/erasures/{again}", tokens[ORIGIN])[1]["recipients"]}
            == {LUSAKA: "erased", LILONGWE: "erased"}, 60, "both erased")  # fmt: skip

    assert_erased_everywhere(dirs, marker, ciphertext)
    for node, path in dirs.items():
        events = [r[0] for r in read_store(path / "node.db",
                                           "SELECT event FROM audit WHERE message_id = ?",
                                           (message_id,))]  # fmt: skip
        assert "erased" in events, (node, events)
    lilongwe_events = [r[0] for r in read_store(dirs[LILONGWE] / "node.db",
                                                "SELECT event FROM audit")]  # fmt: skip
    assert {"hold-recorded", "erasure-held", "hold-released"} <= set(lilongwe_events)


def _ready(api: str) -> bool:
    try:
        return http("GET", f"{api}/readyz")[0] == 200
    except OSError:
        return False


def test_h2_data_is_forwarded_only_with_the_grant_and_the_erasure_follows_it(tmp_path: Path):
    """The shelter refers to Lusaka only (H2: no onward dissemination without permission).
    Lusaka may forward to Lilongwe once the shelter grants it; when the shelter then erases,
    Lusaka erases and passes the request on, and Lilongwe erases its forwarded copy."""
    marker = f"consent-marker-{secrets.token_hex(8)}"
    with three_nodes(tmp_path) as (dirs, tokens, api):
        status, body = http("POST", f"{api[ORIGIN]}/v1/messages", tokens[ORIGIN], {
            "kind": "referral", "to": [LUSAKA], "schema": "Referral",
            "payload": referral(marker)})  # fmt: skip
        assert status == 202, body
        original = body["id"]
        wait_for(lambda: delivered(api[ORIGIN], tokens[ORIGIN], original), 60, "delivered")
        (envelope,) = read_store(dirs[LUSAKA] / "node.db",
                                 "SELECT envelope FROM inbox WHERE message_id = ?", (original,))  # fmt: skip
        ciphertext = bytes(envelope[0])[-160:-80]
        _, page = http("GET", f"{api[LUSAKA]}/v1/inbox?kind=referral", tokens[LUSAKA])
        (item,) = page["messages"]
        assert item["handling_notice"] == "H2: No onward dissemination without permission"

        # without the originator's grant: refused before anything is sealed, and audited
        forward = {"message_id": original, "to": [LILONGWE], "note": "Family lives in Lilongwe."}
        status, body = http("POST", f"{api[LUSAKA]}/v1/forwards", tokens[LUSAKA], forward)
        assert status == 403 and body["field"] == "to" and "must grant" in body["error"], body
        assert read_store(dirs[LUSAKA] / "node.db", "SELECT COUNT(*) FROM outbox"
                          " WHERE schema_name = 'xnode.payload.Forward'") == [(0,)]  # fmt: skip

        status, body = http("POST", f"{api[LUSAKA]}/v1/forward-permissions", tokens[LUSAKA], {
            "message_id": original, "forward_to": [LILONGWE],
            "purpose": "Family tracing by social welfare in Lilongwe."})  # fmt: skip
        assert status == 202, body
        request_id = body["id"]

        def asked() -> bool:
            _, inbox = http("GET", f"{api[ORIGIN]}/v1/inbox?kind=referral", tokens[ORIGIN])
            return any(m["id"] == request_id for m in inbox["messages"])

        wait_for(asked, 60, "the request at the shelter")
        status, body = http("POST", f"{api[ORIGIN]}/v1/forward-permissions/{request_id}/decision",
                            tokens[ORIGIN], {"decision": "Granted",
                                             "conditions": "Family tracing only.",
                                             "decided_by": "Case manager, Johannesburg"})  # fmt: skip
        assert status == 202, body

        def forwarded() -> str | None:
            status, body = http("POST", f"{api[LUSAKA]}/v1/forwards", tokens[LUSAKA], forward)
            return body["id"] if status == 202 else None

        forward_ids: list[str] = []
        wait_for(lambda: bool(forward_ids.append(forwarded() or "") or forward_ids[-1]), 60,
                 "the grant at Lusaka")  # fmt: skip
        forward_id = forward_ids[-1]
        wait_for(lambda: delivered(api[LUSAKA], tokens[LUSAKA], forward_id), 60, "forwarded")
        _, page = http("GET", f"{api[LILONGWE]}/v1/inbox?kind=referral", tokens[LILONGWE])
        (received,) = [m for m in page["messages"] if m["id"] == forward_id]
        assert received["forwarded_from"]["message_id"] == original
        assert received["forwarded_from"]["sender"] == ORIGIN
        assert marker in received["payload"]["payload"]["cas_OutgoingReferralDetails"]
        assert received["handling_code"] == "H2"

        status, body = http("POST", f"{api[ORIGIN]}/v1/erasures", tokens[ORIGIN], {
            "message_ids": [original], "reason": "ConsentWithdrawn"})  # fmt: skip
        assert status == 202, body
        erasure = body["requests"][0]["request_id"]
        wait_for(lambda: erasure_status(api[ORIGIN], tokens[ORIGIN], erasure).get(LUSAKA)
                 == "erased", 60, "Lusaka erased")  # fmt: skip
        _, view = http("GET", f"{api[ORIGIN]}/v1/erasures/{erasure}", tokens[ORIGIN])
        lusaka = next(r for r in view["recipients"] if r["node_id"] == LUSAKA)
        assert lusaka["passed_on_to"] == [LILONGWE]

        def gone_at_lilongwe() -> bool:
            _, page = http("GET", f"{api[LILONGWE]}/v1/inbox?kind=referral", tokens[LILONGWE])
            item = next(m for m in page["messages"] if m["id"] == forward_id)
            return item["payload_error"] == "erased" if "payload_error" in item else False

        wait_for(gone_at_lilongwe, 60, "the forwarded copy erased at Lilongwe")
        # the originator sees each node that held its data: Lusaka's answer, and Lilongwe's as
        # Lusaka reported it
        wait_for(lambda: erasure_status(api[ORIGIN], tokens[ORIGIN], erasure) == {
            LUSAKA: "erased", LILONGWE: "erased"}, 60, "both answers at the shelter")  # fmt: skip
        _, view = http("GET", f"{api[ORIGIN]}/v1/erasures/{erasure}", tokens[ORIGIN])
        reported = next(r for r in view["recipients"] if r["node_id"] == LILONGWE)
        assert reported["delivery"] == f"via {LUSAKA}"
        assert reported["results"] == [{"message_id": original, "outcome": "Erased",
                                        "hold_reason": None, "note": None}]  # fmt: skip
    assert_erased_everywhere(dirs, marker, ciphertext)
    lusaka = [r[0] for r in read_store(dirs[LUSAKA] / "node.db", "SELECT event FROM audit")]
    assert {"forward-refused", "forwarded", "erased"} <= set(lusaka)
    shelter = [r[0] for r in read_store(dirs[ORIGIN] / "node.db", "SELECT event FROM audit")]
    assert "forward-decided" in shelter
