"""The procedure of a case thread (node/procedures.py): the tables, the machine that reads
them, deadlines, and a model of each procedure written here independently of the tables, which
a random sequence of steps must agree with at every step."""

from __future__ import annotations

import datetime as dt
import json
from functools import reduce

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.codec import default_registry, schemas_directory
from node.payloads import JUDICIAL_REQUESTS, KIND_PAYLOADS
from node.procedures import (
    APPROVAL,
    ARRIVAL,
    CLEARING_RISK_LEVELS,
    CLOSING_STATUSES,
    DEFAULT_RESPONSE_TIMES,
    FAMILY_ASSESSMENT,
    FOLLOW_UP,
    HANDOVER,
    MLA,
    PROCEDURES,
    PROPOSAL,
    REFERRAL,
    REPATRIATION,
    RISK_ASSESSMENT,
    TRAVEL,
    Done,
    Message,
    OutOfOrder,
    Override,
    ThreadState,
    advance,
    check,
    describe,
    is_overdue,
    label,
    next_expected,
    procedure_of,
    receive,
    replay,
    response_deadline,
)

UTC = dt.UTC
SENT = dt.datetime(2026, 11, 2, 8, 30, tzinfo=UTC)

# -- invented payloads: only what the procedures read, plus a little context -------------------

ZM_WELFARE = {
    "org_Name": "Department of Social Welfare, Lusaka",
    "org_Type": "SocialWelfare",
    "org_ShippingCountry": "ZM",
    "org_ShippingCity": "Lusaka",
    "node_id": "zm-social-welfare",
}
ZW_WELFARE = {
    "org_Name": "Department of Social Development, Harare",
    "org_Type": "SocialWelfare",
    "org_ShippingCountry": "ZW",
    "org_ShippingCity": "Harare",
    "node_id": "zw-social-development",
}
ZW_NO_NODE = {"org_Name": "Harare Children's Home", "org_Type": "Shelter", "node_id": None}
CHIRUNDU = {"country": "ZW", "place_name": "Chirundu border post"}


def proposal():
    return {
        "current_location": {"country": "ZM", "place_name": "Lusaka"},
        "proposed_date": dt.date(2027, 1, 20),
        "person_wishes_to_return": True,
    }


def family():
    return {
        "family_traced": True,
        "reunification_recommended": True,
        "findings": "Aunt traced in Mbare, Harare; willing to care for her.",
    }


def risk(*, completed=True, level="Low", asylum=False):
    return {
        "risk_assessment": {
            "completed": completed,
            "risk_level": level,
            "asylum_claim_pending": asylum,
            "risks_in_country_of_return": "Recruiter last seen in Chinhoyi.",
        }
    }


def approval(decision="Approved", org=ZM_WELFARE, override=None):
    return {
        "approving_organisation": org,
        "decision": decision,
        "risk_assessment": risk()["risk_assessment"],
        "override": override,
        "reasons": None if decision == "Approved" else "Awaiting the court in Lusaka.",
    }


OVERRIDE = {
    "reason": "Asylum claim withdrawn in writing on 3 November; return is her wish.",
    "authority": "Director of Social Welfare, Lusaka (Anti-Human Trafficking Act s. 35)",
    "decided_at": dt.datetime(2026, 11, 3, 10, 0, tzinfo=UTC),
}


def travel():
    return {"transport": "road via Chirundu", "handover_point": CHIRUNDU}


def handover():
    return {"location": CHIRUNDU, "notes": "Handed to the Harare social worker."}


def arrival():
    return {"location": {"country": "ZW", "place_name": "Harare"}}


def follow_up(n=1):
    return {"reintegration_status": f"visit {n}: back in school in Harare"}


def case_update(status="Active"):
    return {"status": status, "note": "Case conference held in Lusaka."}


def mla_request(deadline=None):
    return {"subject_matter": "Trafficking Lusaka to Harare", "deadline": deadline}


def mla_response(status):
    return {"request_id": "01a1fa10-0000-7000-8000-000000000001", "status": status}


def referral(requested=None):
    return {"phase": "FirstAssistanceAndProtection", "requested_response_date": requested}


def referral_response(status):
    return {"referral_id": "01a1fa10-0000-7000-8000-000000000002", "status": status}


P = (PROPOSAL, proposal())
F = (FAMILY_ASSESSMENT, family())
R = (RISK_ASSESSMENT, risk())
R_ASYLUM = (RISK_ASSESSMENT, risk(asylum=True))
R_HIGH = (RISK_ASSESSMENT, risk(level="High"))
R_OPEN = (RISK_ASSESSMENT, risk(completed=False, level="Unknown"))
A = (APPROVAL, approval())
A_ZW = (APPROVAL, approval(org=ZW_WELFARE))
A_OVERRIDE = (APPROVAL, approval(override=OVERRIDE))
DEFER = (APPROVAL, approval("Deferred"))
DEFER_ZW = (APPROVAL, approval("Deferred", org=ZW_WELFARE))
REJECT = (APPROVAL, approval("Rejected"))
T = (TRAVEL, travel())
H = (HANDOVER, handover())
ARR = (ARRIVAL, arrival())
FU = (FOLLOW_UP, follow_up())
MAIN = [P, F, R, A, T, H, ARR, FU]

REQ = ("MlaRequest", mla_request())
JIT = ("JointInvestigationTeam", {"stage": "Proposal"})
WARRANT = ("ArrestWarrantNotice", {"purpose": "ProvisionalArrest"})
CLAIM = ("CompensationClaim", {"status": "Lodged"})
REFERRED_WORDS = "a referral (or a compensation claim)"
ACK, ACC, MORE, PART, EXEC, REFUSED, POSTPONED = (
    ("MlaResponse", mla_response(s))
    for s in (
        "Acknowledged", "Accepted", "NeedsMoreInformation", "PartiallyExecuted", "Executed",
        "Refused", "Postponed",
    )
)  # fmt: skip
REF = ("Referral", referral())
R_ACC, R_DECL, R_MORE, R_DONE = (
    ("ReferralResponse", referral_response(s))
    for s in ("Accepted", "Declined", "MoreInformationNeeded", "Completed")
)


def cu(status="Active"):
    return ("CaseUpdate", case_update(status))


def run(messages, procedure=None):
    return replay(messages, procedure=procedure)


# -- the tables, as the procedure on paper says ------------------------------------------------


