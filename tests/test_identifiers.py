"""Identifiers written one way (node/identifiers.py): the same phone, account or handle
matches across messages however it was typed, and a search finds it."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node import identifiers
from node.checks import PayloadInvalid
from node.codec import default_registry
from tests.runtime_helpers import example

REGISTRY = default_registry()
ZAMBIAN_MOBILE = "+260977123456"


@pytest.mark.parametrize(
    ("raw", "region"),
    [("+260977123456", None), ("+260 97 712 3456", None), ("0977 123 456", "ZM"),
     ("0977-123-456", "ZM"), ("(097) 7123456", "ZM"), ("00260977123456", "ZM")],
)  # fmt: skip
def test_one_phone_however_it_is_typed(raw, region):
    assert identifiers.phone_e164(raw, region) == ZAMBIAN_MOBILE


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [("0977 123 456", None, "a national number needs its country"),
     ("call me", "ZM", "not a phone number"), ("+2609", None, "not a phone number: "),
     ("+260 97 712 34", None, "not a valid phone number"),
     ("+260 97 712 3", None, "not a valid phone number")],
)  # fmt: skip
def test_what_is_not_a_phone_is_refused_with_the_reason(raw, region, reason):
    with pytest.raises(identifiers.UnreadableIdentifier, match=reason):
        identifiers.phone_e164(raw, region)


@given(st.sampled_from(["ZM", "ZW", "ZA", "MW", "TZ", "MZ", "BW"]), st.integers(0, 10**9))
def test_normalising_twice_changes_nothing(region, n):
    import phonenumbers

    example_number = phonenumbers.example_number_for_type(
        region, phonenumbers.PhoneNumberType.MOBILE
    )
    national = str(example_number.national_number)
    raw = national[:-3] + f"{n % 1000:03d}"
    try:
        once = identifiers.phone_e164(raw, region)
    except identifiers.UnreadableIdentifier:
        return
    assert identifiers.phone_e164(once) == once
    assert identifiers.phone_e164(once, region) == once


def test_references_and_web_addresses_compare_on_what_matters():
    assert identifiers.reference("ALZ 4471") == identifiers.reference("alz-4471") == "ALZ4471"
    assert identifiers.web("https://www.Jobs-Abroad.example.com/apply/?ref=fb") == (
        "jobs-abroad.example.com/apply"
    )
    assert identifiers.web("jobs-abroad.example.com/apply") == "jobs-abroad.example.com/apply"
    assert identifiers.handle("@Kelvin.B") == "kelvin.b"


def alert_naming(number: str, country: str | None = None, **more: object) -> dict:
    doc = example("alert.json")
    doc["phone_numbers"] = [{"role": "Suspect", "number": number, "country": country}]
    doc.update(more)
    return REGISTRY.from_json("xnode.payload.Alert", doc, "payload")


def test_normalise_writes_every_phone_in_e164_and_leaves_the_input_alone():
    payload = alert_naming("0977 123 456", "ZM", financial_accounts=[
        {"role": "Suspect", "type": "MobileMoney", "provider": "MTN MoMo",
         "account": "097 712 3456", "country": "ZM"},
        {"role": "Suspect", "type": "BankAccount", "provider": "Zanaco",
         "account": "0123-4567-89", "country": "ZM"},
    ])  # fmt: skip
    before = copy.deepcopy(payload)
    out = identifiers.normalise(REGISTRY, "xnode.payload.Alert", payload)
    assert payload == before
    assert out["phone_numbers"][0]["number"] == ZAMBIAN_MOBILE
    assert out["financial_accounts"][0]["account"] == ZAMBIAN_MOBILE
    assert out["financial_accounts"][1]["account"] == "0123-4567-89"  # a bank's own form


def test_normalise_names_every_unreadable_number_by_its_path():
    payload = alert_naming("0977 123 456")  # national, no country
    payload["phone_numbers"].append({"role": "Suspect", "number": "nonsense", "country": "ZW",
                                     "notes": None})  # fmt: skip
    with pytest.raises(PayloadInvalid) as caught:
        identifiers.normalise(REGISTRY, "xnode.payload.Alert", payload)
    assert [p.path for p in caught.value.problems] == [
        "payload.phone_numbers[0].number",
        "payload.phone_numbers[1].number",
    ]
    assert "needs its country" in caught.value.problems[0].message


def test_match_keys_find_every_identifier_wherever_the_payload_names_it():
    payload = identifiers.normalise(REGISTRY, "xnode.payload.Alert", alert_naming(
        "0977 123 456", "ZM",
        online_accounts=[
            {"role": "Suspect", "platform": "Facebook", "identifier": "@Kelvin.B"},
            {"role": "Suspect", "platform": "Website", "identifier": "https://jobs.example.com/"},
            {"role": "Suspect", "platform": "EmailAddress", "identifier": "Jobs@Example.com"},
        ],
        last_known_locations=[{"country": "ZM", "crossing_point": "Chirundu"}],
        organisations=[{"role": "Suspect", "organisation": {
            "org_Name": "Lusaka Overseas Placements", "org_Type": "RecruitmentAgency",
            "registration_number": "PACRA-120-2019"}}],
    ))  # fmt: skip
    keys = identifiers.match_keys(REGISTRY, "xnode.payload.Alert", payload)
    assert {
        f"phone:{ZAMBIAN_MOBILE}",
        "handle:kelvin.b",
        "handle:facebook:kelvin.b",
        "web:jobs.example.com",
        "email:jobs@example.com",
        "ref:PACRA1202019",
        "ref:ALZ4471",  # the vehicle's registration
        "ref:LSK201004417",  # the birth certificate
        "crossing:Chirundu",
    } <= keys
    assert not any(k.endswith(":") for k in keys)


def test_a_search_means_every_kind_the_text_can_be_read_as():
    assert f"phone:{ZAMBIAN_MOBILE}" in identifiers.query_keys("0977 123 456", "ZM")
    assert identifiers.query_keys("phone:0977 123 456", "ZM") == {f"phone:{ZAMBIAN_MOBILE}"}
    assert identifiers.query_keys("ref:alz 4471") == {"ref:ALZ4471"}
    assert "ref:ALZ4471" in identifiers.query_keys("ALZ-4471")
    assert identifiers.query_keys("crossing:chirundu") == {"crossing:Chirundu"}
    assert identifiers.query_keys("crossing:Nowhere") == frozenset()
    assert "email:jobs@example.com" in identifiers.query_keys("Jobs@Example.com")


def test_the_index_keeps_no_identifier_in_clear_and_is_keyed_per_node():
    one, other = b"a" * 32, b"b" * 32
    d = identifiers.digest(one, f"phone:{ZAMBIAN_MOBILE}")
    assert len(d) == 32 and ZAMBIAN_MOBILE.encode() not in d
    assert d != identifiers.digest(other, f"phone:{ZAMBIAN_MOBILE}")
    assert identifiers.searched(one, "0977123456", "ZM") == identifiers.digests(
        one, identifiers.query_keys("0977123456", "ZM")
    )
