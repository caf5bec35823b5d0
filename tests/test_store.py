"""SQLite store: transactions, state transitions, dedupe, quarantine, audit chain."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import multiprocessing.synchronize
import os
import sqlite3
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from node import audit
from node.audit import AuditEvent
from node.store.base import (
    DedupeEntry,
    InboxMessage,
    OutboundMessage,
    QuarantineEntry,
    Retention,
    StoreError,
)
from node.store.sqlite import MIGRATIONS, SqliteStore

T0 = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def outbound(message_id="m1", recipients=("zw-police", "mw-police"), key=None, priority="normal",
             expires=3600, expects_receipt=True, thread_id="t1") -> OutboundMessage:  # fmt: skip
    return OutboundMessage(
        message_id=message_id, kind="alert", thread_id=thread_id, schema_name="xnode.payload.Alert",
        priority=priority, envelope=b"sealed-" + message_id.encode(), envelope_sha256="ab" * 32,
        created_at=T0, expires_at=at(expires), recipients=recipients,
        expects_receipt=expects_receipt, idempotency_key=key,
    )  # fmt: skip


def ev(event: str, seconds: float = 0, **kw) -> AuditEvent:
    return AuditEvent(event, at(seconds), **kw)


def test_file_mode_and_migrations_are_idempotent(tmp_path):
    path = tmp_path / "node.db"
    SqliteStore.open(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store = SqliteStore.open(path)
    assert store.schema_version == len(MIGRATIONS)
    store.close()


def test_wal_and_shm_files_are_private_whatever_the_umask(tmp_path):
    """SQLite creates -wal and -shm with the database file's mode; the file is made 0600
    before SQLite opens it, so a loose umask never exposes any of the three."""
    old = os.umask(0o000)
    try:
        store = SqliteStore.open(tmp_path / "node.db")
        store.append_audit([ev("peer-added", peer="zw-police")])
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
        store.close()
    finally:
        os.umask(old)
    assert modes == {"node.db": 0o600, "node.db-wal": 0o600, "node.db-shm": 0o600}


def test_migration_4_keeps_messages_and_keys_them_by_sender(tmp_path):
    """A store written by the previous release (schema 3) keeps its inbox (cursors included),
    dedupe rows and quarantine, and then accepts a second sender's message under a used id."""
    path = tmp_path / "node.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for script in MIGRATIONS[:3]:
        for statement in filter(str.strip, script.split(";")):
            conn.execute(statement)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '3')")
    conn.execute(
        "INSERT INTO inbox (seq, message_id, sender, kind, thread_id, schema_name, handling_code,"
        " envelope, envelope_sha256, created_at, expires_at, received_at, state) VALUES"
        " (7, 'in1', 'zw-police', 'mla', 't9', 'xnode.payload.MlaRequest', 'H1', x'00', 'ef',"
        " 0, 9e9, 1, 'acked')"
    )
    conn.execute("INSERT INTO dedupe VALUES ('in1', 'zw-police', 'delivered', NULL, 'ef', 1, 9e9)")
    conn.execute("INSERT INTO quarantine (received_at, reason, detail, raw) VALUES"
                 " (1, 'malformed', 'x', x'01')")  # fmt: skip
    conn.commit()
    conn.close()
    store = SqliteStore.open(path)
    assert store.schema_version == len(MIGRATIONS)
    old = store.inbox_at(7)
    assert (old.message_id, old.sender, old.state, old.thread_joined) == ("in1", "zw-police",
                                                                           "acked", True)  # fmt: skip
    assert store.seen("zw-police", "in1").answered_at is None
    assert store.quarantined(5)[0].authenticated is False
    result = store.record_inbound(inbox_message(sender="mw-police"), dedupe(sender="mw-police"),
                                  [ev("received")])  # fmt: skip
    assert result.seq == 8 and result.id_also_used_by == ("zw-police",)
    store.close()


