"""Every business rule of :mod:`node.validation`, at its edges, with the exact problem it reports.

test_validation.py shows the rules that matter most at work; this file walks the rest one by one
(found by mutation testing, docs/mutation-testing.md). Each case starts from a worked example in
``schemas/examples`` that keeps every rule, changes one or two fields, and expects the exact list
of problems: the path a local system points its user at, and the sentence the user reads. Cases
that expect ``[]`` pin the boundary the rule must not cross (today is not the past, 3650 days is
still allowed...).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest

from node import validation
from node.codec import SchemaRegistry, _schema_documents, schemas_directory
from node.validation import Context

EXAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "examples"
INDEX = json.loads((EXAMPLES / "index.json").read_text())["examples"]
NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)  # the examples' valid_at
DELETE = object()

COUNTRY = "expected an ISO 3166-1 alpha-2 country code in upper case, e.g. ZM; got {!r}"
LANGUAGE = "expected an ISO 639 language code, e.g. en, bem, sn; got {!r}"
PHONE = "expected an E.164 phone number, e.g. +260211123456; got {!r}"
SAFEGUARDS = "give a guardian or a best-interests determination reference"
GUARDIAN = {"role": "Mother", "name": "Grace Phiri", "phone": "+260977001122"}
OVERRIDE = {
    "reason": "Person unconscious in hospital; referral needed for medical care",
    "authority": "Director of Social Development, Gauteng; Act 7 of 2013 s. 18(7)",
    "decided_at": "2026-11-20T08:00:00Z",
}


def edit(document: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b[0].c`` in a JSON document (``DELETE`` removes the key)."""
    steps: list[str | int] = []
    for part in path.split("."):
        name, *indexes = re.split(r"\[(\d+)\]", part)
        steps.append(name)
        steps.extend(int(i) for i in indexes if i)
    node: Any = document
    for step in steps[:-1]:
        node = node[step]
    if value is DELETE:
        del node[steps[-1]]
    else:
        node[steps[-1]] = value


def problems(
    registry: SchemaRegistry,
    file: str,
    changes: dict[str, Any],
    recipients: tuple[str, ...] = (),
) -> list[str]:
    document = json.loads((EXAMPLES / file).read_text())
    for path, value in changes.items():
        edit(document, path, value if value is DELETE else copy.deepcopy(value))
    name = f"xnode.payload.{INDEX[file]['schema']}"
    value = registry.from_json(name, document, "payload")
    return [str(p) for p in validation.validate(registry, name, value, Context(NOW, recipients))]


