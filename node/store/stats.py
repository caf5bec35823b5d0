"""What the SQLite store keeps for statistics (docs/statistics.md): local case records, the
facts of exchanged messages and the releases sent. A mixin of :class:`SqliteStore`, so these
share its connection and transactions; kept apart because they change for their own reasons."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from node.audit import AuditEvent
from node.stats.cases import CaseRecord
from node.stats.facts import Fact

_DATES = ("identified_on", "investigated_on", "prosecuted_on", "convicted_on")


def insert_fact(c: sqlite3.Connection, fact: Fact) -> None:
    """Store a fact in the caller's transaction (the one that stores its message)."""
    c.execute(
        "INSERT OR IGNORE INTO stat_facts (message_id, direction, schema_name, thread_id, at,"
        " codes) VALUES (?, ?, ?, ?, ?, ?)",
        (fact.message_id, fact.direction, fact.schema, fact.thread_id, fact.at.timestamp(),
         json.dumps(dict(fact.codes), sort_keys=True)),
    )  # fmt: skip


def _record_json(record: CaseRecord) -> str:
    data: dict[str, Any] = dataclasses.asdict(record)
    for name in _DATES:
        if data[name] is not None:
            data[name] = data[name].isoformat()
    del data["case_id"]
    return json.dumps(data, sort_keys=True)


def _record(case_id: str, text: str) -> CaseRecord:
    data = json.loads(text)
    for name in _DATES:
        if data.get(name) is not None:
            data[name] = dt.date.fromisoformat(data[name])
    return CaseRecord(case_id=case_id, **data)


@dataclasses.dataclass(frozen=True)
class SentRelease:
    release_id: str
    period: str
    message_id: str
    recipients: tuple[str, ...]
    epsilon: float | None
    replaces: str | None
    created_at: dt.datetime


class StatisticsStore:
    """Statistics tables of the store; see the module docstring."""

    _conn: sqlite3.Connection

    def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:  # pragma: no cover
        raise NotImplementedError

    def _append(
        self, c: sqlite3.Connection, events: Sequence[AuditEvent]
    ) -> None:  # pragma: no cover
        raise NotImplementedError

    def import_cases(
        self, records: Sequence[CaseRecord], now: dt.datetime, replace_all: bool, audit: AuditEvent
    ) -> dict[str, int]:
        """Store checked records in one transaction: a case id seen before is replaced (the
        agency corrected it); ``replace_all`` first removes every earlier record. Returns how
        many were added, replaced and removed."""
        with self._tx() as c:
            removed = c.execute("DELETE FROM local_cases").rowcount if replace_all else 0
            known = {r[0] for r in c.execute("SELECT case_id FROM local_cases")}
            c.executemany(
                "INSERT INTO local_cases (case_id, record, imported_at) VALUES (?, ?, ?)"
                " ON CONFLICT (case_id) DO UPDATE SET record = excluded.record,"
                " imported_at = excluded.imported_at",
                [(r.case_id, _record_json(r), now.timestamp()) for r in records],
            )
            replaced = sum(r.case_id in known for r in records)
            counts = {"added": len(records) - replaced, "replaced": replaced, "removed": removed}
            self._append(c, [dataclasses.replace(audit, detail={**audit.detail, **counts})])
        return counts

    def local_cases(self) -> Iterator[CaseRecord]:
        """Every local case record (a generator: 100,000 rows need not sit in one list)."""
        cursor = self._conn.execute("SELECT case_id, record FROM local_cases ORDER BY case_id")
        for row in cursor:
            yield _record(row[0], row[1])

    def local_case_count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM local_cases").fetchone()[0])

    def stat_facts(self, since: dt.datetime | None = None) -> list[Fact]:
        """Facts of exchanged messages (since a time: a thread's earlier steps matter too, so
        callers pass the start of the oldest period they look at, less a year)."""
        rows = self._conn.execute(
            "SELECT * FROM stat_facts WHERE at >= ? ORDER BY at",
            (since.timestamp() if since else 0.0,),
        )
        return [
            Fact(r["message_id"], r["direction"], r["schema_name"], r["thread_id"],
                 dt.datetime.fromtimestamp(r["at"], dt.UTC), json.loads(r["codes"]))
            for r in rows
        ]  # fmt: skip

    def record_release(self, release: SentRelease) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO stat_releases (release_id, period, message_id, recipients, epsilon,"
                " replaces, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (release.release_id, release.period, release.message_id,
                 ",".join(release.recipients), release.epsilon, release.replaces,
                 release.created_at.timestamp()),
            )  # fmt: skip

    def sent_releases(self, period: str | None = None) -> list[SentRelease]:
        rows = self._conn.execute(
            "SELECT * FROM stat_releases WHERE ? IS NULL OR period = ? ORDER BY created_at",
            (period, period),
        )
        return [
            SentRelease(r["release_id"], r["period"], r["message_id"],
                        tuple(filter(None, r["recipients"].split(","))), r["epsilon"],
                        r["replaces"], dt.datetime.fromtimestamp(r["created_at"], dt.UTC))
            for r in rows
        ]  # fmt: skip
