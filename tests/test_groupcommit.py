"""Group commit (node/groupcommit.py) over a real SQLite store on its own thread, as the node
runs it: concurrent writes share transactions, each write is all or nothing on its own, and a
disk that refuses a transaction fails every write in it (nobody hears "stored")."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from concurrent.futures import ThreadPoolExecutor

import pytest

from node.audit import AuditEvent, verify
from node.groupcommit import GroupCommit
from node.store.base import StoreFull
from node.store.sqlite import SqliteStore

NOW = dt.datetime(2026, 11, 22, 8, 30, tzinfo=dt.UTC)


@pytest.fixture
async def committer(tmp_path):
    pool = ThreadPoolExecutor(max_workers=1)
    store = await asyncio.get_running_loop().run_in_executor(
        pool, SqliteStore.open, tmp_path / "node.db"
    )

    async def run_batch(writes):
        return await asyncio.get_running_loop().run_in_executor(
            pool, functools.partial(store.batch, writes)
        )

    commits = []
    real_tx = store._tx

    def counted_tx():
        if not store._savepoints:
            commits.append(1)
        return real_tx()

    store._tx = counted_tx
    yield store, GroupCommit(run_batch), commits
    pool.submit(store.close).result()
    pool.shutdown()


def event(i: int) -> AuditEvent:
    return AuditEvent("console-action", NOW, detail={"n": i})


async def test_concurrent_writes_share_transactions_and_all_are_kept(committer):
    store, group, commits = committer
    await asyncio.gather(*(group.write(store.append_audit, [event(i)]) for i in range(200)))
    entries = store.audit_entries()
    assert sorted(e.event.detail["n"] for e in entries) == list(range(200))
    assert verify(entries).ok
    assert group.writes == 200 and group.batches == len(commits) < 20  # not one per write


async def test_a_write_alone_goes_at_once(committer):
    store, group, commits = committer
    await group.write(store.append_audit, [event(1)])
    await group.write(store.append_audit, [event(2)])
    assert len(commits) == group.batches == 2


async def test_a_failing_write_fails_alone(committer):
    store, group, _ = committer

    def bad() -> None:
        store.append_audit([event(99)])  # written, then undone with its savepoint
        raise ValueError("this write is refused")

    results = await asyncio.gather(
        group.write(store.append_audit, [event(1)]), group.write(bad),
        group.write(store.append_audit, [event(2)]), return_exceptions=True,
    )  # fmt: skip
    assert isinstance(results[1], ValueError) and results[0] is None and results[2] is None
    assert sorted(e.event.detail["n"] for e in store.audit_entries()) == [1, 2]


async def test_a_disk_that_refuses_the_transaction_fails_every_write_in_it(committer):
    store, group, _ = committer
    await group.write(store.append_audit, [event(0)])

    def full() -> None:
        raise StoreFull("no space left on the device holding the store")

    results = await asyncio.gather(  # queued before the first runs: one transaction
        group.write(store.append_audit, [event(1)]), group.write(full),
        group.write(store.append_audit, [event(2)]), return_exceptions=True,
    )  # fmt: skip
    assert all(isinstance(r, StoreFull) for r in results)  # none kept, all told
    assert [e.event.detail["n"] for e in store.audit_entries()] == [0]