def test_refuses_a_newer_store(tmp_path):
    path = tmp_path / "node.db"
    SqliteStore.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this xnode understands"):
        SqliteStore.open(path)


def test_submit_and_idempotency_key(store):
    assert store.submit(outbound("m1", key="req-7"), ev("submitted", message_id="m1")) == "m1"
    assert store.submit(outbound("m2", key="req-7"), ev("submitted", message_id="m2")) == "m1"
    assert store.find_by_idempotency_key("req-7") == "m1"
    assert [s.state for s in store.message_status("m1")] == ["queued", "queued"]
    assert store.message_status("m2") == []
    assert store.outbox_depth() == {"zw-police": 1, "mw-police": 1}


def test_delivery_lifecycle(store):
    store.submit(outbound("m1"), ev("submitted"))
    due = store.due_deliveries(at(0), 10)
    assert {(d.message_id, d.recipient) for d in due} == {("m1", "zw-police"), ("m1", "mw-police")}
    store.record_attempt("m1", "zw-police", published=True, now=at(1), next_attempt_at=at(31),
                         audit=ev("published", 1))  # fmt: skip
    store.record_attempt("m1", "mw-police", published=False, now=at(1), next_attempt_at=at(6),
                         audit=ev("publish-failed", 1))  # fmt: skip
    states = {s.recipient: (s.state, s.attempts) for s in store.message_status("m1")}
    assert states == {"zw-police": ("sent", 1), "mw-police": ("queued", 1)}
    assert [d.recipient for d in store.due_deliveries(at(10), 10)] == ["mw-police"]
    assert {d.recipient for d in store.due_deliveries(at(40), 10)} == {"zw-police", "mw-police"}

    assert not store.apply_receipt("m1", "zw-police", "cd" * 32, delivered=True, reason=None,
                                   detail=None, now=at(2), audit=ev("receipted", 2))  # fmt: skip
    assert store.apply_receipt("m1", "zw-police", "ab" * 32, delivered=True, reason=None,
                               detail=None, now=at(2), audit=ev("receipted", 2))  # fmt: skip
    assert store.apply_receipt("m1", "mw-police", "ab" * 32, delivered=False,
                               reason="policy-denied", detail="no", now=at(3),
                               audit=ev("rejected", 3))  # fmt: skip
    # a late publication attempt never reopens a receipted delivery
    store.record_attempt("m1", "zw-police", published=True, now=at(4), next_attempt_at=at(9),
                         audit=ev("published", 4))  # fmt: skip
    status = {s.recipient: s for s in store.message_status("m1")}
    assert status["zw-police"].state == "delivered"
    assert (status["mw-police"].state, status["mw-police"].reason) == ("rejected", "policy-denied")
    assert store.due_deliveries(at(100), 10) == []
    assert store.outbox_depth() == {}


def test_priority_order_and_expiry(store):
    store.submit(outbound("slow", priority="low"), ev("submitted"))
    store.submit(outbound("fast", priority="urgent", expires=60), ev("submitted"))
    assert store.due_deliveries(at(0), 10)[0].message_id == "fast"
    assert store.expire_due(at(59)) == []
    assert sorted(store.expire_due(at(60))) == [("fast", "mw-police"), ("fast", "zw-police")]
    assert {s.state for s in store.message_status("fast")} == {"expired"}
    assert {d.message_id for d in store.due_deliveries(at(61), 10)} == {"slow"}


def test_a_receipt_after_expiry_keeps_expired_and_is_audited(store):
    # (before audit.py listed 'receipt-after-expiry', this raised and the receipt was quarantined)
    store.submit(outbound("late", recipients=("zw-police",), expires=60), ev("submitted"))
    assert store.expire_due(at(60)) == [("late", "zw-police")]
    match = store.apply_receipt("late", "zw-police", "ab" * 32, delivered=True, reason=None,
                                detail=None, now=at(70), audit=ev("receipted", 70))  # fmt: skip
    assert match is not None and not match.first
    assert [s.state for s in store.message_status("late")] == ["expired"]
    assert store.audit_entries("late")[-1].event.event == "receipt-after-expiry"


