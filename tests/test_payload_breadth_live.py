"""Each concept of the second release's payloads exchanged end to end between two `xnode run`
processes through the public API, as a secretariat's case system would: a smuggling alert that
names phones, accounts, an agency and crossing points (found again by a later search however the
number is typed), a migrant child's referral, every judicial request answered by an MLA response
on its thread, a consular notification, a compensation claim, a labour-recruitment check and its
answer. Bad input is refused with the field path before anything is sealed."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest

from node.codec import default_registry
from node.transport.broker import free_port
from tests.process_helpers import (
    BrokerProcess,
    http,
    init_nodes,
    node_env,
    spawn,
    stop,
    wait_for,
    xnode,
)
from tests.runtime_helpers import example

pytestmark = pytest.mark.slow
REGISTRY = default_registry()

SENDS = [  # (example, kind, schema, answer: (schema, example) or None)
    ("alert-smuggling.json", "alert", "Alert", None),
    ("referral-migrant.json", "referral", "Referral", ("ReferralResponse", "referral-response.json")),
    ("joint-investigation-team.json", "mla", "JointInvestigationTeam", ("MlaResponse", "mla-response.json")),
    ("arrest-warrant-notice.json", "mla", "ArrestWarrantNotice", ("MlaResponse", "mla-response.json")),
    ("proceedings-transfer.json", "mla", "ProceedingsTransfer", ("MlaResponse", "mla-response.json")),
    ("asset-recovery-request.json", "mla", "AssetRecoveryRequest", ("MlaResponse", "mla-response.json")),
    ("video-testimony-request.json", "mla", "VideoTestimonyRequest", ("MlaResponse", "mla-response.json")),
    ("spontaneous-information.json", "mla", "SpontaneousInformation", None),
    ("consular-notification.json", "referral", "ConsularNotification", None),
    ("compensation-claim.json", "referral", "CompensationClaim", ("ReferralResponse", "referral-response.json")),
    ("recruitment-verification-request.json", "alert", "RecruitmentVerificationRequest",
     ("RecruitmentVerificationResponse", "recruitment-verification-response.json")),
]  # fmt: skip
ANSWER_LINK = {"MlaResponse": "request_id", "ReferralResponse": "referral_id",
               "RecruitmentVerificationResponse": "request_id"}  # fmt: skip


def _post(api: str, token: str, body: dict) -> tuple[int, dict]:
    status, answer = http("POST", f"{api}/v1/messages", token, body)
    return status, answer


def _inbox(api: str, token: str, **query: str) -> list[dict]:
    suffix = "?" + urllib.parse.urlencode({"limit": "500", **query})
    status, page = http("GET", f"{api}/v1/inbox{suffix}", token)
    assert status == 200, page
    return list(page["messages"])


def test_every_new_concept_travels_between_two_node_processes(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path)
    broker.start()
    dirs = init_nodes(tmp_path, {"zm-secretariat": "secretariat", "zw-secretariat": "secretariat"})
    zm, zw = dirs["zm-secretariat"], dirs["zw-secretariat"]
    tokens = {d: xnode("token", "create", "--dir", d, "--name", "case-system",
                       "--scopes", "send:*,read:*").stdout.strip() for d in (zm, zw)}  # fmt: skip
    ports = {zm: free_port(), zw: free_port()}
    procs = {d: spawn("run", "--dir", d, env=node_env(broker.bootstrap, XNODE_API_PORT=str(p)),
                      log=tmp_path / f"{d.name}.log") for d, p in ports.items()}  # fmt: skip
    api = {d: f"http://127.0.0.1:{p}" for d, p in ports.items()}

    def ready(d: Path) -> bool:
        try:
            return http("GET", f"{api[d]}/readyz")[0] == 200
        except OSError:
            return False

    def delivered(d: Path, message_id: str) -> bool:
        return http("GET", f"{api[d]}/v1/messages/{message_id}", tokens[d])[1]["status"] == (
            "delivered"
        )

    try:
        wait_for(lambda: ready(zm) and ready(zw), 60, "both nodes ready")
        smuggling = example("alert-smuggling.json")
        # the case system types the first number in national form: the node writes it in E.164
        typed = smuggling["phone_numbers"][0]
        e164 = typed["number"]
        assert e164.startswith("+260")
        typed["number"], typed["country"] = "0" + e164[4:6] + " " + e164[6:9] + " " + e164[9:], "ZM"

        sent: dict[str, tuple[str, str, dict]] = {}
        for file, kind, schema, _ in SENDS:
            payload = smuggling if file == "alert-smuggling.json" else example(file)
            status, body = _post(api[zm], tokens[zm], {
                "kind": kind, "to": ["zw-secretariat"], "schema": schema, "payload": payload})  # fmt: skip
            assert status == 202, (file, body)
            sent[body["id"]] = (file, schema, payload)
        for message_id in sent:
            what = f"{sent[message_id][0]} delivered"
            wait_for(lambda m=message_id: delivered(zm, m), 60, what)

        received = {m["id"]: m for m in _inbox(api[zw], tokens[zw])}
        assert set(received) == set(sent)
        for message_id, (file, schema, payload) in sent.items():
            got = received[message_id]
            assert got["payload_schema"] == schema, file
            if file == "alert-smuggling.json":
                assert got["payload"]["phone_numbers"][0]["number"] == e164
                got["payload"]["phone_numbers"][0]["number"] = typed["number"]
            # what the case system sent, field by field, with the schema's defaults filled in
            name = f"xnode.payload.{schema}"
            expected = REGISTRY.to_json(name, REGISTRY.from_json(name, payload, "payload"))
            assert isinstance(expected, dict)
            for field, value in expected.items():
                assert got["payload"][field] == value, (file, field)

        # every request is answered on its thread, in the procedure's order
        answers = []
        for message_id, (file, schema, _) in sent.items():
            answer = next(s[3] for s in SENDS if s[0] == file)
            if answer is None:
                continue
            answer_schema, answer_file = answer
            reply = {**example(answer_file), ANSWER_LINK[answer_schema]: message_id}
            kind = next(s[1] for s in SENDS if s[0] == file)
            status, body = _post(api[zw], tokens[zw], {
                "kind": kind, "to": ["zm-secretariat"], "schema": answer_schema,
                "payload": reply, "thread_id": message_id, "in_reply_to": message_id})  # fmt: skip
            assert status == 202, (answer_file, file, body)
            answers.append(body["id"])
        for answer_id in answers:
            wait_for(lambda a=answer_id: delivered(zw, a), 60, "answers delivered")
        back = {m["id"] for m in _inbox(api[zm], tokens[zm])}
        assert set(answers) <= back

        # an officer finds the smuggling alert again by the number however typed, an account,
        # the agency's registration number or a crossing point; a number no alert named finds none
        alert_id = next(m for m, v in sent.items() if v[0] == "alert-smuggling.json")
        account = next(a["account"] for a in smuggling["financial_accounts"]
                       if a["type"] == "BankAccount")  # fmt: skip
        regno = smuggling["organisations"][0]["organisation"]["registration_number"]
        # zw reads a national number as Zimbabwean, so an officer there dials Zambia's way in
        spaced = f"+{e164[1:4]} {e164[4:6]} {e164[6:9]} {e164[9:]}"
        dialled = f"00 {e164[1:4]} {e164[4:]}"
        for text in (e164, spaced, dialled, f"phone:{spaced}", account, f"ref:{regno}"):
            found = [m["id"] for m in _inbox(api[zw], tokens[zw], match=text, kind="alert")]
            assert found == [alert_id], text
        assert _inbox(api[zw], tokens[zw], match="+260966000111") == []
        listed = xnode("inbox", "--dir", zw, "--match", dialled, "--json").stdout
        assert [m["id"] for m in json.loads(listed)] == [alert_id]

        # bad input: refused with the field path, nothing sealed
        bad = example("alert-smuggling.json")
        bad["phone_numbers"][0] = {"role": "Suspect", "number": "0977 123", "country": "ZM"}
        status, body = _post(api[zm], tokens[zm], {"kind": "alert", "to": ["zw-secretariat"],
                                                   "payload": bad})  # fmt: skip
        assert status == 422 and body["field"] == "payload.phone_numbers[0].number", body
        refugee = example("consular-notification.json")
        refugee["protection"] = {"categories": ["RefugeeOrAsylumSeeker"]}
        status, body = _post(api[zm], tokens[zm], {
            "kind": "referral", "to": ["zw-secretariat"], "schema": "ConsularNotification",
            "payload": refugee})  # fmt: skip
        assert status == 422 and body["field"] == "payload.protection", body
    finally:
        for process in procs.values():
            stop(process)
        broker.stop()
    for d in (zm, zw):
        log = (tmp_path / f"{d.name}.log").read_text()
        assert "Traceback" not in log
        assert e164 not in log and "0977" not in log  # no identifier in the logs
