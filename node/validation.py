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

import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pycountry

from node.codec import CodecError, SchemaRegistry
from node.forwarding import FORWARD_SCHEMA, inner_payload
from node.routing.ids import NODE_ID_PATTERN

ADULT_AGE = 18
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_BCP47 = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*$")
_NODE_ID = re.compile(NODE_ID_PATTERN)
_IDENTIFYING = (
    "prs_FirstName",
    "prs_MiddleName",
    "prs_SecondName",
    "aliases",
    "prs_Birthdate",
    "identity_documents",
    "physical_description",
)


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class PayloadInvalid(ValueError):
    """A payload breaks a business rule. ``problems`` lists all; the message shows the first."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(str(problems[0]))
        self.problems = problems
        self.path = problems[0].path
        self.problem = problems[0].message


@dataclass(frozen=True)
class Context:
    """What the rules compare against: when the message was created, and to whom it goes."""

    created_at: dt.datetime
    recipients: tuple[str, ...] = ()

    @property
    def today(self) -> dt.date:
        return self.created_at.astimezone(dt.UTC).date()


Rule = Callable[[Mapping[str, Any], str, Context], Iterator[Problem]]


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
    for name, value, path in _records(info.parsed, info.named, payload, root):
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
    inner_ctx = Context(created_at=original["created_at"], recipients=ctx.recipients)
    yield from validate(registry, name, inner, inner_ctx, path)
    if inner["handling"] != forward["handling"]:
        yield Problem(f"{root}.handling", "must be the forwarded payload's handling, unchanged")


def _records(
    schema: Any, named: Mapping[str, Any], value: Any, path: str
) -> Iterator[tuple[str, Any, str]]:
    """Each (record name, value, path) inside ``value``, walking the standalone schema."""

    def walk(node: Any, v: Any, p: str) -> Iterator[tuple[str, Any, str]]:
        if v is None:
            return
        if isinstance(node, str):
            if node in named:
                yield from walk(named[node], v, p)
            return
        if isinstance(node, list):
            if isinstance(v, tuple):  # explicit branch notation
                yield from walk(v[0], v[1], p)
                return
            for branch in node:
                if branch != "null":
                    yield from walk(branch, v, p)
                    return
            return
        kind = node.get("type")
        if kind == "record" and isinstance(v, Mapping):
            yield node["name"], v, p
            for field in node["fields"]:
                yield from walk(field["type"], v.get(field["name"]), f"{p}.{field['name']}")
        elif kind == "array" and isinstance(v, list):
            for i, item in enumerate(v):
                yield from walk(node["items"], item, f"{p}[{i}]")
        elif isinstance(kind, (dict, list)):
            yield from walk(kind, v, p)

    yield from walk(schema, value, path)


# -- helpers ------------------------------------------------------------------------------------


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _required_text(record: Mapping[str, Any], path: str, *fields: str) -> Iterator[Problem]:
    for name in fields:
        if _blank(record.get(name)):
            yield Problem(f"{path}.{name}", "must not be empty")


def _country(value: Any, path: str) -> Iterator[Problem]:
    if value is not None and (
        not isinstance(value, str)
        or not value.isupper()
        or pycountry.countries.get(alpha_2=value) is None
    ):
        yield Problem(
            path,
            f"expected an ISO 3166-1 alpha-2 country code in upper case, e.g. ZM; got {value!r}",
        )


def _language(value: Any, path: str) -> Iterator[Problem]:
    if value is None:
        return
    lang = None
    if isinstance(value, str) and value.islower():
        lang = pycountry.languages.get(alpha_2=value) if len(value) == 2 else None
        lang = lang or (pycountry.languages.get(alpha_3=value) if len(value) == 3 else None)
    if lang is None:
        yield Problem(path, f"expected an ISO 639 language code, e.g. en, bem, sn; got {value!r}")


def _phone(value: Any, path: str) -> Iterator[Problem]:
    if value is not None and not _E164.match(value):
        yield Problem(path, f"expected an E.164 phone number, e.g. +260211123456; got {value!r}")


def _not_future(value: dt.datetime | dt.date | None, path: str, ctx: Context) -> Iterator[Problem]:
    if value is None:
        return
    if isinstance(value, dt.datetime):
        if value > ctx.created_at + dt.timedelta(minutes=5):
            yield Problem(path, "must not be in the future")
    elif value > ctx.today:
        yield Problem(path, "must not be in the future")


def age_on(birthdate: dt.date, day: dt.date) -> int:
    years = day.year - birthdate.year
    return years - ((day.month, day.day) < (birthdate.month, birthdate.day))


def person_age(person: Mapping[str, Any], day: dt.date) -> int | None:
    """Age in whole years from the birthdate, else the estimated age, else unknown."""
    if person.get("prs_Birthdate") is not None:
        return age_on(person["prs_Birthdate"], day)
    age = person.get("estimated_age")
    return int(age) if age is not None else None


def identifies(person: Mapping[str, Any]) -> bool:
    """Whether a person record could identify someone (and so needs consent to be shared)."""
    return any(person.get(field) not in (None, [], "") for field in _IDENTIFYING)


# -- rules per shared type ---------------------------------------------------------------------


def _handling(h: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if h["code"] == "H3" and _blank(h.get("conditions")):
        yield Problem(f"{path}.conditions", "required for handling code H3")
    yield from _required_text(h, path, "legal_basis")
    if not _BCP47.match(h["language"]):
        yield Problem(
            f"{path}.language",
            f"expected a BCP 47 language tag, e.g. en, pt-MZ; got {h['language']!r}",
        )
    if not 1 <= h["retention_days"] <= 3650:
        yield Problem(f"{path}.retention_days", "must be between 1 and 3650")


def _person(p: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    birthdate = p.get("prs_Birthdate")
    yield from _not_future(birthdate, f"{path}.prs_Birthdate", ctx)
    if birthdate is not None and birthdate.year < 1900:
        yield Problem(f"{path}.prs_Birthdate", "must not be before 1900")
    age = p.get("estimated_age")
    if age is not None and not 0 <= age <= 120:
        yield Problem(f"{path}.estimated_age", "must be between 0 and 120")
    for i, code in enumerate(p.get("prs_Citizenship") or []):
        yield from _country(code, f"{path}.prs_Citizenship[{i}]")
    for field in ("prs_PrimaryLanguage", "prs_SecondaryLanguage"):
        yield from _language(p.get(field), f"{path}.{field}")


def _identity_document(d: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from _required_text(d, path, "number")
    yield from _country(d["issuing_country"], f"{path}.issuing_country")


def _location(loc: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from _country(loc["country"], f"{path}.country")
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
    yield from _required_text(org, path, "org_Name")
    yield from _country(org.get("org_ShippingCountry"), f"{path}.org_ShippingCountry")
    yield from _phone(org.get("org_Phone"), f"{path}.org_Phone")
    node_id = org.get("node_id")
    if node_id is not None and not _NODE_ID.match(node_id):
        yield Problem(f"{path}.node_id", f"not a node id: {node_id!r}")


def _contact(c: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from _required_text(c, path, "role", "name")
    yield from _phone(c.get("phone"), f"{path}.phone")
    if c.get("email") is not None and not _EMAIL.match(c["email"]):
        yield Problem(f"{path}.email", f"not an e-mail address: {c['email']!r}")


def _attachment(a: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from _required_text(a, path, "name")
    if not _MEDIA_TYPE.match(a["media_type"]):
        yield Problem(
            f"{path}.media_type",
            f"expected a media type such as application/pdf; got {a['media_type']!r}",
        )
    if a["size"] < 0:
        yield Problem(f"{path}.size", "must not be negative")
    if not _SHA256.match(a["sha256"]):
        yield Problem(f"{path}.sha256", "expected 64 lowercase hex digits")


def _consent(c: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from _required_text(c, path, "recorded_by")
    yield from _not_future(c["recorded_at"], f"{path}.recorded_at", ctx)
    yield from _language(c.get("language_used"), f"{path}.language_used")
    for i, node_id in enumerate(c.get("share_with_nodes") or []):
        if not _NODE_ID.match(node_id):
            yield Problem(f"{path}.share_with_nodes[{i}]", f"not a node id: {node_id!r}")
    listed = c.get("share_with_nodes") or []
    for recipient in ctx.recipients:
        if listed and recipient not in listed:
            yield Problem(
                f"{path}.share_with_nodes",
                f"the person did not consent to sharing with {recipient}",
            )


def _override(o: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from _required_text(o, path, "reason", "authority")
    yield from _not_future(o["decided_at"], f"{path}.decided_at", ctx)


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
    yield from _not_future(r.get("assessed_at"), f"{path}.assessed_at", ctx)


TYPE_RULES: dict[str, tuple[Rule, ...]] = {
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


def _person_safeguards(p: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    """Consent (or an override) to share an identifiable person; safeguards for a child."""
    person = p["person"]
    if identifies(person):
        consent, override = p.get("consent"), p.get("consent_override")
        if override is None:
            if consent is None:
                yield Problem(
                    f"{path}.consent",
                    "required: the person is identifiable; record their consent "
                    "(or a consent_override with reason and authority)",
                )
            elif not consent["con_Consent"]:
                yield Problem(
                    f"{path}.consent.con_Consent",
                    "the person did not consent; sharing needs a consent_override "
                    "with reason and authority",
                )
    age = person_age(person, ctx.today)
    if age is None or age < ADULT_AGE:
        safeguards = p.get("child_safeguards") or {}
        if safeguards.get("guardian") is None and _blank(
            safeguards.get("best_interests_determination_ref")
        ):
            who = "a child" if age is not None else "a person of unknown age (presumed a child)"
            yield Problem(
                f"{path}.child_safeguards",
                f"required for {who}: give a guardian or a best-interests determination reference",
            )


def _alert(a: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from _required_text(a, path, "title", "description")
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
        if _blank(a.get("cancellation_reason")):
            yield Problem(f"{path}.cancellation_reason", "required to cancel an alert")
    elif not (a["subjects"] or a["last_known_locations"] or a["vehicles"]):
        yield Problem(
            f"{path}.subjects", "an alert needs at least one subject, location or vehicle"
        )
    if not 1 <= a["information_accuracy"] <= 4:
        yield Problem(f"{path}.information_accuracy", "must be 1, 2, 3 or 4")
    if a["valid_until"] <= ctx.created_at:
        yield Problem(f"{path}.valid_until", "must be after the alert's creation time")


def _mla_request(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if not r["assistance_sought"]:
        yield Problem(f"{path}.assistance_sought", "name at least one type of assistance")
    yield from _required_text(
        r, path, "summary_of_facts", "subject_matter", "nature_of_proceedings",
        "assistance_details", "purpose_of_evidence",
    )  # fmt: skip
    if not r["offences"]:
        yield Problem(f"{path}.offences", "name at least one offence with its legal provision")
    if r.get("deadline") is not None:
        if r["deadline"] <= ctx.created_at:
            yield Problem(f"{path}.deadline", "must be after the request's creation time")
        if _blank(r.get("urgency_reason")):
            yield Problem(f"{path}.urgency_reason", "required when a deadline is set")
    if r["confidentiality_requested"] and _blank(r.get("confidentiality_reason")):
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
    if needed and _blank(r.get(needed)):
        yield Problem(f"{path}.{needed}", f"required when the status is {r['status']}")
    if (
        r["status"] == "Postponed"
        and r.get("postponed_until") is not None
        and r["postponed_until"] <= ctx.today
    ):
        yield Problem(f"{path}.postponed_until", "must be a future date")


def _referral(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from _person_safeguards(r, path, ctx)
    yield from _required_text(r, path, "cas_OutgoingReferralDetails")
    yield from _not_future(r["cas_OutgoingReferralDate"], f"{path}.cas_OutgoingReferralDate", ctx)
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
    if needed and _blank(r.get(needed)):
        yield Problem(f"{path}.{needed}", f"required when the status is {r['status']}")


def _repatriation_proposal(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from _person_safeguards(r, path, ctx)
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
    elif _blank(r.get("reasons")):
        yield Problem(f"{path}.reasons", f"required when the decision is {r['decision']}")


def _repatriation_follow_up(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from _required_text(r, path, "reintegration_status")
    nxt = r.get("next_follow_up")
    if nxt is not None and nxt <= r["followed_up_at"].date():
        yield Problem(f"{path}.next_follow_up", "must be after this follow-up")


def _case_update(u: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from _required_text(u, path, "note")
    yield from _not_future(u["recorded_at"], f"{path}.recorded_at", ctx)


def _receipt(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if not _SHA256.match(r["envelope_sha256"]):
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
        yield from _required_text(r, path, "note")
    yield from _not_future(r["requested_at"], f"{path}.requested_at", ctx)


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
    yield from _not_future(r["completed_at"], f"{path}.completed_at", ctx)


def _node_ids(ids: Any, path: str) -> Iterator[Problem]:
    for i, node_id in enumerate(ids):
        if not _NODE_ID.match(node_id):
            yield Problem(f"{path}[{i}]", f"not a node id: {node_id!r}")


def _forward_request(r: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if not r["forward_to"]:
        yield Problem(f"{path}.forward_to", "name at least one node")
    yield from _node_ids(r["forward_to"], f"{path}.forward_to")
    yield from _required_text(r, path, "purpose")
    yield from _not_future(r["requested_at"], f"{path}.requested_at", ctx)


def _forward_decision(d: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if d["decision"] == "Granted" and not d["forward_to"]:
        yield Problem(f"{path}.forward_to", "a grant names the nodes it covers")
    yield from _node_ids(d["forward_to"], f"{path}.forward_to")
    yield from _required_text(d, path, "decided_by")
    yield from _not_future(d["decided_at"], f"{path}.decided_at", ctx)


def _forward(f: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if f["handling"]["code"] not in ("H0", "H1") and f.get("permission") is None:
        yield Problem(f"{path}.permission", "the originator's grant is required for "
                      f"handling code {f['handling']['code']}")  # fmt: skip
    yield from _node_ids([f["original"]["sender"]], f"{path}.original.sender")


PAYLOAD_RULES: dict[str, tuple[Rule, ...]] = {
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
