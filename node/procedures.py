"""Where a case thread stands in its procedure, and whether a step may come next. Pure.

A repatriation, a referral and an MLA request each follow a procedure: a return is not handed
over at Chirundu before someone has assessed the risk in the country of return and approved
it. Validation (``node/validation.py``) checks one message on its own; this module checks a
message against the thread it joins, in the style of h11's ``_state.py``: the procedures are
**tables** below (:data:`REPATRIATION`, :data:`REFERRAL`, :data:`MLA`) that a reader can check
line by line against the procedure on paper, and one small machine (:func:`check`,
:func:`advance`) reads them. No I/O, no clock, no asyncio: the caller passes what it stored
and, for deadlines, the times.

The words of a refusal are the table's words, so an officer reads what is missing ("a
handover needs travel confirmation, an approval (approved) and a risk assessment clearing
non-refoulement first; missing: an approval (approved)") and can act on it.

Two callers, two answers to a step out of order (``docs/procedures.md``):

* the **sender** refuses it (:func:`advance` raises :class:`OutOfOrder`) unless an officer gives
  an ``override_reason``, which the state records for the audit log;
* the **recipient** never loses a message for its order, because the network may reorder a
  thread or the sender may have overridden: :func:`receive` applies the step and records the
  problem in :attr:`ThreadState.flags` (and :func:`check` says what is wrong without raising).
  What to do with a flagged message is the integrator's decision.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from node.codec import format_timestamp
from node.payloads import JUDICIAL_REQUESTS, KIND_PAYLOADS, short_name
from node.store.base import ProcedureStep

CASE_UPDATE = "CaseUpdate"
# A case update whose status is one of these closes the case; any other status (Active,
# FollowUp) reopens it. Codes: schemas/codes/case_status.json.
CLOSING_STATUSES = frozenset({"Closed", "ClosedReferred"})

# Suggested defaults for the config settings procedures.mla_response_days and
# procedures.referral_response_days, keyed by procedure (= message kind).
DEFAULT_RESPONSE_TIMES: Mapping[str, dt.timedelta] = {
    "mla": dt.timedelta(days=90),
    "referral": dt.timedelta(days=14),
}


# -- the vocabulary of the tables --------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """Something that must hold before a step, in the words an officer reads.

    Met when any name in ``any_of`` is recorded on the thread: a step (``"MlaRequest"``), a
    step with its outcome (``"ReferralResponse:Accepted"``) or a current fact (:data:`APPROVED`).
    """

    words: str
    any_of: tuple[str, ...]


def _decision(payload: Mapping[str, Any]) -> str:
    """An approval's outcome: its decision (schemas/codes/approval_decision.json)."""
    return str(payload["decision"])


def _status(payload: Mapping[str, Any]) -> str:
    """A response's outcome: its status code."""
    return str(payload["status"])


@dataclass(frozen=True)
class Step:
    """One step of a procedure: the payload record that makes it and what must come before.

    ``requires`` holds for every outcome unless ``requires_for`` names the outcome: a return
    may be refused or deferred on the proposal alone, but approved only once it was assessed.
    ``repeats``: the step may be recorded again (a second risk assessment, each follow-up).
    ``settled_by``: once it holds, the step is no longer *expected* (:func:`next_expected`),
    though a repeating step stays allowed; ``None``: expected until the procedure ends. A step
    that happens once is settled by itself.
    ``outcome``: the code that decides the outcome-specific rules, read from the payload.
    """

    schema: str
    label: str
    name: str
    requires: tuple[Requirement, ...] = ()
    requires_for: Mapping[str, tuple[Requirement, ...]] = field(default_factory=dict)
    repeats: bool = False
    settled_by: Requirement | None = None
    outcome: Callable[[Mapping[str, Any]], str] | None = None

    def requirements(self, outcome: str | None) -> tuple[Requirement, ...]:
        if outcome is not None and outcome in self.requires_for:
            return self.requires_for[outcome]
        return self.requires


