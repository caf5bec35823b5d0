"""Business rules, one by one, each refusing with a clear message that names the field."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import pytest

from node import validation
from node.validation import Context, identifies, person_age

EXAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "examples"
NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)


def example(file: str) -> dict:
    return json.loads((EXAMPLES / file).read_text())


def problems(registry, schema: str, document: dict, recipients: tuple[str, ...] = ()) -> list[str]:
    name = f"xnode.payload.{schema}"
    value = registry.from_json(name, document, "payload")
    return [str(p) for p in validation.validate(registry, name, value, Context(NOW, recipients))]


def test_examples_have_no_problems(registry):
    assert problems(registry, "Referral", example("referral.json")) == []


# -- consent and child safeguards ---------------------------------------------------------------


def test_identifiable_person_needs_consent_or_override(registry):
    doc = example("referral.json")
    doc["consent"] = None
    assert problems(registry, "Referral", doc) == [
        "payload.consent: required: the person is identifiable; record their consent "
        "(or a consent_override with reason and authority)"
    ]
    doc["consent_override"] = {
        "reason": "Person unconscious in hospital; referral needed for medical care",
        "authority": "Director of Social Development, Gauteng; Act 7 of 2013 s. 18(7)",
        "decided_at": "2026-11-20T08:00:00Z",
    }
    assert problems(registry, "Referral", doc) == []


def test_refused_consent_needs_an_override(registry):
    doc = example("referral.json")
    doc["consent"]["con_Consent"] = False
    assert problems(registry, "Referral", doc) == [
        "payload.consent.con_Consent: the person did not consent; sharing needs a "
        "consent_override with reason and authority"
    ]


def test_anonymous_person_needs_no_consent(registry):
    doc = example("referral.json")
    doc["consent"] = None
    doc["person"] = {"estimated_age": 30, "prs_Gender": "Feminine", "prs_Citizenship": ["ZM"]}
    assert problems(registry, "Referral", doc) == []


def test_consent_must_cover_every_recipient(registry):
    doc = example("referral.json")
    assert problems(registry, "Referral", doc, ("zm-social-welfare",)) == []
    assert problems(registry, "Referral", doc, ("zm-social-welfare", "zm-police")) == [
        "payload.consent.share_with_nodes: the person did not consent to sharing with zm-police"
    ]


def test_child_needs_guardian_or_best_interests_reference(registry):
    doc = example("referral.json")
    doc["person"]["prs_Birthdate"] = "2010-11-23"  # 15 years old on 22 November 2026
    found = problems(registry, "Referral", doc)
    assert found == [
        "payload.child_safeguards: required for a child: give a guardian or a best-interests "
        "determination reference"
    ]
    doc["child_safeguards"] = {"best_interests_determination_ref": "BID/GP/2026/0931"}
    assert problems(registry, "Referral", doc) == []
    doc["person"]["prs_Birthdate"] = "2008-11-22"  # 18 today: an adult
    doc["child_safeguards"] = None
    assert problems(registry, "Referral", doc) == []


def test_unknown_age_is_presumed_a_child(registry):
    doc = example("referral.json")
    del doc["person"]["prs_Birthdate"]
    assert "presumed a child" in problems(registry, "Referral", doc)[0]


def test_age_arithmetic():
    assert person_age({"prs_Birthdate": dt.date(2010, 11, 23)}, dt.date(2026, 11, 22)) == 15
    assert person_age({"prs_Birthdate": dt.date(2010, 11, 22)}, dt.date(2026, 11, 22)) == 16
    assert person_age({"estimated_age": 12}, dt.date(2026, 11, 22)) == 12
    assert person_age({}, dt.date(2026, 11, 22)) is None
    assert not identifies({"estimated_age": 12, "aliases": []})
    assert identifies({"aliases": ["KB"]})


# -- repatriation -------------------------------------------------------------------------------


def test_approval_needs_completed_risk_assessment(registry):
    doc = example("repatriation-4-approval.json")
    doc["risk_assessment"] = {
        "completed": False,
        "risk_level": "Unknown",
        "asylum_claim_pending": False,
    }
    assert problems(registry, "RepatriationApproval", doc) == [
        "payload.risk_assessment.completed: a return cannot be approved without a completed "
        "risk assessment"
    ]
    doc["decision"] = "Deferred"
    doc["reasons"] = "Awaiting the risk assessment from Chipata."
    assert problems(registry, "RepatriationApproval", doc) == []


@pytest.mark.parametrize(
    ("change", "blocker"),
    [
        ({"asylum_claim_pending": True}, "an asylum claim is pending"),
        ({"risk_level": "High"}, "the risk in the country of return is high"),
    ],
)
def test_asylum_or_high_risk_blocks_approval_without_override(registry, change, blocker):
    doc = example("repatriation-4-approval.json")
    doc["risk_assessment"].update(change)
    found = problems(registry, "RepatriationApproval", doc)
    assert found[0] == f"payload.override: required to approve: {blocker} (non-refoulement)"
    doc["override"] = {
        "reason": "Asylum claim withdrawn in writing on 20 November; confirmed with the Refugee Reception Office",
        "authority": "Commissioner for Refugees; Refugees Act 130 of 1998",
        "decided_at": "2026-11-21T10:00:00Z",
    }
    if change.get("asylum_claim_pending"):
        # a pending claim also needs the non-refoulement check: an override is no substitute
        assert problems(registry, "RepatriationApproval", doc) == [
            "payload.risk_assessment.non_refoulement_check: an asylum claim is pending: a "
            "completed non-refoulement check finding no risk is required before any return"
        ]
        doc["risk_assessment"]["non_refoulement_check"] = NO_RISK_FOUND
    assert problems(registry, "RepatriationApproval", doc) == []


NO_RISK_FOUND = {
    "outcome": "NoRiskFound",
    "checked_by": {
        "org_Name": "Refugee Reception Office, Musina",
        "org_Type": "ImmigrationService",
    },
    "checked_at": "2026-11-21T09:00:00Z",
}


def test_a_check_that_found_a_risk_blocks_a_return_whatever_the_override(registry):
    doc = example("repatriation-4-approval.json")
    doc["risk_assessment"]["non_refoulement_check"] = {**NO_RISK_FOUND, "outcome": "RiskFound"}
    doc["override"] = {
        "reason": "Ministerial decision",
        "authority": "Minister",
        "decided_at": "2026-11-21T10:00:00Z",
    }
    assert problems(registry, "RepatriationApproval", doc) == [
        "payload.risk_assessment.non_refoulement_check.outcome: the non-refoulement check "
        "found a risk: the return cannot be approved"
    ]
    doc["decision"], doc["reasons"] = "Rejected", "Risk of persecution on return."
    assert problems(registry, "RepatriationApproval", doc) == []


def test_rejection_needs_reasons(registry):
    doc = example("repatriation-4-approval.json")
    doc["decision"] = "Rejected"
    assert problems(registry, "RepatriationApproval", doc) == [
        "payload.reasons: required when the decision is Rejected"
    ]


def test_involuntary_return_is_refused_without_override(registry):
    doc = example("repatriation-1-proposal.json")
    doc["person_wishes_to_return"] = False
    assert "return must be voluntary" in problems(registry, "RepatriationProposal", doc)[0]


# -- alerts and MLA -----------------------------------------------------------------------------


def test_alert_needs_a_subject_location_or_vehicle(registry):
    doc = example("alert.json")
    doc["subjects"] = doc["last_known_locations"] = doc["vehicles"] = []
    assert problems(registry, "Alert", doc) == [
        "payload.subjects: an alert needs at least one subject, location, vehicle, "
        "organisation, phone number or account"
    ]
    doc["phone_numbers"] = [{"role": "Suspect", "number": "+260977123456"}]
    assert problems(registry, "Alert", doc) == []


def test_alert_dates_accuracy_and_references(registry):
    doc = example("alert.json")
    doc["valid_until"] = "2026-11-21T00:00:00Z"
    doc["information_accuracy"] = 5
    doc["previous_alert_id"] = "01a1f0c2-3b4d-7e5f-8a9b-0c1d2e3f4a5b"
    assert problems(registry, "Alert", doc) == [
        "payload.previous_alert_id: a new alert does not reference an earlier one",
        "payload.information_accuracy: must be 1, 2, 3 or 4",
        "payload.valid_until: must be after the alert's creation time",
    ]


def test_mla_request_rules(registry):
    doc = example("mla-request.json")
    doc["summary_of_facts"] = " "
    doc["offences"] = []
    doc["deadline"] = "2026-11-01T00:00:00Z"
    doc["urgency_reason"] = None
    doc["confidentiality_reason"] = None
    assert problems(registry, "MlaRequest", doc) == [
        "payload.summary_of_facts: must not be empty",
        "payload.offences: name at least one offence with its legal provision",
        "payload.deadline: must be after the request's creation time",
        "payload.urgency_reason: required when a deadline is set",
        "payload.confidentiality_reason: required when confidentiality is requested",
    ]


@pytest.mark.parametrize(
    ("status", "field"),
    [
        ("NeedsMoreInformation", "information_needed"),
        ("Refused", "refusal_grounds"),
        ("Postponed", "postponement_reason"),
        ("Executed", "results"),
    ],
)
def test_mla_response_status_needs_its_explanation(registry, status, field):
    doc = example("mla-response.json")
    doc["status"], doc["results"] = status, None
    assert problems(registry, "MlaResponse", doc) == [
        f"payload.{field}: required when the status is {status}"
    ]


# -- shared types -------------------------------------------------------------------------------


def test_shared_type_rules_apply_wherever_the_type_appears(registry):
    doc = example("alert.json")
    subject = doc["subjects"][2]["person"]
    subject["prs_Citizenship"] = ["ZW", "zz"]
    subject["prs_PrimaryLanguage"] = "Shona"
    doc["last_known_locations"][0]["latitude"] = -16.03
    doc["contact"]["email"] = "not-an-address"
    doc["handling"]["language"] = "en_GB"
    doc["handling"]["retention_days"] = 0
    doc["time_window"]["end"] = "2026-11-21T00:00:00Z"
    assert problems(registry, "Alert", doc) == [
        "payload.handling.language: expected a BCP 47 language tag, e.g. en, pt-MZ; got 'en_GB'",
        "payload.handling.retention_days: must be between 1 and 3650",
        "payload.subjects[2].person.prs_Citizenship[1]: expected an ISO 3166-1 alpha-2 country "
        "code in upper case, e.g. ZM; got 'zz'",
        "payload.subjects[2].person.prs_PrimaryLanguage: expected an ISO 639 language code, "
        "e.g. en, bem, sn; got 'Shona'",
        "payload.last_known_locations[0].longitude: give both latitude and longitude, or neither",
        "payload.time_window.end: must be after start",
        "payload.contact.email: not an e-mail address: 'not-an-address'",
    ]


def test_attachment_and_receipt_rules(registry):
    doc = example("mla-request.json")
    doc["attachments"][0].update(sha256="ABC", media_type="pdf", size=-1)
    assert problems(registry, "MlaRequest", doc) == [
        "payload.attachments[0].media_type: expected a media type such as application/pdf; got 'pdf'",
        "payload.attachments[0].size: must not be negative",
        "payload.attachments[0].sha256: expected 64 lowercase hex digits",
    ]
    receipt = example("receipt.json")
    receipt["status"] = "delivered"
    assert problems(registry, "Receipt", receipt) == [
        "payload.reason: must be empty when the status is delivered"
    ]


def test_payload_invalid_carries_all_problems(registry):
    doc = copy.deepcopy(example("alert.json"))
    doc["information_accuracy"] = 9
    doc["title"] = ""
    value = registry.from_json("xnode.payload.Alert", doc, "payload")
    with pytest.raises(validation.PayloadInvalid) as err:
        validation.check(registry, "xnode.payload.Alert", value, Context(NOW))
    assert err.value.path == "payload.title"
    assert len(err.value.problems) == 2