def on_every_thread() -> set[str]:
    """Records every business kind accepts (case updates): not steps of any procedure."""
    kinds = [set(names) for kind, names in KIND_PAYLOADS.items()
             if kind not in ("receipt", "statistics")]  # fmt: skip
    return set.intersection(*kinds) | INFORMING


# records that inform without asking for anything: they travel on a thread, take no step
INFORMING = {"ConsularNotification", "SpontaneousInformation"}


@pytest.mark.parametrize("kind", ["repatriation", "referral", "mla"])
def test_each_kind_has_a_procedure_whose_steps_are_its_records(kind):
    procedure = PROCEDURES[kind]
    assert procedure.name == kind
    steps = [s.schema for s in procedure.steps]
    assert set(steps) == set(KIND_PAYLOADS[kind]) - on_every_thread()
    assert len(steps) == len(set(steps))


def test_the_repatriation_table():
    """The table, step by step, in the words of the procedure (issue item 5)."""
    table = {
        s.schema: (
            {r.words for r in s.requires},
            {o: {r.words for r in rs} for o, rs in s.requires_for.items()},
            s.repeats,
            s.settled_by.words if s.settled_by else None,
        )
        for s in REPATRIATION.steps
    }
    clear = "a risk assessment clearing non-refoulement"
    approved = "an approval (approved)"
    assert table == {
        PROPOSAL: (set(), {}, False, "a proposal"),
        FAMILY_ASSESSMENT: ({"a proposal"}, {}, True, "a family assessment"),
        RISK_ASSESSMENT: ({"a proposal"}, {}, True, clear),
        APPROVAL: (
            {"a proposal", "a family assessment", "a risk assessment"},
            {"Rejected": {"a proposal"}, "Deferred": {"a proposal"}},
            True,
            approved,
        ),
        TRAVEL: ({approved, clear}, {}, True, "travel confirmation"),
        HANDOVER: ({"travel confirmation", approved, clear}, {}, False, "a handover"),
        ARRIVAL: ({"a handover"}, {}, False, "arrival confirmation"),
        FOLLOW_UP: ({"arrival confirmation"}, {}, True, None),
    }
    assert [s.schema for s in REPATRIATION.steps] == [
        PROPOSAL, FAMILY_ASSESSMENT, RISK_ASSESSMENT, APPROVAL, TRAVEL, HANDOVER, ARRIVAL,
        FOLLOW_UP,
    ]  # fmt: skip
    assert dict(REPATRIATION.ends).keys() == {"RepatriationApproval:Rejected"}
    assert REPATRIATION.request == PROPOSAL and REPATRIATION.deadline_field is None


def test_a_step_that_happens_once_is_settled_by_itself():
    for procedure in PROCEDURES.values():
        for step in procedure.steps:
            if not step.repeats:
                assert step.settled_by is not None
                # by itself, or by another request that opens the same procedure
                assert step.schema in step.settled_by.any_of


def test_the_referral_and_mla_tables():
    ref, claim, resp = REFERRAL.steps
    assert (ref.schema, ref.requires, ref.repeats) == ("Referral", (), False)
    assert (claim.schema, claim.requires, claim.repeats) == ("CompensationClaim", (), True)
    assert (resp.schema, [r.words for r in resp.requires], resp.repeats) == (
        "ReferralResponse", [REFERRED_WORDS], True,
    )  # fmt: skip
    assert {o: [r.words for r in rs] for o, rs in resp.requires_for.items()} == {
        "Completed": [REFERRED_WORDS, "an acceptance (referral response: Accepted)"]
    }
    assert resp.settled_by is None
    assert set(REFERRAL.ends) == {"ReferralResponse:Declined", "ReferralResponse:Completed"}
    assert REFERRAL.deadline_field == "requested_response_date"
    req, *judicial, answer = MLA.steps
    assert (req.schema, req.requires, req.repeats) == ("MlaRequest", (), False)
    assert [s.schema for s in judicial] == list(JUDICIAL_REQUESTS)
    assert all(s.requires == () and s.repeats for s in judicial)
    assert (answer.schema, [r.words for r in answer.requires], answer.repeats) == (
        "MlaResponse", ["an MLA request"], True,
    )  # fmt: skip
    assert answer.requires_for == {} and answer.settled_by is None
    assert set(MLA.ends) == {"MlaResponse:Executed", "MlaResponse:Refused"}
    assert MLA.deadline_field == "deadline"


def test_every_outcome_the_tables_name_is_a_code():
    """A typo in a table's outcome would silently never match: check them against the lists."""
    codes = {
        APPROVAL: {"Approved", "Rejected", "Deferred"},
        "ReferralResponse": {"Accepted", "Declined", "MoreInformationNeeded", "Completed"},
        "MlaResponse": {
            "Acknowledged", "Accepted", "NeedsMoreInformation", "PartiallyExecuted", "Executed",
            "Refused", "Postponed",
        },
    }  # fmt: skip
    lists = {
        APPROVAL: "approval_decision",
        "ReferralResponse": "referral_response_status",
        "MlaResponse": "mla_response_status",
    }
    for schema, name in lists.items():
        assert code_list(name) == codes[schema]
    assert CLOSING_STATUSES < code_list("case_status")
    assert CLEARING_RISK_LEVELS < code_list("risk_level")
    for procedure in PROCEDURES.values():
        named = list(procedure.ends) + [
            n for r in (procedure.answered_by,) for n in r.any_of if ":" in n
        ]
        for step in procedure.steps:
            for rs in (step.requires, *step.requires_for.values()):
                named += [n for r in rs for n in r.any_of if ":" in n]
            assert set(step.requires_for) <= codes.get(step.schema, set())
        for item in named:
            schema, outcome = item.split(":")
            assert outcome in codes[schema], item


def code_list(name: str) -> set[str]:
    document = json.loads((schemas_directory() / "codes" / f"{name}.json").read_text("utf-8"))
    return {c["code"] for c in document["codes"]}


def test_procedure_of_each_step_and_kind():
    for procedure in PROCEDURES.values():
        for step in procedure.steps:
            assert procedure_of(step.schema) is procedure
            assert procedure_of("xnode.payload." + step.schema) is procedure
    assert procedure_of("CaseUpdate") is None
    assert procedure_of("Alert") is None


def test_alerts_and_unknown_kinds_have_no_procedure():
    with pytest.raises(
        ValueError, match=r"^no procedure for kind 'alert' \(known: repatriation, referral, mla\)$"
    ):
        ThreadState("alert")