def test_fire_and_forget_closes_after_publication(store):
    store.submit(outbound("r1", recipients=("zm-police",), expects_receipt=False), ev("submitted"))
    store.record_attempt("r1", "zm-police", published=True, now=at(1), next_attempt_at=None,
                         audit=ev("receipt-sent", 1))  # fmt: skip
    assert store.message_status("r1")[0].state == "delivered"


def inbox_message(message_id="in1", kind="mla", sender="zw-police") -> InboxMessage:
    return InboxMessage(
        seq=0, message_id=message_id, sender=sender, kind=kind, thread_id="t9",
        in_reply_to=None, schema_name="xnode.payload.MlaRequest", handling_code="H1",
        envelope=b"sealed", envelope_sha256="ef" * 32, created_at=T0, expires_at=at(3600),
        received_at=at(1), state="received",
    )  # fmt: skip


def dedupe(message_id="in1", outcome="delivered", reason=None, sender="zw-police") -> DedupeEntry:
    return DedupeEntry(message_id, sender, outcome, reason, "ef" * 32, at(1), at(86400))


def test_a_message_is_audited_as_received_before_its_receipt_is(store):
    """Causal order in the chain: the reception, then the receipt queued in the same
    transaction (the receipt's own event used to come first)."""
    receipt = outbound("rcpt", recipients=("zw-police",), expects_receipt=False)
    store.record_inbound(inbox_message(), dedupe(), [ev("received", 1, message_id="in1")],
                         (receipt, ev("receipt-sent", 1, message_id="in1")))  # fmt: skip
    events = [e.event.event for e in store.audit_entries("in1")]
    assert events == ["received", "receipt-sent"]


def test_inbound_dedupe_inbox_and_ack(store):
    assert store.seen("zw-police", "in1") is None
    seq = store.record_inbound(inbox_message(), dedupe(), [ev("received", message_id="in1")]).seq
    assert store.seen("zw-police", "in1").outcome == "delivered"
    with pytest.raises(sqlite3.IntegrityError):  # a second insert of the same id is impossible
        store.record_inbound(inbox_message(), dedupe(), [ev("received")])
    store.record_inbound(inbox_message("in2", kind="alert"), dedupe("in2"), [ev("received")])
    assert [m.message_id for m in store.inbox(0, None, 10)] == ["in1", "in2"]
    assert [m.message_id for m in store.inbox(seq, None, 10)] == ["in2"]
    assert [m.message_id for m in store.inbox(0, "alert", 10)] == ["in2"]
    assert store.ack(seq, at(5)) and not store.ack(999, at(5))
    assert store.inbox_at(seq).state == "acked"
    assert store.audit_entries("in1")[-1].event.peer == "zw-police"


def test_seen_many_finds_what_was_decided_among_many_keys(store):
    """The consumer looks up a whole batch at once: by authenticated sender and id, over more
    keys than one query takes."""
    store.record_inbound(inbox_message(), dedupe(), [ev("received")])
    store.record_inbound(inbox_message(sender="mw-police"), dedupe(sender="mw-police"),
                         [ev("received")])  # fmt: skip
    keys = [("zw-police", "in1"), ("bw-police", "in1"), ("mw-police", "in1")]
    keys += [("zw-police", f"absent-{i}") for i in range(1000)]  # more than one query's worth
    keys.append(("zw-police", "in1"))  # asked twice
    found = store.seen_many(keys)
    assert sorted(found) == [("mw-police", "in1"), ("zw-police", "in1")]
    assert found[("zw-police", "in1")] == store.seen("zw-police", "in1")


