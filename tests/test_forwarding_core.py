"""node.forwarding: what a handling code allows a recipient to pass on (pure)."""

from __future__ import annotations

import datetime as dt

import pytest

from node import forwarding
from node.forwarding import ForwardRefused, Grant, Original

ORIGIN = "za-shelter-johannesburg"
T0 = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)


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