def test_a_record_of_another_kind_is_a_mistake_not_an_order_problem():
    state = ThreadState("repatriation")
    with pytest.raises(ValueError, match="MlaRequest is not a record of a repatriation thread"):
        check(state, *REQ)
    with pytest.raises(ValueError, match="Alert is not a record"):
        advance(state, "Alert", {})
    with pytest.raises(ValueError):
        receive(state, "Referral", referral())


# -- legal paths -------------------------------------------------------------------------------

LEGAL_REPATRIATIONS = {
    "as numbered": MAIN,
    "risk before family": [P, R, F, A, T, H, ARR, FU],
    "deferred, then approved": [P, DEFER, F, R, DEFER, A, T, H, ARR],
    "both sides approve": [P, F, R, A, A_ZW, T, H, ARR, FU],
    "one side defers, then approves": [P, F, R, A, DEFER_ZW, A_ZW, T, H, ARR],
    "organisation without a node": [P, F, R, (APPROVAL, approval(org=ZW_NO_NODE)), T, H],
    "reassessed until clear": [P, F, R_OPEN, R_HIGH, R, A, T, H, ARR],
    "asylum claim overridden in the approval": [P, F, R_ASYLUM, A_OVERRIDE, T, H, ARR],
    "family reassessed, travel rebooked": [P, F, R, F, A, T, T, H, ARR],
    "assessments redone after approval": [P, F, R, A, R, F, T, H],
    "repeated follow-up": [*MAIN, (FOLLOW_UP, follow_up(2)), (FOLLOW_UP, follow_up(3))],
    "case updates between": [P, cu(), F, R, cu("FollowUp"), A, T, H, ARR, cu(), FU],
    "closed and reopened": [P, F, cu("Closed"), cu("Active"), R, A, T, H],
}
LEGAL_MLA = {
    "executed": [REQ, EXEC],
    "refused": [REQ, REFUSED],
    "in parts": [REQ, ACK, ACC, PART, PART, PART, EXEC],
    "more information": [REQ, ACK, MORE, cu(), MORE, ACC, POSTPONED, PART, EXEC],
    "still open": [REQ, ACK, POSTPONED, POSTPONED],
}
LEGAL_REFERRALS = {
    "accepted and completed": [REF, R_ACC, R_DONE],
    "declined": [REF, R_DECL],
    "questions first": [REF, R_MORE, R_MORE, R_ACC, R_MORE, R_ACC, R_DONE],
    "declined after questions": [REF, R_MORE, cu(), R_DECL],
    "accepted, still open": [REF, R_ACC],
}


@pytest.mark.parametrize("path", LEGAL_REPATRIATIONS.values(), ids=LEGAL_REPATRIATIONS)
def test_legal_repatriation(path):
    state = run(path)
    steps = [s for s, _ in path if s != "CaseUpdate"]
    assert [d.schema for d in state.steps_done] == steps
    assert state.overrides == () or state.overrides[0].in_payload
    assert state.flags == ()
    assert state.procedure == "repatriation"
    assert not state.closed and state.ended is None


@pytest.mark.parametrize("path", LEGAL_MLA.values(), ids=LEGAL_MLA)
def test_legal_mla(path):
    state = run(path)
    assert [d.schema for d in state.steps_done] == [s for s, _ in path if s != "CaseUpdate"]
    assert state.overrides == () and state.flags == ()


@pytest.mark.parametrize("path", LEGAL_REFERRALS.values(), ids=LEGAL_REFERRALS)
def test_legal_referral(path):
    state = run(path)
    assert [d.schema for d in state.steps_done] == [s for s, _ in path if s != "CaseUpdate"]
    assert state.overrides == () and state.flags == ()


def test_the_main_path_step_by_step():
    """What the thread waits for and how it reads after each step of a return."""
    expected = [
        ((FAMILY_ASSESSMENT, RISK_ASSESSMENT),
         "proposal recorded; awaiting family assessment or risk assessment"),
        ((RISK_ASSESSMENT,), "family assessment recorded; awaiting risk assessment"),
        ((APPROVAL,), "risk assessment (Cleared) recorded; awaiting approval"),
        ((TRAVEL,), "approval (Approved) recorded; awaiting travel confirmation"),
        ((HANDOVER,), "travel confirmation recorded; awaiting handover"),
        ((ARRIVAL,), "handover recorded; awaiting arrival confirmation"),
        ((FOLLOW_UP,), "arrival confirmation recorded; awaiting follow-up"),
        ((FOLLOW_UP,), "follow-up recorded; awaiting follow-up"),
    ]  # fmt: skip
    state = ThreadState("repatriation")
    assert next_expected(state) == (PROPOSAL,)
    assert label(state) == "not started; awaiting proposal"
    for (schema, payload), (nxt, words) in zip(MAIN, expected, strict=True):
        state = advance(state, schema, payload)
        assert next_expected(state) == nxt
        assert label(state) == words
    assert state.approved and state.non_refoulement_cleared


def test_what_a_return_waits_for_on_the_way():
    assert next_expected(run([P, F, R_ASYLUM])) == (RISK_ASSESSMENT, APPROVAL)
    assert next_expected(run([P, R_ASYLUM])) == (FAMILY_ASSESSMENT, RISK_ASSESSMENT)
    assert next_expected(run([P, DEFER])) == (FAMILY_ASSESSMENT, RISK_ASSESSMENT)
    assert next_expected(run([P, F, R, DEFER])) == (APPROVAL,)
    assert next_expected(run([P, F, R, A, DEFER_ZW])) == (APPROVAL,)
    # approved, but a newer assessment blocks: a new assessment is what it waits for
    assert next_expected(run([P, F, R, A, R_HIGH])) == (RISK_ASSESSMENT,)
    assert next_expected(run([P, F, R_HIGH, A_OVERRIDE])) == (TRAVEL,)
    assert next_expected(run([P, F, R, A, T, R_HIGH])) == (RISK_ASSESSMENT,)


def test_what_mla_and_referral_threads_wait_for():
    assert next_expected(ThreadState("mla")) == ("MlaRequest", *JUDICIAL_REQUESTS)
    assert next_expected(run([JIT])) == ("MlaResponse",)
    assert next_expected(run([REQ])) == ("MlaResponse",)
    assert next_expected(run([REQ, PART, PART])) == ("MlaResponse",)
    assert next_expected(run([REQ, EXEC])) == ()
    assert (
        label(run([REQ, PART]))
        == "MLA response (PartiallyExecuted) recorded; awaiting MLA response"
    )
    assert label(run([REQ, REFUSED])) == "ended: the request was refused"
    assert next_expected(ThreadState("referral")) == ("Referral", "CompensationClaim")
    assert next_expected(run([CLAIM], procedure="referral")) == ("ReferralResponse",)
    assert next_expected(run([REF, R_ACC])) == ("ReferralResponse",)
    assert next_expected(run([REF, R_DECL])) == ()
    assert label(run([REF])) == "referral recorded; awaiting referral response"
    assert label(run([REF, R_ACC, R_DONE])) == "ended: the referral was completed"
    assert label(run([REF, R_DECL])) == "ended: the referral was declined"