def test_a_message_is_its_sender_and_id_so_another_sender_cannot_take_the_id(store):
    """The squatter's copy under the same id is a different message: both are kept, the
    collision is reported (and audited) and neither sender's dedupe row hides the other's."""
    first = store.record_inbound(
        inbox_message(sender="mw-police"), dedupe(sender="mw-police"), [ev("received")]
    )
    assert first.id_also_used_by == ()
    second = store.record_inbound(inbox_message(), dedupe(), [ev("received", message_id="in1")])
    assert second.id_also_used_by == ("mw-police",)
    assert store.seen("zw-police", "in1").sender == "zw-police"
    assert store.seen("mw-police", "in1").sender == "mw-police"
    assert store.seen("bw-police", "in1") is None
    assert [m.sender for m in store.inbox_messages("in1")] == ["mw-police", "zw-police"]
    collision = store.audit_entries("in1")[-1].event
    assert (collision.event, collision.peer) == ("id-collision", "zw-police")
    assert collision.detail == {"also_used_by": ["mw-police"]}


def test_thread_participants_are_who_sent_was_addressed_or_was_sent_to(store):
    assert store.thread_participants("t9") == frozenset()
    store.submit(outbound("m1", recipients=("bw-police",), thread_id="t9"), ev("submitted"))
    store.submit(
        outbound("r1", recipients=("na-police",), expects_receipt=False, thread_id="t9"),
        ev("submitted"),
    )  # a receipt: not joining
    joined = InboxMessage(**{**inbox_message().__dict__, "recipients": ("zm-police", "mw-police")})
    store.record_inbound(joined, dedupe(), [ev("received")])
    apart = InboxMessage(
        **{
            **inbox_message("in2", sender="ao-police").__dict__,
            "recipients": ("zm-police", "sz-police"),
            "thread_joined": False,
        }
    )
    store.record_inbound(apart, dedupe("in2", sender="ao-police"), [ev("received")])
    assert store.thread_participants("t9") == {"bw-police", "zw-police", "zm-police", "mw-police"}
    assert store.inbox_messages("in2")[0].thread_joined is False
    assert store.inbox_messages("in1")[0].recipients == ("zm-police", "mw-police")


def test_unauthenticated_quarantine_is_bounded_and_only_audited_until_full(store):
    for i in range(5):
        junk = QuarantineEntry(at(i), "malformed", "garbage", b"j" * 10, raw_length=900_000,
                               raw_sha256="aa" * 32)  # fmt: skip
        evicted = store.record_rejection(None, junk, [ev("quarantined", i)], keep_unauthenticated=3)
        assert evicted == (1 if i >= 3 else 0)
    signed = QuarantineEntry(at(9), "expired", "late", b"s" * 100, sender="zw-police",
                             authenticated=True, raw_length=100)  # fmt: skip
    assert store.record_rejection(None, signed, [ev("quarantined", 9)], keep_unauthenticated=3) == 0
    kept = store.quarantined(10)
    assert [q.authenticated for q in kept] == [True, False, False, False]
    assert [q.received_at for q in kept[1:]] == [at(4), at(3), at(2)]  # the oldest went first
    assert kept[1].truncated and not kept[0].truncated
    assert [e.event.event for e in store.audit_entries()].count("quarantined") == 4
    assert store.quarantine_bytes("zw-police") == 100 and store.quarantine_bytes("mw-police") == 0
    usage = store.snapshot().quarantine
    assert usage.entries == {True: 1, False: 3} and usage.raw_bytes == {True: 100, False: 30}


def test_a_duplicate_answer_is_remembered(store):
    store.record_inbound(inbox_message(), dedupe(), [ev("received")])
    assert store.seen("zw-police", "in1").answered_at is None  # so the first copy is answered
    store.mark_answered("zw-police", "in1", at(100))
    assert store.seen("zw-police", "in1").answered_at == at(100)


