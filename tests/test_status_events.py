"""Status events: the final outcome of every sent message, per recipient, told to the local
system that sent it (webhook, folder, API) instead of waiting for it to poll.

Store tests first (each final change writes exactly one event, in its own transaction, and
receipts this node owes never do); then real nodes on the embedded broker: a delivery that ends
because its recipient is revoked reaches the webhook (signed, ``X-Xnode-Event: status``) and
the folder, a delivered one too, a failing webhook gets the event again, and the API pages them.
"""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from node.audit import AuditEvent
from node.store.base import OutboundMessage, Retention
from node.store.sqlite import SqliteStore

T0 = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)
SHA = "ab" * 32


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def ev(event: str, seconds: float = 0, **kw) -> AuditEvent:
    return AuditEvent(event, at(seconds), **kw)


@pytest.fixture
def store(tmp_path):
    s = SqliteStore.open(tmp_path / "node.db")
    yield s
    s.close()


def outbound(message_id: str, recipients=("zw-police", "mw-police"), *, kind="mla",
             thread_id="case-lusaka-7", expires=3600, expects_receipt=True) -> OutboundMessage:  # fmt: skip
    return OutboundMessage(
        message_id=message_id, kind=kind, thread_id=thread_id, schema_name="xnode.payload.Case",
        priority="normal", envelope=b"sealed-" + message_id.encode(), envelope_sha256=SHA,
        created_at=T0, expires_at=at(expires), recipients=recipients,
        expects_receipt=expects_receipt,
    )  # fmt: skip


def receipt(store: SqliteStore, message_id: str, recipient: str, seconds: float,
            delivered: bool = True, reason: str | None = None, detail: str | None = None):  # fmt: skip
    return store.apply_receipt(message_id, recipient, SHA, delivered=delivered, reason=reason,
                               detail=detail, now=at(seconds),
                               audit=ev("receipted" if delivered else "rejected", seconds))  # fmt: skip


def outcomes(store: SqliteStore, after: int = 0) -> list[tuple]:
    return [(e.message_id, e.recipient, e.status, e.reason, e.detail)
            for e in store.status_events(after, 100)]  # fmt: skip


# -- store ----------------------------------------------------------------------------------------


def test_a_receipt_writes_one_event_and_a_repeated_receipt_none(store):
    store.submit(outbound("m1"), ev("submitted", message_id="m1"))
    assert store.status_events(0, 100) == []  # submitting and publishing are not final
    store.record_attempt("m1", "zw-police", published=True, now=at(1), next_attempt_at=at(31),
                         audit=ev("published", 1))  # fmt: skip
    assert store.status_events(0, 100) == []
    assert receipt(store, "m1", "zw-police", 2).first
    assert not receipt(store, "m1", "zw-police", 3).first  # a copy of the same receipt
    assert not receipt(store, "m1", "zw-police", 4, delivered=False, reason="policy-denied").first
    assert receipt(store, "m1", "mw-police", 5, delivered=False, reason="schema-invalid",
                   detail="payload.status: expected one of Active, Closed").first  # fmt: skip
    assert not receipt(store, "m1", "mw-police", 6).first  # final stays final
    [delivered, rejected] = store.status_events(0, 100)
    assert (delivered.message_id, delivered.recipient, delivered.status, delivered.reason,
            delivered.detail, delivered.at) == ("m1", "zw-police", "delivered", None, None, at(2))  # fmt: skip
    assert (rejected.recipient, rejected.status, rejected.reason, rejected.detail, rejected.at) == (
        "mw-police", "rejected", "schema-invalid",
        "payload.status: expected one of Active, Closed", at(5))  # fmt: skip
    # the kind and thread come from the sent message: a local system files the event with it
    assert {(e.kind, e.thread_id) for e in (delivered, rejected)} == {("mla", "case-lusaka-7")}
    assert delivered.seq < rejected.seq


def test_a_receipt_matching_nothing_writes_nothing(store):
    store.submit(outbound("m1"), ev("submitted", message_id="m1"))
    assert store.apply_receipt("m1", "zw-police", "cd" * 32, delivered=True, reason=None,
                               detail=None, now=at(1), audit=ev("receipted", 1)) is None  # fmt: skip
    assert receipt(store, "no-such-message", "zw-police", 1) is None
    assert store.status_events(0, 100) == []


def test_revoking_a_recipient_ends_its_open_deliveries_with_one_event_each(store):
    store.submit(outbound("m1"), ev("submitted", message_id="m1"))
    store.submit(outbound("m2", ("zw-police",), kind="referral"), ev("submitted", message_id="m2"))
    # a receipt this node owes zw-police: it ends too, but is no news to any local system
    store.submit(outbound("r1", ("zw-police",), kind="receipt", expects_receipt=False),
                 ev("submitted", message_id="r1"))  # fmt: skip
    receipt(store, "m1", "mw-police", 1)  # already delivered there: untouched
    why = "zw-police was revoked or suspended; nothing more is sent to it"
    assert store.reject_open("zw-police", "recipient-revoked", why, at(5)) == [
        ("m1", "mla"), ("m2", "referral")]  # fmt: skip
    assert outcomes(store) == [
        ("m1", "mw-police", "delivered", None, None),
        ("m1", "zw-police", "rejected", "recipient-revoked", why),
        ("m2", "zw-police", "rejected", "recipient-revoked", why),
    ]
    assert store.message_status("r1")[0].state == "rejected"  # ended, without an event
    assert store.reject_open("zw-police", "recipient-revoked", why, at(6)) == []
    assert not receipt(store, "m1", "zw-police", 7).first  # a late receipt changes nothing
    assert len(store.status_events(0, 100)) == 3