def test_facts_of_a_return():
    state = run([P, F, R])
    assert state.non_refoulement_cleared and not state.approved
    state = advance(state, *A)
    assert state.approved and state.decisions == (("zm-social-welfare", "Approved"),)
    state = advance(state, *DEFER_ZW)
    assert not state.approved
    assert dict(state.decisions) == {
        "zm-social-welfare": "Approved",
        "zw-social-development": "Deferred",
    }
    state = advance(state, *A_ZW)
    assert state.approved
    state = advance(state, *REJECT)
    assert not state.approved and state.ended is not None
    assert dict(run([P, (APPROVAL, approval("Deferred", org=ZW_NO_NODE))]).decisions) == {
        "Harare Children's Home": "Deferred"
    }


@pytest.mark.parametrize(
    "assessment, clears",
    [
        (risk(), True),
        (risk(level="Medium"), True),
        (risk(level="High"), False),
        (risk(level="Unknown"), False),
        (risk(asylum=True), False),
        (risk(completed=False), False),
        (risk(completed=False, level="Unknown"), False),
        (risk(level="Low", asylum=True), False),
    ],
)
def test_which_risk_assessment_clears_non_refoulement(assessment, clears):
    state = run([P, (RISK_ASSESSMENT, assessment)])
    assert state.non_refoulement_cleared is clears
    assert state.steps_done[-1] == Done(RISK_ASSESSMENT, "Cleared" if clears else "NotCleared")


def test_the_latest_risk_assessment_counts_and_ends_an_approvals_override():
    assert not run([P, F, R, R_HIGH]).non_refoulement_cleared
    assert run([P, F, R_HIGH, R]).non_refoulement_cleared
    overridden = run([P, F, R_ASYLUM, A_OVERRIDE])
    assert overridden.non_refoulement_cleared
    assert overridden.overrides == (
        Override(
            APPROVAL,
            OVERRIDE["reason"] + " (decided by " + OVERRIDE["authority"] + ")",
            "a risk assessment clearing non-refoulement",
            in_payload=True,
        ),
    )
    assert not advance(overridden, *R_HIGH).non_refoulement_cleared
    assert advance(overridden, *R).non_refoulement_cleared
    # only an approval that approves overrides
    deferred = (APPROVAL, approval("Deferred", override=OVERRIDE))
    state = run([P, F, R_ASYLUM, deferred])
    assert not state.non_refoulement_cleared and state.overrides == ()


# -- steps out of order ------------------------------------------------------------------------

CLEAR = "a risk assessment clearing non-refoulement"
APPROVED_WORDS = "an approval (approved)"
OUT_OF_ORDER = [
    # (before, step, missing)
    ([], F, ("a proposal",)),
    ([], R, ("a proposal",)),
    ([], A, ("a proposal", "a family assessment", "a risk assessment")),
    ([], REJECT, ("a proposal",)),
    ([], DEFER, ("a proposal",)),
    ([P], A, ("a family assessment", "a risk assessment")),
    ([P, F], A, ("a risk assessment",)),
    ([P, R], A, ("a family assessment",)),
    ([P, R, DEFER], A, ("a family assessment",)),
    ([], T, (APPROVED_WORDS, CLEAR)),
    ([P, F, R], T, (APPROVED_WORDS,)),
    ([P, F, R, DEFER], T, (APPROVED_WORDS,)),
    ([P, F, R_HIGH], T, (APPROVED_WORDS, CLEAR)),
    ([P, F, R_ASYLUM, A], T, (CLEAR,)),
    ([P, F, R, A, DEFER_ZW], T, (APPROVED_WORDS,)),
    ([], H, ("travel confirmation", APPROVED_WORDS, CLEAR)),
    ([P, F, R, A], H, ("travel confirmation",)),
    ([P, F, R, A, T, DEFER_ZW], H, (APPROVED_WORDS,)),
    ([P, F, R, A, T, DEFER], H, (APPROVED_WORDS,)),
    ([P, F, R, A, T, R_HIGH], H, (CLEAR,)),
    ([P, F, R, A, T, R_OPEN], H, (CLEAR,)),
    ([P, F, R_ASYLUM, A_OVERRIDE, T, R_ASYLUM], H, (CLEAR,)),
    ([], ARR, ("a handover",)),
    ([P, F, R, A, T], ARR, ("a handover",)),
    ([], FU, ("arrival confirmation",)),
    ([P, F, R, A, T, H], FU, ("arrival confirmation",)),
    ([], ACK, ("an MLA request",)),
    ([], EXEC, ("an MLA request",)),
    ([], R_MORE, (REFERRED_WORDS,)),
    ([], R_DONE, (REFERRED_WORDS, "an acceptance (referral response: Accepted)")),
    ([REF], R_DONE, ("an acceptance (referral response: Accepted)",)),
    ([REF, R_MORE, R_MORE], R_DONE, ("an acceptance (referral response: Accepted)",)),
]


@pytest.mark.parametrize("before, step, missing", OUT_OF_ORDER)
def test_a_step_out_of_order_is_refused_naming_what_is_missing(before, step, missing):
    state = run(before, procedure=procedure_of(step[0]).name)
    with pytest.raises(OutOfOrder) as caught:
        advance(state, *step)
    problem = caught.value.problem
    assert problem.missing == missing
    assert problem.step == step[0]
    assert str(caught.value) == problem.message
    assert problem.message.endswith("first; missing: " + _and(missing))
    for words in missing:
        assert words in problem.message
    assert check(state, *step) == problem


def _and(words):
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def test_the_handover_rule_in_words():
    with pytest.raises(OutOfOrder) as caught:
        advance(run([P, F, R, A, T, DEFER]), *H)
    assert str(caught.value) == (
        "a handover needs travel confirmation, an approval (approved) and a risk assessment"
        " clearing non-refoulement first; missing: an approval (approved)"
    )
    with pytest.raises(
        OutOfOrder,
        match=r"^an approval \(Approved\) needs a proposal, a family "
        r"assessment and a risk assessment first; missing: a risk assessment$",
    ):
        advance(run([P, F]), *A)
    with pytest.raises(OutOfOrder, match=r"^a referral response \(Completed\) needs a referral"):
        advance(run([REF]), *R_DONE)
    with pytest.raises(OutOfOrder, match=r"^an MLA response needs an MLA request first; missing"):
        advance(ThreadState("mla"), *EXEC)