def test_dedupe_outlives_its_keep_until_while_the_inbox_holds_the_message(store):
    store.record_inbound(inbox_message(), dedupe(), [ev("received")])
    later = at(10 * 86400)
    counts = store.purge(later, Retention(inbox_before=at(0), outbox_before=at(0),
                                          quarantine_before=at(0)))  # fmt: skip
    assert counts["dedupe"] == 0 and store.seen("zw-police", "in1") is not None


def test_rejection_is_quarantined_and_remembered(store):
    entry = QuarantineEntry(at(1), "expired", "expired at ...", b"\x00raw", topic="xchg.zm-police.mla",
                            partition=0, offset=7, sender="zw-police", message_id="in3")  # fmt: skip
    store.record_rejection(dedupe("in3", "rejected", "expired"), entry, [ev("quarantined")])
    store.record_rejection(None, QuarantineEntry(at(2), "malformed", "garbage", b"junk"), [])
    assert [q.reason for q in store.quarantined(10)] == ["malformed", "expired"]
    assert store.quarantined(10)[1].raw == b"\x00raw"
    assert store.seen("zw-police", "in3").reason == "expired"


def test_audit_chain_verifies_and_detects_tampering(store, tmp_path):
    store.submit(outbound("m1"), ev("submitted", message_id="m1", detail={"kind": "alert"}))
    store.append_audit(
        [ev("peer-added", 1, peer="zw-police"), ev("peer-added", 2, peer="mw-police")]
    )
    entries = store.audit_entries()
    assert [e.seq for e in entries] == [1, 2, 3]
    assert audit.verify(entries).ok
    assert [e.event.event for e in store.audit_entries("m1")] == ["submitted"]

    conn = sqlite3.connect(store.path)
    conn.execute("UPDATE audit SET peer = 'bw-police' WHERE seq = 2")
    conn.commit()
    report = audit.verify(store.audit_entries())
    assert (report.broken_at, report.problem) == (2, "content does not match its hash (altered)")
    conn.execute("UPDATE audit SET peer = 'zw-police' WHERE seq = 2")
    conn.execute("DELETE FROM audit WHERE seq = 2")
    conn.commit()
    conn.close()
    report = audit.verify(store.audit_entries())
    assert report.broken_at == 3 and "entry 2 is missing" in report.problem


WRITERS, WRITES = 4, 150  # per writer: WRITES audit appends and WRITES outbox submissions
# Idempotency keys every writer submits under, all at about the same moment.
SHARED_KEYS = [f"ZP-CHR-2026-{n:04d}" for n in range(20)]


def concurrent_writer(path: str, writer: int, start: multiprocessing.synchronize.Barrier) -> None:
    """One OS process writing to the store file beside the others, as the running node, `xnode
    send` and the API do: first a submission under each shared idempotency key (the writers
    race on them), then audit appends and outbox submissions, interleaved."""
    store = SqliteStore.open(Path(path))
    try:
        answers = []
        start.wait(timeout=60)
        for n, key in enumerate(SHARED_KEYS):
            shared = replace(outbound(f"w{writer}-k{n}", key=key), request_sha256="cd" * 32)
            answers.append(store.submit(shared, ev("submitted", message_id=shared.message_id)))
        Path(path).with_name(f"answers-{writer}.txt").write_text("\n".join(answers))
        for i in range(WRITES):
            store.append_audit([ev("peer-added", i, peer=f"w{writer}-{i}")])
            message_id = f"w{writer}-m{i}"
            store.submit(outbound(message_id), ev("submitted", i, message_id=message_id))
    finally:
        store.close()