@dataclass(frozen=True)
class Procedure:
    """A procedure's table. ``name`` is the message kind it runs under.

    ``ends``: ``"Schema:Outcome"`` -> why the procedure ends there (no step may follow).
    ``request``: the step that waits for an answer, with its deadline read from the payload's
    ``deadline_field`` or else the caller's default for this procedure; ``answered_by`` stops
    that clock.
    """

    name: str
    label: str
    steps: tuple[Step, ...]
    ends: Mapping[str, str]
    request: str
    answered_by: Requirement
    deadline_field: str | None = None

    def step(self, schema: str) -> Step | None:
        return next((s for s in self.steps if s.schema == schema), None)

    def label_of(self, schema: str) -> str:
        return next(s.label for s in self.steps if s.schema == schema)


# -- repatriation ------------------------------------------------------------------------------

PROPOSAL = "RepatriationProposal"
FAMILY_ASSESSMENT = "RepatriationFamilyAssessment"
RISK_ASSESSMENT = "RepatriationRiskAssessment"
APPROVAL = "RepatriationApproval"
TRAVEL = "RepatriationTravelConfirmed"
HANDOVER = "RepatriationHandover"
ARRIVAL = "RepatriationArrivalConfirmed"
FOLLOW_UP = "RepatriationFollowUp"

# Facts: what the payloads established, as it stands now (a newer message can undo them).
CLEARED_BY_ASSESSMENT = "the latest risk assessment clears non-refoulement"
CLEARED_BY_OVERRIDE = "an approval overrode non-refoulement after the latest risk assessment"
APPROVED = "every deciding organisation's latest decision is Approved"

# Risk levels at which a completed assessment clears non-refoulement: an allow-list, so a
# level added to the code list later blocks until someone decides it should not.
CLEARING_RISK_LEVELS = frozenset({"Low", "Medium"})

PROPOSED = Requirement("a proposal", (PROPOSAL,))
FAMILY_ASSESSED = Requirement("a family assessment", (FAMILY_ASSESSMENT,))
RISK_ASSESSED = Requirement("a risk assessment", (RISK_ASSESSMENT,))
IS_APPROVED = Requirement("an approval (approved)", (APPROVED,))
NON_REFOULEMENT = Requirement(
    "a risk assessment clearing non-refoulement", (CLEARED_BY_ASSESSMENT, CLEARED_BY_OVERRIDE)
)
TRAVELLED = Requirement("travel confirmation", (TRAVEL,))
HANDED_OVER = Requirement("a handover", (HANDOVER,))
ARRIVED = Requirement("arrival confirmation", (ARRIVAL,))


def _non_refoulement(payload: Mapping[str, Any]) -> str:
    """``Cleared`` when the assessment is completed, no asylum claim is pending and the risk
    is Low or Medium: the blockers ``node/validation.py`` lets an approval pass only with an
    Override. The free-text ``international_protection_needs`` is for people to read."""
    risk = payload["risk_assessment"]
    clears = (
        bool(risk["completed"])
        and not risk["asylum_claim_pending"]
        and risk["risk_level"] in CLEARING_RISK_LEVELS
    )
    return "Cleared" if clears else "NotCleared"


# fmt: off
REPATRIATION = Procedure(
    name="repatriation",
    label="repatriation",
    steps=(
        Step(PROPOSAL, "proposal", "a proposal", settled_by=PROPOSED),
        # The two assessments follow the proposal in either order (often different agencies
        # do them at once) and may be redone; a newer risk assessment replaces the older one.
        Step(
            FAMILY_ASSESSMENT, "family assessment", "a family assessment",
            requires=(PROPOSED,), repeats=True, settled_by=FAMILY_ASSESSED,
        ),
        Step(
            RISK_ASSESSMENT, "risk assessment", "a risk assessment",
            requires=(PROPOSED,), repeats=True, settled_by=NON_REFOULEMENT,
            outcome=_non_refoulement,
        ),
        # Each side decides once or more (Deferred, then Approved); approving needs both
        # assessments, refusing or deferring only the proposal.
        Step(
            APPROVAL, "approval", "an approval",
            requires=(PROPOSED, FAMILY_ASSESSED, RISK_ASSESSED),
            requires_for={"Rejected": (PROPOSED,), "Deferred": (PROPOSED,)},
            repeats=True, settled_by=IS_APPROVED, outcome=_decision,
        ),
        Step(
            TRAVEL, "travel confirmation", "travel confirmation",
            requires=(IS_APPROVED, NON_REFOULEMENT), repeats=True, settled_by=TRAVELLED,
        ),
        # The rule of the issue: no handover without an approval and a risk assessment
        # clearing non-refoulement, both as they stand at the handover.
        Step(
            HANDOVER, "handover", "a handover",
            requires=(TRAVELLED, IS_APPROVED, NON_REFOULEMENT), settled_by=HANDED_OVER,
        ),
        Step(
            ARRIVAL, "arrival confirmation", "arrival confirmation",
            requires=(HANDED_OVER,), settled_by=ARRIVED,
        ),
        Step(FOLLOW_UP, "follow-up", "a follow-up", requires=(ARRIVED,), repeats=True),
    ),
    ends={
        f"{APPROVAL}:Rejected": "the return was rejected (approval: Rejected); another attempt"
        " starts with a new proposal on a new thread",
    },
    request=PROPOSAL,
    answered_by=Requirement(
        "a decision (Approved or Rejected)", (f"{APPROVAL}:Approved", f"{APPROVAL}:Rejected")
    ),
)
# fmt: on