ONCE = [
    ([P], P, "a proposal happens once per thread and was already recorded"),
    ([P, F, R, A, T, H], H, "a handover happens once per thread"),
    ([P, F, R, A, T, H, ARR], ARR, "arrival confirmation happens once per thread"),
    ([REQ], REQ, "an MLA request happens once per thread"),
    ([REQ, ACK], REQ, "an MLA request happens once per thread"),
    ([REF], REF, "a referral happens once per thread"),
]


@pytest.mark.parametrize("before, step, words", ONCE)
def test_a_step_that_happens_once_is_refused_the_second_time(before, step, words):
    with pytest.raises(OutOfOrder, match="^" + words) as caught:
        advance(run(before), *step)
    assert caught.value.problem.step == step[0]
    assert caught.value.problem.missing == ()


ENDED = [
    (
        [P, REJECT],
        [F, R, A, A_ZW, DEFER, REJECT, T, H, P],
        "the repatriation has ended: the return was rejected",
    ),
    ([P, F, R, A, REJECT], [T, H, A], "the repatriation has ended: the return was rejected"),
    (
        [REQ, EXEC],
        [ACK, PART, EXEC, REFUSED, REQ],
        "the MLA request has ended: the request was executed",
    ),
    ([REQ, PART, REFUSED], [ACC, EXEC], "the MLA request has ended: the request was refused"),
    (
        [REF, R_DECL],
        [R_ACC, R_MORE, R_DONE, REF],
        "the referral has ended: the referral was declined",
    ),
    ([REF, R_ACC, R_DONE], [R_ACC, R_DONE], "the referral has ended: the referral was completed"),
]


@pytest.mark.parametrize("before, steps, words", ENDED)
def test_nothing_follows_the_end_of_a_procedure_but_case_updates(before, steps, words):
    state = run(before)
    assert next_expected(state) == ()
    for step in steps:
        with pytest.raises(OutOfOrder, match="^" + words) as caught:
            advance(state, *step)
        assert caught.value.problem.missing == ()
        assert caught.value.problem.step == step[0]
    assert advance(state, *cu("FollowUp")).case_status == "FollowUp"


def test_a_rejection_says_a_new_attempt_starts_a_new_thread():
    assert run([P, REJECT]).ended == (
        "the return was rejected (approval: Rejected); another attempt starts with a new"
        " proposal on a new thread"
    )


# -- case updates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", [*LEGAL_REPATRIATIONS.values(), *LEGAL_MLA.values(), *LEGAL_REFERRALS.values()]
)
@pytest.mark.parametrize("status", ["Active", "FollowUp"])
def test_a_case_update_anywhere_changes_no_step(path, status):
    plain = run(path)
    for at in range(len(path) + 1):
        with_update = run([*path[:at], cu(status), *path[at:]], procedure=plain.procedure)
        assert with_update.steps_done == plain.steps_done
        assert with_update.facts == plain.facts
        assert next_expected(with_update) == next_expected(plain)
        assert not with_update.closed


@pytest.mark.parametrize("status", ["Closed", "ClosedReferred"])
def test_a_closing_case_update_stops_the_procedure_until_reopened(status):
    state = run([P, F, R, cu(status)])
    assert state.closed and state.case_status == status
    assert next_expected(state) == ()
    assert label(state) == f"closed (case update: {status})"
    with pytest.raises(
        OutOfOrder,
        match=f"^the case is closed \\(case update: {status}\\); an "
        r"approval \(Approved\) needs it reopened first",
    ):
        advance(state, *A)
    assert check(state, *F).message.startswith("the case is closed")
    assert check(state, *cu("Closed")) is None
    reopened = advance(state, *cu("Active"))
    assert not reopened.closed
    assert next_expected(reopened) == (APPROVAL,)
    advance(reopened, *A)
    assert run([P, cu(status), cu("FollowUp")]).closed is False


def test_a_case_update_may_open_a_thread_whose_kind_is_given():
    with pytest.raises(
        ValueError, match=r"^cannot tell the procedure of this thread: pass procedure=$"
    ):
        replay([cu()])
    state = replay([cu(), REF], procedure="referral")
    assert state.steps_done == (Done("Referral", None),)
    assert replay([cu(), cu("Closed")], procedure="mla").closed


def test_full_schema_names_are_accepted():
    state = replay([("xnode.payload.RepatriationProposal", proposal())])
    state = advance(state, "xnode.payload.CaseUpdate", case_update("Closed"))
    assert state.closed and state.steps_done == (Done(PROPOSAL, None),)


# -- overrides ---------------------------------------------------------------------------------


def test_an_override_accepts_a_step_out_of_order_and_is_recorded():
    state = run([P, F, R])
    reason = "Child at risk in the Lusaka shelter; the Minister approved by phone, letter follows."
    after = advance(state, *T, override_reason=f"  {reason} ")
    assert after.steps_done[-1] == Done(TRAVEL, None)
    assert after.overrides == (
        Override(
            TRAVEL,
            reason,
            "travel confirmation needs an approval (approved) and a risk assessment clearing"
            " non-refoulement first; missing: an approval (approved)",
        ),
    )
    assert after.flags == ()
    # a second override adds to the record
    later = advance(after, *H, override_reason="same decision")
    assert [o.step for o in later.overrides] == [TRAVEL, HANDOVER]
    assert "missing: an approval (approved)" in later.overrides[1].overridden


def test_an_override_on_a_step_in_order_records_nothing():
    state = advance(run([P, F, R]), *A, override_reason="not needed")
    assert state.overrides == ()


@pytest.mark.parametrize("reason", ["", "   ", "\n"])
def test_an_override_needs_a_reason(reason):
    with pytest.raises(ValueError, match=r"^an override needs a reason$"):
        advance(ThreadState("repatriation"), *H, override_reason=reason)
    with pytest.raises(ValueError):
        advance(ThreadState("repatriation"), *P, override_reason=reason)


