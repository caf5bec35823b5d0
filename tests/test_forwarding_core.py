"""node.forwarding: what a handling code allows a recipient to pass on (pure)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from node import forwarding
from node.forwarding import ForwardRefused, Grant, Original

ORIGIN = "za-shelter-johannesburg"
T0 = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)
EXAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "examples"


def original(code: str = "H2", sender: str = ORIGIN) -> Original:
    return Original("m1", sender, "referral", "t1", T0, "9f" * 32, "xnode.payload.CaseUpdate",
                    {"handling": {"code": code}})  # fmt: skip


def grant(to=("mw-social-welfare",), granted=True, minutes=0, sender=ORIGIN, message="m1"):
    return Grant(f"d{minutes}", sender, message, granted, frozenset(to),
                 T0 + dt.timedelta(minutes=minutes))  # fmt: skip


@pytest.mark.parametrize("code", ["H0", "H1"])
def test_h0_and_h1_travel_on_without_a_grant(code):
    assert forwarding.check(original(code), ["mw-social-welfare"], []) is None


@pytest.mark.parametrize("code", ["H2", "H3", "H9"])
def test_h2_h3_and_unknown_codes_need_the_originator_s_grant(code):
    with pytest.raises(ForwardRefused, match=f"handling code {code}: {ORIGIN} must grant") as exc:
        forwarding.check(original(code), ["mw-social-welfare"], [])
    assert exc.value.field == "to" and exc.value.status == 403
    assert forwarding.check(original(code), ["mw-social-welfare"], [grant()]) == grant()


def test_a_grant_covers_only_the_nodes_it_names_from_the_originator_for_that_message():
    targets = ["mw-social-welfare", "bw-police"]
    with pytest.raises(ForwardRefused):
        forwarding.check(original(), targets, [grant()])
    assert forwarding.check(original(), targets, [grant(targets)]) is not None
    for wrong in (grant(sender="zw-police"), grant(message="m2")):
        with pytest.raises(ForwardRefused):
            forwarding.check(original(), ["mw-social-welfare"], [wrong])


def test_a_later_refusal_withdraws_earlier_grants_and_a_later_grant_restores():
    first, refusal, again = grant(minutes=0), grant(granted=False, minutes=5), grant(minutes=9)
    assert forwarding.covering_grant(original(), ["mw-social-welfare"], [refusal, first]) is None
    chosen = forwarding.covering_grant(original(), ["mw-social-welfare"], [again, refusal, first])
    assert chosen == again


def test_nothing_goes_back_to_the_originator_or_to_nobody():
    with pytest.raises(ForwardRefused, match="it has it") as exc:
        forwarding.check(original("H0"), [ORIGIN], [])
    assert exc.value.status == 422
    with pytest.raises(ForwardRefused, match="at least one") as exc:
        forwarding.check(original("H0"), [], [])
    assert exc.value.status == 422


def test_a_decision_grants_what_was_asked_or_less_never_more():
    request = {"handling": {"code": "H2"}, "message_id": "m1",
               "forward_to": ["mw-social-welfare", "bw-police"]}  # fmt: skip
    full = forwarding.decision_payload("r1", request, True, None, None, "Case manager", T0)
    assert full["forward_to"] == ["bw-police", "mw-social-welfare"]
    assert full["decision"] == "Granted" and full["request_id"] == "r1"
    assert full["message_id"] == "m1" and full["decided_by"] == "Case manager"
    narrowed = forwarding.decision_payload("r1", request, True, ["bw-police", "zz-other"],
                                           "Only this.", "Case manager", T0)  # fmt: skip
    assert narrowed["forward_to"] == ["bw-police"] and narrowed["conditions"] == "Only this."
    refused = forwarding.decision_payload("r1", request, False, None, None, "Case manager", T0)
    assert refused["decision"] == "Refused" and refused["forward_to"] == []


def test_a_permission_request_carries_the_original_handling():
    handling = {"code": "H2", "legal_basis": "SADC-TIP"}
    request = forwarding.permission_request("m1", ["b", "a", "b"], "Why.", handling, T0)
    assert request["forward_to"] == ["a", "b"] and request["handling"] == handling
    assert request["message_id"] == "m1" and request["purpose"] == "Why."


def test_a_forward_round_trips_its_payload(registry):
    from tests.runtime_helpers import case_update

    value = registry.from_json("xnode.payload.CaseUpdate", case_update("Seen at Nakonde."))
    uid = "01937a4e-5b2c-7d10-8a3f-2c9e4b7d1a05"
    source = Original(uid, ORIGIN, "mla", uid, T0, "9f" * 32, "xnode.payload.CaseUpdate", value)
    grant_ = Grant(uid, ORIGIN, uid, True, frozenset(), T0)
    body = forwarding.forward_payload(registry, source, grant_, "Why.")
    decoded = registry.from_json(forwarding.FORWARD_SCHEMA, body)
    assert forwarding.inner_payload(registry, decoded) == ("xnode.payload.CaseUpdate", value)
    assert decoded["permission"]["decision_id"] == uid and decoded["note"] == "Why."
    assert decoded["original"]["sender"] == ORIGIN and decoded["handling"] == value["handling"]
    assert forwarding.forward_payload(registry, source, None, None)["permission"] is None


def test_a_grant_from_someone_else_listed_first_does_not_hide_the_originator_s():
    stranger = grant(sender="zw-police", minutes=0)
    mine = grant(minutes=5)
    assert forwarding.covering_grant(original(), ["mw-social-welfare"], [stranger, mine]) == mine
    other_message = grant(message="m2", minutes=1)
    assert forwarding.covering_grant(original(), ["mw-social-welfare"],
                                     [other_message, mine]) == mine  # fmt: skip


def test_refusals_name_the_field_and_say_what_to_do():
    with pytest.raises(ForwardRefused) as empty:
        forwarding.check(original("H0"), [], [])
    assert (str(empty.value), empty.value.field) == ("name at least one node to forward to", "to")
    with pytest.raises(ForwardRefused) as back:
        forwarding.check(original("H0"), [ORIGIN], [])
    assert back.value.field == "to"
    assert str(back.value) == f"{ORIGIN} sent this message: it has it"
    with pytest.raises(ForwardRefused) as ungranted:
        forwarding.check(original(), ["mw-social-welfare", "bw-police"], [])
    assert str(ungranted.value) == (
        f"handling code H2: {ORIGIN} must grant forwarding to bw-police, mw-social-welfare "
        "first (POST /v1/forward-permissions)"
    )


def test_the_permission_exchange_payloads_field_by_field():
    handling = {"code": "H2", "legal_basis": "SADC-TIP"}
    assert forwarding.permission_request("m1", ["b"], "Why.", handling, T0) == {
        "handling": handling, "message_id": "m1", "forward_to": ["b"], "purpose": "Why.",
        "requested_at": "2026-11-22T09:00:00.000Z"}  # fmt: skip
    request = {"handling": handling, "message_id": "m1", "forward_to": ["b"]}
    assert forwarding.decision_payload("r1", request, True, None, "Only b.", "Case manager",
                                       T0) == {
        "handling": handling, "request_id": "r1", "message_id": "m1", "decision": "Granted",
        "forward_to": ["b"], "conditions": "Only b.", "decided_by": "Case manager",
        "decided_at": "2026-11-22T09:00:00.000Z"}  # fmt: skip


def test_a_received_decision_reads_as_a_grant():
    payload = {"message_id": "m1", "decision": "Granted", "forward_to": ["b", "a"],
               "decided_at": T0}  # fmt: skip
    assert forwarding.grant_of("d1", ORIGIN, payload) == Grant(
        "d1", ORIGIN, "m1", True, frozenset({"a", "b"}), T0
    )
    refused = forwarding.grant_of("d2", ORIGIN, {**payload, "decision": "Refused",
                                                 "forward_to": []})  # fmt: skip
    assert not refused.granted and refused.forward_to == frozenset()
    assert forwarding.grant_of("d3", ORIGIN, {**payload, "forward_to": None}).forward_to == (
        frozenset()
    )


def test_a_carried_payload_is_read_with_the_schema_version_it_was_written_with(registry):
    """A forward may carry a payload written with an older version of its record: it is read
    with that version (by fingerprint) and resolved to the current one."""
    import base64

    name = "xnode.payload.Receipt"
    current = registry.from_json(name, json.loads((EXAMPLES / "receipt.json").read_text()))
    older = min(registry.history(name), key=lambda info: len(info.canonical_form))
    value = {k: v for k, v in current.items() if k != "also"}
    value["reason"] = "malformed"
    data = registry.encode(name, value, writer=older)
    forward = {"payload_schema": name, "payload_fingerprint": older.fingerprint, "payload": data}
    assert forwarding.inner_payload(registry, forward)[1]["reason"] == "malformed"
    assert base64.b64encode(data)  # bytes as they travel
    with pytest.raises(KeyError):
        forwarding.inner_payload(registry, {**forward, "payload_fingerprint": b"\0" * 32})
    with pytest.raises(KeyError):
        forwarding.inner_payload(registry, {**forward, "payload_schema": "xnode.payload.Alert"})
