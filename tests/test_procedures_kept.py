"""What a node keeps of each procedure step (codes and dates only) and the state rebuilt from
it: node.procedures' essentials, restore, rebuild, state_of, next_state, kept_step."""

from __future__ import annotations

import datetime as dt

import pytest

from node import procedures
from node.procedures import Kept, OutOfOrder
from node.store.base import ProcedureStep

T0 = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)
RISK = {"completed": True, "asylum_claim_pending": False, "risk_level": "Low",
        "assessed_by": "Mr Banda", "findings": "Lives with an aunt in Sesheke."}  # fmt: skip


def step(schema: str, kept: dict, minutes: int = 0, override: str | None = None,
         procedure: str | None = None) -> ProcedureStep:  # fmt: skip
    found = procedures.procedure_of(schema)
    return ProcedureStep("t1", f"m{minutes}", "zm-social-welfare", "received",
                         procedure if procedure is not None else found.name if found else "",
                         f"xnode.payload.{schema}", kept, T0 + dt.timedelta(minutes=minutes),
                         override)  # fmt: skip


def test_only_codes_flags_and_dates_are_kept():
    payload = {
        "decision": "Approved", "status": "Active", "risk_assessment": RISK,
        "approving_organisation": {"node_id": "zm-social-welfare", "org_Name": "DSW Lusaka",
                                   "org_Phone": "+260211000000"},
        "override": {"reason": "Ms Phiri asked for it on 3 May", "authority": "Director"},
        "deadline": T0, "requested_response_date": T0.date(),
        "person": {"prs_FirstName": "Mary"}, "summary_of_facts": "Seen at Chirundu.",
    }  # fmt: skip
    kept = procedures.essentials(payload)
    assert kept == {
        "decision": "Approved", "status": "Active",
        "risk_assessment": {"completed": True, "asylum_claim_pending": False,
                            "risk_level": "Low"},
        "approving_organisation": {"node_id": "zm-social-welfare", "org_Name": "DSW Lusaka"},
        "override": {"authority": "Director", "reason": "(recorded in the message)"},
        "deadline": {"datetime": "2026-11-22T09:00:00.000Z"},
        "requested_response_date": {"date": "2026-11-22"},
    }  # fmt: skip
    restored = procedures.restore(kept)
    assert restored["deadline"] == T0 and restored["requested_response_date"] == T0.date()
    assert restored["decision"] == "Approved" and restored["risk_assessment"] == kept[
        "risk_assessment"]  # fmt: skip
    assert procedures.essentials({"decision": None, "other": 1}) == {}


def test_a_thread_rebuilt_from_kept_steps_flags_and_replays_overrides():
    steps = [
        step("RepatriationProposal", {}, 0),
        step("RepatriationHandover", {}, 1, override="Moved at night for her safety."),
        step("RepatriationArrivalConfirmed", {}, 2),
    ]
    state = procedures.state_of(steps)
    assert state is not None and state.procedure == "repatriation"
    assert [o.reason for o in state.overrides] == ["Moved at night for her safety."]
    assert state.flags == ()  # the arrival follows the (overridden) handover in order
    flagged = procedures.state_of([steps[0], steps[2]])
    assert flagged is not None and [f.step for f in flagged.flags] == [
        "RepatriationArrivalConfirmed"
    ]


def test_a_thread_without_a_procedure_step_has_no_state_and_other_kinds_are_left_out():
    assert procedures.state_of([step("CaseUpdate", {"status": "Active"})]) is None
    assert procedures.state_of([]) is None
    mixed = [step("MlaRequest", {}, 0), step("Referral", {}, 1, procedure="referral")]
    state = procedures.state_of(mixed)
    assert state is not None and state.procedure == "mla"
    assert [d.schema for d in state.steps_done] == ["MlaRequest"]