def test_overrides_cover_ended_closed_and_repeated_steps():
    rejected = advance(run([P, REJECT]), *P, override_reason="new decision by the Minister")
    assert rejected.overrides[0].overridden.startswith("the repatriation has ended")
    closed = advance(run([REQ, cu("Closed")]), *ACK, override_reason="late answer")
    assert closed.overrides[0].overridden.startswith("the case is closed")
    assert closed.steps_done[-1] == Done("MlaResponse", "Acknowledged")
    twice = advance(run([REF]), *REF, override_reason="resent with the consent form")
    assert (
        twice.overrides[0].overridden
        == "a referral happens once per thread and was already recorded"
    )


def test_the_first_end_is_kept():
    state = advance(run([REQ, REFUSED]), *EXEC, override_reason="reconsidered")
    assert state.ended == "the request was refused"


# -- the recipient -----------------------------------------------------------------------------


def test_the_recipient_keeps_and_flags_a_step_out_of_order():
    state = run([P, F, R, A])
    after = receive(state, *H)
    assert after.steps_done[-1] == Done(HANDOVER, None)
    assert [f.step for f in after.flags] == [HANDOVER]
    assert after.flags[0].missing == ("travel confirmation",)
    assert after.overrides == ()
    # the late travel confirmation is in order and flags nothing more
    assert receive(after, *T).flags == after.flags
    assert receive(state, *T).flags == ()


def test_replay_of_received_messages_never_raises():
    reordered = [P, F, R, A, H, T, ARR]
    with pytest.raises(OutOfOrder):
        replay(reordered)
    state = replay(reordered, received=True)
    assert [d.schema for d in state.steps_done] == [s for s, _ in reordered]
    assert [(f.step, f.missing) for f in state.flags] == [(HANDOVER, ("travel confirmation",))]
    assert replay(MAIN, received=True).flags == ()


# -- deadlines ---------------------------------------------------------------------------------


def test_an_mla_request_deadline_comes_from_its_payload():
    wanted = dt.datetime(2027, 2, 28, tzinfo=UTC)
    assert (
        response_deadline("MlaRequest", mla_request(wanted), SENT, DEFAULT_RESPONSE_TIMES) == wanted
    )
    assert response_deadline("MlaRequest", mla_request(wanted), SENT, {}) == wanted


def test_a_referral_deadline_is_the_end_of_the_requested_day_utc():
    got = response_deadline("Referral", referral(dt.date(2026, 11, 16)), SENT, {})
    assert got == dt.datetime(2026, 11, 17, 0, 0, tzinfo=UTC)
    assert got.tzinfo is not None


def test_without_a_date_the_default_for_the_kind_applies():
    assert DEFAULT_RESPONSE_TIMES == {
        "mla": dt.timedelta(days=90),
        "referral": dt.timedelta(days=14),
    }
    assert response_deadline(
        "MlaRequest", mla_request(), SENT, DEFAULT_RESPONSE_TIMES
    ) == SENT + dt.timedelta(days=90)
    assert response_deadline(
        "Referral", referral(), SENT, DEFAULT_RESPONSE_TIMES
    ) == SENT + dt.timedelta(days=14)
    assert response_deadline(
        "xnode.payload.Referral", referral(), SENT, {"referral": dt.timedelta(days=3)}
    ) == SENT + dt.timedelta(days=3)
    days30 = {"repatriation": dt.timedelta(days=30)}
    assert response_deadline(PROPOSAL, proposal(), SENT, days30) == SENT + dt.timedelta(days=30)


def test_no_deadline_without_a_date_or_a_default():
    assert response_deadline("MlaRequest", mla_request(), SENT, {}) is None
    assert response_deadline("Referral", referral(), SENT, {"mla": dt.timedelta(days=1)}) is None
    assert response_deadline(PROPOSAL, proposal(), SENT, DEFAULT_RESPONSE_TIMES) is None


@pytest.mark.parametrize(
    "schema, payload",
    [("MlaResponse", mla_response("Accepted")), ("ReferralResponse", referral_response("Accepted")),
     (HANDOVER, handover()), ("CaseUpdate", case_update()), ("Alert", {})],
)  # fmt: skip
def test_records_that_answer_nothing_have_no_deadline(schema, payload):
    everything = {k: dt.timedelta(days=1) for k in ("mla", "referral", "repatriation")}
    assert response_deadline(schema, payload, SENT, everything) is None


def test_deadline_times_must_say_their_zone():
    with pytest.raises(ValueError, match="sent_at must be timezone-aware"):
        response_deadline(
            "MlaRequest", mla_request(), SENT.replace(tzinfo=None), DEFAULT_RESPONSE_TIMES
        )
    with pytest.raises(ValueError, match=r"MlaRequest\.deadline must be timezone-aware"):
        response_deadline("MlaRequest", mla_request(dt.datetime(2027, 1, 1)), SENT, {})
    with pytest.raises(TypeError, match="expected a date or datetime, got str"):
        response_deadline("Referral", referral("2027-01-01"), SENT, {})


def test_deadline_fields_as_fastavro_decodes_them():
    """The types the node hands over after decoding: timestamp-millis -> aware datetime,
    date -> datetime.date."""
    registry = default_registry()

    def decoded(name, file, **changes):
        example = json.loads((schemas_directory() / "examples" / file).read_text("utf-8"))
        example.update(changes)
        full = "xnode.payload." + name
        return registry.decode(full, registry.encode(full, registry.from_json(full, example)))

    mla = decoded("MlaRequest", "mla-request.json", deadline="2027-03-15T06:00:00Z")
    assert isinstance(mla["deadline"], dt.datetime) and mla["deadline"].tzinfo is not None
    assert response_deadline("MlaRequest", mla, SENT, {}) == dt.datetime(2027, 3, 15, 6, tzinfo=UTC)
    ref = decoded("Referral", "referral.json", requested_response_date="2026-12-01")
    assert type(ref["requested_response_date"]) is dt.date
    assert response_deadline("Referral", ref, SENT, {}) == dt.datetime(2026, 12, 2, tzinfo=UTC)
    open_ref = decoded("Referral", "referral.json", requested_response_date=None)
    assert response_deadline(
        "Referral", open_ref, SENT, DEFAULT_RESPONSE_TIMES
    ) == SENT + dt.timedelta(days=14)