# -- referral ----------------------------------------------------------------------------------

REFERRED = Requirement("a referral (or a compensation claim)", ("Referral", "CompensationClaim"))
ACCEPTED = Requirement(
    "an acceptance (referral response: Accepted)", ("ReferralResponse:Accepted",)
)

# fmt: off
REFERRAL = Procedure(
    name="referral",
    label="referral",
    steps=(
        Step("Referral", "referral", "a referral", settled_by=REFERRED),
        # a victim's claim pursued from abroad is answered like a referral (accepted, more
        # information needed, completed), with no response clock of its own; each change of
        # its status (lodged, awarded, paid) is a new claim message on the thread
        Step("CompensationClaim", "compensation claim", "a compensation claim",
             settled_by=REFERRED, repeats=True),
        # MoreInformationNeeded and Accepted may come more than once; Completed only after
        # an acceptance; Declined or Completed ends the referral.
        Step(
            "ReferralResponse", "referral response", "a referral response",
            requires=(REFERRED,), requires_for={"Completed": (REFERRED, ACCEPTED)},
            repeats=True, outcome=_status,
        ),
    ),
    ends={
        "ReferralResponse:Declined": "the referral was declined",
        "ReferralResponse:Completed": "the referral was completed",
    },
    request="Referral",
    # The requested date asks for a response, so any response (even a question) meets it.
    answered_by=Requirement("a referral response", ("ReferralResponse",)),
    deadline_field="requested_response_date",
)
# fmt: on

# -- mutual legal assistance -------------------------------------------------------------------

REQUESTED = Requirement("an MLA request", ("MlaRequest", *JUDICIAL_REQUESTS))
# each judicial request (a joint team, a warrant, a transfer, assets, a video hearing) is a
# request an MlaResponse answers; only an MlaRequest runs the response clock
_JUDICIAL_LABELS = {
    "JointInvestigationTeam": "joint investigation team",
    "ArrestWarrantNotice": "arrest warrant notice",
    "ProceedingsTransfer": "transfer of proceedings",
    "AssetRecoveryRequest": "asset-recovery request",
    "VideoTestimonyRequest": "video testimony request",
}

# fmt: off
MLA = Procedure(
    name="mla",
    label="MLA request",
    steps=(
        Step("MlaRequest", "MLA request", "an MLA request", settled_by=REQUESTED),
        *(Step(name, label, f"a {label}", settled_by=REQUESTED, repeats=True)
          for name, label in _JUDICIAL_LABELS.items()),
        # Acknowledged, Accepted, NeedsMoreInformation, PartiallyExecuted and Postponed may
        # repeat; Executed or Refused is final. More information travels as a CaseUpdate.
        Step(
            "MlaResponse", "MLA response", "an MLA response",
            requires=(REQUESTED,), repeats=True, outcome=_status,
        ),
    ),
    ends={
        "MlaResponse:Executed": "the request was executed",
        "MlaResponse:Refused": "the request was refused",
    },
    request="MlaRequest",
    # The deadline says when the assistance is needed, so only a final response meets it.
    answered_by=Requirement(
        "a final MLA response (Executed or Refused)",
        ("MlaResponse:Executed", "MlaResponse:Refused"),
    ),
    deadline_field="deadline",
)
# fmt: on

