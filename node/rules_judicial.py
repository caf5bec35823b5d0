"""Business rules of judicial cooperation beyond evidence requests (pure): joint
investigation teams, arrest warrants, transfer of proceedings, asset recovery, testimony by
video link and spontaneous information (UNTOC arts. 12 to 21). Each names the instrument it
relies on (:data:`TITLE_NEEDED`) and states what its kind of request requires.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from node.checks import (
    Context,
    Problem,
    Rule,
    blank,
    identifies,
    language,
    not_future,
    person_safeguards,
    required_text,
)

# Instruments that a code alone does not identify: the title says which treaty or law.
TITLE_NEEDED = frozenset({"BilateralTreaty", "DomesticLaw", "Other"})
# Measures that execute a court's decision, so the order is named (UNTOC art. 13(1)(b), 14).
ORDER_NEEDED = frozenset({"Confiscation", "ReturnOfProceeds"})


def _at_least_one(r: Mapping[str, Any], path: str, field: str, what: str) -> Iterator[Problem]:
    if not r[field]:
        yield Problem(f"{path}.{field}", f"name at least one {what}")


def _legal_basis(b: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    if b["instrument"] in TITLE_NEEDED and blank(b.get("title")):
        yield Problem(
            f"{path}.title", f"required for instrument {b['instrument']}: name the treaty or law"
        )


TYPE_RULES: dict[str, tuple[Rule, ...]] = {"xnode.common.LegalBasis": (_legal_basis,)}


def _joint_investigation_team(j: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from required_text(j, path, "purpose")
    if j["stage"] == "Proposal":
        if j.get("proposal_id") is not None:
            yield Problem(f"{path}.proposal_id", "a proposal does not refer to an earlier one")
    elif j.get("proposal_id") is None:
        yield Problem(f"{path}.proposal_id", f"required for stage {j['stage']}: the proposal")
    if len(j["parties"]) < 2:
        yield Problem(f"{path}.parties", "a joint team has at least two parties")
    yield from _at_least_one(j, path, "offences", "offence with its legal provision")
    if j["stage"] == "Agreement":
        yield from required_text(j, path, "agreement_reference")
        if j.get("signed_on") is None:
            yield Problem(f"{path}.signed_on", "required for an agreement")
    if j["stage"] in ("Agreement", "Extension") and j["duration"].get("end") is None:
        yield Problem(f"{path}.duration.end", f"required for stage {j['stage']}")
    yield from not_future(j.get("signed_on"), f"{path}.signed_on", ctx)


def _arrest_warrant(w: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from required_text(w, path, "warrant_reference", "facts")
    yield from not_future(w["issued_on"], f"{path}.issued_on", ctx)
    if not identifies(w["person"]):
        yield Problem(
            f"{path}.person",
            "the person sought must be identifiable: give a name, "
            "a birthdate, a document or a description",
        )
    yield from _at_least_one(w, path, "offences", "offence with its legal provision")
    due = w.get("extradition_request_due")
    if w["purpose"] == "ProvisionalArrest" and due is None:
        yield Problem(
            f"{path}.extradition_request_due",
            "required for a provisional arrest: when the extradition request will follow",
        )
    if due is not None and due <= ctx.today:
        yield Problem(f"{path}.extradition_request_due", "must be a future date")


def _proceedings_transfer(t: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from required_text(
        t, path, "proceedings_reference", "reasons", "stage_of_proceedings", "evidence_summary"
    )
    yield from _at_least_one(t, path, "persons_concerned", "person concerned")
    yield from _at_least_one(t, path, "offences", "offence with its legal provision")


def _asset_recovery(a: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from _at_least_one(a, path, "assets", "asset")
    yield from _at_least_one(a, path, "offences", "offence with its legal provision")
    yield from required_text(a, path, "summary_of_facts")
    if a["measure"] in ORDER_NEEDED and blank(a.get("order_reference")):
        yield Problem(f"{path}.order_reference", f"required for {a['measure']}: the court order")


def _video_testimony(v: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from person_safeguards(v, path, ctx, person_field="witness")
    yield from required_text(v, path, "proceedings_reference")
    if v["hearing_at"] <= ctx.created_at:
        yield Problem(f"{path}.hearing_at", "must be after the request's creation time")
    yield from language(v["language"], f"{path}.language")


def _spontaneous(s: Mapping[str, Any], path: str, ctx: Context) -> Iterator[Problem]:
    yield from required_text(s, path, "information")


PAYLOAD_RULES: dict[str, tuple[Rule, ...]] = {
    "xnode.payload.JointInvestigationTeam": (_joint_investigation_team,),
    "xnode.payload.ArrestWarrantNotice": (_arrest_warrant,),
    "xnode.payload.ProceedingsTransfer": (_proceedings_transfer,),
    "xnode.payload.AssetRecoveryRequest": (_asset_recovery,),
    "xnode.payload.VideoTestimonyRequest": (_video_testimony,),
    "xnode.payload.SpontaneousInformation": (_spontaneous,),
}
