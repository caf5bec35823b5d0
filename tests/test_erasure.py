"""Erasure: the decisions (node.erasure, pure) and what the store keeps afterwards.

The end-to-end run between three `xnode run` processes is tests/test_erasure_processes.py."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import replace

from node import audit, erasure
from node.erasure import ERASED, HELD, NOT_FOUND, REFUSED, Decision, Held
from node.store.base import LegalHold, QuarantineEntry, Retention
from tests.test_store import T0, at, dedupe, ev, inbox_message, outbound

ORIGIN, OTHER = "za-shelter-johannesburg", "zw-social-welfare"
UUID = "01937a60-1f00-7a22-9c11-5d2e8f3b4c60"


def hold(hold_id=1, message_id=None, thread_id=None) -> LegalHold:
    return LegalHold(hold_id, "JudicialProceedings", "Exhibit HC/2026/88", "Registrar", T0,
                     message_id=message_id, thread_id=thread_id)  # fmt: skip


# -- decisions --------------------------------------------------------------------------------


def test_each_named_message_gets_one_decision_in_order():
    held = {
        "m1": [Held("m1", ORIGIN, "t1")],
        "m2": [Held("m2", OTHER, "t1")],  # someone else's message under that id
        "m3": [Held("m3", OTHER, "t2"), Held("m3", ORIGIN, "t2")],  # a collision: ours is there
        "m4": [Held("m4", ORIGIN, "t4")],
    }
    decisions = erasure.decide(ORIGIN, ["m1", "m2", "m3", "m4", "m5"], held,
                               [hold(message_id="m4")])  # fmt: skip
    assert [(d.message_id, d.outcome) for d in decisions] == [
        ("m1", ERASED),
        ("m2", REFUSED),
        ("m3", ERASED),
        ("m4", HELD),
        ("m5", NOT_FOUND),
    ]
    assert decisions[1].others == (OTHER,)
    assert decisions[3].hold is not None and decisions[3].hold.hold_id == 1
    assert erasure.to_erase(decisions) == ["m1", "m3"]


def test_a_hold_on_the_thread_covers_every_message_in_it_and_no_other():
    held = {"m1": [Held("m1", ORIGIN, "t1")], "m2": [Held("m2", ORIGIN, "t2")]}
    decisions = erasure.decide(ORIGIN, ["m1", "m2"], held, [hold(thread_id="t1")])
    assert [d.outcome for d in decisions] == [HELD, ERASED]
    assert hold(thread_id="t1").covers("mX", "t1") and not hold(thread_id="t1").covers("m1", "t2")
    assert hold(message_id="m1").covers("m1", "t9") and not hold(message_id="m1").covers("m2", "")


def test_a_thread_request_names_only_what_the_requester_sent_there():
    in_thread = [Held("a", ORIGIN, "t1"), Held("b", OTHER, "t1"), Held("c", ORIGIN, "t1"),
                 Held("d", ORIGIN, "t2")]  # fmt: skip
    request = {"message_ids": ["x", "c"], "thread_id": "t1"}
    assert erasure.named_messages(ORIGIN, request, in_thread) == ["x", "c", "a"]
    assert erasure.named_messages(ORIGIN, {"message_ids": ["x"]}, in_thread) == ["x"]
    assert erasure.named_messages(ORIGIN, {"thread_id": "t2"}, in_thread) == ["d"]


def test_the_answer_lists_every_decision_with_the_hold_reason_only_when_held():
    decisions = [Decision("m1", ERASED), Decision("m2", HELD, hold(message_id="m2")),
                 Decision("m3", NOT_FOUND), Decision("m4", REFUSED, others=(OTHER,))]  # fmt: skip
    request = {"handling": {"legal_basis": "Data Protection Act 2021, s. 23", "language": "fr"}}
    now = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
    answer = erasure.result_payload("r1", request, decisions, now, ["mw-a", "mw-a", "bw-b"])
    assert answer["request_id"] == "r1" and answer["completed_at"] == "2026-12-01T09:30:00.000Z"
    assert answer["handling"] == {"code": "H0", "legal_basis": "Data Protection Act 2021, s. 23",
                                  "language": "fr", "retention_days": 3650}  # fmt: skip
    assert answer["passed_on_to"] == ["bw-b", "mw-a"]
    assert answer["results"] == [
        {"message_id": "m1", "outcome": "Erased", "hold_reason": None, "note": None},
        {"message_id": "m2", "outcome": "Held", "hold_reason": "JudicialProceedings",
         "note": "Exhibit HC/2026/88"},
        {"message_id": "m3", "outcome": "NotFound", "hold_reason": None, "note": None},
        {"message_id": "m4", "outcome": "Refused", "hold_reason": None, "note": None},
    ]  # fmt: skip


def test_the_request_payload_is_valid_and_names_no_person(registry):
    from node import validation

    now = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    payload = erasure.request_payload(["01937a4e-5b2c-7d10-8a3f-2c9e4b7d1a05"], None,
                                      "ConsentWithdrawn", None, now, relayed_from=("n", UUID))  # fmt: skip
    assert payload["handling"] == {"code": "H0", "legal_basis": erasure.ERASURE_LEGAL_BASIS,
                                   "language": "en", "retention_days": 3650}  # fmt: skip
    assert payload["relayed_from"] == {"node_id": "n", "request_id": UUID}
    assert payload["requested_at"] == "2026-12-01T09:00:00.000Z"
    value = registry.from_json(erasure.REQUEST_SCHEMA, payload)
    assert validation.validate(registry, erasure.REQUEST_SCHEMA, value,
                               validation.Context(now)) == []  # fmt: skip
    assert erasure.request_payload([], "t", "Other", "x", now)["relayed_from"] is None


def test_status_per_recipient_in_one_word():
    def result(*outcomes: str) -> dict:
        return {"results": [{"message_id": f"m{i}", "outcome": o} for i, o in
                            enumerate(outcomes)], "passed_on_to": ["x"], "completed_at": "t"}  # fmt: skip

    rows = erasure.status_of(
        {"a": "delivered", "b": "delivered", "c": "delivered", "d": "sent", "e": "rejected",
         "f": "expired", "g": "delivered"},
        {"a": result(ERASED, NOT_FOUND), "b": result(ERASED, HELD, REFUSED),
         "c": result(REFUSED, ERASED), "g": result()},
    )  # fmt: skip
    assert {r["node_id"]: r["status"] for r in rows} == {
        "a": "erased", "b": "held", "c": "refused", "d": "pending", "e": "undelivered",
        "f": "undelivered", "g": "erased"}  # fmt: skip
    assert [r["node_id"] for r in rows] == sorted("abcdefg")
    assert rows[0]["passed_on_to"] == ["x"] and rows[3]["results"] == []
    assert rows[0]["results"] == [{"message_id": "m0", "outcome": ERASED},
                                  {"message_id": "m1", "outcome": NOT_FOUND}]  # fmt: skip
    assert rows[0]["completed_at"] == "t"
    assert rows[0]["delivery"] == "delivered" and rows[4]["delivery"] == "rejected"


def test_one_answer_key_per_request_and_requester():
    assert erasure.result_idempotency_key("a", "r") == "erasure-result:a:r"
    assert erasure.result_idempotency_key("a", "r") != erasure.result_idempotency_key("b", "r")


# -- the store ----------------------------------------------------------------------------------


def test_an_erased_envelope_is_gone_from_the_database_file_and_its_log(store, tmp_path):
    """Stored, checkpointed into the file (as days-old messages are), then erased: neither the
    file nor the write-ahead log holds a byte of it (secure_delete, truncating checkpoint)."""
    secret = os.urandom(3000)
    message = replace(inbox_message("in1", sender=ORIGIN), envelope=secret)
    seq = store.record_inbound(message, dedupe("in1", sender=ORIGIN),
                               [ev("received", message_id="in1")]).seq  # fmt: skip
    store.record_rejection(None, QuarantineEntry(at(2), "replay", "copy", secret,
                                                 sender=ORIGIN, message_id="in1"), [])  # fmt: skip
    store.enqueue_adapter("webhook", 10)
    assert store.checkpoint()
    files = [store.path, store.path.with_name(store.path.name + "-wal")]
    assert secret[1000:1064] in b"".join(p.read_bytes() for p in files if p.exists())

    erased = store.erase_received(ORIGIN, ["in1", "unknown"], at(10), {"request_id": "r1"})
    assert [m.seq for m in erased] == [seq] and erased[0].envelope == secret
    assert store.checkpoint()
    assert secret[1000:1064] not in b"".join(p.read_bytes() for p in files if p.exists())
    kept = store.inbox_at(seq)
    assert kept is not None and kept.erased and kept.envelope == b"" and kept.local_wrap is None
    assert kept.envelope_sha256 == "ef" * 32 and kept.thread_id == "t9"  # the metadata stays
    assert store.adapter_pending("webhook", 10) == []
    assert [q.raw for q in store.quarantined(10)] == [b""]
    events = [e.event for e in store.audit_entries("in1")]
    assert [e.event for e in events] == ["received", "erased"]
    assert events[1].detail == {"from": "inbox", "envelope_sha256": "ef" * 32, "request_id": "r1"}
    assert events[1].peer == ORIGIN
    # asked again: the same rows, no second audit entry
    assert [m.seq for m in store.erase_received(ORIGIN, ["in1"], at(20), {})] == [seq]
    assert len(store.audit_entries("in1")) == 2
    assert audit.verify(store.audit_entries()).ok


def test_only_the_sender_s_own_message_is_erased(store):
    store.record_inbound(inbox_message("in1", sender=OTHER), dedupe("in1", sender=OTHER),
                         [ev("received")])  # fmt: skip
    assert store.erase_received(ORIGIN, ["in1"], at(10), {}) == []
    (kept,) = store.inbox_messages("in1")
    assert not kept.erased and kept.envelope == b"sealed"
    assert store.erase_received(ORIGIN, [], at(10), {}) == []


def test_the_sender_erases_its_own_copies_and_withdraws_what_is_undelivered(store):
    store.submit(outbound("m1"), ev("submitted", message_id="m1"))
    store.apply_receipt("m1", "zw-police", "ab" * 32, delivered=True, reason=None, detail=None,
                        now=at(5), audit=ev("receipted", 5))  # fmt: skip
    ended = store.erase_sent(["m1", "nope"], at(10), {"request_ids": ["r1"]})
    assert ended == [("m1", "mw-police")]
    statuses = {s.recipient: (s.state, s.reason) for s in store.message_status("m1")}
    assert statuses == {"zw-police": ("delivered", None), "mw-police": ("expired", "withdrawn")}
    message = store.outbox_message("m1")
    assert message is not None and message.envelope == b""
    assert store.due_deliveries(at(100000), 10) == []  # nothing left to publish
    event = store.status_events(0, 10)[-1]
    assert (event.recipient, event.status, event.reason) == ("mw-police", "expired", "withdrawn")
    erased = [e.event for e in store.audit_entries("m1") if e.event.event == "erased"]
    assert [e.detail for e in erased] == [{"from": "outbox", "request_ids": ["r1"]}]
    assert store.erase_sent(["m1"], at(11), {}) == []  # again: nothing more, no second entry
    assert len([e for e in store.audit_entries("m1") if e.event.event == "erased"]) == 1
    assert store.erase_sent([], at(11), {}) == []


def test_a_legal_hold_keeps_a_message_from_retention_until_released(store):
    day = dt.timedelta(days=1)
    store.record_inbound(inbox_message("in1"), dedupe("in1"), [ev("received")])
    hold_id = store.add_hold(hold(thread_id="t9"))
    assert [h.hold_id for h in store.holds()] == [hold_id]
    cut = Retention(inbox_before=at(10), outbox_before=T0, quarantine_before=T0)
    assert store.purge(T0 + 400 * day, cut)["inbox"] == 0
    assert store.release_hold(hold_id, "Registrar", at(5))
    assert not store.release_hold(hold_id, "Registrar", at(6))  # not in force any more
    assert not store.release_hold(999, "Registrar", at(6))
    assert store.holds() == [] and store.holds(include_released=True)[0].released_by == "Registrar"
    assert store.purge(T0 + 400 * day, cut)["inbox"] == 1
    events = [e.event.event for e in store.audit_entries()]
    assert events.count("hold-recorded") == 1 and events.count("hold-released") == 1


def test_the_sender_s_retention_ends_a_message_before_the_node_s_own(store):
    day = dt.timedelta(days=1)
    short = replace(inbox_message("in1"), retain_until=at(0) + 90 * day)
    long = replace(inbox_message("in2"), retain_until=at(0) + 900 * day)
    store.record_inbound(short, dedupe("in1"), [ev("received")])
    store.record_inbound(long, dedupe("in2"), [ev("received")])
    assert store.inbox_messages("in1")[0].retain_until == at(0) + 90 * day
    node_limit = Retention(inbox_before=T0 - day, outbox_before=T0, quarantine_before=T0)
    assert store.purge(T0 + 89 * day, node_limit)["inbox"] == 0
    assert store.purge(T0 + 91 * day, node_limit)["inbox"] == 1
    assert [m.message_id for m in store.inbox(0, None, 10)] == ["in2"]
    purged = [e.event for e in store.audit_entries("in1") if e.event.event == "purged"]
    assert purged[0].detail == {"from": "inbox", "limit": "sender"}
    # the node's own limit, reached first for in2
    store.purge(T0 + 100 * day, replace(node_limit, inbox_before=T0 + 50 * day))
    purged = [e.event for e in store.audit_entries("in2") if e.event.event == "purged"]
    assert purged[0].detail == {"from": "inbox", "limit": "node"}


def test_erasure_requests_are_found_among_received_messages(store):
    store.record_inbound(inbox_message("in1"), dedupe("in1"), [ev("received")])
    request = replace(inbox_message("in2"), schema_name=erasure.REQUEST_SCHEMA)
    seq = store.record_inbound(request, dedupe("in2"), [ev("received")]).seq
    assert [m.message_id for m in store.inbox_of_schema(erasure.REQUEST_SCHEMA, 0, 10)] == ["in2"]
    assert store.inbox_of_schema(erasure.REQUEST_SCHEMA, seq, 10) == []


def test_a_forwarder_reports_a_downstream_answer_about_the_asker_s_own_messages():
    answer = {"handling": {"code": "H0"}, "request_id": "relay-1", "passed_on_to": [],
              "completed_at": "2026-12-01T10:00:00.000Z", "reported_for": None,
              "results": [{"message_id": "fwd-1", "outcome": "Erased", "hold_reason": None,
                           "note": None},
                          {"message_id": "unknown", "outcome": "NotFound", "hold_reason": None,
                           "note": None}]}  # fmt: skip
    report = erasure.report_payload("origin-req", answer, {"fwd-1": "orig-1"}, "mw-social-welfare")
    assert report["request_id"] == "origin-req" and report["reported_for"] == "mw-social-welfare"
    assert report["results"] == [{"message_id": "orig-1", "outcome": "Erased",
                                  "hold_reason": None, "note": None}]  # fmt: skip
    assert report["completed_at"] == answer["completed_at"]
    assert erasure.report_idempotency_key("a", "m") == "erasure-report:a:m"
    rows = erasure.status_of({"zm": "delivered", "mw": "via zm"},
                             {"zm": {"results": []}, "mw": report})  # fmt: skip
    assert [(r["node_id"], r["delivery"], r["status"]) for r in rows] == [
        ("mw", "via zm", "erased"),
        ("zm", "delivered", "erased"),
    ]