PROCEDURES: Mapping[str, Procedure] = {p.name: p for p in (REPATRIATION, REFERRAL, MLA)}


# -- the state of one thread -------------------------------------------------------------------


class Done(NamedTuple):
    """A step recorded on the thread and its outcome code (``None`` where it has none)."""

    schema: str
    outcome: str | None


@dataclass(frozen=True)
class Problem:
    """Why a step is out of order, in plain words; ``missing``: the requirements not met."""

    step: str
    message: str
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class Override:
    """A step accepted although a rule was not met: the caller audits each one.

    ``in_payload``: the override travels in the message itself (an approval's ``override``,
    which both sides hold), rather than given by the sender's officer for this step.
    """

    step: str
    reason: str
    overridden: str
    in_payload: bool = False


class OutOfOrder(Exception):
    """A step its procedure does not allow yet; the message says what is missing."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


@dataclass(frozen=True)
class ThreadState:
    """Where one case thread stands. Immutable: :func:`advance` returns a new state.

    ``facts`` are what the payloads established as it stands now (see the constants above);
    ``decisions`` each approving organisation's latest decision; ``case_status`` the latest
    case update's status; ``ended`` why the procedure ended, if it did; ``overrides`` the
    steps accepted against a rule; ``flags`` the out-of-order steps a recipient recorded;
    ``deadline`` when the procedure's request should be answered.
    """

    procedure: str
    steps_done: tuple[Done, ...] = ()
    facts: frozenset[str] = frozenset()
    decisions: tuple[tuple[str, str], ...] = ()
    case_status: str | None = None
    ended: str | None = None
    overrides: tuple[Override, ...] = ()
    flags: tuple[Problem, ...] = ()
    deadline: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.procedure not in PROCEDURES:
            known = ", ".join(PROCEDURES)
            raise ValueError(f"no procedure for kind {self.procedure!r} (known: {known})")

    @property
    def closed(self) -> bool:
        return self.case_status in CLOSING_STATUSES

    @property
    def approved(self) -> bool:
        return APPROVED in self.facts

    @property
    def non_refoulement_cleared(self) -> bool:
        return bool(self.facts & {CLEARED_BY_ASSESSMENT, CLEARED_BY_OVERRIDE})

    def done(self, schema: str) -> bool:
        return any(d.schema == schema for d in self.steps_done)

    def holds(self, requirement: Requirement) -> bool:
        recorded = set(self.facts)
        for d in self.steps_done:
            recorded.add(d.schema)
            if d.outcome is not None:
                recorded.add(f"{d.schema}:{d.outcome}")
        return any(name in recorded for name in requirement.any_of)


# -- payload effects beyond the table ----------------------------------------------------------


def _after_risk_assessment(
    state: ThreadState, payload: Mapping[str, Any], outcome: str | None
) -> ThreadState:
    """A newer assessment replaces the older one, and any approval's override of the older."""
    facts = state.facts - {CLEARED_BY_ASSESSMENT, CLEARED_BY_OVERRIDE}
    if outcome == "Cleared":
        facts |= {CLEARED_BY_ASSESSMENT}
    return replace(state, facts=facts)


def _organisation(org: Mapping[str, Any]) -> str:
    """Who decided: the node id where the organisation runs one, else its name."""
    return str(org.get("node_id") or org["org_Name"])


def _after_approval(
    state: ThreadState, payload: Mapping[str, Any], outcome: str | None
) -> ThreadState:
    """Approved means every organisation that decided last decided Approved: one side's
    approval does not cover the other side's deferral. An Approved decision carrying an
    Override (the documented decision the schema asks for when an asylum claim is pending or
    the risk is high) stands in for the clearance until a newer risk assessment arrives."""
    decisions = dict(state.decisions)
    decisions[_organisation(payload["approving_organisation"])] = str(outcome)
    facts = state.facts - {APPROVED}
    if all(d == "Approved" for d in decisions.values()):
        facts |= {APPROVED}
    overrides = state.overrides
    override = payload.get("override")
    if outcome == "Approved" and override is not None:
        facts |= {CLEARED_BY_OVERRIDE}
        reason = f"{override['reason']} (decided by {override['authority']})"
        overrides += (Override(APPROVAL, reason, NON_REFOULEMENT.words, in_payload=True),)
    return replace(state, facts=facts, decisions=tuple(decisions.items()), overrides=overrides)


