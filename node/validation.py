"""Business rules of the payloads, beyond what Avro types can say (pure functions).

The codec guarantees shape; these rules guarantee sense: a child is not referred without a
guardian or best-interests determination, a return is not approved without a completed risk
assessment, an MLA request says what assistance it seeks. Each problem names the field path in
the same form as codec errors (``payload.person.prs_Birthdate: ...``), so a local system can
point its user at the field.

Rules are checked against a :class:`Context` holding the message's creation time (not the
reader's clock), so a message valid when sent stays valid when a delayed copy is read.

Two layers: rules per shared type (every Person, Location, Contact... wherever it appears,
found by walking the schema) and rules per payload record.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from node import rules_judicial, rules_people, rules_statistics
from node.checks import (
    BCP47,
    EMAIL,
    MEDIA_TYPE,
    NODE_ID,
    SHA256,
    Context,
    PayloadInvalid,
    Problem,
    Rule,
    blank,
    country,
    identifies,
    language,
    not_future,
    person_age,
    person_safeguards,
    phone,
    records,
    required_text,
)
from node.codec import CodecError, SchemaRegistry
from node.forwarding import FORWARD_SCHEMA, inner_payload

__all__ = ["Context", "PayloadInvalid", "Problem", "check", "identifies", "person_age", "validate"]


def _merged(*tables: Mapping[str, tuple[Rule, ...]]) -> dict[str, tuple[Rule, ...]]:
    """One table of rules from several: a record's rules from each, in the order given."""
    merged: dict[str, tuple[Rule, ...]] = {}
    for table in tables:
        for name, rules in table.items():
            merged[name] = (*merged.get(name, ()), *rules)
    return merged


def check(registry: SchemaRegistry, schema_name: str, payload: Any, ctx: Context) -> None:
    """Raise :class:`PayloadInvalid` unless ``payload`` (Avro-ready values) keeps every rule."""
    problems = validate(registry, schema_name, payload, ctx)
    if problems:
        raise PayloadInvalid(problems)


def validate(
    registry: SchemaRegistry, schema_name: str, payload: Any, ctx: Context, root: str = "payload"
) -> list[Problem]:
    """Every rule broken by ``payload``, in document order, type rules before record rules."""
    problems: list[Problem] = []
    info = registry.schema(schema_name)
    for name, value, path in records(info.parsed, info.named, payload, root):
        for rule in TYPE_RULES.get(name, ()):
            problems.extend(rule(value, path, ctx))
    for rule in PAYLOAD_RULES.get(schema_name, ()):
        problems.extend(rule(payload, root, ctx))
    if schema_name == FORWARD_SCHEMA:
        problems.extend(_forwarded(registry, payload, root, ctx))
    return problems


def _forwarded(
    registry: SchemaRegistry, forward: Mapping[str, Any], root: str, ctx: Context
) -> Iterator[Problem]:
    """A forward carries another payload: it must decode, keep that payload's own rules against
    the forward's recipients (a person's consent names the nodes their data may go to), and
    keep its handling."""
    path = f"{root}.payload"
    try:
        name, inner = inner_payload(registry, forward)
    except KeyError as exc:
        yield Problem(f"{root}.payload_schema", str(exc.args[0]))
        return
    except CodecError as exc:
        yield Problem(path, f"does not decode as {forward['payload_schema']}: {exc.problem}")
        return
    original = forward["original"]
    inner_ctx = Context(original["created_at"], ctx.recipients, original["sender"])
    yield from validate(registry, name, inner, inner_ctx, path)
    if inner["handling"] != forward["handling"]:
        yield Problem(f"{root}.handling", "must be the forwarded payload's handling, unchanged")


# -- rules per shared type ---------------------------------------------------------------------