def test_the_thread_keeps_the_deadline_of_its_request():
    state = replay([Message("MlaRequest", mla_request(), SENT)], defaults=DEFAULT_RESPONSE_TIMES)
    assert state.deadline == SENT + dt.timedelta(days=90)
    later = SENT + dt.timedelta(days=5)
    state = advance(state, *ACK, sent_at=later, defaults={"mla": dt.timedelta(days=1)})
    assert state.deadline == SENT + dt.timedelta(days=90)
    # the request's own date wins; without a time sent there is no default to add
    wanted = dt.datetime(2027, 1, 5, tzinfo=UTC)
    assert replay([("MlaRequest", mla_request(wanted))]).deadline == wanted
    assert replay([("MlaRequest", mla_request())], defaults=DEFAULT_RESPONSE_TIMES).deadline is None
    assert replay([Message("MlaRequest", mla_request(), SENT)]).deadline is None
    # an overridden second request does not move it
    again = advance(
        state, "MlaRequest", mla_request(wanted), override_reason="amended", sent_at=SENT
    )
    assert again.deadline == SENT + dt.timedelta(days=90)
    assert receive(
        ThreadState("referral"), "Referral", referral(dt.date(2026, 11, 20))
    ).deadline == dt.datetime(2026, 11, 21, tzinfo=UTC)
    # the recipient's path keeps the deadline the same way
    two_weeks = SENT + dt.timedelta(days=14)
    got = receive(
        ThreadState("referral"),
        "Referral",
        referral(),
        sent_at=SENT,
        defaults=DEFAULT_RESPONSE_TIMES,
    )
    assert got.deadline == two_weeks
    got = replay(
        [cu(), Message("Referral", referral(), SENT), R_ACC],
        procedure="referral",
        received=True,
        defaults=DEFAULT_RESPONSE_TIMES,
    )
    assert got.deadline == two_weeks


# -- overdue -----------------------------------------------------------------------------------

DUE = dt.datetime(2027, 2, 1, tzinfo=UTC)
BEFORE, AFTER = DUE - dt.timedelta(minutes=1), DUE + dt.timedelta(minutes=1)


def mla_thread(*responses):
    return replay([("MlaRequest", mla_request(DUE)), *responses])


def test_an_unanswered_request_is_overdue_after_its_deadline():
    state = mla_thread()
    assert not is_overdue(state, BEFORE)
    assert not is_overdue(state, DUE)
    assert is_overdue(state, AFTER)


@pytest.mark.parametrize(
    "responses", [[ACK], [ACC, PART], [MORE], [POSTPONED], [ACK, cu("FollowUp")]]
)
def test_a_partial_answer_does_not_stop_the_mla_clock(responses):
    state = mla_thread(*responses)
    assert is_overdue(state, AFTER) and not is_overdue(state, BEFORE)


@pytest.mark.parametrize("responses", [[EXEC], [PART, EXEC], [REFUSED]])
def test_a_final_answer_stops_the_mla_clock(responses):
    assert not is_overdue(mla_thread(*responses), AFTER)


def test_any_referral_response_answers_the_requested_date():
    due = dt.date(2027, 1, 31)
    for answer in (R_MORE, R_ACC, R_DECL):
        assert not is_overdue(replay([("Referral", referral(due)), answer]), AFTER)
    assert is_overdue(replay([("Referral", referral(due))]), AFTER)
    assert not is_overdue(replay([("Referral", referral(due))]), DUE - dt.timedelta(microseconds=1))


def test_a_return_waits_for_a_decision_only_when_a_default_is_configured():
    thirty = {"repatriation": dt.timedelta(days=30)}
    late = SENT + dt.timedelta(days=31)
    start = [Message(PROPOSAL, proposal(), SENT)]
    assert not is_overdue(replay(start), late)
    assert is_overdue(replay(start, defaults=thirty), late)
    assert is_overdue(replay([*start, F, R, DEFER], defaults=thirty), late)
    assert not is_overdue(replay([*start, F, R, A], defaults=thirty), late)
    assert not is_overdue(replay([*start, REJECT], defaults=thirty), late)


def test_a_closed_case_and_a_thread_without_deadline_are_never_overdue():
    assert not is_overdue(mla_thread(cu("Closed")), AFTER)
    assert is_overdue(mla_thread(cu("Closed"), cu("Active")), AFTER)
    assert not is_overdue(replay([("MlaRequest", mla_request())]), AFTER + dt.timedelta(days=999))
    assert not is_overdue(ThreadState("mla"), AFTER)


# -- describe ----------------------------------------------------------------------------------


def test_describe_for_the_api():
    state = replay(
        [Message("MlaRequest", mla_request(), SENT), ACK, PART], defaults=DEFAULT_RESPONSE_TIMES
    )
    state = advance(state, *cu("Closed"))
    state = advance(state, *PART, override_reason="results arrived after closing")
    assert describe(state, now=SENT + dt.timedelta(days=91)) == {
        "procedure": "mla",
        "state": "closed (case update: Closed)",
        "steps_done": [
            {"step": "MlaRequest", "label": "MLA request", "outcome": None},
            {"step": "MlaResponse", "label": "MLA response", "outcome": "Acknowledged"},
            {"step": "MlaResponse", "label": "MLA response", "outcome": "PartiallyExecuted"},
            {"step": "MlaResponse", "label": "MLA response", "outcome": "PartiallyExecuted"},
        ],
        "next_expected": [],
        "deadline": "2027-01-31T08:30:00.000Z",
        "overdue": False,
        "overrides": [
            {
                "step": "MlaResponse",
                "reason": "results arrived after closing",
                "overridden": "the case is closed (case update: Closed); an MLA response needs"
                " it reopened first by a case update with status Active or FollowUp",
                "in_payload": False,
            }
        ],
        "flags": [],
        "closed": True,
        "ended": None,
        "facts": [],
    }
    reopened = advance(state, *cu("Active"))
    described = describe(reopened, now=SENT + dt.timedelta(days=91))
    assert described["overdue"] is True and described["next_expected"] == ["MlaResponse"]
    assert described["state"] == "MLA response (PartiallyExecuted) recorded; awaiting MLA response"


def test_describe_a_return_with_flags_and_facts():
    state = replay([P, F, R_ASYLUM, A_OVERRIDE, H], received=True)
    described = describe(state, now=SENT)
    assert described["deadline"] is None and described["overdue"] is False
    # handed over before travel was confirmed: both are now possible
    assert described["next_expected"] == [TRAVEL, ARRIVAL]
    assert described["flags"] == [
        {
            "step": HANDOVER,
            "problem": "a handover needs travel confirmation, an approval (approved)"
            " and a risk assessment clearing non-refoulement first; missing: travel confirmation",
        }
    ]
    assert described["overrides"][0]["in_payload"] is True
    assert described["facts"] == sorted(state.facts) and len(described["facts"]) == 2
    assert described["ended"] is None and described["closed"] is False


