"""SQLite store: one file in the node directory, write-ahead log, full fsync on commit.

Several processes may use the file at once (the running node and `xnode send`): every write
transaction starts with ``BEGIN IMMEDIATE``, so two writers never interleave and the audit
chain stays a single line. Payload plaintext is never stored: the inbox keeps the sealed
envelope and the node decrypts it again when a local system asks for it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from node.audit import GENESIS, AuditEntry, AuditEvent, link
from node.stats.facts import Fact
from node.store.base import (
    DELIVERED,
    ERASED_STATE,
    EXPIRED,
    OPEN_STATES,
    QUEUED,
    REJECTED,
    SENT,
    WITHDRAWN,
    AdapterDelivery,
    ApiToken,
    Attempt,
    ConsoleUser,
    DedupeEntry,
    Delivery,
    Draft,
    InboundResult,
    InboxMessage,
    LegalHold,
    OutboundMessage,
    ProcedureStep,
    QuarantineEntry,
    QuarantineUsage,
    ReceiptMatch,
    RecipientStatus,
    Retention,
    Snapshot,
    StatusEvent,
    StoreError,
    StoreFull,
    StoreUnavailable,
)
from node.store.stats import StatisticsStore, insert_fact

T = TypeVar("T")

MIGRATIONS: tuple[str, ...] = (
    # 1: the initial schema
    """
    CREATE TABLE outbox (
        message_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        schema_name TEXT NOT NULL,
        priority TEXT NOT NULL,
        envelope BLOB NOT NULL,
        envelope_sha256 TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        expects_receipt INTEGER NOT NULL,
        idempotency_key TEXT UNIQUE
    );
    CREATE TABLE outbox_recipients (
        message_id TEXT NOT NULL REFERENCES outbox(message_id) ON DELETE CASCADE,
        recipient TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL,
        last_attempt_at REAL,
        updated_at REAL NOT NULL,
        reason TEXT,
        detail TEXT,
        PRIMARY KEY (message_id, recipient)
    );
    CREATE INDEX outbox_due ON outbox_recipients (state, next_attempt_at);
    CREATE TABLE inbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL UNIQUE,
        sender TEXT NOT NULL,
        kind TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        in_reply_to TEXT,
        schema_name TEXT NOT NULL,
        handling_code TEXT NOT NULL,
        envelope BLOB NOT NULL,
        envelope_sha256 TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        received_at REAL NOT NULL,
        state TEXT NOT NULL
    );
    CREATE INDEX inbox_thread ON inbox (thread_id, seq);
    CREATE TABLE dedupe (
        message_id TEXT PRIMARY KEY,
        sender TEXT NOT NULL,
        outcome TEXT NOT NULL,
        reason TEXT,
        envelope_sha256 TEXT NOT NULL,
        seen_at REAL NOT NULL,
        keep_until REAL NOT NULL
    );
    CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at REAL NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL,
        raw BLOB NOT NULL,
        topic TEXT,
        partition INTEGER,
        "offset" INTEGER,
        sender TEXT,
        message_id TEXT
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        at_text TEXT NOT NULL,
        event TEXT NOT NULL,
        message_id TEXT,
        peer TEXT,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_message ON audit (message_id);
    """,
    # 2: local API tokens and adapter progress
    """
    CREATE TABLE api_tokens (
        token_id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        scopes TEXT NOT NULL,
        secret_sha256 TEXT NOT NULL,
        created_at REAL NOT NULL,
        revoked_at REAL
    );
    CREATE TABLE adapter_cursors (
        adapter TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
    );
    CREATE TABLE adapter_deliveries (
        adapter TEXT NOT NULL,
        seq INTEGER NOT NULL,
        message_id TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL,
        last_error TEXT,
        updated_at REAL NOT NULL,
        PRIMARY KEY (adapter, seq)
    );
    CREATE INDEX adapter_open ON adapter_deliveries (adapter, state, seq);
    CREATE INDEX outbox_thread ON outbox (thread_id, created_at)
    """,
    # 3: the fingerprint of the request stored under an idempotency key (NULL for older rows)
    """
    ALTER TABLE outbox ADD COLUMN request_sha256 TEXT
    """,
    # 4: a received message is (sender, message id), never the id alone: one member cannot
    # suppress another's message by using its id first. The inbox records whether a message
    # joined the thread it names and whom it was addressed to; dedupe when a copy was last
    # answered; quarantine what was kept of refused bytes.
    """
    CREATE TABLE dedupe_v4 (
        sender TEXT NOT NULL,
        message_id TEXT NOT NULL,
        outcome TEXT NOT NULL,
        reason TEXT,
        envelope_sha256 TEXT NOT NULL,
        seen_at REAL NOT NULL,
        keep_until REAL NOT NULL,
        answered_at REAL,
        PRIMARY KEY (sender, message_id)
    );
    INSERT INTO dedupe_v4 (sender, message_id, outcome, reason, envelope_sha256, seen_at,
        keep_until) SELECT sender, message_id, outcome, reason, envelope_sha256, seen_at,
        keep_until FROM dedupe;
    DROP TABLE dedupe;
    ALTER TABLE dedupe_v4 RENAME TO dedupe;
    CREATE INDEX dedupe_message ON dedupe (message_id);
    CREATE TABLE inbox_v4 (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL,
        sender TEXT NOT NULL,
        kind TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        in_reply_to TEXT,
        schema_name TEXT NOT NULL,
        handling_code TEXT NOT NULL,
        envelope BLOB NOT NULL,
        envelope_sha256 TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        received_at REAL NOT NULL,
        state TEXT NOT NULL,
        recipients TEXT NOT NULL DEFAULT '',
        thread_joined INTEGER NOT NULL DEFAULT 1,
        UNIQUE (sender, message_id)
    );
    INSERT INTO inbox_v4 (seq, message_id, sender, kind, thread_id, in_reply_to, schema_name,
        handling_code, envelope, envelope_sha256, created_at, expires_at, received_at, state)
        SELECT seq, message_id, sender, kind, thread_id, in_reply_to, schema_name,
        handling_code, envelope, envelope_sha256, created_at, expires_at, received_at, state
        FROM inbox;
    DROP TABLE inbox;
    ALTER TABLE inbox_v4 RENAME TO inbox;
    CREATE INDEX inbox_thread ON inbox (thread_id, seq);
    CREATE INDEX inbox_message ON inbox (message_id);
    ALTER TABLE quarantine ADD COLUMN authenticated INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE quarantine ADD COLUMN raw_sha256 TEXT;
    ALTER TABLE quarantine ADD COLUMN raw_length INTEGER;
    CREATE INDEX quarantine_kept ON quarantine (authenticated, sender, id)
    """,
    # 5: federation key lifecycle and delivery outcomes for local systems. A stored message
    # whose encryption key is destroyed keeps its content key wrapped to the node's current key
    # beside the untouched (still verifiable) envelope; every final outcome of a sent message
    # (delivered, rejected, expired) is an event the webhook and folder adapters pass on.
    """
    ALTER TABLE inbox ADD COLUMN local_key_id TEXT;
    ALTER TABLE inbox ADD COLUMN local_wrap BLOB;
    CREATE TABLE status_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL,
        recipient TEXT NOT NULL,
        kind TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        detail TEXT,
        at REAL NOT NULL
    );
    CREATE INDEX status_events_message ON status_events (message_id)
    """,
    # 6: the officer console: its users (Argon2id hashes, lock-out state), drafts sealed to the
    # node's own key, and which received messages each user has opened (unread counts)
    """
    CREATE TABLE console_users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        display_name TEXT NOT NULL DEFAULT '',
        language TEXT,
        kinds TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        disabled_at REAL,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until REAL
    );
    CREATE TABLE console_drafts (
        draft_id INTEGER PRIMARY KEY AUTOINCREMENT,
        owner TEXT NOT NULL,
        kind TEXT NOT NULL,
        schema_name TEXT NOT NULL,
        sealed BLOB NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX console_drafts_owner ON console_drafts (owner, updated_at);
    CREATE TABLE console_reads (
        user_name TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (user_name, seq)
    )
    """,
    # 7: indexes for what runs on every /metrics scrape (webhook failures) and every hour
    # (retention): without them each was a scan of the whole table, half a second at a million
    # messages on the store's only thread (bench/store_scale.py)
    """
    CREATE INDEX inbox_webhook_failed ON inbox (state) WHERE state = 'webhook-failed';
    CREATE INDEX inbox_received ON inbox (received_at);
    CREATE INDEX dedupe_keep_until ON dedupe (keep_until);
    CREATE INDEX quarantine_received ON quarantine (received_at);
    CREATE INDEX outbox_recipients_updated ON outbox_recipients (updated_at)
    """,
    # 8: data protection (docs/data-protection.md): the sender's own retention limit on each
    # received message, legal holds recorded by a supervisor, and a quick way to the erasure
    # requests among received messages
    """
    ALTER TABLE inbox ADD COLUMN retain_until REAL;
    CREATE INDEX inbox_retain_until ON inbox (retain_until) WHERE retain_until IS NOT NULL;
    CREATE INDEX inbox_erasure_requests ON inbox (seq)
        WHERE schema_name = 'xnode.payload.ErasureRequest';
    CREATE TABLE legal_holds (
        hold_id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT,
        thread_id TEXT,
        reason TEXT NOT NULL,
        note TEXT NOT NULL,
        recorded_by TEXT NOT NULL,
        recorded_at REAL NOT NULL,
        released_at REAL,
        released_by TEXT,
        CHECK (message_id IS NOT NULL OR thread_id IS NOT NULL)
    )
    """,
    # 9: which received messages this node forwarded, to whom (an erasure is passed on to them)
    """
    CREATE TABLE forwards (
        forward_id TEXT NOT NULL,
        original_sender TEXT NOT NULL,
        original_id TEXT NOT NULL,
        recipient TEXT NOT NULL,
        PRIMARY KEY (forward_id, recipient)
    );
    CREATE INDEX forwards_original ON forwards (original_sender, original_id)
    """,
    # 10: procedure steps of each thread (codes and dates only: docs/procedures.md) and the
    # overdue requests already announced to the local system
    """
    CREATE TABLE procedure_steps (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        thread_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        party TEXT NOT NULL,
        direction TEXT NOT NULL,
        procedure TEXT NOT NULL,
        schema_name TEXT NOT NULL,
        kept TEXT NOT NULL,
        sent_at REAL NOT NULL,
        override_reason TEXT,
        UNIQUE (thread_id, message_id, party)
    );
    CREATE INDEX procedure_steps_thread ON procedure_steps (thread_id, sent_at);
    CREATE TABLE overdue_notices (
        thread_id TEXT PRIMARY KEY,
        deadline REAL NOT NULL,
        announced_at REAL NOT NULL
    )
    """,
    # 11: erasure requests this node passed on for another node's request, so the answers it
    # gets are reported back to the node that asked first
    """
    CREATE TABLE erasure_relays (
        request_id TEXT PRIMARY KEY,
        origin_node TEXT NOT NULL,
        origin_request_id TEXT NOT NULL
    )
    """,
    # 12: the identifiers each received message names (phones, accounts, handles...), as HMAC
    # digests under the node's index secret, so "earlier alerts naming this number" is one
    # lookup and a stolen database names no number (node/identifiers.py). A purged or erased
    # message takes its entries with it (purge, erase_received).
    """
    CREATE TABLE subject_index (
        digest BLOB NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (digest, seq)
    ) WITHOUT ROWID;
    CREATE INDEX subject_index_seq ON subject_index (seq)
    """,
    # 13: statistics (docs/statistics.md): the agency's own case records reduced to codes, an
    # age and dates (never sent); the codes kept of each exchanged message (kept after the
    # message is purged, removed when it is erased); the releases this node sent (the
    # differential privacy budget spent per period)
    """
    CREATE TABLE local_cases (
        case_id TEXT PRIMARY KEY,
        record TEXT NOT NULL,
        imported_at REAL NOT NULL
    );
    CREATE TABLE stat_facts (
        message_id TEXT NOT NULL,
        direction TEXT NOT NULL,
        schema_name TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        at REAL NOT NULL,
        codes TEXT NOT NULL,
        PRIMARY KEY (message_id, direction)
    );
    CREATE INDEX stat_facts_at ON stat_facts (at);
    CREATE TABLE stat_releases (
        release_id TEXT PRIMARY KEY,
        period TEXT NOT NULL,
        message_id TEXT NOT NULL,
        recipients TEXT NOT NULL,
        epsilon REAL,
        replaces TEXT,
        created_at REAL NOT NULL
    );
    CREATE INDEX stat_releases_period ON stat_releases (period)
    """,
)


def _ts(value: dt.datetime) -> float:
    return value.timestamp()


def _dt(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, dt.UTC)


def _dt_req(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.UTC)


# SQLite result codes that mean "the disk, not the data": the write may work later.
_DISK_ERRORS = ("SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN")


def _raise_disk_error(exc: sqlite3.Error, path: Path) -> None:
    """Raise the store error for a failing disk; return if ``exc`` is about something else."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith("SQLITE_FULL"):
        raise StoreFull(f"{path}: no space left on the device holding the store") from exc
    if name.startswith(_DISK_ERRORS):
        raise StoreUnavailable(f"{path}: the store cannot write ({name}: {exc})") from exc


SEEN_CHUNK = 400  # (sender, id) pairs per lookup query: 800 parameters, well under SQLite's limit


def _dedupe_entry(r: sqlite3.Row) -> DedupeEntry:
    return DedupeEntry(
        message_id=r["message_id"],
        sender=r["sender"],
        outcome=r["outcome"],
        reason=r["reason"],
        envelope_sha256=r["envelope_sha256"],
        seen_at=_dt_req(r["seen_at"]),
        keep_until=_dt_req(r["keep_until"]),
        answered_at=_dt(r["answered_at"]),
    )


class SqliteStore(StatisticsStore):
    """The default store. Open with :meth:`open`; close with :meth:`close`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._savepoints = 0  # > 0 while :meth:`batch` holds the transaction

    @classmethod
    def open(cls, path: Path) -> SqliteStore:
        """Open (creating if needed) the store file, private to the node's user.

        The file is created 0600 and tightened *before* SQLite opens it: SQLite gives the
        ``-wal`` and ``-shm`` files it creates the permissions of the database file, so none of
        the three is ever readable by others, whatever the process umask."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            path.chmod(0o600)
            for companion in (
                path.with_name(path.name + "-wal"),
                path.with_name(path.name + "-shm"),
            ):
                if companion.exists():
                    companion.chmod(0o600)
        except OSError as exc:
            raise StoreError(f"{path}: cannot open the store ({exc.strerror})") from exc
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the store ({exc})") from exc
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        # what is deleted or overwritten (an erased envelope, a purged message) is overwritten
        # with zeros in the file, not left in free pages (docs/data-protection.md)
        conn.execute("PRAGMA secure_delete=ON")
        store = cls(conn, path)
        store._migrate()
        return store

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. A disk that is full or failing surfaces as
        :class:`StoreUnavailable` (nothing of the transaction kept), whichever statement hit it.

        Inside :meth:`batch` it is a savepoint instead: the write is all or nothing on its own,
        and durable with the batch's one commit."""
        if self._savepoints:
            with self._savepoint() as c:
                yield c
            return
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            _raise_disk_error(exc, self.path)
            raise
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except BaseException as exc:
            if self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # a full disk may refuse even this
                    self._conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                _raise_disk_error(exc, self.path)
            raise

    @contextlib.contextmanager
    def _savepoint(self) -> Iterator[sqlite3.Connection]:
        self._savepoints += 1
        name = f"w{self._savepoints}"
        try:
            self._conn.execute(f"SAVEPOINT {name}")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute(f"ROLLBACK TO {name}")
                raise
            finally:
                self._conn.execute(f"RELEASE {name}")
        except sqlite3.Error as exc:
            _raise_disk_error(exc, self.path)
            raise
        finally:
            self._savepoints -= 1

    def batch(self, writes: Sequence[Callable[[], T]]) -> list[T | Exception]:
        """Run several writes in one transaction: one commit, one fsync (group commit).

        Each write is all or nothing on its own (a savepoint): one that raises leaves nothing
        behind and its exception is returned in its place, while the others are kept. A disk
        that is full or failing (:class:`StoreUnavailable`) keeps nothing of the whole batch and
        is raised, so no caller hears "stored" for what the disk refused. Called from within a
        write of a batch, it adds its writes to that transaction."""
        if self._savepoints:
            return self._each(writes)
        with self._tx():
            self._savepoints = 1  # the writes below become savepoints of this transaction
            try:
                return self._each(writes)
            finally:
                self._savepoints = 0

    def _each(self, writes: Sequence[Callable[[], T]]) -> list[T | Exception]:
        results: list[T | Exception] = []
        for write in writes:
            try:
                with self._savepoint():
                    results.append(write())
            except StoreUnavailable:
                raise
            except Exception as exc:
                results.append(exc)
        return results

    def probe_write(self) -> None:
        """Write (and keep) a small value to find out whether the disk takes writes again."""
        with self._tx() as c:
            c.execute(
                "INSERT INTO meta (key, value) VALUES ('write_probe', hex(randomblob(16384)))"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            )

    def _migrate(self) -> None:
        with self._tx() as c:
            c.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row["value"]) if row else 0
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path}: store schema version {version} is newer than this xnode "
                    f"understands ({len(MIGRATIONS)}); upgrade xnode"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    c.execute(statement)
                c.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(number),),
                )

    @property
    def schema_version(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row["value"])

    # -- audit ---------------------------------------------------------------------------------

    def _append(self, c: sqlite3.Connection, events: Sequence[AuditEvent]) -> None:
        row = c.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (row["seq"], row["hash"]) if row else (0, GENESIS)
        for event in events:
            seq += 1
            entry = link(seq, event, prev)
            c.execute(
                "INSERT INTO audit (seq, at, at_text, event, message_id, peer, detail, prev_hash,"
                " hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    seq,
                    _ts(event.at),
                    event.at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
                    event.event,
                    event.message_id,
                    event.peer,
                    json.dumps(dict(event.detail), sort_keys=True),
                    prev,
                    entry.hash,
                ),
            )
            prev = entry.hash

    def append_audit(self, events: Sequence[AuditEvent]) -> None:
        with self._tx() as c:
            self._append(c, events)

    def audit_entries(self, message_id: str | None = None) -> list[AuditEntry]:
        query = "SELECT * FROM audit"
        args: tuple[str, ...] = ()
        if message_id is not None:
            query += " WHERE message_id = ?"
            args = (message_id,)
        rows = self._conn.execute(query + " ORDER BY seq", args).fetchall()
        return [
            AuditEntry(
                seq=r["seq"],
                event=AuditEvent(
                    event=r["event"],
                    at=dt.datetime.fromisoformat(r["at_text"]),
                    message_id=r["message_id"],
                    peer=r["peer"],
                    detail=json.loads(r["detail"]),
                ),
                prev_hash=r["prev_hash"],
                hash=r["hash"],
            )
            for r in rows
        ]

    def audit_head(self, at: int | None = None) -> tuple[int, str | None]:
        """(number of the newest entry, hash of entry ``at`` — default: of the newest entry,
        None if there is no such entry), read in one statement so the two agree. What an audit
        checkpoint signs, and what it is checked against, without reading the whole chain."""
        row = self._conn.execute(
            "SELECT (SELECT COALESCE(MAX(seq), 0) FROM audit) AS n, (SELECT hash FROM audit"
            " WHERE seq = COALESCE(?, (SELECT MAX(seq) FROM audit))) AS h",
            (at,),
        ).fetchone()
        return int(row["n"]), row["h"]

    # -- outbox --------------------------------------------------------------------------------

    def submit(
        self,
        message: OutboundMessage,
        audit: AuditEvent | Sequence[AuditEvent],
        step: ProcedureStep | None = None,
        fact: Fact | None = None,
    ) -> str:
        """Store a sealed message and its recipients; return its id (the first one's, for a
        repeated idempotency key and the same request). The same key with a different request
        (``request_sha256``) raises :class:`node.submit.IdempotencyKeyReused`. Lookup and insert
        are one write transaction, so of two concurrent requests under one key exactly one is
        stored and the other is compared with it."""
        from node.submit import same_request  # the rule lives in the (pure) submission core

        with self._tx() as c:
            if message.idempotency_key is not None:
                row = c.execute(
                    "SELECT message_id, request_sha256 FROM outbox WHERE idempotency_key = ?",
                    (message.idempotency_key,),
                ).fetchone()
                if row:
                    return same_request(
                        message.idempotency_key, str(row["message_id"]), row["request_sha256"],
                        message.request_sha256,
                    )  # fmt: skip
            self._insert_outbound(c, message, audit)
            if step is not None:
                self._insert_step(c, step)
            if fact is not None:
                insert_fact(c, fact)
        return message.message_id

    def _insert_step(self, c: sqlite3.Connection, step: ProcedureStep) -> None:
        c.execute(
            "INSERT OR IGNORE INTO procedure_steps (thread_id, message_id, party, direction,"
            " procedure, schema_name, kept, sent_at, override_reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (step.thread_id, step.message_id, step.party, step.direction, step.procedure,
             step.schema_name, json.dumps(step.kept, sort_keys=True), _ts(step.sent_at),
             step.override_reason),
        )  # fmt: skip

    def _insert_outbound(
        self,
        c: sqlite3.Connection,
        message: OutboundMessage,
        audit: AuditEvent | Sequence[AuditEvent],
    ) -> None:
        c.execute(
            "INSERT INTO outbox (message_id, kind, thread_id, schema_name, priority, envelope,"
            " envelope_sha256, created_at, expires_at, expects_receipt, idempotency_key,"
            " request_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                message.message_id,
                message.kind,
                message.thread_id,
                message.schema_name,
                message.priority,
                message.envelope,
                message.envelope_sha256,
                _ts(message.created_at),
                _ts(message.expires_at),
                int(message.expects_receipt),
                message.idempotency_key,
                message.request_sha256,
            ),
        )
        now = _ts(message.created_at)
        c.executemany(
            "INSERT INTO outbox_recipients (message_id, recipient, state, next_attempt_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?)",
            [(message.message_id, r, QUEUED, now, now) for r in message.recipients],
        )
        self._append(c, [audit] if isinstance(audit, AuditEvent) else audit)

    def outbox_message(self, message_id: str) -> OutboundMessage | None:
        """A message this node sent (receipts excluded), with its recipients."""
        r = self._conn.execute(
            "SELECT * FROM outbox WHERE message_id = ? AND expects_receipt = 1", (message_id,)
        ).fetchone()
        if r is None:
            return None
        return self._outbound_row(r, tuple(s.recipient for s in self.message_status(message_id)))

    def _outbound_row(self, r: sqlite3.Row, recipients: tuple[str, ...]) -> OutboundMessage:
        return OutboundMessage(
            message_id=r["message_id"],
            kind=r["kind"],
            thread_id=r["thread_id"],
            schema_name=r["schema_name"],
            priority=r["priority"],
            envelope=r["envelope"],
            envelope_sha256=r["envelope_sha256"],
            created_at=_dt_req(r["created_at"]),
            expires_at=_dt_req(r["expires_at"]),
            recipients=recipients,
            expects_receipt=bool(r["expects_receipt"]),
            idempotency_key=r["idempotency_key"],
        )

    def find_by_idempotency_key(self, key: str, request_sha256: str | None = None) -> str | None:
        """The id stored under ``key``, or None; with ``request_sha256``, raise
        :class:`node.submit.IdempotencyKeyReused` if the stored request differs (a read that
        spares sealing a retry; :meth:`submit` decides again inside its transaction)."""
        from node.submit import same_request  # the rule lives in the (pure) submission core

        row = self._conn.execute(
            "SELECT message_id, request_sha256 FROM outbox WHERE idempotency_key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        return same_request(key, str(row["message_id"]), row["request_sha256"], request_sha256)

    def due_deliveries(self, now: dt.datetime, limit: int) -> list[Delivery]:
        """Open (message, recipient) pairs whose next attempt is due, urgent ones first."""
        rows = self._conn.execute(
            "SELECT r.message_id, r.recipient, r.attempts, o.kind, o.thread_id, o.envelope,"
            " o.expires_at, o.expects_receipt FROM outbox_recipients r"
            " JOIN outbox o USING (message_id)"
            " WHERE r.state IN (?, ?) AND r.next_attempt_at <= ? AND o.expires_at > ?"
            " ORDER BY CASE o.priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1"
            " WHEN 'normal' THEN 2 ELSE 3 END, r.next_attempt_at LIMIT ?",
            (*OPEN_STATES, _ts(now), _ts(now), limit),
        ).fetchall()
        return [
            Delivery(
                message_id=r["message_id"],
                recipient=r["recipient"],
                kind=r["kind"],
                thread_id=r["thread_id"],
                envelope=r["envelope"],
                attempts=r["attempts"],
                expires_at=_dt_req(r["expires_at"]),
                expects_receipt=bool(r["expects_receipt"]),
            )
            for r in rows
        ]

    def record_attempt(
        self,
        message_id: str,
        recipient: str,
        *,
        published: bool,
        now: dt.datetime,
        next_attempt_at: dt.datetime | None,
        audit: AuditEvent,
    ) -> None:
        self.record_attempts([Attempt(message_id, recipient, published, now, next_attempt_at,
                                      audit)])  # fmt: skip

    def record_attempts(self, attempts: Sequence[Attempt]) -> None:
        """After publication attempts (one transaction for a whole round): count each, schedule
        the next, move queued -> sent.

        ``next_attempt_at=None`` with ``published`` closes a pair that expects no receipt
        (receipts themselves) as delivered. A pair already final (a receipt arrived meanwhile)
        keeps its state.
        """
        with self._tx() as c:
            events = []
            for a in attempts:
                row = c.execute(
                    "SELECT state FROM outbox_recipients WHERE message_id = ? AND recipient = ?",
                    (a.message_id, a.recipient),
                ).fetchone()
                if row is None or row["state"] not in OPEN_STATES:
                    continue
                state = row["state"]
                if a.published:
                    state = SENT if a.next_attempt_at is not None else DELIVERED
                c.execute(
                    "UPDATE outbox_recipients SET state = ?, attempts = attempts + 1,"
                    " last_attempt_at = ?, next_attempt_at = ?, updated_at = ?"
                    " WHERE message_id = ? AND recipient = ?",
                    (
                        state,
                        _ts(a.at),
                        None if a.next_attempt_at is None else _ts(a.next_attempt_at),
                        _ts(a.at),
                        a.message_id,
                        a.recipient,
                    ),
                )
                events.append(a.audit)
            self._append(c, events)

    def apply_receipt(
        self,
        message_id: str,
        recipient: str,
        envelope_sha256: str,
        *,
        delivered: bool,
        reason: str | None,
        detail: str | None,
        now: dt.datetime,
        audit: AuditEvent,
        seen: DedupeEntry | None = None,
    ) -> ReceiptMatch | None:
        """Record a recipient's receipt (and, with ``seen``, the receipt's own id, so a copy is
        recognised); None if it matches no delivery of ours — then nothing is written."""
        with self._tx() as c:
            row = c.execute(
                "SELECT r.state, o.envelope_sha256, o.kind, o.created_at FROM outbox_recipients r"
                " JOIN outbox o USING (message_id) WHERE r.message_id = ? AND r.recipient = ?",
                (message_id, recipient),
            ).fetchone()
            if row is None or row["envelope_sha256"] != envelope_sha256:
                return None
            created_at = _dt_req(row["created_at"])
            if (
                seen is not None
                and not c.execute(
                    "SELECT 1 FROM dedupe WHERE sender = ? AND message_id = ?",
                    (seen.sender, seen.message_id),
                ).fetchone()
            ):
                self._remember(c, seen)
            if row["state"] in (DELIVERED, REJECTED):  # a repeated receipt: already recorded
                return ReceiptMatch(row["kind"], created_at, first=False)
            if row["state"] == EXPIRED:  # final: a late receipt is an event, not a new state
                late = AuditEvent(
                    "receipt-after-expiry", audit.at, message_id=message_id, peer=recipient,
                    detail={"status": "delivered" if delivered else "rejected", "reason": reason},
                )  # fmt: skip
                self._append(c, [late])
                return ReceiptMatch(row["kind"], created_at, first=False)
            state = DELIVERED if delivered else REJECTED
            c.execute(
                "UPDATE outbox_recipients SET state = ?, reason = ?, detail = ?, updated_at = ?,"
                " next_attempt_at = NULL WHERE message_id = ? AND recipient = ?",
                (state, reason, detail, _ts(now), message_id, recipient),
            )
            self._status_event(c, message_id, recipient, state, reason, detail, now)
            self._append(c, [audit])
            return ReceiptMatch(row["kind"], created_at, first=True)

    def _status_event(
        self,
        c: sqlite3.Connection,
        message_id: str,
        recipient: str,
        status: str,
        reason: str | None,
        detail: str | None,
        now: dt.datetime,
    ) -> None:
        """Record that a delivery became final, inside the transaction that made it so (no
        outcome without its event, no event without its outcome). Only for messages a local
        system sent: a receipt this node owes a peer (``expects_receipt`` 0) is the node's own
        business and its end is no news to anyone."""
        c.execute(
            "INSERT INTO status_events (message_id, recipient, kind, thread_id, status, reason,"
            " detail, at) SELECT message_id, ?, kind, thread_id, ?, ?, ?, ? FROM outbox"
            " WHERE message_id = ? AND expects_receipt = 1",
            (recipient, status, reason, detail, _ts(now), message_id),
        )

    def status_events(
        self, after: int, limit: int, kinds: Sequence[str] | None = None
    ) -> list[StatusEvent]:
        """Final outcomes of sent messages after cursor ``after``, oldest first; with ``kinds``
        only those of messages of these kinds (what an API token may see)."""
        query = "SELECT * FROM status_events WHERE seq > ?"
        args: list[object] = [after]
        if kinds is not None:
            query += f" AND kind IN ({', '.join('?' * len(kinds))})"
            args.extend(kinds)
        rows = self._conn.execute(query + " ORDER BY seq LIMIT ?", (*args, limit)).fetchall()
        return [
            StatusEvent(
                seq=r["seq"],
                message_id=r["message_id"],
                recipient=r["recipient"],
                kind=r["kind"],
                thread_id=r["thread_id"],
                status=r["status"],
                reason=r["reason"],
                detail=r["detail"],
                at=_dt_req(r["at"]),
            )
            for r in rows
        ]

    def retry_open_now(self, now: dt.datetime) -> int:
        """Make every published, unreceipted delivery due now; return how many. Called when the
        broker has lost what it held (restarted empty, back after an outage): waiting for each
        message's backoff would leave it undelivered for up to ``retry_max_seconds``."""
        with self._tx() as c:
            cursor = c.execute(
                "UPDATE outbox_recipients SET next_attempt_at = ? WHERE state = ?"
                " AND next_attempt_at > ?",
                (_ts(now), SENT, _ts(now)),
            )
            return cursor.rowcount

    def reject_open(
        self, recipient: str, reason: str, detail: str, now: dt.datetime
    ) -> list[tuple[str, str]]:
        """End every open delivery to ``recipient`` as rejected with ``reason`` (a recipient this
        node no longer trusts: nothing more is published to it); return (message id, kind) of
        the messages that expected a receipt (receipts owed to it just end)."""
        with self._tx() as c:
            rows = c.execute(
                "SELECT r.message_id, o.kind, o.expects_receipt FROM outbox_recipients r"
                " JOIN outbox o USING (message_id) WHERE r.recipient = ? AND r.state IN (?, ?)",
                (recipient, *OPEN_STATES),
            ).fetchall()
            for r in rows:
                c.execute(
                    "UPDATE outbox_recipients SET state = ?, reason = ?, detail = ?,"
                    " updated_at = ?, next_attempt_at = NULL"
                    " WHERE message_id = ? AND recipient = ?",
                    (REJECTED, reason, detail, _ts(now), r["message_id"], recipient),
                )
                self._status_event(c, r["message_id"], recipient, REJECTED, reason, detail, now)
            self._append(c, [AuditEvent("rejected", now, message_id=r["message_id"],
                                        peer=recipient, detail={"reason": reason})
                             for r in rows])  # fmt: skip
            return [(r["message_id"], r["kind"]) for r in rows if r["expects_receipt"]]

    def expire_due(self, now: dt.datetime) -> list[tuple[str, str]]:
        """Mark open deliveries of expired messages as expired; return them."""
        with self._tx() as c:
            rows = c.execute(
                "SELECT r.message_id, r.recipient FROM outbox_recipients r"
                " JOIN outbox o USING (message_id) WHERE r.state IN (?, ?) AND o.expires_at <= ?",
                (*OPEN_STATES, _ts(now)),
            ).fetchall()
            pairs = [(r["message_id"], r["recipient"]) for r in rows]
            for message_id, recipient in pairs:
                c.execute(
                    "UPDATE outbox_recipients SET state = ?, updated_at = ?, next_attempt_at = NULL"
                    " WHERE message_id = ? AND recipient = ?",
                    (EXPIRED, _ts(now), message_id, recipient),
                )
                self._status_event(c, message_id, recipient, EXPIRED, None, None, now)
            self._append(
                c,
                [AuditEvent("expired", now, message_id=m, peer=r) for m, r in pairs],
            )
        return pairs

    def purge(self, now: dt.datetime, retention: Retention) -> dict[str, int]:
        """Delete what retention no longer allows: received messages (and their adapter
        progress), sent messages whose every recipient is final (and their status events),
        quarantined records, and dedupe entries past their keep-until. Message ids and hashes
        stay in the audit log."""
        with self._tx() as c:
            inbox = c.execute(  # at the node's limit or the sender's; a legal hold keeps it
                "SELECT seq, message_id, received_at < ? AS ours FROM inbox i"
                " WHERE (received_at < ? OR retain_until < ?) AND NOT EXISTS (SELECT 1 FROM"
                " legal_holds h WHERE h.released_at IS NULL AND (h.message_id = i.message_id"
                " OR h.thread_id = i.thread_id))",
                (_ts(retention.inbox_before), _ts(retention.inbox_before), _ts(now)),
            ).fetchall()
            for r in inbox:
                c.execute("DELETE FROM adapter_deliveries WHERE seq = ?", (r["seq"],))
                c.execute("DELETE FROM subject_index WHERE seq = ?", (r["seq"],))
                c.execute("DELETE FROM inbox WHERE seq = ?", (r["seq"],))
            outbox = c.execute(  # candidates by the updated_at index, then every recipient
                "SELECT DISTINCT message_id FROM outbox_recipients c WHERE c.updated_at < ?"
                " AND NOT EXISTS (SELECT 1 FROM outbox_recipients r WHERE r.message_id ="
                " c.message_id AND (r.state IN (?, ?) OR r.updated_at >= ?))",
                (_ts(retention.outbox_before), *OPEN_STATES, _ts(retention.outbox_before)),
            ).fetchall()
            for r in outbox:  # the outcomes of a sent message go with it
                c.execute("DELETE FROM status_events WHERE message_id = ?", (r["message_id"],))
                c.execute("DELETE FROM outbox WHERE message_id = ?", (r["message_id"],))
            quarantine = c.execute(
                "DELETE FROM quarantine WHERE received_at < ?", (_ts(retention.quarantine_before),)
            ).rowcount
            # a step is kept as long as the message it was is kept, on either side
            c.execute(
                "DELETE FROM procedure_steps WHERE NOT EXISTS (SELECT 1 FROM inbox i WHERE"
                " i.message_id = procedure_steps.message_id) AND NOT EXISTS (SELECT 1 FROM"
                " outbox o WHERE o.message_id = procedure_steps.message_id)"
            )
            # A dedupe row outlives its keep-until while the inbox still holds the message: a copy
            # arriving then must be recognised, not stored a second time.
            dedupe = c.execute(
                "DELETE FROM dedupe WHERE keep_until < ? AND NOT EXISTS (SELECT 1 FROM inbox i"
                " WHERE i.sender = dedupe.sender AND i.message_id = dedupe.message_id)",
                (_ts(now),),
            ).rowcount
            counts = {"inbox": len(inbox), "outbox": len(outbox), "quarantine": quarantine,
                      "dedupe": dedupe}  # fmt: skip
            events = [AuditEvent("purged", now, message_id=r["message_id"], detail={
                "from": "inbox", "limit": "node" if r["ours"] else "sender"})
                for r in inbox]  # fmt: skip
            events += [AuditEvent("purged", now, message_id=r["message_id"],
                                  detail={"from": "outbox"}) for r in outbox]  # fmt: skip
            if quarantine:
                events.append(AuditEvent("purged", now, detail={"from": "quarantine",
                                                                "count": quarantine}))  # fmt: skip
            self._append(c, events)
        return counts

    def message_status(self, message_id: str) -> list[RecipientStatus]:
        rows = self._conn.execute(
            "SELECT * FROM outbox_recipients WHERE message_id = ? ORDER BY recipient",
            (message_id,),
        ).fetchall()
        return [
            RecipientStatus(
                recipient=r["recipient"],
                state=r["state"],
                attempts=r["attempts"],
                updated_at=_dt_req(r["updated_at"]),
                last_attempt_at=_dt(r["last_attempt_at"]),
                next_attempt_at=_dt(r["next_attempt_at"]),
                reason=r["reason"],
                detail=r["detail"],
            )
            for r in rows
        ]

    def outbox_depth(self) -> dict[str, int]:
        """Open deliveries per recipient (the backlog operators watch)."""
        rows = self._conn.execute(
            "SELECT recipient, COUNT(*) AS n FROM outbox_recipients WHERE state IN (?, ?)"
            " GROUP BY recipient",
            OPEN_STATES,
        ).fetchall()
        return {r["recipient"]: r["n"] for r in rows}

    def snapshot(self) -> Snapshot:
        """Backlog per peer, age of the oldest unreceipted message, audit length, webhook
        failures — what operators watch — in one read."""
        rows = self._conn.execute(
            "SELECT r.recipient, COUNT(*) AS n, MIN(o.created_at) AS oldest"
            " FROM outbox_recipients r JOIN outbox o USING (message_id)"
            " WHERE r.state IN (?, ?) AND o.expects_receipt = 1 GROUP BY r.recipient",
            OPEN_STATES,
        ).fetchall()
        audit = self._conn.execute("SELECT COALESCE(MAX(seq), 0) AS n FROM audit").fetchone()
        failed = self._conn.execute(
            "SELECT COUNT(*) AS n FROM inbox WHERE state = 'webhook-failed'"
        ).fetchone()
        usage = QuarantineUsage({False: 0, True: 0}, {False: 0, True: 0})
        for r in self._conn.execute(
            "SELECT authenticated, COUNT(*) AS n, COALESCE(SUM(LENGTH(raw)), 0) AS b"
            " FROM quarantine GROUP BY authenticated"
        ):
            usage.entries[bool(r["authenticated"])] = int(r["n"])
            usage.raw_bytes[bool(r["authenticated"])] = int(r["b"])
        return Snapshot(
            outbox_depth={r["recipient"]: r["n"] for r in rows},
            oldest_open={r["recipient"]: _dt_req(r["oldest"]) for r in rows},
            audit_length=int(audit["n"]),
            webhook_failed=int(failed["n"]),
            quarantine=usage,
        )

    # -- inbound -------------------------------------------------------------------------------

    def seen(self, sender: str, message_id: str) -> DedupeEntry | None:
        r = self._conn.execute(
            "SELECT * FROM dedupe WHERE sender = ? AND message_id = ?", (sender, message_id)
        ).fetchone()
        return None if r is None else _dedupe_entry(r)

    def seen_many(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], DedupeEntry]:
        """:meth:`seen` for many (sender, message id) pairs at once: those decided before (one
        query by primary key per :data:`SEEN_CHUNK` pairs, for a consumed batch)."""
        pairs = list(dict.fromkeys(keys))
        found: dict[tuple[str, str], DedupeEntry] = {}
        for i in range(0, len(pairs), SEEN_CHUNK):
            chunk = pairs[i : i + SEEN_CHUNK]
            placeholders = ", ".join(["(?, ?)"] * len(chunk))  # only placeholders
            rows = self._conn.execute(
                f"SELECT d.* FROM (VALUES {placeholders}) AS k CROSS JOIN dedupe AS d"  # noqa: S608
                " ON d.sender = k.column1 AND d.message_id = k.column2",  # by primary key
                [v for pair in chunk for v in pair],
            )
            for r in rows:
                found[(r["sender"], r["message_id"])] = _dedupe_entry(r)
        return found

    def mark_answered(self, sender: str, message_id: str, at: dt.datetime) -> None:
        """Note that a copy of (sender, message id) was just answered (duplicates are answered
        at most once per interval)."""
        with self._tx() as c:
            c.execute(
                "UPDATE dedupe SET answered_at = ? WHERE sender = ? AND message_id = ?",
                (_ts(at), sender, message_id),
            )

    def _remember(self, c: sqlite3.Connection, d: DedupeEntry) -> None:
        c.execute(
            "INSERT INTO dedupe (sender, message_id, outcome, reason, envelope_sha256, seen_at,"
            " keep_until, answered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                d.sender,
                d.message_id,
                d.outcome,
                d.reason,
                d.envelope_sha256,
                _ts(d.seen_at),
                _ts(d.keep_until),
                None if d.answered_at is None else _ts(d.answered_at),
            ),
        )

    def record_inbound(
        self,
        message: InboxMessage,
        dedupe: DedupeEntry,
        audit: Sequence[AuditEvent],
        receipt: tuple[OutboundMessage, AuditEvent] | None = None,
        step: ProcedureStep | None = None,
        fact: Fact | None = None,
    ) -> InboundResult:
        """Store a verified message, remember (sender, id) and queue its receipt, atomically
        (one fsync). Other senders that used the same id are reported, and audited as an
        ``id-collision``: both messages are kept, neither sender is refused."""
        with self._tx() as c:
            others = tuple(
                r["sender"]
                for r in c.execute(
                    "SELECT sender FROM dedupe WHERE message_id = ? AND sender <> ?"
                    " ORDER BY sender",
                    (message.message_id, message.sender),
                )
            )
            self._remember(c, dedupe)
            cursor = c.execute(
                "INSERT INTO inbox (message_id, sender, kind, thread_id, in_reply_to, schema_name,"
                " handling_code, envelope, envelope_sha256, created_at, expires_at, received_at,"
                " state, recipients, thread_joined, retain_until)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    message.message_id,
                    message.sender,
                    message.kind,
                    message.thread_id,
                    message.in_reply_to,
                    message.schema_name,
                    message.handling_code,
                    message.envelope,
                    message.envelope_sha256,
                    _ts(message.created_at),
                    _ts(message.expires_at),
                    _ts(message.received_at),
                    message.state,
                    ",".join(message.recipients),
                    int(message.thread_joined),
                    None if message.retain_until is None else _ts(message.retain_until),
                ),
            )
            if step is not None:
                self._insert_step(c, step)
            if fact is not None:
                insert_fact(c, fact)
            if message.subject_digests:
                c.executemany(
                    "INSERT OR IGNORE INTO subject_index (digest, seq) VALUES (?, ?)",
                    [(d, cursor.lastrowid) for d in message.subject_digests],
                )
            events = list(audit)  # "received" before the "receipt-sent" of its answer
            if others:
                events.append(
                    AuditEvent(
                        "id-collision", message.received_at, message_id=message.message_id,
                        peer=message.sender, detail={"also_used_by": list(others)},
                    )
                )  # fmt: skip
            self._append(c, events)
            if receipt is not None:
                self._insert_outbound(c, *receipt)
            return InboundResult(int(cursor.lastrowid or 0), others)

    def record_rejection(
        self,
        dedupe: DedupeEntry | None,
        quarantine: QuarantineEntry,
        audit: Sequence[AuditEvent],
        *,
        keep_unauthenticated: int | None = None,
    ) -> int:
        """Keep the refused record (what the caller decided to keep of it) with the reason.

        With ``keep_unauthenticated``, at most that many records of unauthenticated senders
        stay: the oldest beyond go, and the count of those is returned. Once that bound is
        reached a refused unauthenticated record is no longer audited one by one (the caller
        audits a periodic summary), so a flood of junk cannot grow the store without end."""
        with self._tx() as c:
            if dedupe is not None:
                self._remember(c, dedupe)
            c.execute(
                "INSERT INTO quarantine (received_at, reason, detail, raw, topic, partition,"
                ' "offset", sender, message_id, authenticated, raw_sha256, raw_length)'
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _ts(quarantine.received_at),
                    quarantine.reason,
                    quarantine.detail,
                    quarantine.raw,
                    quarantine.topic,
                    quarantine.partition,
                    quarantine.offset,
                    quarantine.sender,
                    quarantine.message_id,
                    int(quarantine.authenticated),
                    quarantine.raw_sha256,
                    quarantine.raw_length,
                ),
            )
            evicted = 0
            if keep_unauthenticated is not None and not quarantine.authenticated:
                evicted = c.execute(
                    "DELETE FROM quarantine WHERE authenticated = 0 AND id NOT IN (SELECT id"
                    " FROM quarantine WHERE authenticated = 0 ORDER BY id DESC LIMIT ?)",
                    (keep_unauthenticated,),
                ).rowcount
            if not evicted:
                self._append(c, audit)
            return evicted

    def quarantine_bytes(self, sender: str) -> int:
        """Bytes of refused records of one authenticated sender kept whole (its quota use)."""
        row = self._conn.execute(
            "SELECT COALESCE(SUM(LENGTH(raw)), 0) AS n FROM quarantine"
            " WHERE authenticated = 1 AND sender = ?",
            (sender,),
        ).fetchone()
        return int(row["n"])

    def _inbox_row(self, r: sqlite3.Row) -> InboxMessage:
        return InboxMessage(
            seq=r["seq"],
            message_id=r["message_id"],
            sender=r["sender"],
            kind=r["kind"],
            thread_id=r["thread_id"],
            in_reply_to=r["in_reply_to"],
            schema_name=r["schema_name"],
            handling_code=r["handling_code"],
            envelope=r["envelope"],
            envelope_sha256=r["envelope_sha256"],
            created_at=_dt_req(r["created_at"]),
            expires_at=_dt_req(r["expires_at"]),
            received_at=_dt_req(r["received_at"]),
            state=r["state"],
            recipients=tuple(filter(None, r["recipients"].split(","))),
            thread_joined=bool(r["thread_joined"]),
            local_wrap=(
                None if r["local_wrap"] is None else (r["local_key_id"], bytes(r["local_wrap"]))
            ),
            retain_until=_dt(r["retain_until"]),
        )

    def inbox(
        self,
        after: int,
        kind: str | Sequence[str] | None,
        limit: int,
        naming: Sequence[bytes] | None = None,
    ) -> list[InboxMessage]:
        """Received messages after cursor ``after``, of one kind or any of several; with
        ``naming``, only those that name one of these identifier digests."""
        query = "SELECT * FROM inbox WHERE seq > ?"
        args: list[object] = [after]
        if naming is not None:
            marks = ", ".join("?" * len(naming))  # placeholders only; the digests are bound
            query += f" AND seq IN (SELECT seq FROM subject_index WHERE digest IN ({marks}))"  # noqa: S608
            args.extend(naming)
        if kind is not None:
            kinds = [kind] if isinstance(kind, str) else list(kind)
            query += f" AND kind IN ({', '.join('?' * len(kinds))})"
            args.extend(kinds)
        rows = self._conn.execute(query + " ORDER BY seq LIMIT ?", (*args, limit)).fetchall()
        return [self._inbox_row(r) for r in rows]

    def inbox_at(self, seq: int) -> InboxMessage | None:
        r = self._conn.execute("SELECT * FROM inbox WHERE seq = ?", (seq,)).fetchone()
        return None if r is None else self._inbox_row(r)

    def inbox_message(self, message_id: str, sender: str | None = None) -> InboxMessage | None:
        """The first message stored under this id (of ``sender``, if given), or None."""
        found = [m for m in self.inbox_messages(message_id) if sender in (None, m.sender)]
        return found[0] if found else None

    def inbox_messages(self, message_id: str) -> list[InboxMessage]:
        """Every received message under this id: one, unless senders collided on it."""
        rows = self._conn.execute(
            "SELECT * FROM inbox WHERE message_id = ? ORDER BY seq", (message_id,)
        ).fetchall()
        return [self._inbox_row(r) for r in rows]

    def set_local_wraps(self, wraps: Sequence[tuple[int, str, bytes]]) -> None:
        """Keep (inbox seq, key id, wrapped content key) re-wraps, in one transaction."""
        with self._tx() as c:
            c.executemany(
                "UPDATE inbox SET local_key_id = ?, local_wrap = ? WHERE seq = ?",
                [(key_id, wrap, seq) for seq, key_id, wrap in wraps],
            )

    def ack(self, seq: int, now: dt.datetime) -> bool:
        """Mark a received message processed by the local system (audited)."""
        with self._tx() as c:
            row = c.execute("SELECT message_id, sender FROM inbox WHERE seq = ?", (seq,)).fetchone()
            if row is None:
                return False
            c.execute("UPDATE inbox SET state = 'acked' WHERE seq = ?", (seq,))
            self._append(
                c, [AuditEvent("acked", now, message_id=row["message_id"], peer=row["sender"])]
            )
            return True

    def quarantined(self, limit: int) -> list[QuarantineEntry]:
        rows = self._conn.execute(
            "SELECT * FROM quarantine ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [
            QuarantineEntry(
                received_at=_dt_req(r["received_at"]),
                reason=r["reason"],
                detail=r["detail"],
                raw=r["raw"],
                topic=r["topic"],
                partition=r["partition"],
                offset=r["offset"],
                sender=r["sender"],
                message_id=r["message_id"],
                id=r["id"],
                authenticated=bool(r["authenticated"]),
                raw_sha256=r["raw_sha256"],
                raw_length=r["raw_length"],
            )
            for r in rows
        ]

    def thread(self, thread_id: str) -> tuple[list[OutboundMessage], list[InboxMessage]]:
        """Everything of one case this node sent (receipts excluded) and received, in order."""
        sent = self._conn.execute(
            "SELECT * FROM outbox WHERE thread_id = ? AND expects_receipt = 1 ORDER BY created_at",
            (thread_id,),
        ).fetchall()
        recipients: dict[str, list[str]] = {}
        for r in self._conn.execute(
            "SELECT r.message_id, r.recipient FROM outbox_recipients r JOIN outbox o"
            " USING (message_id) WHERE o.thread_id = ? ORDER BY r.recipient",
            (thread_id,),
        ):
            recipients.setdefault(r["message_id"], []).append(r["recipient"])
        outbound = [self._outbound_row(r, tuple(recipients.get(r["message_id"], ()))) for r in sent]
        received = self._conn.execute(
            "SELECT * FROM inbox WHERE thread_id = ? ORDER BY seq", (thread_id,)
        ).fetchall()
        return outbound, [self._inbox_row(r) for r in received]

    def thread_participants(self, thread_id: str) -> frozenset[str]:
        """Who takes part in a thread at this node: the senders and addressees of the messages
        that joined it, and the recipients of what this node sent in it (receipts excluded).
        This node itself is not named; an empty set means the thread is new here."""
        names: set[str] = set()
        for r in self._conn.execute(
            "SELECT sender, recipients FROM inbox WHERE thread_id = ? AND thread_joined = 1",
            (thread_id,),
        ):
            names.add(r["sender"])
            names.update(filter(None, r["recipients"].split(",")))
        for r in self._conn.execute(
            "SELECT DISTINCT r.recipient FROM outbox_recipients r JOIN outbox o"
            " USING (message_id) WHERE o.thread_id = ? AND o.expects_receipt = 1",
            (thread_id,),
        ):
            names.add(r["recipient"])
        return frozenset(names)

    def set_inbox_state(self, seq: int, state: str) -> None:
        with self._tx() as c:
            c.execute("UPDATE inbox SET state = ? WHERE seq = ?", (state, seq))

    # -- adapters ------------------------------------------------------------------------------

    def adapter_cursor(self, adapter: str) -> int:
        row = self._conn.execute(
            "SELECT seq FROM adapter_cursors WHERE adapter = ?", (adapter,)
        ).fetchone()
        return 0 if row is None else int(row["seq"])

    def set_adapter_cursor(self, adapter: str, seq: int, audit: Sequence[AuditEvent] = ()) -> None:
        """Move an adapter's cursor forward (never back) to ``seq``, with ``audit`` in the same
        transaction: an item given up on is audited exactly when it is passed over."""
        with self._tx() as c:
            c.execute(
                "INSERT INTO adapter_cursors (adapter, seq) VALUES (?, ?)"
                " ON CONFLICT (adapter) DO UPDATE SET seq = MAX(seq, excluded.seq)",
                (adapter, seq),
            )
            self._append(c, audit)

    def enqueue_adapter(self, adapter: str, limit: int) -> int:
        """Queue inbox messages the adapter has not seen yet; return how many were queued."""
        with self._tx() as c:
            row = c.execute(
                "SELECT COALESCE(MAX(seq), 0) AS seq FROM adapter_deliveries WHERE adapter = ?",
                (adapter,),
            ).fetchone()
            rows = c.execute(
                "SELECT seq, message_id, thread_id, received_at FROM inbox WHERE seq > ?"
                " ORDER BY seq LIMIT ?",
                (row["seq"], limit),
            ).fetchall()
            c.executemany(
                "INSERT INTO adapter_deliveries (adapter, seq, message_id, thread_id, state,"
                " next_attempt_at, updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                [
                    (adapter, r["seq"], r["message_id"], r["thread_id"], r["received_at"],
                     r["received_at"])
                    for r in rows
                ],
            )  # fmt: skip
            return len(rows)

    def adapter_pending(self, adapter: str, limit: int) -> list[AdapterDelivery]:
        rows = self._conn.execute(
            "SELECT * FROM adapter_deliveries WHERE adapter = ? AND state = 'pending'"
            " ORDER BY seq LIMIT ?",
            (adapter, limit),
        ).fetchall()
        return [self._adapter_row(r) for r in rows]

    def _adapter_row(self, r: sqlite3.Row) -> AdapterDelivery:
        return AdapterDelivery(
            seq=r["seq"],
            message_id=r["message_id"],
            thread_id=r["thread_id"],
            state=r["state"],
            attempts=r["attempts"],
            next_attempt_at=_dt(r["next_attempt_at"]),
            last_error=r["last_error"],
        )

    def record_adapter_attempt(
        self,
        adapter: str,
        seq: int,
        *,
        state: str,
        now: dt.datetime,
        next_attempt_at: dt.datetime | None,
        error: str | None,
        audit: Sequence[AuditEvent],
    ) -> None:
        """Count an attempt; ``failed`` also marks the inbox message ``<adapter>-failed``."""
        with self._tx() as c:
            c.execute(
                "UPDATE adapter_deliveries SET state = ?, attempts = attempts + 1,"
                " next_attempt_at = ?, last_error = ?, updated_at = ?"
                " WHERE adapter = ? AND seq = ?",
                (
                    state,
                    None if next_attempt_at is None else _ts(next_attempt_at),
                    error,
                    _ts(now),
                    adapter,
                    seq,
                ),
            )
            if state == "failed":
                c.execute(
                    "UPDATE inbox SET state = ? WHERE seq = ? AND state = 'received'",
                    (f"{adapter}-failed", seq),
                )
            self._append(c, audit)

    def retry_adapter(self, adapter: str, message_id: str | None, now: dt.datetime) -> int:
        """Queue failed deliveries again (one message, or all): after the local system is fixed."""
        with self._tx() as c:
            query = "SELECT seq, message_id FROM adapter_deliveries WHERE adapter = ? AND state = ?"
            args: list[object] = [adapter, "failed"]
            if message_id is not None:
                query += " AND message_id = ?"
                args.append(message_id)
            rows = c.execute(query, args).fetchall()
            for r in rows:
                c.execute(
                    "UPDATE adapter_deliveries SET state = 'pending', attempts = 0,"
                    " next_attempt_at = ?, last_error = NULL, updated_at = ?"
                    " WHERE adapter = ? AND seq = ?",
                    (_ts(now), _ts(now), adapter, r["seq"]),
                )
                c.execute(
                    "UPDATE inbox SET state = 'received' WHERE seq = ? AND state = ?",
                    (r["seq"], f"{adapter}-failed"),
                )
            self._append(c, [AuditEvent(f"{adapter}-retry", now, message_id=r["message_id"])
                             for r in rows])  # fmt: skip
            return len(rows)

    def adapter_failures(self, adapter: str) -> int:
        row = self._conn.execute(
            "SELECT COUNT(*) AS n FROM adapter_deliveries WHERE adapter = ? AND state = 'failed'",
            (adapter,),
        ).fetchone()
        return int(row["n"])

    # -- API tokens ----------------------------------------------------------------------------

    def add_token(self, token: ApiToken) -> None:
        with self._tx() as c:
            if c.execute("SELECT 1 FROM api_tokens WHERE name = ?", (token.name,)).fetchone():
                raise StoreError(f"a token named {token.name!r} exists; revoke it or pick another")
            c.execute(
                "INSERT INTO api_tokens (token_id, name, scopes, secret_sha256, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    token.token_id,
                    token.name,
                    " ".join(token.scopes),
                    token.secret_sha256,
                    _ts(token.created_at),
                ),
            )

    def _token_row(self, r: sqlite3.Row) -> ApiToken:
        return ApiToken(
            token_id=r["token_id"],
            name=r["name"],
            scopes=tuple(r["scopes"].split()),
            secret_sha256=r["secret_sha256"],
            created_at=_dt_req(r["created_at"]),
            revoked_at=_dt(r["revoked_at"]),
        )

    def token(self, token_id: str) -> ApiToken | None:
        r = self._conn.execute(
            "SELECT * FROM api_tokens WHERE token_id = ?", (token_id,)
        ).fetchone()
        return None if r is None else self._token_row(r)

    def tokens(self) -> list[ApiToken]:
        rows = self._conn.execute("SELECT * FROM api_tokens ORDER BY created_at").fetchall()
        return [self._token_row(r) for r in rows]

    def revoke_token(self, name_or_id: str, now: dt.datetime) -> ApiToken | None:
        with self._tx() as c:
            r = c.execute(
                "SELECT * FROM api_tokens WHERE name = ? OR token_id = ?", (name_or_id, name_or_id)
            ).fetchone()
            if r is None:
                return None
            if r["revoked_at"] is None:
                c.execute(
                    "UPDATE api_tokens SET revoked_at = ? WHERE token_id = ?",
                    (_ts(now), r["token_id"]),
                )
            r = c.execute(
                "SELECT * FROM api_tokens WHERE token_id = ?", (r["token_id"],)
            ).fetchone()
            return self._token_row(r)

    # -- officer console -------------------------------------------------------------------------

    def _user_row(self, r: sqlite3.Row) -> ConsoleUser:
        return ConsoleUser(
            name=r["name"],
            role=r["role"],
            password_hash=r["password_hash"],
            created_at=_dt_req(r["created_at"]),
            language=r["language"],
            kinds=tuple(filter(None, r["kinds"].split(","))),
            display_name=r["display_name"],
            disabled_at=_dt(r["disabled_at"]),
            failed_logins=r["failed_logins"],
            locked_until=_dt(r["locked_until"]),
        )

    def add_console_user(self, user: ConsoleUser, audit: AuditEvent) -> None:
        with self._tx() as c:
            if c.execute("SELECT 1 FROM console_users WHERE name = ?", (user.name,)).fetchone():
                raise StoreError(f"a console user named {user.name!r} exists")
            c.execute(
                "INSERT INTO console_users (name, role, password_hash, display_name, language,"
                " kinds, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (user.name, user.role, user.password_hash, user.display_name, user.language,
                 ",".join(user.kinds), _ts(user.created_at)),
            )  # fmt: skip
            self._append(c, [audit])

    def console_user(self, name: str) -> ConsoleUser | None:
        r = self._conn.execute("SELECT * FROM console_users WHERE name = ?", (name,)).fetchone()
        return None if r is None else self._user_row(r)

    def console_users(self) -> list[ConsoleUser]:
        rows = self._conn.execute("SELECT * FROM console_users ORDER BY name").fetchall()
        return [self._user_row(r) for r in rows]

    def update_console_user(
        self, name: str, audit: Sequence[AuditEvent] = (), **changes: object
    ) -> ConsoleUser | None:
        """Set the given columns (password_hash, language, disabled_at, failed_logins,
        locked_until, role, kinds) of one user, with its audit events, in one transaction."""
        allowed = {"password_hash", "language", "disabled_at", "failed_logins", "locked_until",
                   "role", "kinds", "display_name"}  # fmt: skip
        unknown = set(changes) - allowed
        if unknown:
            raise StoreError(f"unknown console user field(s): {', '.join(sorted(unknown))}")
        values = {
            k: (_ts(v) if isinstance(v, dt.datetime) else ",".join(v) if isinstance(v, tuple)
                else v)
            for k, v in changes.items()
        }  # fmt: skip
        with self._tx() as c:
            if not c.execute("SELECT 1 FROM console_users WHERE name = ?", (name,)).fetchone():
                return None
            if values:
                columns = ", ".join(f"{k} = ?" for k in values)
                c.execute(
                    f"UPDATE console_users SET {columns} WHERE name = ?",  # noqa: S608
                    (*values.values(), name),
                )
            self._append(c, audit)
            r = c.execute("SELECT * FROM console_users WHERE name = ?", (name,)).fetchone()
            return self._user_row(r)

    def save_draft(self, draft: Draft, audit: AuditEvent) -> int:
        """Insert (draft_id 0) or replace one of the owner's drafts; its id."""
        with self._tx() as c:
            if draft.draft_id:
                cur = c.execute(
                    "UPDATE console_drafts SET kind = ?, schema_name = ?, sealed = ?,"
                    " updated_at = ? WHERE draft_id = ? AND owner = ?",
                    (draft.kind, draft.schema_name, draft.sealed,
                     _ts(draft.updated_at), draft.draft_id, draft.owner),
                )  # fmt: skip
                if cur.rowcount:
                    self._append(c, [audit])
                    return draft.draft_id
            cur = c.execute(
                "INSERT INTO console_drafts (owner, kind, schema_name, sealed, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (draft.owner, draft.kind, draft.schema_name, draft.sealed,
                 _ts(draft.updated_at)),
            )  # fmt: skip
            self._append(c, [audit])
            return int(cur.lastrowid or 0)

    def _draft_row(self, r: sqlite3.Row) -> Draft:
        return Draft(r["draft_id"], r["owner"], r["kind"], r["schema_name"],
                     bytes(r["sealed"]), _dt_req(r["updated_at"]))  # fmt: skip

    def drafts(self, owner: str) -> list[Draft]:
        rows = self._conn.execute(
            "SELECT * FROM console_drafts WHERE owner = ? ORDER BY updated_at DESC", (owner,)
        ).fetchall()
        return [self._draft_row(r) for r in rows]

    def draft(self, draft_id: int, owner: str) -> Draft | None:
        r = self._conn.execute(
            "SELECT * FROM console_drafts WHERE draft_id = ? AND owner = ?", (draft_id, owner)
        ).fetchone()
        return None if r is None else self._draft_row(r)

    def delete_draft(self, draft_id: int, owner: str, audit: AuditEvent | None = None) -> bool:
        with self._tx() as c:
            cur = c.execute(
                "DELETE FROM console_drafts WHERE draft_id = ? AND owner = ?", (draft_id, owner)
            )
            if cur.rowcount and audit is not None:
                self._append(c, [audit])
            return bool(cur.rowcount)

    def purge_drafts(self, before: dt.datetime) -> int:
        with self._tx() as c:
            return c.execute(
                "DELETE FROM console_drafts WHERE updated_at < ?", (_ts(before),)
            ).rowcount

    def inbox_recent(self, kinds: Sequence[str], limit: int) -> list[InboxMessage]:
        """The newest received messages of these kinds, newest first."""
        rows = self._conn.execute(
            f"SELECT * FROM inbox WHERE kind IN ({', '.join('?' * len(kinds))})"  # noqa: S608
            " ORDER BY seq DESC LIMIT ?",
            (*kinds, limit),
        ).fetchall()
        return [self._inbox_row(r) for r in rows]

    def mark_read(self, user_name: str, seq: int) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT OR IGNORE INTO console_reads (user_name, seq) VALUES (?, ?)",
                (user_name, seq),
            )

    def read_seqs(self, user_name: str) -> frozenset[int]:
        rows = self._conn.execute(
            "SELECT seq FROM console_reads WHERE user_name = ?", (user_name,)
        ).fetchall()
        return frozenset(r["seq"] for r in rows)

    def sent_messages(
        self, kinds: Sequence[str], limit: int
    ) -> list[tuple[OutboundMessage, list[RecipientStatus]]]:
        """The newest messages this node sent of these kinds (receipts excluded), each with its
        per-recipient status."""
        rows = self._conn.execute(
            f"SELECT * FROM outbox WHERE expects_receipt = 1 AND kind IN"  # noqa: S608
            f" ({', '.join('?' * len(kinds))}) ORDER BY created_at DESC LIMIT ?",
            (*kinds, limit),
        ).fetchall()
        result = []
        for r in rows:
            statuses = self.message_status(r["message_id"])
            message = self._outbound_row(r, tuple(s.recipient for s in statuses))
            result.append((message, statuses))
        return result

    def discard_quarantined(self, entry_id: int, audit: AuditEvent) -> bool:
        """Delete one quarantine entry, with the audit event that names who did it."""
        with self._tx() as c:
            cur = c.execute("DELETE FROM quarantine WHERE id = ?", (entry_id,))
            if cur.rowcount:
                self._append(c, [audit])
            return bool(cur.rowcount)

    def adapter_failed(self, adapter: str, limit: int) -> list[AdapterDelivery]:
        """Deliveries of an adapter that gave up (webhook-failed), newest first."""
        rows = self._conn.execute(
            "SELECT * FROM adapter_deliveries WHERE adapter = ? AND state = 'failed'"
            " ORDER BY seq DESC LIMIT ?",
            (adapter, limit),
        ).fetchall()
        return [self._adapter_row(r) for r in rows]

    # -- data protection (docs/data-protection.md) ----------------------------------------------

    def erase_received(
        self, sender: str, message_ids: Sequence[str], now: dt.datetime, detail: dict[str, Any]
    ) -> list[InboxMessage]:
        """Erase what this node keeps of messages ``sender`` sent it: the envelope and its
        re-wrapped content key, the adapters' pending hand-overs, quarantined copies. What stays
        is the metadata (ids, thread, sender, envelope hash) and one ``erased`` audit entry per
        message with ``detail``. Returns the messages as they were (for the adapters' files)."""
        if not message_ids:
            return []
        marks = ", ".join("?" * len(message_ids))
        with self._tx() as c:
            rows = c.execute(
                f"SELECT * FROM inbox WHERE sender = ? AND message_id IN ({marks})"  # noqa: S608
                " ORDER BY seq",
                (sender, *message_ids),
            ).fetchall()
            before = [self._inbox_row(r) for r in rows]
            for m in before:
                c.execute(
                    "UPDATE inbox SET envelope = x'', local_key_id = NULL, local_wrap = NULL,"
                    " state = ? WHERE seq = ?",
                    (ERASED_STATE, m.seq),
                )
                c.execute("DELETE FROM adapter_deliveries WHERE seq = ?", (m.seq,))
                c.execute("DELETE FROM subject_index WHERE seq = ?", (m.seq,))
                c.execute("DELETE FROM procedure_steps WHERE message_id = ? AND party = ?",
                          (m.message_id, sender))  # fmt: skip
                c.execute("DELETE FROM stat_facts WHERE message_id = ? AND direction = 'received'",
                          (m.message_id,))  # fmt: skip
            c.execute(
                f"UPDATE quarantine SET raw = x'' WHERE sender = ? AND message_id IN ({marks})"  # noqa: S608
                " AND LENGTH(raw) > 0",
                (sender, *message_ids),
            )
            self._append(c, [
                AuditEvent("erased", now, message_id=m.message_id, peer=sender, detail={
                    "from": "inbox", "envelope_sha256": m.envelope_sha256, **detail})
                for m in before if not m.erased
            ])  # fmt: skip
        return before

    def erase_sent(
        self, message_ids: Sequence[str], now: dt.datetime, detail: dict[str, Any]
    ) -> list[tuple[str, str]]:
        """Erase this node's own sealed copies of messages it sent, and end their open
        deliveries as ``expired`` with reason ``withdrawn`` (nothing more is published);
        returns the (message id, recipient) deliveries so ended."""
        if not message_ids:
            return []
        marks = ", ".join("?" * len(message_ids))
        with self._tx() as c:
            ended = [(r["message_id"], r["recipient"]) for r in c.execute(
                f"SELECT message_id, recipient FROM outbox_recipients WHERE message_id IN ({marks})"  # noqa: S608
                " AND state IN (?, ?)",
                (*message_ids, *OPEN_STATES),
            )]  # fmt: skip
            why = "erased by this node before delivery (erasure request)"
            for message_id, recipient in ended:
                c.execute(
                    "UPDATE outbox_recipients SET state = ?, reason = ?, detail = ?,"
                    " updated_at = ?, next_attempt_at = NULL"
                    " WHERE message_id = ? AND recipient = ?",
                    (EXPIRED, WITHDRAWN, why, _ts(now), message_id, recipient),
                )
                self._status_event(c, message_id, recipient, EXPIRED, WITHDRAWN, why, now)
            erased = [r["message_id"] for r in c.execute(
                f"SELECT message_id FROM outbox WHERE message_id IN ({marks})"  # noqa: S608
                " AND LENGTH(envelope) > 0",
                tuple(message_ids),
            )]  # fmt: skip
            c.execute(
                f"UPDATE outbox SET envelope = x'' WHERE message_id IN ({marks})",  # noqa: S608
                tuple(message_ids),
            )
            c.execute(
                f"DELETE FROM procedure_steps WHERE direction = 'sent' AND message_id IN ({marks})",  # noqa: S608
                tuple(message_ids),
            )
            c.execute(
                f"DELETE FROM stat_facts WHERE direction = 'sent' AND message_id IN ({marks})",  # noqa: S608
                tuple(message_ids),
            )
            self._append(c, [AuditEvent("erased", now, message_id=m,
                                        detail={"from": "outbox", **detail})
                             for m in erased])  # fmt: skip
        return ended

    def checkpoint(self) -> bool:
        """Copy the write-ahead log into the database file and truncate it, so what was erased
        is not left in the log either; False when a reader kept it from completing."""
        row = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not row[0]

    def inbox_of_schema(self, schema_name: str, after: int, limit: int) -> list[InboxMessage]:
        """Received messages with this payload record after cursor ``after``, oldest first."""
        rows = self._conn.execute(
            "SELECT * FROM inbox WHERE schema_name = ? AND seq > ? ORDER BY seq LIMIT ?",
            (schema_name, after, limit),
        ).fetchall()
        return [self._inbox_row(r) for r in rows]

    def add_hold(self, hold: LegalHold) -> int:
        """Record a legal hold (audited); returns its id."""
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO legal_holds (message_id, thread_id, reason, note, recorded_by,"
                " recorded_at) VALUES (?, ?, ?, ?, ?, ?)",
                (hold.message_id, hold.thread_id, hold.reason, hold.note, hold.recorded_by,
                 _ts(hold.recorded_at)),
            )  # fmt: skip
            hold_id = int(cur.lastrowid or 0)
            self._append(c, [AuditEvent(
                "hold-recorded", hold.recorded_at, message_id=hold.message_id,
                detail={"hold_id": hold_id, "thread_id": hold.thread_id, "reason": hold.reason,
                        "by": hold.recorded_by},
            )])  # fmt: skip
            return hold_id

    def release_hold(self, hold_id: int, by: str, now: dt.datetime) -> bool:
        """End a hold in force (audited); False if there is none with that id."""
        with self._tx() as c:
            cur = c.execute(
                "UPDATE legal_holds SET released_at = ?, released_by = ?"
                " WHERE hold_id = ? AND released_at IS NULL",
                (_ts(now), by, hold_id),
            )
            if cur.rowcount:
                self._append(c, [AuditEvent("hold-released", now,
                                            detail={"hold_id": hold_id, "by": by})])  # fmt: skip
            return bool(cur.rowcount)

    def holds(self, include_released: bool = False) -> list[LegalHold]:
        query = "SELECT * FROM legal_holds"
        if not include_released:
            query += " WHERE released_at IS NULL"
        return [
            LegalHold(
                hold_id=r["hold_id"],
                reason=r["reason"],
                note=r["note"],
                recorded_by=r["recorded_by"],
                recorded_at=_dt_req(r["recorded_at"]),
                message_id=r["message_id"],
                thread_id=r["thread_id"],
                released_at=_dt(r["released_at"]),
                released_by=r["released_by"],
            )
            for r in self._conn.execute(query + " ORDER BY hold_id")
        ]

    def record_forward(
        self, forward_id: str, original_sender: str, original_id: str, recipients: Sequence[str],
        audit: AuditEvent,
    ) -> None:  # fmt: skip
        """Remember that ``forward_id`` passed on ``original_id`` to ``recipients`` (audited)."""
        with self._tx() as c:
            c.executemany(
                "INSERT OR IGNORE INTO forwards (forward_id, original_sender, original_id,"
                " recipient) VALUES (?, ?, ?, ?)",
                [(forward_id, original_sender, original_id, r) for r in recipients],
            )
            self._append(c, [audit])

    def forwards_of(
        self, original_sender: str, original_ids: Sequence[str]
    ) -> list[tuple[str, str]]:
        """(forward id, recipient) of every forward of these received messages."""
        if not original_ids:
            return []
        marks = ", ".join("?" * len(original_ids))
        return [(r["forward_id"], r["recipient"]) for r in self._conn.execute(
            "SELECT forward_id, recipient FROM forwards WHERE original_sender = ? AND"  # noqa: S608
            f" original_id IN ({marks}) ORDER BY forward_id, recipient",
            (original_sender, *original_ids),
        )]  # fmt: skip

    def procedure_steps(self, thread_id: str) -> list[ProcedureStep]:
        """The steps kept for a thread, in the order they were created."""
        return [
            ProcedureStep(
                thread_id=r["thread_id"],
                message_id=r["message_id"],
                party=r["party"],
                direction=r["direction"],
                procedure=r["procedure"],
                schema_name=r["schema_name"],
                kept=json.loads(r["kept"]),
                sent_at=_dt_req(r["sent_at"]),
                override_reason=r["override_reason"],
            )
            for r in self._conn.execute(
                "SELECT * FROM procedure_steps WHERE thread_id = ? ORDER BY sent_at, seq",
                (thread_id,),
            )
        ]

    def procedure_threads(self, schema_names: Sequence[str]) -> list[str]:
        """Threads holding a step of these records (the requests that wait for an answer)."""
        marks = ", ".join("?" * len(schema_names))
        return [r[0] for r in self._conn.execute(
            f"SELECT DISTINCT thread_id FROM procedure_steps WHERE schema_name IN ({marks})"  # noqa: S608
            " ORDER BY thread_id",
            tuple(schema_names),
        )]  # fmt: skip

    def announced_overdue(self) -> dict[str, dt.datetime]:
        """Threads whose overdue request was announced, with the deadline it was for."""
        return {r["thread_id"]: _dt_req(r["deadline"])
                for r in self._conn.execute("SELECT * FROM overdue_notices")}  # fmt: skip

    def announce_overdue(
        self, events: Sequence[StatusEvent], deadline: dt.datetime, audit: AuditEvent
    ) -> bool:
        """Record that a thread's request is overdue, once per deadline: a status event for the
        webhook and folder (``status: overdue``) and an audit entry. False if already done."""
        with self._tx() as c:
            event = events[0]
            row = c.execute("SELECT deadline FROM overdue_notices WHERE thread_id = ?",
                            (event.thread_id,)).fetchone()  # fmt: skip
            if row is not None and row["deadline"] == _ts(deadline):
                return False
            c.execute(
                "INSERT OR REPLACE INTO overdue_notices (thread_id, deadline, announced_at)"
                " VALUES (?, ?, ?)",
                (event.thread_id, _ts(deadline), _ts(event.at)),
            )
            c.executemany(
                "INSERT INTO status_events (message_id, recipient, kind, thread_id, status,"
                " reason, detail, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(e.message_id, e.recipient, e.kind, e.thread_id, e.status, e.reason, e.detail,
                  _ts(e.at)) for e in events],
            )  # fmt: skip
            self._append(c, [audit])
            return True

    def record_relay(self, request_id: str, origin_node: str, origin_request_id: str) -> None:
        """``request_id`` passed on ``origin_node``'s erasure request ``origin_request_id``."""
        with self._tx() as c:
            c.execute("INSERT OR IGNORE INTO erasure_relays VALUES (?, ?, ?)",
                      (request_id, origin_node, origin_request_id))  # fmt: skip

    def relay_of(self, request_id: str) -> tuple[str, str] | None:
        """(origin node, its request id) of an erasure request this node passed on."""
        row = self._conn.execute(
            "SELECT origin_node, origin_request_id FROM erasure_relays WHERE request_id = ?",
            (request_id,),
        ).fetchone()
        return None if row is None else (row["origin_node"], row["origin_request_id"])

    def originals_of(self, forward_ids: Sequence[str]) -> dict[str, str]:
        """forward id -> the received message it carried."""
        if not forward_ids:
            return {}
        marks = ", ".join("?" * len(forward_ids))
        return {r["forward_id"]: r["original_id"] for r in self._conn.execute(
            f"SELECT DISTINCT forward_id, original_id FROM forwards WHERE forward_id IN ({marks})",  # noqa: S608
            tuple(forward_ids),
        )}  # fmt: skip