def test_concurrent_writer_processes_keep_every_write_and_one_chain(tmp_path):
    """Four processes write at once. Every write must be there, once, in one intact chain.

    With a deferred ``BEGIN`` instead of ``BEGIN IMMEDIATE`` the writers' read-then-write
    transactions collide ("database is locked") and most writes are lost; a lookup of the
    idempotency key outside the write transaction often ends in a UNIQUE violation."""
    path = tmp_path / "node.db"
    SqliteStore.open(path).close()  # created and migrated before the writers race
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(WRITERS)
    workers = [spawn.Process(target=concurrent_writer, args=(str(path), w, start))
               for w in range(WRITERS)]  # fmt: skip
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    for worker in workers:
        if worker.is_alive():
            worker.kill()
    exit_codes = [worker.exitcode for worker in workers]

    own = {f"w{w}-m{i}" for w in range(WRITERS) for i in range(WRITES)}
    with SqliteStore.open(path) as store:
        entries = store.audit_entries()
        appended = {e.event.peer for e in entries if e.event.event == "peer-added"}
        submitted = [e.event.message_id for e in entries if e.event.event == "submitted"]
        stored = sorted(m for m in own if store.message_status(m))
        by_key = [store.find_by_idempotency_key(key) for key in SHARED_KEYS]
    missing_audit = {f"w{w}-{i}" for w in range(WRITERS) for i in range(WRITES)} - appended
    assert exit_codes == [0] * WRITERS, (
        f"writer exit codes {exit_codes}; {len(missing_audit)} of {len(own)} audit appends "
        f"and {len(own) - len(stored)} of {len(own)} submissions missing"
    )
    assert not missing_audit and stored == sorted(own)
    report = audit.verify(entries)
    assert report.ok, (report.broken_at, report.problem)
    # each write exactly once: every submission's audit event, one message per shared key
    assert len(entries) == 2 * WRITERS * WRITES + len(SHARED_KEYS)
    assert sorted(submitted) == sorted([*own, *by_key])
    # of the writers racing on a key exactly one stored, and every writer got that one's id
    for w in range(WRITERS):
        assert (tmp_path / f"answers-{w}.txt").read_text().split("\n") == by_key


def test_retention_purge_deletes_what_is_due_and_keeps_the_audit_hashes(store):
    from node.store.base import Retention

    day = 86400
    # sent: m1 delivered to both at day 1; m2 still open for one recipient; m3 final at day 50
    for mid in ("m1", "m2", "m3"):
        store.submit(outbound(mid, expires=400 * day), ev("submitted", message_id=mid))
    for mid, recipient, when in (("m1", "zw-police", 1), ("m1", "mw-police", 1),
                                 ("m2", "zw-police", 1), ("m3", "zw-police", 50),
                                 ("m3", "mw-police", 50)):  # fmt: skip
        store.apply_receipt(mid, recipient, "ab" * 32, delivered=True, reason=None, detail=None,
                            now=at(when * day), audit=ev("receipted", when * day))  # fmt: skip
    # received: in1 at second 1 (old), in2 much later; dedupe of in1 kept until day 1
    store.record_inbound(inbox_message("in1"), dedupe("in1"), [ev("received")])
    late = InboxMessage(**{**inbox_message("in2").__dict__, "received_at": at(95 * day)})
    store.record_inbound(late, DedupeEntry("in2", "zw-police", "delivered", None, "ef" * 32,
                                           at(95 * day), at(500 * day)), [ev("received")])  # fmt: skip
    store.record_rejection(None, QuarantineEntry(at(2), "malformed", "garbage", b"\x00"), [])
    length = len(store.audit_entries())

    now = at(100 * day)
    counts = store.purge(now, Retention(inbox_before=at(30 * day), outbox_before=at(30 * day),
                                        quarantine_before=at(30 * day)))  # fmt: skip
    assert counts == {"inbox": 1, "outbox": 1, "quarantine": 1, "dedupe": 1}
    assert store.message_status("m1") == []  # gone
    assert [s.state for s in store.message_status("m2")] == ["queued", "delivered"]  # still open
    assert store.message_status("m3")  # final, but not long enough ago
    assert [m.message_id for m in store.inbox(0, None, 10)] == ["in2"]
    assert store.seen("zw-police", "in1") is None and store.seen("zw-police", "in2") is not None
    assert store.quarantined(10) == []
    entries = store.audit_entries()
    purged = [(e.event.message_id, e.event.detail["from"]) for e in entries[length:]]
    assert sorted(purged, key=str) == sorted([("in1", "inbox"), ("m1", "outbox"),
                                              (None, "quarantine")], key=str)  # fmt: skip
    assert audit.verify(entries).ok
    assert store.audit_entries("m1")[0].event.event == "submitted"  # the history stays