def _handling(h: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if h["code"] == "H3" and blank(h.get("conditions")):
        yield Problem(f"{path}.conditions", "required for handling code H3")
    yield from required_text(h, path, "legal_basis")
    if not BCP47.match(h["language"]):
        yield Problem(
            f"{path}.language",
            f"expected a BCP 47 language tag, e.g. en, pt-MZ; got {h['language']!r}",
        )
    if not 1 <= h["retention_days"] <= 3650:
        yield Problem(f"{path}.retention_days", "must be between 1 and 3650")


def _person(p: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    birthdate = p.get("prs_Birthdate")
    yield from not_future(birthdate, f"{path}.prs_Birthdate", ctx)
    if birthdate is not None and birthdate.year < 1900:
        yield Problem(f"{path}.prs_Birthdate", "must not be before 1900")
    age = p.get("estimated_age")
    if age is not None and not 0 <= age <= 120:
        yield Problem(f"{path}.estimated_age", "must be between 0 and 120")
    for i, code in enumerate(p.get("prs_Citizenship") or []):
        yield from country(code, f"{path}.prs_Citizenship[{i}]")
    for field in ("prs_PrimaryLanguage", "prs_SecondaryLanguage"):
        yield from language(p.get(field), f"{path}.{field}")


def _identity_document(d: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from required_text(d, path, "number")
    yield from country(d["issuing_country"], f"{path}.issuing_country")


def _location(loc: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from country(loc["country"], f"{path}.country")
    lat, lon = loc.get("latitude"), loc.get("longitude")
    if (lat is None) != (lon is None):
        yield Problem(
            f"{path}.{'longitude' if lon is None else 'latitude'}",
            "give both latitude and longitude, or neither",
        )
    if lat is not None and not -90 <= lat <= 90:
        yield Problem(f"{path}.latitude", "must be between -90 and 90")
    if lon is not None and not -180 <= lon <= 180:
        yield Problem(f"{path}.longitude", "must be between -180 and 180")


def _organisation(org: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from required_text(org, path, "org_Name")
    yield from country(org.get("org_ShippingCountry"), f"{path}.org_ShippingCountry")
    yield from phone(org.get("org_Phone"), f"{path}.org_Phone")
    node_id = org.get("node_id")
    if node_id is not None and not NODE_ID.match(node_id):
        yield Problem(f"{path}.node_id", f"not a node id: {node_id!r}")


def _contact(c: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from required_text(c, path, "role", "name")
    yield from phone(c.get("phone"), f"{path}.phone")
    if c.get("email") is not None and not EMAIL.match(c["email"]):
        yield Problem(f"{path}.email", f"not an e-mail address: {c['email']!r}")


def _attachment(a: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from required_text(a, path, "name")
    if not MEDIA_TYPE.match(a["media_type"]):
        yield Problem(
            f"{path}.media_type",
            f"expected a media type such as application/pdf; got {a['media_type']!r}",
        )
    if a["size"] < 0:
        yield Problem(f"{path}.size", "must not be negative")
    if not SHA256.match(a["sha256"]):
        yield Problem(f"{path}.sha256", "expected 64 lowercase hex digits")


def _consent(c: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from required_text(c, path, "recorded_by")
    yield from not_future(c["recorded_at"], f"{path}.recorded_at", ctx)
    yield from language(c.get("language_used"), f"{path}.language_used")
    for i, node_id in enumerate(c.get("share_with_nodes") or []):
        if not NODE_ID.match(node_id):
            yield Problem(f"{path}.share_with_nodes[{i}]", f"not a node id: {node_id!r}")
    listed = c.get("share_with_nodes") or []
    for recipient in ctx.recipients:
        if listed and recipient not in listed:
            yield Problem(
                f"{path}.share_with_nodes",
                f"the person did not consent to sharing with {recipient}",
            )


def _override(o: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from required_text(o, path, "reason", "authority")
    yield from not_future(o["decided_at"], f"{path}.decided_at", ctx)


def _time_window(w: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if w.get("end") is not None and w["end"] <= w["start"]:
        yield Problem(f"{path}.end", "must be after start")


def _risk_assessment(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if r["completed"]:
        for field in ("assessed_at", "assessed_by"):
            if r.get(field) is None:
                yield Problem(f"{path}.{field}", "required when the assessment is completed")
        if r["risk_level"] == "Unknown":
            yield Problem(f"{path}.risk_level", "a completed assessment states a risk level")
    yield from not_future(r.get("assessed_at"), f"{path}.assessed_at", ctx)


_TYPE_RULES: dict[str, tuple[Rule, ...]] = {
    "xnode.common.Handling": (_handling,),
    "xnode.common.Person": (_person,),
    "xnode.common.IdentityDocument": (_identity_document,),
    "xnode.common.Location": (_location,),
    "xnode.common.Organisation": (_organisation,),
    "xnode.common.Contact": (_contact,),
    "xnode.common.Attachment": (_attachment,),
    "xnode.common.Consent": (_consent,),
    "xnode.common.Override": (_override,),
    "xnode.common.TimeWindow": (_time_window,),
    "xnode.common.RiskAssessment": (_risk_assessment,),
}


# -- rules per payload -------------------------------------------------------------------------


# what an alert may be about: any one of these is enough
_ALERT_SUBJECTS = ("subjects", "last_known_locations", "vehicles", "organisations",
                   "phone_numbers", "online_accounts", "financial_accounts")  # fmt: skip


def _alert(a: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from required_text(a, path, "title", "description")
    if a["action"] == "New":
        if a.get("previous_alert_id") is not None:
            yield Problem(
                f"{path}.previous_alert_id", "a new alert does not reference an earlier one"
            )
    elif a.get("previous_alert_id") is None:
        yield Problem(
            f"{path}.previous_alert_id", f"required for action {a['action']}: the alert it changes"
        )
    if a["action"] == "Cancel":
        if blank(a.get("cancellation_reason")):
            yield Problem(f"{path}.cancellation_reason", "required to cancel an alert")
    elif not any(a.get(field) for field in _ALERT_SUBJECTS):
        yield Problem(f"{path}.subjects", "an alert needs at least one subject, location, "
                      "vehicle, organisation, phone number or account")  # fmt: skip
    if not 1 <= a["information_accuracy"] <= 4:
        yield Problem(f"{path}.information_accuracy", "must be 1, 2, 3 or 4")
    if a["valid_until"] <= ctx.created_at:
        yield Problem(f"{path}.valid_until", "must be after the alert's creation time")


def _mla_request(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if not r["assistance_sought"]:
        yield Problem(f"{path}.assistance_sought", "name at least one type of assistance")
    yield from required_text(
        r, path, "summary_of_facts", "subject_matter", "nature_of_proceedings",
        "assistance_details", "purpose_of_evidence",
    )  # fmt: skip
    if not r["offences"]:
        yield Problem(f"{path}.offences", "name at least one offence with its legal provision")
    if r.get("deadline") is not None:
        if r["deadline"] <= ctx.created_at:
            yield Problem(f"{path}.deadline", "must be after the request's creation time")
        if blank(r.get("urgency_reason")):
            yield Problem(f"{path}.urgency_reason", "required when a deadline is set")
    if r["confidentiality_requested"] and blank(r.get("confidentiality_reason")):
        yield Problem(
            f"{path}.confidentiality_reason", "required when confidentiality is requested"
        )


_MLA_RESPONSE_NEEDS = {
    "NeedsMoreInformation": "information_needed",
    "Refused": "refusal_grounds",
    "Postponed": "postponement_reason",
    "PartiallyExecuted": "results",
    "Executed": "results",
}


def _mla_response(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    needed = _MLA_RESPONSE_NEEDS.get(r["status"])
    if needed and blank(r.get(needed)):
        yield Problem(f"{path}.{needed}", f"required when the status is {r['status']}")
    if (
        r["status"] == "Postponed"
        and r.get("postponed_until") is not None
        and r["postponed_until"] <= ctx.today
    ):
        yield Problem(f"{path}.postponed_until", "must be a future date")


def _referral(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from person_safeguards(r, path, ctx)
    yield from required_text(r, path, "cas_OutgoingReferralDetails")
    yield from not_future(r["cas_OutgoingReferralDate"], f"{path}.cas_OutgoingReferralDate", ctx)
    due = r.get("requested_response_date")
    if due is not None and due < ctx.today:
        yield Problem(f"{path}.requested_response_date", "must not be in the past")


_REFERRAL_RESPONSE_NEEDS = {
    "Declined": "decline_reason",
    "MoreInformationNeeded": "information_needed",
    "Completed": "outcome",
}


def _referral_response(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    needed = _REFERRAL_RESPONSE_NEEDS.get(r["status"])
    if needed and blank(r.get(needed)):
        yield Problem(f"{path}.{needed}", f"required when the status is {r['status']}")


def _repatriation_proposal(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from person_safeguards(r, path, ctx)
    if r["proposed_date"] < ctx.today:
        yield Problem(f"{path}.proposed_date", "must not be in the past")
    if not r["person_wishes_to_return"] and r.get("consent_override") is None:
        yield Problem(
            f"{path}.person_wishes_to_return",
            "return must be voluntary; a return against the person's wish needs a consent_override",
        )


def _repatriation_approval(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    risk = r["risk_assessment"]
    if r["decision"] == "Approved":
        if not risk["completed"]:
            yield Problem(
                f"{path}.risk_assessment.completed",
                "a return cannot be approved without a completed risk assessment",
            )
        blockers = []
        if risk["asylum_claim_pending"]:
            blockers.append("an asylum claim is pending")
        if risk["risk_level"] == "High":
            blockers.append("the risk in the country of return is high")
        if blockers and r.get("override") is None:
            yield Problem(
                f"{path}.override",
                f"required to approve: {' and '.join(blockers)} (non-refoulement)",
            )
        blocked = rules_people.non_refoulement_cleared(risk)
        if blocked is not None:
            yield Problem(f"{path}.risk_assessment.{blocked.path}", blocked.message)
    elif blank(r.get("reasons")):
        yield Problem(f"{path}.reasons", f"required when the decision is {r['decision']}")


def _repatriation_follow_up(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from required_text(r, path, "reintegration_status")
    nxt = r.get("next_follow_up")
    if nxt is not None and nxt <= r["followed_up_at"].date():
        yield Problem(f"{path}.next_follow_up", "must be after this follow-up")


def _case_update(u: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from required_text(u, path, "note")
    yield from not_future(u["recorded_at"], f"{path}.recorded_at", ctx)


def _receipt(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if not SHA256.match(r["envelope_sha256"]):
        yield Problem(f"{path}.envelope_sha256", "expected 64 lowercase hex digits")
    if r["status"] == "rejected" and r.get("reason") is None:
        yield Problem(f"{path}.reason", "required when the status is rejected")
    if r["status"] == "delivered" and r.get("reason") is not None:
        yield Problem(f"{path}.reason", "must be empty when the status is delivered")


MAX_ERASURE_IDS = 1000  # the answer lists each: it must fit in one envelope


def _erasure_request(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if len(r["message_ids"]) > MAX_ERASURE_IDS:
        yield Problem(f"{path}.message_ids", f"at most {MAX_ERASURE_IDS} per request")
    if not r["message_ids"] and r.get("thread_id") is None:
        yield Problem(f"{path}.message_ids", "name at least one message, or give thread_id")
    if r["reason"] == "Other":
        yield from required_text(r, path, "note")
    yield from not_future(r["requested_at"], f"{path}.requested_at", ctx)


def _erasure_result(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if len(r["results"]) > MAX_ERASURE_IDS * 2:  # the ids named, and a thread's at most as many
        yield Problem(f"{path}.results", f"at most {MAX_ERASURE_IDS * 2} per answer")
    for i, item in enumerate(r["results"]):
        held = item["outcome"] == "Held"
        if held and item.get("hold_reason") is None:
            yield Problem(f"{path}.results[{i}].hold_reason", "required for outcome Held")
        if not held and item.get("hold_reason") is not None:
            yield Problem(f"{path}.results[{i}].hold_reason", "only for outcome Held")
    yield from _node_ids(r["passed_on_to"], f"{path}.passed_on_to")
    yield from not_future(r["completed_at"], f"{path}.completed_at", ctx)


def _node_ids(ids: Any, path: str) -> Iterator[Problem]:
    for i, node_id in enumerate(ids):
        if not NODE_ID.match(node_id):
            yield Problem(f"{path}[{i}]", f"not a node id: {node_id!r}")


def _forward_request(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if not r["forward_to"]:
        yield Problem(f"{path}.forward_to", "name at least one node")
    yield from _node_ids(r["forward_to"], f"{path}.forward_to")
    yield from required_text(r, path, "purpose")
    yield from not_future(r["requested_at"], f"{path}.requested_at", ctx)


def _forward_decision(d: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if d["decision"] == "Granted" and not d["forward_to"]:
        yield Problem(f"{path}.forward_to", "a grant names the nodes it covers")
    yield from _node_ids(d["forward_to"], f"{path}.forward_to")
    yield from required_text(d, path, "decided_by")
    yield from not_future(d["decided_at"], f"{path}.decided_at", ctx)


def _forward(f: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if f["handling"]["code"] not in ("H0", "H1") and f.get("permission") is None:
        yield Problem(f"{path}.permission", "the originator's grant is required for "
                      f"handling code {f['handling']['code']}")  # fmt: skip
    yield from _node_ids([f["original"]["sender"]], f"{path}.original.sender")


_PAYLOAD_RULES: dict[str, tuple[Rule, ...]] = {
    "xnode.payload.Alert": (_alert,),
    "xnode.payload.MlaRequest": (_mla_request,),
    "xnode.payload.MlaResponse": (_mla_response,),
    "xnode.payload.Referral": (_referral,),
    "xnode.payload.ReferralResponse": (_referral_response,),
    "xnode.payload.RepatriationProposal": (_repatriation_proposal,),
    "xnode.payload.RepatriationApproval": (_repatriation_approval,),
    "xnode.payload.RepatriationFollowUp": (_repatriation_follow_up,),
    "xnode.payload.CaseUpdate": (_case_update,),
    "xnode.payload.Receipt": (_receipt,),
    "xnode.payload.ErasureRequest": (_erasure_request,),
    "xnode.payload.ErasureResult": (_erasure_result,),
    "xnode.payload.Forward": (_forward,),
    "xnode.payload.ForwardPermissionRequest": (_forward_request,),
    "xnode.payload.ForwardPermissionDecision": (_forward_decision,),
}

TYPE_RULES = _merged(
    _TYPE_RULES, rules_people.TYPE_RULES, rules_judicial.TYPE_RULES, rules_statistics.TYPE_RULES
)
PAYLOAD_RULES = _merged(
    _PAYLOAD_RULES,
    rules_people.PAYLOAD_RULES,
    rules_judicial.PAYLOAD_RULES,
    rules_statistics.PAYLOAD_RULES,
)