Effect = Callable[[ThreadState, Mapping[str, Any], str | None], ThreadState]
EFFECTS: Mapping[str, Effect] = {
    RISK_ASSESSMENT: _after_risk_assessment,
    APPROVAL: _after_approval,
}


# -- the machine -------------------------------------------------------------------------------


def _and(words: Iterable[str]) -> str:
    items = list(words)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def procedure_of(schema: str) -> Procedure | None:
    """The procedure whose table has the step ``schema`` (``None`` for a case update)."""
    name = short_name(schema)
    return next((p for p in PROCEDURES.values() if p.step(name) is not None), None)


def _step(state: ThreadState, schema: str) -> tuple[str, Step | None]:
    """The step ``schema`` makes in this thread's procedure; ``None`` for a record that may
    travel on the thread without being a step (a case update). Any other record is not of
    this kind at all: a caller's mistake, not an order problem."""
    procedure = PROCEDURES[state.procedure]
    name = short_name(schema)
    step = procedure.step(name)
    if step is None and name not in KIND_PAYLOADS[procedure.name]:
        raise ValueError(f"{name} is not a record of a {procedure.name} thread")
    return name, step


def check(state: ThreadState, schema: str, payload: Mapping[str, Any]) -> Problem | None:
    """What is wrong with ``schema`` coming next on this thread, or ``None``. Never raises for
    order (only for a record of another kind). A case update is always in order."""
    name, step = _step(state, schema)
    if step is None:
        return None
    procedure = PROCEDURES[state.procedure]
    outcome = step.outcome(payload) if step.outcome is not None else None
    what = f"{step.name} ({outcome})" if step.requires_for and outcome else step.name
    if state.closed:
        return Problem(
            name,
            f"the case is closed (case update: {state.case_status}); {what} needs it reopened"
            " first by a case update with status Active or FollowUp",
        )
    if state.ended is not None:
        return Problem(
            name, f"the {procedure.label} has ended: {state.ended}; {what} cannot follow"
        )
    if not step.repeats and state.done(name):
        return Problem(name, f"{what} happens once per thread and was already recorded")
    needed = step.requirements(outcome)
    missing = tuple(r.words for r in needed if not state.holds(r))
    if missing:
        return Problem(
            name,
            f"{what} needs {_and(r.words for r in needed)} first; missing: {_and(missing)}",
            missing,
        )
    return None


def _aware(value: dt.datetime, what: str) -> dt.datetime:
    if value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (UTC), got {value!r}")
    return value


def _as_deadline(value: Any, what: str) -> dt.datetime:
    """A ``timestamp-millis`` is the deadline itself; a ``date`` lasts until the end of that
    day, UTC (a response on the requested date is in time)."""
    if isinstance(value, dt.datetime):
        return _aware(value, what)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    raise TypeError(f"{what}: expected a date or datetime, got {type(value).__name__}")


def _deadline(
    procedure: Procedure,
    payload: Mapping[str, Any],
    sent_at: dt.datetime | None,
    defaults: Mapping[str, dt.timedelta],
) -> dt.datetime | None:
    asked = payload.get(procedure.deadline_field) if procedure.deadline_field else None
    if asked is not None:
        return _as_deadline(asked, f"{procedure.request}.{procedure.deadline_field}")
    default = defaults.get(procedure.name)
    if default is None or sent_at is None:
        return None
    return _aware(sent_at, "sent_at") + default