def test_open_deliveries_to_a_revoked_recipient_end_rejected(store):
    store.submit(outbound("m1"), ev("submitted", message_id="m1"))
    store.submit(outbound("r1", recipients=("zw-police",), expects_receipt=False), ev("submitted"))
    store.apply_receipt("m1", "mw-police", "ab" * 32, delivered=True, reason=None, detail=None,
                        now=at(1), audit=ev("receipted", 1))  # fmt: skip
    ended = store.reject_open("zw-police", "recipient-revoked", "zw-police was revoked", at(5))
    assert ended == [("m1", "alert")]  # the receipt owed to it ends too, but is no message
    status = {s.recipient: s for s in store.message_status("m1")}
    assert (status["zw-police"].state, status["zw-police"].reason) == ("rejected",
                                                                     "recipient-revoked")  # fmt: skip
    assert status["mw-police"].state == "delivered"  # other recipients are not touched
    assert store.message_status("r1")[0].state == "rejected"
    assert store.due_deliveries(at(100), 10) == []
    assert store.reject_open("zw-police", "recipient-revoked", "again", at(6)) == []
    assert store.audit_entries("m1")[-1].event.detail == {"reason": "recipient-revoked"}


def test_the_subject_index_keeps_digests_only(store, tmp_path):
    """Received messages are found by the identifiers they name (node/identifiers.py), through
    HMAC digests: the database file holds no phone number, and a message that is erased or
    purged leaves no entry behind."""
    from node import identifiers

    secret = b"\x07" * 32
    number = "+260977445120"
    naming = identifiers.digests(secret, {f"phone:{number}", "ref:ALZ4471"})
    first = InboxMessage(**{**inbox_message("in1").__dict__, "subject_digests": naming})
    other = InboxMessage(**{**inbox_message("in2").__dict__, "received_at": at(10**7),
                            "subject_digests": identifiers.digests(secret, {"ref:OTHER"})})  # fmt: skip
    store.record_inbound(first, dedupe("in1"), [ev("received")])
    store.record_inbound(other, DedupeEntry("in2", "zw-police", "delivered", None, "ef" * 32,
                                            at(10**7), at(2 * 10**7)), [ev("received")])  # fmt: skip

    def found(text: str) -> list[str]:
        asked = identifiers.searched(secret, text, "ZM")
        return [m.message_id for m in store.inbox(0, None, 10, asked)]

    assert found("0977 445 120") == ["in1"] and found("alz-4471") == ["in1"]
    assert found("+260966000111") == [] and found("ref:OTHER") == ["in2"]
    assert [m.message_id for m in store.inbox(0, None, 10)] == ["in1", "in2"]  # no filter
    raw = b"".join(p.read_bytes() for p in store.path.parent.glob(store.path.name + "*"))
    assert number.encode() not in raw and b"977445120" not in raw and b"ALZ4471" not in raw

    store.erase_received("zw-police", ["in1"], at(2), {"request_id": "e1"})
    assert found("0977 445 120") == []
    store.purge(at(3 * 10**7), Retention(inbox_before=at(3 * 10**7),
                                         outbox_before=at(0), quarantine_before=at(0)))  # fmt: skip
    assert found("ref:OTHER") == []
    assert store._conn.execute("SELECT COUNT(*) FROM subject_index").fetchone()[0] == 0