def test_expiry_writes_one_event_per_open_delivery_and_none_for_receipts(store):
    store.submit(outbound("m1", expires=60), ev("submitted", message_id="m1"))
    store.submit(outbound("r1", ("zw-police",), kind="receipt", expires=60,
                          expects_receipt=False), ev("submitted", message_id="r1"))  # fmt: skip
    receipt(store, "m1", "zw-police", 10)
    assert store.expire_due(at(59)) == []
    assert sorted(store.expire_due(at(60))) == [("m1", "mw-police"), ("r1", "zw-police")]
    assert outcomes(store) == [("m1", "zw-police", "delivered", None, None),
                               ("m1", "mw-police", "expired", None, None)]  # fmt: skip
    assert store.status_events(0, 100)[-1].at == at(60)
    assert store.expire_due(at(120)) == []
    assert not receipt(store, "m1", "mw-police", 130).first  # receipt-after-expiry: no event
    assert len(store.status_events(0, 100)) == 2


def test_a_receipt_closed_by_publication_writes_no_event(store):
    store.submit(outbound("r1", ("zm-police",), kind="receipt", expects_receipt=False),
                 ev("submitted", message_id="r1"))  # fmt: skip
    store.record_attempt("r1", "zm-police", published=True, now=at(1), next_attempt_at=None,
                         audit=ev("receipt-sent", 1))  # fmt: skip
    assert store.message_status("r1")[0].state == "delivered"
    assert store.status_events(0, 100) == []


def test_the_event_and_the_state_change_are_one_transaction(store):
    """Failure injection: the event cannot be written (a trigger refuses it). The delivery must
    stay open, so the outcome is recorded — with its event — when it is tried again."""
    store.submit(outbound("m1"), ev("submitted", message_id="m1"))
    store.submit(outbound("m2", expires=60), ev("submitted", message_id="m2"))
    audit_length = len(store.audit_entries())
    store._conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON status_events"
                        " BEGIN SELECT RAISE(ABORT, 'no room for the event'); END")  # fmt: skip
    for change in (lambda: receipt(store, "m1", "zw-police", 1),
                   lambda: store.reject_open("mw-police", "recipient-revoked", "gone", at(2)),
                   lambda: store.expire_due(at(60))):  # fmt: skip
        with pytest.raises(sqlite3.IntegrityError, match="no room for the event"):
            change()
    assert {s.state for m in ("m1", "m2") for s in store.message_status(m)} == {"queued"}
    assert len(store.audit_entries()) == audit_length  # nothing audited either
    store._conn.execute("DROP TRIGGER refuse")
    assert receipt(store, "m1", "zw-police", 3).first
    assert outcomes(store) == [("m1", "zw-police", "delivered", None, None)]


def test_pages_follow_the_cursor_and_filter_by_kind(store):
    for i, kind in enumerate(("mla", "alert", "mla", "referral", "mla")):
        store.submit(outbound(f"m{i}", ("zw-police",), kind=kind), ev("submitted"))
        receipt(store, f"m{i}", "zw-police", i + 1)
    every = store.status_events(0, 100)
    assert [e.message_id for e in every] == ["m0", "m1", "m2", "m3", "m4"]
    first = store.status_events(0, 2)
    assert [e.message_id for e in first] == ["m0", "m1"]
    assert [e.message_id for e in store.status_events(first[-1].seq, 2)] == ["m2", "m3"]
    assert store.status_events(every[-1].seq, 2) == []
    mla = store.status_events(0, 100, ("mla",))
    assert [e.message_id for e in mla] == ["m0", "m2", "m4"]
    assert [e.message_id for e in store.status_events(mla[0].seq, 1, ("mla", "referral"))] == [
        "m2"]  # fmt: skip
    assert store.status_events(0, 100, ()) == []


def test_events_are_purged_with_their_sent_message(store):
    day = 86400
    store.submit(outbound("old", ("zw-police",), expires=400 * day), ev("submitted"))
    store.submit(outbound("recent", ("zw-police",), expires=400 * day), ev("submitted"))
    store.submit(outbound("open", ("zw-police", "mw-police"), expires=400 * day), ev("submitted"))
    receipt(store, "old", "zw-police", 1 * day)
    receipt(store, "recent", "zw-police", 80 * day)
    receipt(store, "open", "zw-police", 1 * day)  # its other recipient has not answered
    cut = at(30 * day)
    counts = store.purge(at(100 * day), Retention(cut, cut, cut))
    assert counts["outbox"] == 1
    assert [e.message_id for e in store.status_events(0, 100)] == ["recent", "open"]


def test_the_cursor_only_moves_forward_and_is_audited_with_its_move(store):
    store.set_adapter_cursor("webhook-status", 5)
    store.set_adapter_cursor("webhook-status", 3)  # a stale writer cannot move it back
    assert store.adapter_cursor("webhook-status") == 5
    assert store.adapter_cursor("folder-status") == 0  # one cursor per adapter
    store.set_adapter_cursor("webhook-status", 6, [ev("webhook-failed", 9, message_id="m1",
                                                      detail={"seq": 6})])  # fmt: skip
    assert store.adapter_cursor("webhook-status") == 6
    assert store.audit_entries("m1")[-1].event.detail == {"seq": 6}