def response_deadline(
    schema_name: str,
    payload: Mapping[str, Any],
    sent_at: dt.datetime,
    defaults: Mapping[str, dt.timedelta],
) -> dt.datetime | None:
    """When the request ``payload`` should be answered: the date the payload asks for (an MLA
    request's ``deadline``, a referral's ``requested_response_date``), else ``sent_at`` plus
    ``defaults[kind]`` (e.g. :data:`DEFAULT_RESPONSE_TIMES`), else ``None``. ``None`` too for a
    record that does not wait for an answer."""
    name = short_name(schema_name)
    procedure = next((p for p in PROCEDURES.values() if p.request == name), None)
    if procedure is None:
        return None
    return _deadline(procedure, payload, sent_at, defaults)


def _apply(
    state: ThreadState,
    schema: str,
    payload: Mapping[str, Any],
    sent_at: dt.datetime | None,
    defaults: Mapping[str, dt.timedelta] | None,
) -> ThreadState:
    name, step = _step(state, schema)
    if step is None:
        if name == CASE_UPDATE:
            return replace(state, case_status=str(payload["status"]))
        return state
    procedure = PROCEDURES[state.procedure]
    outcome = step.outcome(payload) if step.outcome is not None else None
    state = replace(state, steps_done=(*state.steps_done, Done(name, outcome)))
    effect = EFFECTS.get(name)
    if effect is not None:
        state = effect(state, payload, outcome)
    ending = procedure.ends.get(f"{name}:{outcome}")
    if ending is not None and state.ended is None:
        state = replace(state, ended=ending)
    if name == procedure.request and state.deadline is None:
        state = replace(state, deadline=_deadline(procedure, payload, sent_at, defaults or {}))
    return state


def advance(
    state: ThreadState,
    schema_name: str,
    payload: Mapping[str, Any],
    *,
    override_reason: str | None = None,
    sent_at: dt.datetime | None = None,
    defaults: Mapping[str, dt.timedelta] | None = None,
) -> ThreadState:
    """The sender's transition: the state after ``schema_name`` with ``payload``, or
    :class:`OutOfOrder` naming what is missing. With a non-empty ``override_reason`` a step out
    of order is accepted and the override recorded (a step in order records none).
    ``sent_at`` and ``defaults`` set the deadline when the step is the procedure's request."""
    if override_reason is not None and not override_reason.strip():
        raise ValueError("an override needs a reason")
    problem = check(state, schema_name, payload)
    if problem is not None:
        if override_reason is None:
            raise OutOfOrder(problem)
        recorded = Override(problem.step, override_reason.strip(), problem.message)
        state = replace(state, overrides=(*state.overrides, recorded))
    return _apply(state, schema_name, payload, sent_at, defaults)


def receive(
    state: ThreadState,
    schema_name: str,
    payload: Mapping[str, Any],
    *,
    sent_at: dt.datetime | None = None,
    defaults: Mapping[str, dt.timedelta] | None = None,
) -> ThreadState:
    """The recipient's transition: never refuses for order. A step out of order is applied
    like any other and its problem added to ``flags``, so a message the network reordered (or
    the sender overrode) is kept and shown, not lost."""
    problem = check(state, schema_name, payload)
    if problem is not None:
        state = replace(state, flags=(*state.flags, problem))
    return _apply(state, schema_name, payload, sent_at, defaults)


class Message(NamedTuple):
    """One stored message of a thread, for :func:`replay`."""

    schema: str
    payload: Mapping[str, Any]
    sent_at: dt.datetime | None = None


def replay(
    messages: Iterable[Message | tuple[str, Mapping[str, Any]]],
    *,
    procedure: str | None = None,
    received: bool = False,
    defaults: Mapping[str, dt.timedelta] | None = None,
) -> ThreadState:
    """The state of a thread from its messages in order (``(schema, payload)`` pairs or
    :class:`Message` with the time sent). Replay them in the order they were created (the
    sender's order), so that what the network reordered is put back. ``procedure``: the
    thread's kind, else found from its first step. ``received``: flag steps out of order
    (:func:`receive`) instead of raising :class:`OutOfOrder` (:func:`advance`)."""
    items = [Message(*m) for m in messages]
    if procedure is None:
        found = next((p for m in items if (p := procedure_of(m.schema)) is not None), None)
        if found is None:
            raise ValueError("cannot tell the procedure of this thread: pass procedure=")
        procedure = found.name
    state = ThreadState(procedure)
    for m in items:
        if received:
            state = receive(state, m.schema, m.payload, sent_at=m.sent_at, defaults=defaults)
        else:
            state = advance(state, m.schema, m.payload, sent_at=m.sent_at, defaults=defaults)
    return state