def test_the_next_step_is_checked_strictly_when_sent_and_flagged_when_received():
    steps = [step("MlaRequest", {"deadline": {"datetime": "2027-01-01T00:00:00.000Z"}}, 0)]
    answer = {"status": "Executed"}
    before, after = procedures.next_state(steps, "MlaResponse", answer, sent_at=T0)
    assert before is not None and after is not None
    assert after.deadline == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert procedures.next_expected(after) == ()
    with pytest.raises(OutOfOrder, match="missing: an MLA request"):
        procedures.next_state([], "MlaResponse", answer, sent_at=T0)
    before, after = procedures.next_state([], "MlaResponse", answer, sent_at=T0, received=True)
    assert before is not None and after is not None and len(after.flags) == 1
    _, forced = procedures.next_state([], "MlaResponse", answer, sent_at=T0,
                                      override_reason="Asked on paper.")  # fmt: skip
    assert forced is not None and [o.reason for o in forced.overrides] == ["Asked on paper."]
    assert procedures.next_state([], "Alert", {}, sent_at=T0) == (None, None)
    assert procedures.next_state(steps, "Referral", {}, sent_at=T0) == (None, None)
    assert procedures.next_state([], "CaseUpdate", {"status": "Active"}, sent_at=T0) == (None, None)


def test_a_default_deadline_comes_from_the_send_time():
    defaults = {"mla": dt.timedelta(days=90)}
    _, after = procedures.next_state([], "MlaRequest", {}, sent_at=T0, defaults=defaults)
    assert after is not None and after.deadline == T0 + dt.timedelta(days=90)
    rebuilt = procedures.state_of([step("MlaRequest", {}, 0)], defaults)
    assert rebuilt is not None and rebuilt.deadline == T0 + dt.timedelta(days=90)
    assert procedures.rebuild([Kept("xnode.payload.MlaRequest", {}, T0)], "mla").deadline is None


def test_the_kept_row_and_what_is_tracked():
    row = procedures.kept_step("t9", "m9", "zw-police", "sent", "xnode.payload.MlaResponse",
                               {"status": "Executed", "note": "x"}, T0, "why")  # fmt: skip
    assert row == ProcedureStep("t9", "m9", "zw-police", "sent", "mla",
                                "xnode.payload.MlaResponse", {"status": "Executed"}, T0, "why")  # fmt: skip
    update = procedures.kept_step("t9", "m8", "zw-police", "received",
                                  "xnode.payload.CaseUpdate", {"status": "Closed"}, T0)  # fmt: skip
    assert update.procedure == "" and update.override_reason is None
    assert procedures.tracked("xnode.payload.CaseUpdate")
    assert procedures.tracked("RepatriationHandover")
    assert not procedures.tracked("xnode.payload.Alert")
    assert not procedures.tracked("xnode.payload.ErasureRequest")
    assert procedures.full_request(procedures.MLA) == "xnode.payload.MlaRequest"
    assert procedures.full_request(procedures.REFERRAL) == "xnode.payload.Referral"


def test_an_overridden_step_is_rebuilt_with_its_content_and_time():
    defaults = {"mla": dt.timedelta(days=30)}
    answer = step("MlaResponse", {"status": "Executed"}, 0, override="Asked on paper.")
    state = procedures.state_of([answer], defaults)
    assert state is not None and [d.outcome for d in state.steps_done] == ["Executed"]
    request = step("MlaRequest", {}, 5, override="Reopened by the prosecutor.")
    again = procedures.state_of([answer, request], defaults)
    assert again is not None and again.deadline == T0 + dt.timedelta(minutes=5, days=30)


def test_the_state_before_a_new_step_keeps_its_deadline_default():
    defaults = {"mla": dt.timedelta(days=30)}
    steps = [step("MlaRequest", {}, 0)]
    before, _ = procedures.next_state(steps, "MlaResponse", {"status": "Accepted"}, sent_at=T0,
                                      defaults=defaults)  # fmt: skip
    assert before is not None and before.deadline == T0 + dt.timedelta(days=30)
    _, received = procedures.next_state([], "MlaRequest", {}, sent_at=T0, received=True,
                                        defaults=defaults)  # fmt: skip
    assert received is not None and received.deadline == T0 + dt.timedelta(days=30)
