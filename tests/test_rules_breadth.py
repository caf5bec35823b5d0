"""Every rule of node/rules_people.py and node/rules_judicial.py at its edges, with the exact
problem it reports (as tests/test_validation_core.py does for the first release's rules). Each
case starts from a worked example that keeps every rule and changes a field or two."""

from __future__ import annotations

import pytest

from node import codes, rules_people
from tests.test_validation_core import DELETE, problems

ORG = {"org_Name": "Refugee Reception Office, Musina", "org_Type": "ImmigrationService"}
CHECKED = {"outcome": "NoRiskFound", "checked_by": ORG, "checked_at": "2026-11-21T09:00:00Z"}
GUARDIAN = {"role": "Grandmother", "name": "Esnart Banda"}
AGREED_END = "2027-06-30T00:00:00Z"

CASES = [
    # -- MoneyAmount ---------------------------------------------------------------------------
    ("compensation-claim.json", {"amount_claimed.amount": "42000"}, []),
    ("compensation-claim.json", {"amount_claimed.amount": "0.5"}, []),
    ("compensation-claim.json", {"amount_claimed.amount": "42000.005"},
     ["payload.amount_claimed.amount: expected a decimal amount such as 1500.00; got '42000.005'"]),
    ("compensation-claim.json", {"amount_claimed.amount": "-1"},
     ["payload.amount_claimed.amount: expected a decimal amount such as 1500.00; got '-1'"]),
    ("compensation-claim.json", {"amount_claimed.amount": "0042"},
     ["payload.amount_claimed.amount: expected a decimal amount such as 1500.00; got '0042'"]),
    ("compensation-claim.json", {"amount_claimed.currency": "zmw"},
     ["payload.amount_claimed.currency: expected an ISO 4217 currency code, e.g. ZMW; got 'zmw'"]),
    ("compensation-claim.json", {"amount_claimed.currency": "ZZZ"},
     ["payload.amount_claimed.currency: expected an ISO 4217 currency code, e.g. ZMW; got 'ZZZ'"]),
    # -- ExternalReference ---------------------------------------------------------------------
    ("consular-notification.json", {"references": [{"system": "PoliceCaseNumber",
                                                    "reference": " "}]},
     ["payload.references[0].reference: must not be empty"]),
    ("consular-notification.json", {"references": [{"system": "Other", "reference": "x" * 100}]},
     []),
    ("consular-notification.json", {"references": [{"system": "Other", "reference": "x" * 101}]},
     ["payload.references[0].reference: at most 100 characters"]),
    ("consular-notification.json", {"references": [{"system": "CourtCaseNumber", "reference": "1",
                                                    "issuing_country": "XX",
                                                    "issued_on": "2026-11-23"}]},
     ["payload.references[0].issuing_country: expected an ISO 3166-1 alpha-2 country code in "
      "upper case, e.g. ZM; got 'XX'", "payload.references[0].issued_on: must not be in the "
      "future"]),
    # -- ProtectionProfile ---------------------------------------------------------------------
    ("referral-migrant.json", {"protection.asylum_claim_date": "2026-11-01",
                               "protection.asylum_status": "NoClaim"},
     ["payload.protection.asylum_status: a claim date is given: say where the claim stands"]),
    ("referral-migrant.json", {"protection.asylum_claim_date": "2026-11-01",
                               "protection.asylum_status": "ClaimLodged"}, []),
    ("referral-migrant.json", {"protection.asylum_claim_date": "2026-11-23",
                               "protection.asylum_status": "ClaimLodged"},
     ["payload.protection.asylum_claim_date: must not be in the future"]),
    # -- unaccompanied and separated children ---------------------------------------------------
    ("referral-migrant.json", {"child_safeguards": None, "person.estimated_age": 30},
     ["payload.child_safeguards: required for an unaccompanied or separated child: give a "
      "guardian or a best-interests determination reference"]),
    ("referral-migrant.json", {"child_safeguards": {"guardian": GUARDIAN},
                               "person.estimated_age": 30}, []),
    ("referral-migrant.json", {"child_safeguards": {"best_interests_determination_ref": "BID-1"},
                               "person.estimated_age": 30}, []),
    ("referral-migrant.json", {"child_safeguards": None, "person.estimated_age": 30,
                               "protection.categories": ["SmuggledMigrant"]}, []),
    # -- CareNeeds -----------------------------------------------------------------------------
    ("referral-migrant.json", {"care_needs.languages_spoken": ["ny", "xx1"]},
     ["payload.care_needs.languages_spoken[1]: expected an ISO 639 language code, e.g. en, bem, "
      "sn; got 'xx1'"]),
    ("referral-migrant.json", {"care_needs.interpreter_needed": False,
                               "care_needs.interpreter_language": None}, []),
    ("referral-migrant.json", {"care_needs.interpreter_language": "zz"},
     ["payload.care_needs.interpreter_language: expected an ISO 639 language code, e.g. en, "
      "bem, sn; got 'zz'"]),
    # -- subjects --------------------------------------------------------------------------------
    ("alert-smuggling.json", {"phone_numbers[0].number": "0977123456"},
     ["payload.phone_numbers[0].number: expected an E.164 phone number, e.g. +260977123456; "
      "got '0977123456'"]),
    ("alert-smuggling.json", {"phone_numbers[0].country": "Zambia"},
     ["payload.phone_numbers[0].country: expected an ISO 3166-1 alpha-2 country code in upper "
      "case, e.g. ZM; got 'Zambia'"]),
    ("alert-smuggling.json", {"online_accounts[0].identifier": "  "},
     ["payload.online_accounts[0].identifier: must not be empty"]),
    ("alert-smuggling.json", {"online_accounts[0].platform": "EmailAddress",
                              "online_accounts[0].identifier": "not-an-address"},
     ["payload.online_accounts[0].identifier: not an e-mail address: 'not-an-address'"]),
    ("alert-smuggling.json", {"online_accounts[0].platform": "EmailAddress",
                              "online_accounts[0].identifier": "jobs@example.zm"}, []),
    ("alert-smuggling.json", {"financial_accounts[1].provider": " "},
     ["payload.financial_accounts[1].provider: must not be empty"]),
    ("alert-smuggling.json", {"financial_accounts[1].country": "zm"},
     ["payload.financial_accounts[1].country: expected an ISO 3166-1 alpha-2 country code in "
      "upper case, e.g. ZM; got 'zm'"]),
    ("alert-smuggling.json", {"financial_accounts[1].type": "MobileMoney",
                              "financial_accounts[1].account": "12345"},
     ["payload.financial_accounts[1].account: a mobile-money account is a phone number: "
      "expected E.164, e.g. +260977123456; got '12345'"]),
    ("alert-smuggling.json", {"smuggling.migrants_count": 0},
     ["payload.smuggling.migrants_count: must be at least 1"]),
    ("alert-smuggling.json", {"smuggling.migrants_count": 1}, []),
    ("alert-smuggling.json", {"smuggling.migrant_nationalities": ["MW", "ET", "XY"]},
     ["payload.smuggling.migrant_nationalities[2]: expected an ISO 3166-1 alpha-2 country code "
      "in upper case, e.g. ZM; got 'XY'"]),
    ("alert-smuggling.json", {"last_known_locations": [{"country": "ZW",
                                                        "crossing_point": "Nakonde"}]},
     ["payload.last_known_locations[0].crossing_point: Nakonde joins ZM, TZ, not ZW: give the "
      "side of the border the place is on"]),
    ("alert-smuggling.json", {"last_known_locations": [{"country": "TZ",
                                                        "crossing_point": "Nakonde"}]}, []),
    ("alert-smuggling.json", {"last_known_locations": [{"country": "ZW",
                                                        "crossing_point": "Other"}]}, []),
    # -- Asset, JobOffer, VictimFeedback ---------------------------------------------------------
    ("asset-recovery-request.json", {"assets[0].description": " "},
     ["payload.assets[0].description: must not be empty"]),
    ("recruitment-verification-request.json", {"job_offer.position": ""},
     ["payload.job_offer.position: must not be empty"]),
    ("recruitment-verification-request.json", {"job_offer.applicants_count": -1},
     ["payload.job_offer.applicants_count: must not be negative"]),
    ("recruitment-verification-request.json", {"job_offer.applicants_count": 0}, []),
    ("repatriation-8-follow-up.json", {"victim_feedback.given_freely": False},
     ["payload.victim_feedback.given_freely: feedback is recorded and shared only when given "
      "freely"]),
    # -- NonRefoulementCheck ---------------------------------------------------------------------
    ("repatriation-3-risk-assessment.json",
     {"risk_assessment.non_refoulement_check": {"outcome": "NoRiskFound"}},
     ["payload.risk_assessment.non_refoulement_check.checked_by: required once the check is "
      "done", "payload.risk_assessment.non_refoulement_check.checked_at: required once the "
      "check is done"]),
    ("repatriation-3-risk-assessment.json",
     {"risk_assessment.non_refoulement_check": {"outcome": "Pending"}}, []),
    ("repatriation-3-risk-assessment.json",
     {"risk_assessment.non_refoulement_check": {**CHECKED, "checked_at": "2026-11-23T00:00:00Z"}},
     ["payload.risk_assessment.non_refoulement_check.checked_at: must not be in the future"]),
    ("repatriation-4-approval.json", {"risk_assessment.non_refoulement_check": CHECKED}, []),
    ("repatriation-4-approval.json",
     {"risk_assessment.non_refoulement_check": {**CHECKED, "outcome": "Pending"},
      "risk_assessment.asylum_claim_pending": True, "override": {
          "reason": "r", "authority": "a", "decided_at": "2026-11-21T10:00:00Z"}},
     ["payload.risk_assessment.non_refoulement_check: an asylum claim is pending: a completed "
      "non-refoulement check finding no risk is required before any return"]),
    # -- ConsularNotification --------------------------------------------------------------------
    ("consular-notification.json", {"nationality": "ZW"},
     ["payload.nationality: must be one of the person's citizenships (MW)"]),
    ("consular-notification.json", {"nationality": "Malawi"},
     ["payload.nationality: expected an ISO 3166-1 alpha-2 country code in upper case, e.g. ZM; "
      "got 'Malawi'", "payload.nationality: must be one of the person's citizenships (MW)"]),
    ("consular-notification.json", {"protection.asylum_status": "ClaimRejected"}, []),
    ("consular-notification.json", {"protection.asylum_status": "RecognisedRefugee"},
     ["payload.protection: a refugee's or asylum seeker's own state is not notified: it could "
      "expose them to the state they fled"]),
    ("consular-notification.json", {"protection.categories": ["RefugeeOrAsylumSeeker"]},
     ["payload.protection: a refugee's or asylum seeker's own state is not notified: it could "
      "expose them to the state they fled"]),
    ("consular-notification.json", {"reason": "Arrested", "informed_of_rights": False,
                                    "requested_by_person": False},
     ["payload.informed_of_rights: the person must be told of their right to consular contact "
      "first (VCCR art. 36(1)(b))", "payload.requested_by_person: notify only at the person's "
      "request, or give the agreement that makes notification mandatory"]),
    ("consular-notification.json", {"reason": "Detained", "requested_by_person": False,
                                    "mandatory_notification_basis": "ZM-MW consular agreement"},
     []),
    ("consular-notification.json", {"reason": "Imprisoned", "requested_by_person": False},
     ["payload.requested_by_person: notify only at the person's request, or give the agreement "
      "that makes notification mandatory"]),
    ("consular-notification.json", {"consent": None},
     ["payload.consent: required: the person is identifiable; record their consent (or a "
      "consent_override with reason and authority)"]),
    ("consular-notification.json", {"consent": None, "reason": "Deceased"}, []),
    ("consular-notification.json", {"event_at": "2026-11-23T00:00:00Z"},
     ["payload.event_at: must not be in the future"]),
    # -- CompensationClaim -----------------------------------------------------------------------
    ("compensation-claim.json", {"forum_country": "zm"},
     ["payload.forum_country: expected an ISO 3166-1 alpha-2 country code in upper case, e.g. "
      "ZM; got 'zm'"]),
    ("compensation-claim.json", {"details": " "}, ["payload.details: must not be empty"]),
    ("compensation-claim.json", {"status": "PartiallyPaid"},
     ["payload.amount_awarded: required when the status is PartiallyPaid"]),
    ("compensation-claim.json", {"status": "Paid"},
     ["payload.amount_awarded: required when the status is Paid"]),
    ("compensation-claim.json", {"status": "Rejected"}, []),
    ("compensation-claim.json", {"consent": None},
     ["payload.consent: required: the person is identifiable; record their consent (or a "
      "consent_override with reason and authority)"]),
    # -- recruitment checks ----------------------------------------------------------------------
    ("recruitment-verification-request.json", {"agency": None, "job_offer": None},
     ["payload.agency: name the agency, the job offer, or both"]),
    ("recruitment-verification-request.json", {"agency": None}, []),
    ("recruitment-verification-request.json", {"questions": ""},
     ["payload.questions: must not be empty"]),
    ("recruitment-verification-request.json", {"answer_by": "2026-11-21"},
     ["payload.answer_by: must not be in the past"]),
    ("recruitment-verification-request.json", {"answer_by": "2026-11-22"}, []),
    ("recruitment-verification-request.json", {"answer_by": None, "urgency_reason": None}, []),
    ("recruitment-verification-response.json", {"findings": " "},
     ["payload.findings: must not be empty"]),
    ("recruitment-verification-response.json", {"advice": None, "licence_status": "Licensed",
                                                 "job_offer_status": "Genuine"}, []),
    ("recruitment-verification-response.json", {"advice": None, "licence_status": "Licensed",
                                                 "job_offer_status": "TermsMisrepresented"},
     ["payload.advice: required when the agency or the offer is not sound: say what the people "
      "concerned should do"]),
    ("recruitment-verification-response.json", {"advice": None, "licence_status":
                                                 "LicenceRevoked", "job_offer_status": "Genuine"},
     ["payload.advice: required when the agency or the offer is not sound: say what the people "
      "concerned should do"]),
    # -- LegalBasis ------------------------------------------------------------------------------
    ("spontaneous-information.json", {"legal_basis": {"instrument": "BilateralTreaty"}},
     ["payload.legal_basis.title: required for instrument BilateralTreaty: name the treaty or "
      "law"]),
    ("spontaneous-information.json", {"legal_basis": {"instrument": "Other", "title": " "}},
     ["payload.legal_basis.title: required for instrument Other: name the treaty or law"]),
    ("spontaneous-information.json", {"legal_basis": {"instrument": "UNTOC"}}, []),
    ("spontaneous-information.json", {"information": ""},
     ["payload.information: must not be empty"]),
    # -- JointInvestigationTeam ------------------------------------------------------------------
    ("joint-investigation-team.json", {"stage": "Proposal", "proposal_id": None,
                                       "agreement_reference": None, "signed_on": None}, []),
    ("joint-investigation-team.json", {"stage": "Proposal"},
     ["payload.proposal_id: a proposal does not refer to an earlier one"]),
    ("joint-investigation-team.json", {"stage": "Closure", "proposal_id": None},
     ["payload.proposal_id: required for stage Closure: the proposal"]),
    ("joint-investigation-team.json", {"parties": DELETE},
     ["payload.parties: a joint team has at least two parties"]),
    ("joint-investigation-team.json", {"offences": []},
     ["payload.offences: name at least one offence with its legal provision"]),
    ("joint-investigation-team.json", {"purpose": ""}, ["payload.purpose: must not be empty"]),
    ("joint-investigation-team.json", {"agreement_reference": " "},
     ["payload.agreement_reference: must not be empty"]),
    ("joint-investigation-team.json", {"duration.end": None},
     ["payload.duration.end: required for stage Agreement"]),
    ("joint-investigation-team.json", {"stage": "Extension", "duration.end": None},
     ["payload.duration.end: required for stage Extension"]),
    ("joint-investigation-team.json", {"stage": "Closure", "duration.end": None}, []),
    ("joint-investigation-team.json", {"signed_on": "2026-11-23"},
     ["payload.signed_on: must not be in the future"]),
    # -- ArrestWarrantNotice ---------------------------------------------------------------------
    ("arrest-warrant-notice.json", {"warrant_reference": ""},
     ["payload.warrant_reference: must not be empty"]),
    ("arrest-warrant-notice.json", {"issued_on": "2026-11-23"},
     ["payload.issued_on: must not be in the future"]),
    ("arrest-warrant-notice.json", {"person": {"estimated_age": 40}},
     ["payload.person: the person sought must be identifiable: give a name, a birthdate, a "
      "document or a description"]),
    ("arrest-warrant-notice.json", {"offences": []},
     ["payload.offences: name at least one offence with its legal provision"]),
    ("arrest-warrant-notice.json", {"extradition_request_due": "2026-11-22"},
     ["payload.extradition_request_due: must be a future date"]),
    ("arrest-warrant-notice.json", {"purpose": "LocateAndInform",
                                    "extradition_request_due": None}, []),
    # -- ProceedingsTransfer, AssetRecoveryRequest -----------------------------------------------
    ("proceedings-transfer.json", {"reasons": " ", "evidence_summary": ""},
     ["payload.reasons: must not be empty", "payload.evidence_summary: must not be empty"]),
    ("proceedings-transfer.json", {"offences": []},
     ["payload.offences: name at least one offence with its legal provision"]),
    ("asset-recovery-request.json", {"assets": []}, ["payload.assets: name at least one asset"]),
    ("asset-recovery-request.json", {"measure": "ReturnOfProceeds"},
     ["payload.order_reference: required for ReturnOfProceeds: the court order"]),
    ("asset-recovery-request.json", {"measure": "Confiscation", "order_reference": "HC/1/2026"},
     []),
    ("asset-recovery-request.json", {"summary_of_facts": ""},
     ["payload.summary_of_facts: must not be empty"]),
    # -- VideoTestimonyRequest -------------------------------------------------------------------
    ("video-testimony-request.json", {"hearing_at": "2026-11-22T12:00:00Z"},
     ["payload.hearing_at: must be after the request's creation time"]),
    ("video-testimony-request.json", {"language": "xq"},
     ["payload.language: expected an ISO 639 language code, e.g. en, bem, sn; got 'xq'"]),
    ("video-testimony-request.json", {"proceedings_reference": ""},
     ["payload.proceedings_reference: must not be empty"]),
    ("video-testimony-request.json", {"consent": None},
     ["payload.consent: required: the person is identifiable; record their consent (or a "
      "consent_override with reason and authority)"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("file", "changes", "expected"),
    [pytest.param(*case, id=f"{case[0]}:{','.join(case[1])}") for case in CASES],
)
def test_rule(registry, file, changes, expected):
    assert problems(registry, file, changes) == expected


def test_the_protected_statuses_are_those_of_a_claim_or_a_protection_granted():
    assert rules_people.PROTECTED_ASYLUM_STATUSES == {
        "IntendsToClaim", "ClaimLodged", "RecognisedRefugee", "ComplementaryProtection",
        "AppealPending",
    }  # fmt: skip
    assert rules_people.PROTECTED_ASYLUM_STATUSES < set(codes.get("asylum_status").codes)
    assert not rules_people.seeks_protection(None)
    assert not rules_people.seeks_protection({"asylum_status": "NoClaim", "categories": []})


def test_every_crossing_point_joins_countries_of_the_region():
    crossing = codes.get("crossing_point")
    for code in crossing.codes:
        joined = rules_people.crossing_point_countries(code)
        assert (code == "Other") == (joined == ())
        assert all(len(c) == 2 and c.isupper() for c in joined)