# -- what the thread waits for -----------------------------------------------------------------


def next_expected(state: ThreadState) -> tuple[str, ...]:
    """The steps (payload record names) the thread waits for now, in the table's order: those
    whose usual requirements hold and that are not settled yet. A case update is always
    possible and not listed; nothing is expected on a closed or ended thread."""
    if state.closed or state.ended is not None:
        return ()
    return tuple(
        step.schema
        for step in PROCEDURES[state.procedure].steps
        if all(state.holds(r) for r in step.requires)
        and not (step.settled_by is not None and state.holds(step.settled_by))
    )


def label(state: ThreadState) -> str:
    """Where the thread stands, in words: "approval (Deferred) recorded; awaiting approval"."""
    if state.closed:
        return f"closed (case update: {state.case_status})"
    if state.ended is not None:
        return f"ended: {state.ended}"
    procedure = PROCEDURES[state.procedure]
    labels = [s.label for s in procedure.steps if s.schema in next_expected(state)]
    awaiting = " or ".join(labels)
    if not state.steps_done:
        return f"not started; awaiting {awaiting}"
    last = state.steps_done[-1]
    done = procedure.label_of(last.schema)
    if last.outcome is not None:
        done += f" ({last.outcome})"
    return f"{done} recorded; awaiting {awaiting}"


def is_overdue(state: ThreadState, now: dt.datetime) -> bool:
    """The deadline has passed and nothing answered the request. A closed case waits for
    nothing, so it is never overdue."""
    if state.deadline is None or state.closed:
        return False
    if state.holds(PROCEDURES[state.procedure].answered_by):
        return False
    return now > state.deadline


def describe(state: ThreadState, *, now: dt.datetime) -> dict[str, Any]:
    """The thread's procedure state for the API, JSON-ready."""
    procedure = PROCEDURES[state.procedure]
    return {
        "procedure": state.procedure,
        "state": label(state),
        "steps_done": [
            {"step": d.schema, "label": procedure.label_of(d.schema), "outcome": d.outcome}
            for d in state.steps_done
        ],
        "next_expected": list(next_expected(state)),
        "deadline": format_timestamp(state.deadline) if state.deadline else None,
        "overdue": is_overdue(state, now),
        "overrides": [
            {
                "step": o.step,
                "reason": o.reason,
                "overridden": o.overridden,
                "in_payload": o.in_payload,
            }
            for o in state.overrides
        ],
        "flags": [{"step": f.step, "problem": f.message} for f in state.flags],
        "closed": state.closed,
        "ended": state.ended,
        "facts": sorted(state.facts),
    }


# -- what a node keeps of each step -------------------------------------------------------------
#
# A sender cannot read back what it sent (an envelope is sealed for its recipients only) and
# nothing is kept in plain text at rest, so a node keeps, for each step of a thread, only the
# fields these tables read: codes, flags and dates, never a name or a story. The state is
# rebuilt from them.

_KEPT_FIELDS: dict[str, tuple[str, ...] | None] = {  # field -> sub-fields kept (None: all)
    "decision": None,
    "status": None,
    "deadline": None,
    "requested_response_date": None,
    "risk_assessment": ("completed", "asylum_claim_pending", "risk_level"),
    "approving_organisation": ("node_id", "org_Name"),
    "override": ("authority",),
}