# -- a model of each procedure, written from the procedure on paper -----------------------------

CLOSING = {"Closed", "ClosedReferred"}


def model_allows(procedure: str, before: list, step) -> bool:
    """Whether ``step`` may follow ``before`` (every step of which was applied, in order or
    not): an independent statement of the rules in docs/procedures.md."""
    schema, payload = step
    if schema == "CaseUpdate":
        return True
    statuses = [p["status"] for s, p in before if s == "CaseUpdate"]
    if statuses and statuses[-1] in CLOSING:
        return False
    done = [(s, p) for s, p in before if s != "CaseUpdate"]
    names = [s for s, _ in done]
    if procedure == "mla":
        if any(s == "MlaResponse" and p["status"] in ("Executed", "Refused") for s, p in done):
            return False
        if schema == "MlaRequest":
            return "MlaRequest" not in names
        if schema in JUDICIAL_REQUESTS:
            return True
        return bool({"MlaRequest", *JUDICIAL_REQUESTS} & set(names))
    if procedure == "referral":
        if any(
            s == "ReferralResponse" and p["status"] in ("Declined", "Completed") for s, p in done
        ):
            return False
        if schema == "Referral":
            return "Referral" not in names
        if schema == "CompensationClaim":
            return True
        asked = bool({"Referral", "CompensationClaim"} & set(names))
        if payload["status"] == "Completed":
            accepted = any(s == "ReferralResponse" and p["status"] == "Accepted" for s, p in done)
            return asked and accepted
        return asked
    # repatriation
    if any(s == APPROVAL and p["decision"] == "Rejected" for s, p in done):
        return False
    if schema in (PROPOSAL, HANDOVER, ARRIVAL) and schema in names:
        return False
    latest = {}
    for s, p in done:
        if s == APPROVAL:
            org = p["approving_organisation"]
            latest[org.get("node_id") or org["org_Name"]] = p["decision"]
    approved = bool(latest) and set(latest.values()) == {"Approved"}
    assessments = [i for i, (s, _) in enumerate(done) if s == RISK_ASSESSMENT]
    last = assessments[-1] if assessments else -1
    cleared = last >= 0 and clears(done[last][1])
    cleared = cleared or any(
        s == APPROVAL and p["decision"] == "Approved" and p.get("override") and i > last
        for i, (s, p) in enumerate(done)
    )
    if schema == PROPOSAL:
        return True
    if schema in (FAMILY_ASSESSMENT, RISK_ASSESSMENT):
        return PROPOSAL in names
    if schema == APPROVAL:
        if payload["decision"] == "Approved":
            return {PROPOSAL, FAMILY_ASSESSMENT, RISK_ASSESSMENT} <= set(names)
        return PROPOSAL in names
    if schema == TRAVEL:
        return approved and cleared
    if schema == HANDOVER:
        return TRAVEL in names and approved and cleared
    if schema == ARRIVAL:
        return HANDOVER in names
    assert schema == FOLLOW_UP
    return ARRIVAL in names


def clears(payload) -> bool:
    r = payload["risk_assessment"]
    return r["completed"] and not r["asylum_claim_pending"] and r["risk_level"] in ("Low", "Medium")


UPDATES = [cu("Active"), cu("FollowUp"), cu("Closed"), cu("ClosedReferred")]
VOCABULARY = {
    "repatriation": [
        P, F, R, R_ASYLUM, R_HIGH, R_OPEN, (RISK_ASSESSMENT, risk(level="Medium")), A, A_ZW,
        A_OVERRIDE, DEFER, DEFER_ZW, REJECT, (APPROVAL, approval("Approved", org=ZW_NO_NODE)),
        T, H, ARR, FU, *UPDATES,
    ],
    "mla": [REQ, JIT, WARRANT, *((name, {}) for name in JUDICIAL_REQUESTS[2:]), ACK, ACC, MORE, PART, EXEC, REFUSED, POSTPONED, *UPDATES],
    "referral": [REF, CLAIM, R_ACC, R_DECL, R_MORE, R_DONE, *UPDATES],
}  # fmt: skip
PROGRESS = {
    "repatriation": [*MAIN, A_ZW, DEFER_ZW, R_HIGH, A_OVERRIDE, cu("Active"), cu("Closed")],
    "mla": [REQ, ACK, PART, PART, EXEC, cu("Closed"), cu("Active")],
    "referral": [REF, R_MORE, R_ACC, R_DONE, cu("Closed"), cu("FollowUp")],
}


def sequences(procedure):
    words = st.sampled_from(VOCABULARY[procedure])
    return st.one_of(
        st.lists(words, max_size=16),
        st.permutations(PROGRESS[procedure]),
        # the legal path with random steps inserted, removed or swapped
        st.permutations(PROGRESS[procedure]).flatmap(
            lambda seq: st.lists(words, max_size=4).map(lambda extra: seq[:5] + extra + seq[5:])
        ),
    )


@pytest.mark.parametrize("procedure", ["repatriation", "mla", "referral"])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_sequence_is_accepted_iff_every_step_has_its_prerequisites_before_it(procedure, data):
    steps = data.draw(sequences(procedure))
    state = ThreadState(procedure)
    flagged = ThreadState(procedure)
    allowed = []
    for i, step in enumerate(steps):
        ok = model_allows(procedure, steps[:i], step)
        allowed.append(ok)
        problem = check(state, *step)
        assert (problem is None) == ok, (steps[: i + 1], problem)
        # every expected step is one the model allows now (with some outcome of it)
        for schema in next_expected(state):
            assert any(
                model_allows(procedure, steps[:i], w)
                for w in VOCABULARY[procedure]
                if w[0] == schema
            ), (steps[:i], schema)
        state = advance(state, *step, override_reason=None if ok else "model says no")
        flagged = receive(flagged, *step)
    assert len(state.overrides) - sum(o.in_payload for o in state.overrides) == allowed.count(False)
    assert len(flagged.flags) == allowed.count(False)
    assert flagged.steps_done == state.steps_done and flagged.facts == state.facts
    if all(allowed):
        assert replay(steps, procedure=procedure).steps_done == state.steps_done
    else:
        with pytest.raises(OutOfOrder) as caught:
            replay(steps, procedure=procedure)
        first = allowed.index(False)
        assert caught.value.problem == check(
            reduce(lambda s, m: advance(s, *m), steps[:first], ThreadState(procedure)),
            *steps[first],
        )
