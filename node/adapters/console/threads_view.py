"""Cases as people follow them: which answer a message calls for, what the reply starts
with, the gates a payload must pass explained in plain words, a thread's timeline and the
steps of a repatriation as a progress line. Pure: dictionaries in, dictionaries out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from node.payloads import KIND_PAYLOADS, ON_ANY_THREAD

# what answers what: (the record replied to) -> (the record of the reply, the field that names
# the message answered)
ANSWERS: dict[str, tuple[str, str | None]] = {
    "MlaRequest": ("MlaResponse", "request_id"),
    "Referral": ("ReferralResponse", "referral_id"),
}
REPATRIATION_STEPS: tuple[str, ...] = tuple(
    s for s in KIND_PAYLOADS["repatriation"] if s not in ON_ANY_THREAD
)
# handling fields carried over into a reply: the legal frame stays that of the case
CARRIED_HANDLING = ("code", "conditions", "legal_basis", "legal_instrument", "language",
                    "retention_days")  # fmt: skip

# The business rules that stop a message, in words an officer acts on (the node's validation
# enforces them; node/validation.py). Keys are English catalog strings.
GATE_CONSENT = (
    "Consent: a person who can be identified (a name, birth date or document) may be shared only"
    " with their recorded consent. Fill in Consent (given: yes, when, by whom, and the nodes it"
    " covers), or a Consent override with its reason and the authority that decided it."
)
GATE_CHILD = (
    "Child safeguards: for anyone under 18, or whose age is unknown, give a guardian or the"
    " reference of a best-interests determination under Child safeguards."
)
GATE_VOLUNTARY = (
    "Voluntary return: a return the person does not wish needs a Consent override with its"
    " reason and authority."
)
GATE_NON_REFOULEMENT = (
    "Non-refoulement: a return can be approved only after a completed risk assessment. If an"
    " asylum claim is pending or the risk is high, approving needs an Override stating the"
    " reason and the authority."
)
GATES: dict[str, tuple[str, ...]] = {
    "Referral": (GATE_CONSENT, GATE_CHILD),
    "RepatriationProposal": (GATE_CONSENT, GATE_CHILD, GATE_VOLUNTARY),
    "RepatriationApproval": (GATE_NON_REFOULEMENT,),
}


def gates(schema: str) -> tuple[str, ...]:
    return GATES.get(schema, ())


def replies(kind: str, schema: str) -> list[str]:
    """The records a reply to a message of ``schema`` may carry, the expected one first."""
    options: list[str] = []
    if schema in ANSWERS:
        options.append(ANSWERS[schema][0])
    if schema in REPATRIATION_STEPS:
        index = REPATRIATION_STEPS.index(schema)
        options.extend(REPATRIATION_STEPS[index + 1 : index + 2])
    if kind != "receipt":
        options.append("CaseUpdate")
    return options


def reply_state(item: Mapping[str, Any], schema: str | None = None) -> dict[str, Any]:
    """The compose state of a reply to received ``item``: same kind and thread, addressed to
    its sender, the expected record (or ``schema`` if it is one of :func:`replies`), the
    handling frame carried over and the answered message named where the record has a field
    for it."""
    options = replies(item["kind"], item["payload_schema"])
    chosen = schema if schema in options else options[0]
    payload: dict[str, Any] = {}
    handling = (item.get("payload") or {}).get("handling") or {}
    carried = {k: handling[k] for k in CARRIED_HANDLING if handling.get(k) is not None}
    if carried:
        payload["handling"] = carried
    answer = ANSWERS.get(item["payload_schema"])
    if answer is not None and answer[0] == chosen and answer[1]:
        payload[answer[1]] = item["id"]
    return {
        "kind": item["kind"],
        "schema": chosen,
        "to": [item["sender"]],
        "thread_id": item["thread_id"],
        "in_reply_to": item["id"],
        "payload": payload,
    }


def timeline(
    sent: Sequence[Mapping[str, Any]], received: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Every message of a case in time order, each marked sent or received."""
    items = [{**s, "direction": "sent"} for s in sent]
    items += [{**r, "direction": "received"} for r in received]
    return sorted(items, key=lambda i: (i.get("created_at") or "", i.get("id") or ""))


def repatriation_progress(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each repatriation step with whether it happened in this thread ([] if none did)."""
    done = {i["payload_schema"] for i in items if i.get("kind") == "repatriation"}
    if not done & set(REPATRIATION_STEPS):
        return []
    return [{"step": s, "done": s in done} for s in REPATRIATION_STEPS]