def essentials(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a step's (decoded) payload the procedure tables read, JSON-ready: an
    override keeps only who decided (its reason stays in the message)."""
    kept: dict[str, Any] = {}
    for name, parts in _KEPT_FIELDS.items():
        value = payload.get(name)
        if isinstance(value, dt.datetime):
            value = {"datetime": format_timestamp(value)}
        elif isinstance(value, dt.date):
            value = {"date": value.isoformat()}
        elif isinstance(value, Mapping) and parts is not None:
            value = {p: value.get(p) for p in parts}
            if name == "override":
                value["reason"] = "(recorded in the message)"
        if value is not None:
            kept[name] = value
    return kept


def restore(kept: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`essentials` read back: dates and times as the tables expect them."""
    restored = dict(kept)
    for name, value in kept.items():
        if isinstance(value, Mapping) and "datetime" in value:
            restored[name] = dt.datetime.fromisoformat(value["datetime"])  # "Z" read as UTC
        elif isinstance(value, Mapping) and "date" in value:
            restored[name] = dt.date.fromisoformat(value["date"])
    return restored


class Kept(NamedTuple):
    """One step as a node keeps it: record name, :func:`essentials`, when it was created, and
    the reason given when the sender overrode the order (None otherwise)."""

    schema: str
    kept: Mapping[str, Any]
    sent_at: dt.datetime
    override_reason: str | None = None


def rebuild(
    steps: Iterable[Kept], procedure: str, defaults: Mapping[str, dt.timedelta] | None = None
) -> ThreadState:
    """A thread's state from what a node kept, in creation order: a step its sender overrode
    records that override again; any other step out of order is flagged, never refused (the
    other side's steps, or the network's order, are not this node's to refuse)."""
    state = ThreadState(procedure)
    for step in steps:
        payload = restore(step.kept)
        if step.override_reason:
            state = advance(state, step.schema, payload, override_reason=step.override_reason,
                            sent_at=step.sent_at, defaults=defaults)  # fmt: skip
        else:
            state = receive(state, step.schema, payload, sent_at=step.sent_at, defaults=defaults)
    return state


def tracked(schema: str) -> bool:
    """Whether a record is kept as a step: a procedure's step, or a case update (which may
    close or reopen the case)."""
    return procedure_of(schema) is not None or short_name(schema) == CASE_UPDATE


def state_of(
    steps: Sequence[ProcedureStep], defaults: Mapping[str, dt.timedelta] | None = None
) -> ThreadState | None:
    """A thread's state from the steps a node kept (:class:`node.store.base.ProcedureStep`),
    None when the thread has no procedure (only case updates, or alerts). Records that are not
    of the procedure's kind are left out (they say nothing about its order)."""
    procedure = next((s.procedure for s in steps if s.procedure), None)
    if procedure is None:
        return None
    allowed = KIND_PAYLOADS[procedure]
    return rebuild(
        [Kept(s.schema_name, s.kept, s.sent_at, s.override_reason) for s in steps
         if short_name(s.schema_name) in allowed],
        procedure, defaults,
    )  # fmt: skip


def next_state(
    steps: Sequence[ProcedureStep],
    schema: str,
    payload: Mapping[str, Any],
    *,
    sent_at: dt.datetime,
    override_reason: str | None = None,
    received: bool = False,
    defaults: Mapping[str, dt.timedelta] | None = None,
) -> tuple[ThreadState | None, ThreadState | None]:
    """(before, after) for a new step of a thread: the sender's :func:`advance` (raises
    :class:`OutOfOrder`) or, ``received``, the recipient's :func:`receive` (flags). (None, None)
    when the thread has no procedure or the record is not of its kind."""
    before = state_of(steps, defaults)
    if before is None:
        found = procedure_of(schema)
        if found is None:
            return None, None
        before = ThreadState(found.name)
    if short_name(schema) not in KIND_PAYLOADS[before.procedure]:
        return None, None
    if received:
        return before, receive(before, schema, payload, sent_at=sent_at, defaults=defaults)
    after = advance(before, schema, payload, override_reason=override_reason, sent_at=sent_at,
                    defaults=defaults)  # fmt: skip
    return before, after


def kept_step(
    thread_id: str, message_id: str, party: str, direction: str, schema: str,
    payload: Mapping[str, Any], sent_at: dt.datetime, override_reason: str | None = None,
) -> ProcedureStep:  # fmt: skip
    """The row a node keeps for a step it sent or received."""
    found = procedure_of(schema)
    return ProcedureStep(
        thread_id=thread_id, message_id=message_id, party=party, direction=direction,
        procedure=found.name if found else "", schema_name=schema,
        kept=essentials(payload), sent_at=sent_at, override_reason=override_reason,
    )  # fmt: skip


def full_request(procedure: Procedure) -> str:
    """The full record name of the step that opens a procedure and waits for an answer."""
    return f"xnode.payload.{procedure.request}"
