"""Business rules about people on the move and the subjects alerts name (pure).

Migrants, not only victims: a person's categories and asylum status (a refugee or asylum
seeker is never returned without a non-refoulement check, and their consulate is never told),
what they need to be cared for, compensation claims pursued from abroad, feedback after a
return; and the identifiers an alert may name (phones, online accounts, money accounts,
organisations) and the checks that keep them comparable across alerts.

Rules here key off the fields this release added, so a message of an older release keeps the
verdict it had (``docs/payloads.md``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import pycountry

from node import codes
from node.checks import (
    E164,
    EMAIL,
    Context,
    Problem,
    Rule,
    blank,
    country,
    language,
    not_future,
    person_safeguards,
    required_text,
)

# An exact decimal, at most two places: money is never a float on the wire.
_AMOUNT = re.compile(r"^(0|[1-9]\d{0,14})(\.\d{1,2})?$")
# Asylum statuses under which a return needs a non-refoulement check and the person's own
# state is not contacted (codes/asylum_status.json).
PROTECTED_ASYLUM_STATUSES = frozenset(
    {
        "IntendsToClaim",
        "ClaimLodged",
        "RecognisedRefugee",
        "ComplementaryProtection",
        "AppealPending",
    }
)
CHILD_CATEGORIES = frozenset({"UnaccompaniedChild", "SeparatedChild"})
NOT_SOUND_LICENCE = frozenset({"NotLicensed", "LicenceSuspended", "LicenceRevoked"})
NOT_SOUND_OFFER = frozenset({"NotGenuine", "EmployerNotFound", "TermsMisrepresented"})
MAX_REFERENCE_LENGTH = 100


def seeks_protection(profile: Mapping[str, Any] | None) -> bool:
    """Whether a protection profile says the person is a refugee or asylum seeker."""
    if not profile:
        return False
    return profile.get("asylum_status") in PROTECTED_ASYLUM_STATUSES or "RefugeeOrAsylumSeeker" in (
        profile.get("categories") or ()
    )


def crossing_point_countries(code: str) -> tuple[str, ...]:
    """The countries a crossing point joins (``countries`` in codes/crossing_point.json)."""
    return tuple(codes.entry("crossing_point", code).get("countries", ()))


# -- shared types --------------------------------------------------------------------------


def _money(m: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if not _AMOUNT.match(m["amount"]):
        yield Problem(
            f"{path}.amount", f"expected a decimal amount such as 1500.00; got {m['amount']!r}"
        )
    currency = m["currency"]
    if not currency.isupper() or pycountry.currencies.get(alpha_3=currency) is None:
        yield Problem(
            f"{path}.currency", f"expected an ISO 4217 currency code, e.g. ZMW; got {currency!r}"
        )


def _external_reference(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from required_text(r, path, "reference")
    if len(r["reference"]) > MAX_REFERENCE_LENGTH:
        yield Problem(f"{path}.reference", f"at most {MAX_REFERENCE_LENGTH} characters")
    yield from country(r.get("issuing_country"), f"{path}.issuing_country")
    yield from not_future(r.get("issued_on"), f"{path}.issued_on", ctx)


def _protection(p: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from not_future(p.get("asylum_claim_date"), f"{path}.asylum_claim_date", ctx)
    if p.get("asylum_claim_date") is not None and p["asylum_status"] in ("NotKnown", "NoClaim"):
        yield Problem(f"{path}.asylum_status", "a claim date is given: say where the claim stands")


def _non_refoulement_check(c: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if c["outcome"] != "Pending":
        for field in ("checked_by", "checked_at"):
            if c.get(field) is None:
                yield Problem(f"{path}.{field}", "required once the check is done")
    yield from not_future(c.get("checked_at"), f"{path}.checked_at", ctx)


def _care_needs(n: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    for i, code in enumerate(n["languages_spoken"]):
        yield from language(code, f"{path}.languages_spoken[{i}]")
    if n["interpreter_needed"] and n.get("interpreter_language") is None:
        yield Problem(f"{path}.interpreter_language", "required when an interpreter is needed")
    yield from language(n.get("interpreter_language"), f"{path}.interpreter_language")


def _phone_subject(s: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if not E164.match(s["number"]):
        yield Problem(
            f"{path}.number",
            f"expected an E.164 phone number, e.g. +260977123456; got {s['number']!r}",
        )
    yield from country(s.get("country"), f"{path}.country")


def _online_account(a: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from required_text(a, path, "identifier")
    if a["platform"] == "EmailAddress" and not EMAIL.match(a["identifier"]):
        yield Problem(f"{path}.identifier", f"not an e-mail address: {a['identifier']!r}")


def _financial_account(a: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from required_text(a, path, "provider", "account")
    yield from country(a.get("country"), f"{path}.country")
    if a["type"] == "MobileMoney" and not E164.match(a["account"]):
        yield Problem(
            f"{path}.account",
            "a mobile-money account is a phone number: expected "
            f"E.164, e.g. +260977123456; got {a['account']!r}",
        )


def _smuggling(s: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if s.get("migrants_count") is not None and s["migrants_count"] < 1:
        yield Problem(f"{path}.migrants_count", "must be at least 1")
    for i, code in enumerate(s["migrant_nationalities"]):
        yield from country(code, f"{path}.migrant_nationalities[{i}]")


def _asset(a: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from required_text(a, path, "description")


def _job_offer(o: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from required_text(o, path, "position")
    if o.get("applicants_count") is not None and o["applicants_count"] < 0:
        yield Problem(f"{path}.applicants_count", "must not be negative")


def _victim_feedback(f: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if not f["given_freely"]:
        yield Problem(
            f"{path}.given_freely", "feedback is recorded and shared only when given freely"
        )


def _crossing_point(loc: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    point = loc.get("crossing_point")
    if point is None or point == "Other":
        return
    joined = crossing_point_countries(point)
    if joined and loc["country"] not in joined:
        yield Problem(
            f"{path}.crossing_point",
            f"{point} joins {', '.join(joined)}, "
            f"not {loc['country']}: give the side of the border the place is on",
        )


TYPE_RULES: dict[str, tuple[Rule, ...]] = {
    "xnode.common.MoneyAmount": (_money,),
    "xnode.common.ExternalReference": (_external_reference,),
    "xnode.common.ProtectionProfile": (_protection,),
    "xnode.common.NonRefoulementCheck": (_non_refoulement_check,),
    "xnode.common.CareNeeds": (_care_needs,),
    "xnode.common.PhoneSubject": (_phone_subject,),
    "xnode.common.OnlineAccount": (_online_account,),
    "xnode.common.FinancialAccount": (_financial_account,),
    "xnode.common.SmugglingDetails": (_smuggling,),
    "xnode.common.Asset": (_asset,),
    "xnode.common.JobOffer": (_job_offer,),
    "xnode.common.VictimFeedback": (_victim_feedback,),
    "xnode.common.Location": (_crossing_point,),
}


# -- payloads ------------------------------------------------------------------------------


def child_by_category(p: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    """An unaccompanied or separated child needs a guardian or a best-interests determination,
    whatever age the record gives (a referral or a return proposal)."""
    categories = set((p.get("protection") or {}).get("categories") or ())
    if categories & CHILD_CATEGORIES:
        safeguards = p.get("child_safeguards") or {}
        if safeguards.get("guardian") is None and blank(
            safeguards.get("best_interests_determination_ref")
        ):
            yield Problem(
                f"{path}.child_safeguards",
                "required for an unaccompanied or separated "
                "child: give a guardian or a best-interests determination reference",
            )


def non_refoulement_cleared(risk: Mapping[str, Any]) -> Problem | None:
    """Why an approval may not rely on this risk assessment's non-refoulement check, or None.

    A pending asylum claim makes the check mandatory, and a check that found a risk blocks a
    return whatever override is given."""
    check = risk.get("non_refoulement_check")
    if check is not None and check["outcome"] == "RiskFound":
        return Problem(
            "non_refoulement_check.outcome",
            "the non-refoulement check found a risk: the return cannot be approved",
        )
    if risk["asylum_claim_pending"] and (check is None or check["outcome"] != "NoRiskFound"):
        return Problem(
            "non_refoulement_check",
            "an asylum claim is pending: a completed "
            "non-refoulement check finding no risk is required before any return",
        )
    return None


def _consular_notification(n: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from country(n["nationality"], f"{path}.nationality")
    citizenship = n["person"].get("prs_Citizenship") or []
    if citizenship and n["nationality"] not in citizenship:
        yield Problem(
            f"{path}.nationality",
            f"must be one of the person's citizenships ({', '.join(citizenship)})",
        )
    if seeks_protection(n.get("protection")):
        yield Problem(
            f"{path}.protection",
            "a refugee's or asylum seeker's own state is not "
            "notified: it could expose them to the state they fled",
        )
    if n["reason"] in ("Arrested", "Detained", "Imprisoned"):
        if not n["informed_of_rights"]:
            yield Problem(
                f"{path}.informed_of_rights",
                "the person must be told of their right "
                "to consular contact first (VCCR art. 36(1)(b))",
            )
        if not n["requested_by_person"] and blank(n.get("mandatory_notification_basis")):
            yield Problem(
                f"{path}.requested_by_person",
                "notify only at the person's request, "
                "or give the agreement that makes notification mandatory",
            )
    elif n["reason"] == "IdentifiedAsVictim":
        yield from person_safeguards(n, path, ctx)
    yield from not_future(n["event_at"], f"{path}.event_at", ctx)


_AWARDED = frozenset({"Awarded", "PartiallyPaid", "Paid"})


def _compensation_claim(c: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from person_safeguards(c, path, ctx)
    yield from country(c["forum_country"], f"{path}.forum_country")
    yield from required_text(c, path, "details")
    if c["status"] in _AWARDED and c.get("amount_awarded") is None:
        yield Problem(f"{path}.amount_awarded", f"required when the status is {c['status']}")


def _verification_request(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if r.get("agency") is None and r.get("job_offer") is None:
        yield Problem(f"{path}.agency", "name the agency, the job offer, or both")
    yield from required_text(r, path, "questions")
    due = r.get("answer_by")
    if due is not None:
        if due < ctx.today:
            yield Problem(f"{path}.answer_by", "must not be in the past")
        if blank(r.get("urgency_reason")):
            yield Problem(f"{path}.urgency_reason", "required when answer_by is set")


def _verification_response(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from required_text(r, path, "findings")
    unsound = r["licence_status"] in NOT_SOUND_LICENCE or r["job_offer_status"] in NOT_SOUND_OFFER
    if unsound and blank(r.get("advice")):
        yield Problem(
            f"{path}.advice",
            "required when the agency or the offer is not sound: "
            "say what the people concerned should do",
        )


PAYLOAD_RULES: dict[str, tuple[Rule, ...]] = {
    "xnode.payload.Referral": (child_by_category,),
    "xnode.payload.RepatriationProposal": (child_by_category,),
    "xnode.payload.ConsularNotification": (_consular_notification,),
    "xnode.payload.CompensationClaim": (_compensation_claim,),
    "xnode.payload.RecruitmentVerificationRequest": (_verification_request,),
    "xnode.payload.RecruitmentVerificationResponse": (_verification_response,),
}