CASES = [
    # -- Handling ----------------------------------------------------------------------------
    ("alert.json", {"handling.code": "H3"},
     ["payload.handling.conditions: required for handling code H3"]),
    ("alert.json", {"handling.code": "H3", "handling.conditions": "  "},
     ["payload.handling.conditions: required for handling code H3"]),
    ("alert.json", {"handling.code": "H3", "handling.conditions": "Harare case team only"}, []),
    ("alert.json", {"handling.legal_basis": " "},
     ["payload.handling.legal_basis: must not be empty"]),
    ("alert.json", {"handling.retention_days": 1}, []),
    ("alert.json", {"handling.retention_days": 3650}, []),
    ("alert.json", {"handling.retention_days": 3651},
     ["payload.handling.retention_days: must be between 1 and 3650"]),
    # -- Person ------------------------------------------------------------------------------
    ("alert.json", {"subjects[0].person.prs_Birthdate": "2026-11-23"},
     ["payload.subjects[0].person.prs_Birthdate: must not be in the future"]),
    ("alert.json", {"subjects[0].person.prs_Birthdate": "2026-11-22"}, []),  # born today
    ("alert.json", {"subjects[0].person.prs_Birthdate": "1899-12-31"},
     ["payload.subjects[0].person.prs_Birthdate: must not be before 1900"]),
    ("alert.json", {"subjects[0].person.prs_Birthdate": "1900-01-01"}, []),
    ("alert.json", {"subjects[1].person.estimated_age": 0}, []),
    ("alert.json", {"subjects[1].person.estimated_age": 120}, []),
    ("alert.json", {"subjects[1].person.estimated_age": -1},
     ["payload.subjects[1].person.estimated_age: must be between 0 and 120"]),
    ("alert.json", {"subjects[1].person.estimated_age": 121},
     ["payload.subjects[1].person.estimated_age: must be between 0 and 120"]),
    ("alert.json", {"subjects[0].person.prs_SecondaryLanguage": "English"},
     ["payload.subjects[0].person.prs_SecondaryLanguage: " + LANGUAGE.format("English")]),
    ("alert.json", {"subjects[0].person.prs_PrimaryLanguage": "EN"},
     ["payload.subjects[0].person.prs_PrimaryLanguage: " + LANGUAGE.format("EN")]),
    ("alert.json", {"subjects[0].person.prs_PrimaryLanguage": "zz"},
     ["payload.subjects[0].person.prs_PrimaryLanguage: " + LANGUAGE.format("zz")]),
    ("alert.json", {"subjects[0].person.prs_PrimaryLanguage": "nya"}, []),  # ISO 639-3
    ("alert.json", {"subjects[0].person.prs_Citizenship": ["ZM", "ZZ"]},  # not a country
     ["payload.subjects[0].person.prs_Citizenship[1]: " + COUNTRY.format("ZZ")]),
    ("alert.json", {"subjects[0].person.prs_Citizenship": ["zw"]},  # a country, in lower case
     ["payload.subjects[0].person.prs_Citizenship[0]: " + COUNTRY.format("zw")]),
    # -- IdentityDocument --------------------------------------------------------------------
    ("alert.json", {"subjects[0].person.identity_documents[0].number": " "},
     ["payload.subjects[0].person.identity_documents[0].number: must not be empty"]),
    ("alert.json", {"documents[0].issuing_country": "zm"},
     ["payload.documents[0].issuing_country: " + COUNTRY.format("zm")]),
    # -- Location ----------------------------------------------------------------------------
    ("alert.json", {"last_known_locations[0].country": "ZZ"},
     ["payload.last_known_locations[0].country: " + COUNTRY.format("ZZ")]),
    ("alert.json", {"subjects[0].last_seen.longitude": None},
     ["payload.subjects[0].last_seen.longitude: give both latitude and longitude, or neither"]),
    ("alert.json", {"subjects[0].last_seen.latitude": None},
     ["payload.subjects[0].last_seen.latitude: give both latitude and longitude, or neither"]),
    ("alert.json", {"subjects[0].last_seen.latitude": 90.0, "subjects[0].last_seen.longitude": 180.0},
     []),
    ("alert.json",
     {"subjects[0].last_seen.latitude": -90.0, "subjects[0].last_seen.longitude": -180.0}, []),
    ("alert.json", {"subjects[0].last_seen.latitude": 90.5},
     ["payload.subjects[0].last_seen.latitude: must be between -90 and 90"]),
    ("alert.json", {"subjects[0].last_seen.latitude": -90.5},
     ["payload.subjects[0].last_seen.latitude: must be between -90 and 90"]),
    ("alert.json", {"subjects[0].last_seen.longitude": 180.5},
     ["payload.subjects[0].last_seen.longitude: must be between -180 and 180"]),
    ("alert.json", {"subjects[0].last_seen.longitude": -180.5},
     ["payload.subjects[0].last_seen.longitude: must be between -180 and 180"]),
    # -- Organisation ------------------------------------------------------------------------
    ("mla-request.json", {"requesting_authority.org_Name": " "},
     ["payload.requesting_authority.org_Name: must not be empty"]),
    ("mla-request.json", {"requesting_authority.org_ShippingCountry": "zm"},
     ["payload.requesting_authority.org_ShippingCountry: " + COUNTRY.format("zm")]),
    ("mla-request.json", {"investigating_authority.org_Phone": "0211253542"},
     ["payload.investigating_authority.org_Phone: " + PHONE.format("0211253542")]),
    ("mla-request.json", {"investigating_authority.node_id": "Zambia Police"},
     ["payload.investigating_authority.node_id: not a node id: 'Zambia Police'"]),
    # -- Contact -----------------------------------------------------------------------------
    ("alert.json", {"contact.role": " ", "contact.name": ""},
     ["payload.contact.role: must not be empty", "payload.contact.name: must not be empty"]),
    ("alert.json", {"contact.phone": "+0977123456"},
     ["payload.contact.phone: " + PHONE.format("+0977123456")]),
    # -- Attachment --------------------------------------------------------------------------
    ("mla-request.json", {"attachments[0].name": " "},
     ["payload.attachments[0].name: must not be empty"]),
    ("mla-request.json", {"attachments[0].size": 0}, []),  # an empty file is still a file
    # -- TimeWindow --------------------------------------------------------------------------
    ("alert.json", {"time_window.end": "2026-11-22T06:00:00Z"},  # equal to start
     ["payload.time_window.end: must be after start"]),
    # -- Consent -----------------------------------------------------------------------------
    ("referral.json", {"consent.recorded_by": " "},
     ["payload.consent.recorded_by: must not be empty"]),
    ("referral.json", {"consent.recorded_at": "2026-11-22T12:05:01Z"},
     ["payload.consent.recorded_at: must not be in the future"]),
    ("referral.json", {"consent.recorded_at": "2026-11-22T12:05:00Z"}, []),  # 5 min of skew
    ("referral.json", {"consent.language_used": "Nyanja"},
     ["payload.consent.language_used: " + LANGUAGE.format("Nyanja")]),
    ("referral.json", {"consent.share_with_nodes": ["zm-social-welfare", "IOM Lusaka"]},
     ["payload.consent.share_with_nodes[1]: not a node id: 'IOM Lusaka'"]),
    # -- Override ----------------------------------------------------------------------------
    ("referral.json",
     {"consent_override": {"reason": " ", "authority": "", "decided_at": "2026-11-23T00:00:00Z"}},
     ["payload.consent_override.reason: must not be empty",
      "payload.consent_override.authority: must not be empty",
      "payload.consent_override.decided_at: must not be in the future"]),
    # -- RiskAssessment ----------------------------------------------------------------------
    ("referral.json", {"risk_assessment.assessed_at": None, "risk_assessment.assessed_by": None},
     ["payload.risk_assessment.assessed_at: required when the assessment is completed",
      "payload.risk_assessment.assessed_by: required when the assessment is completed"]),
    ("referral.json", {"risk_assessment.risk_level": "Unknown"},
     ["payload.risk_assessment.risk_level: a completed assessment states a risk level"]),
    ("referral.json", {"risk_assessment.assessed_at": "2026-11-23T09:00:00Z"},
     ["payload.risk_assessment.assessed_at: must not be in the future"]),
    ("referral.json",
     {"risk_assessment.completed": False, "risk_assessment.risk_level": "Unknown",
      "risk_assessment.assessed_at": None, "risk_assessment.assessed_by": None}, []),
    # -- consent and child safeguards (Referral, RepatriationProposal) -----------------------
    ("referral.json",
     {"person.prs_Birthdate": "2010-11-23", "child_safeguards": {"guardian": GUARDIAN}}, []),
    ("referral.json",
     {"person.prs_Birthdate": "2010-11-23",
      "child_safeguards": {"best_interests_determination_ref": " "}},
     [f"payload.child_safeguards: required for a child: {SAFEGUARDS}"]),
    ("referral.json", {"person.prs_Birthdate": DELETE},
     ["payload.child_safeguards: required for a person of unknown age (presumed a child): "
      + SAFEGUARDS]),
    ("repatriation-1-proposal.json", {"child_safeguards": None},
     [f"payload.child_safeguards: required for a child: {SAFEGUARDS}"]),
    # -- Alert -------------------------------------------------------------------------------
    ("alert.json", {"description": " "}, ["payload.description: must not be empty"]),
    ("alert-update.json", {"previous_alert_id": None},
     ["payload.previous_alert_id: required for action Update: the alert it changes"]),
    ("alert-cancel.json", {"cancellation_reason": " "},
     ["payload.cancellation_reason: required to cancel an alert"]),
    ("alert.json", {"last_known_locations": [], "vehicles": []}, []),  # subjects alone
    ("alert.json", {"subjects": [], "vehicles": []}, []),  # a location alone
    ("alert.json", {"subjects": [], "last_known_locations": []}, []),  # a vehicle alone
    ("alert.json", {"information_accuracy": 1}, []),
    ("alert.json", {"information_accuracy": 4}, []),
    ("alert.json", {"information_accuracy": 0},
     ["payload.information_accuracy: must be 1, 2, 3 or 4"]),
    ("alert.json", {"valid_until": "2026-11-22T12:00:00Z"},  # the creation time itself
     ["payload.valid_until: must be after the alert's creation time"]),
    # -- MlaRequest --------------------------------------------------------------------------
    ("mla-request.json", {"assistance_sought": []},
     ["payload.assistance_sought: name at least one type of assistance"]),
    ("mla-request.json",
     {"summary_of_facts": " ", "subject_matter": " ", "nature_of_proceedings": " ",
      "assistance_details": " ", "purpose_of_evidence": " "},
     ["payload.summary_of_facts: must not be empty",
      "payload.subject_matter: must not be empty",
      "payload.nature_of_proceedings: must not be empty",
      "payload.assistance_details: must not be empty",
      "payload.purpose_of_evidence: must not be empty"]),
    ("mla-request.json", {"deadline": "2026-11-22T12:00:00Z"},
     ["payload.deadline: must be after the request's creation time"]),
    ("mla-request.json", {"confidentiality_requested": False, "confidentiality_reason": None}, []),
    # -- MlaResponse -------------------------------------------------------------------------
    ("mla-response.json", {"status": "Acknowledged", "results": None}, []),
    ("mla-response.json", {"results": " "},
     ["payload.results: required when the status is PartiallyExecuted"]),
    ("mla-response.json",
     {"status": "Postponed", "postponement_reason": "Witness abroad until December",
      "postponed_until": "2026-11-22"},
     ["payload.postponed_until: must be a future date"]),
    ("mla-response.json",
     {"status": "Postponed", "postponement_reason": "Witness abroad until December",
      "postponed_until": "2026-11-23"}, []),
    ("mla-response.json", {"status": "Executed", "postponed_until": "2026-10-01"}, []),
    # -- Referral ----------------------------------------------------------------------------
    ("referral.json", {"cas_OutgoingReferralDetails": " "},
     ["payload.cas_OutgoingReferralDetails: must not be empty"]),
    ("referral.json", {"cas_OutgoingReferralDate": "2026-11-23"},
     ["payload.cas_OutgoingReferralDate: must not be in the future"]),
    ("referral.json", {"cas_OutgoingReferralDate": "2026-11-22"}, []),
    ("referral.json", {"requested_response_date": "2026-11-21"},
     ["payload.requested_response_date: must not be in the past"]),
    ("referral.json", {"requested_response_date": "2026-11-22"}, []),
    ("referral.json", {"requested_response_date": None}, []),
    # -- RepatriationProposal ----------------------------------------------------------------
    ("repatriation-1-proposal.json", {"proposed_date": "2026-11-22"}, []),
    ("repatriation-1-proposal.json", {"proposed_date": "2026-11-21"},
     ["payload.proposed_date: must not be in the past"]),
    ("repatriation-1-proposal.json", {"person_wishes_to_return": False},
     ["payload.person_wishes_to_return: return must be voluntary; a return against the "
      "person's wish needs a consent_override"]),
    ("repatriation-1-proposal.json",
     {"person_wishes_to_return": False, "consent_override": OVERRIDE}, []),
    # -- RepatriationApproval ----------------------------------------------------------------
    ("repatriation-4-approval.json",
     {"risk_assessment.asylum_claim_pending": True, "risk_assessment.risk_level": "High"},
     ["payload.override: required to approve: an asylum claim is pending and the risk in the "
      "country of return is high (non-refoulement)",
      "payload.risk_assessment.non_refoulement_check: an asylum claim is pending: a completed "
      "non-refoulement check finding no risk is required before any return"]),
    # -- RepatriationFollowUp ----------------------------------------------------------------
    ("repatriation-8-follow-up.json", {"reintegration_status": " "},
     ["payload.reintegration_status: must not be empty"]),
    ("repatriation-8-follow-up.json", {"next_follow_up": "2027-01-12"},  # the same day
     ["payload.next_follow_up: must be after this follow-up"]),
    ("repatriation-8-follow-up.json", {"next_follow_up": "2027-01-13"}, []),
    # -- CaseUpdate --------------------------------------------------------------------------
    ("case-update.json", {"note": " "}, ["payload.note: must not be empty"]),
    ("case-update.json", {"recorded_at": "2026-11-22T12:05:01Z"},
     ["payload.recorded_at: must not be in the future"]),
    ("case-update.json", {"recorded_at": "2026-11-22T12:05:00Z"}, []),
    # -- Receipt -----------------------------------------------------------------------------
    ("receipt.json", {"envelope_sha256": "5E884898"},
     ["payload.envelope_sha256: expected 64 lowercase hex digits"]),
    ("receipt.json", {"reason": None}, ["payload.reason: required when the status is rejected"]),
    ("receipt.json", {"status": "delivered", "reason": None, "detail": None}, []),
    # -- Erasure -----------------------------------------------------------------------------
    ("erasure-request.json", {"message_ids": []},
     ["payload.message_ids: name at least one message, or give thread_id"]),
    ("erasure-request.json", {"message_ids": [], "thread_id": "01937a4e-5b2c-7d10-8a3f-2c9e4b7d1a05"},
     []),
    ("erasure-request.json", {"reason": "Other", "note": " "}, ["payload.note: must not be empty"]),
    ("erasure-request.json", {"message_ids": ["01937a4e-5b2c-7d10-8a3f-2c9e4b7d1a05"] * 1001},
     ["payload.message_ids: at most 1000 per request"]),
    ("erasure-request.json", {"message_ids": ["01937a4e-5b2c-7d10-8a3f-2c9e4b7d1a05"] * 1000},
     []),
    ("erasure-request.json", {"reason": "Other"}, []),
    ("erasure-request.json", {"note": None}, []),
    ("erasure-request.json", {"requested_at": "2026-11-23T09:00:00Z"},
     ["payload.requested_at: must not be in the future"]),
    ("erasure-result.json", {"results": [{"message_id": "01937a4e-5b2c-7d10-8a3f-2c9e4b7d1a05",
                                          "outcome": "Held"}]},
     ["payload.results[0].hold_reason: required for outcome Held"]),
    ("erasure-result.json", {"results": [{"message_id": "01937a4e-5b2c-7d10-8a3f-2c9e4b7d1a05",
                                          "outcome": "Erased", "hold_reason": "Other"}]},
     ["payload.results[0].hold_reason: only for outcome Held"]),
    ("erasure-result.json", {"passed_on_to": ["mw-social-welfare", "Not A Node"]},
     ["payload.passed_on_to[1]: not a node id: 'Not A Node'"]),
    ("erasure-result.json", {"completed_at": "2026-11-23T09:00:00Z"},
     ["payload.completed_at: must not be in the future"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("file", "changes", "expected"),
    [pytest.param(*case, id=f"{case[0]}:{','.join(case[1])}") for case in CASES],
)
def test_rule(registry, file, changes, expected):
    assert problems(registry, file, changes) == expected


@pytest.mark.parametrize(
    ("status", "field"),
    [("Declined", "decline_reason"), ("MoreInformationNeeded", "information_needed"),
     ("Completed", "outcome")],
)  # fmt: skip
def test_referral_response_status_needs_its_explanation(registry, status, field):
    assert problems(registry, "referral-response.json", {"status": status}) == [
        f"payload.{field}: required when the status is {status}"
    ]
    assert problems(registry, "referral-response.json", {"status": status, field: "Done."}) == []


def test_every_example_keeps_every_rule(registry):
    """Including the payloads that have type rules only (no record rule of their own)."""
    for file in INDEX:
        assert problems(registry, file, {}) == [], file


def test_an_empty_value_does_not_identify_anyone():
    assert not validation.identifies({"prs_FirstName": "", "aliases": [], "prs_Birthdate": None})
    assert validation.identifies({"prs_FirstName": "Memory"})


def test_payload_invalid_shows_the_first_problem_and_keeps_all(registry):
    document = json.loads((EXAMPLES / "alert.json").read_text())
    document["title"] = document["description"] = " "
    value = registry.from_json("xnode.payload.Alert", document, "payload")
    with pytest.raises(validation.PayloadInvalid) as err:
        validation.check(registry, "xnode.payload.Alert", value, Context(NOW))
    assert str(err.value) == "payload.title: must not be empty"
    assert (err.value.path, err.value.problem) == ("payload.title", "must not be empty")
    assert [p.path for p in err.value.problems] == ["payload.title", "payload.description"]


def test_rules_apply_inside_a_union_of_several_records():
    """A union with more than one record branch comes from JSON in fastavro's explicit
    ``(name, record)`` notation; the walk must look inside it. No payload schema has such a
    union yet, so a test-only record is added to the real schemas."""
    sighting = {
        "type": "record", "name": "Sighting", "namespace": "xnode.test",
        "fields": [{"name": "place", "type": ["null", "xnode.common.Location",
                                               "xnode.common.Contact"]}],
    }  # fmt: skip
    registry = SchemaRegistry.from_documents(
        [*_schema_documents(schemas_directory()), ("sighting.avsc", sighting)]
    )
    value = registry.from_json(
        "xnode.test.Sighting", {"place": {"country": "zm", "place_name": "Sesheke"}}, "payload"
    )
    assert isinstance(value["place"], tuple)
    found = validation.validate(registry, "xnode.test.Sighting", value, Context(NOW))
    assert [str(p) for p in found] == ["payload.place.country: " + COUNTRY.format("zm")]


# -- Forwarding --------------------------------------------------------------------------------

FORWARD_CASES = [
    ("forward-permission-request.json", {"forward_to": ["zm-iom", "ZM IOM"]},
     ["payload.forward_to[1]: not a node id: 'ZM IOM'"]),
    ("forward-permission-request.json", {"purpose": " "}, ["payload.purpose: must not be empty"]),
    ("forward-permission-request.json", {"requested_at": "2026-11-23T09:00:00Z"},
     ["payload.requested_at: must not be in the future"]),
    ("forward-permission-decision.json", {"decision": "Refused", "forward_to": []}, []),
    ("forward-permission-decision.json", {"decided_by": ""}, ["payload.decided_by: must not be empty"]),
    ("forward-permission-decision.json", {"decided_at": "2026-11-23T09:00:00Z"},
     ["payload.decided_at: must not be in the future"]),
    ("forward.json", {"handling.code": "H1", "permission": None},
     ["payload.handling: must be the forwarded payload's handling, unchanged"]),
    ("forward.json", {"handling.code": "H3", "handling.conditions": "x", "permission": None},
     ["payload.permission: the originator's grant is required for handling code H3",
      "payload.handling: must be the forwarded payload's handling, unchanged"]),
    ("forward.json", {"original.sender": "Shelter"},
     ["payload.original.sender[0]: not a node id: 'Shelter'"]),
    ("forward.json", {"payload": "AAAA"}, None),  # does not decode
    ("forward.json", {"payload_schema": "xnode.payload.Alert"},
     ["payload.payload_schema: unknown schema version of xnode.payload.Alert"]),
]  # fmt: skip


@pytest.mark.parametrize(("file", "changes", "expected"), FORWARD_CASES)
def test_forward_rule(registry, file, changes, expected):
    found = problems(registry, file, changes)
    if expected is None:
        assert len(found) == 1 and found[0].startswith("payload.payload: does not decode as")
    else:
        assert found == expected


def test_a_forward_keeps_the_carried_payload_s_rules_for_its_new_recipients(registry):
    """The person consented to zm-social-welfare and zm-iom: forwarding elsewhere is refused
    with the path inside the carried payload."""
    assert problems(registry, "forward.json", {}, ("zm-iom",)) == []
    assert problems(registry, "forward.json", {}, ("mw-social-welfare",)) == [
        "payload.payload.consent.share_with_nodes: the person did not consent to sharing with "
        "mw-social-welfare"
    ]
