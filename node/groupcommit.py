"""Group commit: writes from many coroutines share one store transaction and one fsync.

An API under load submits many messages at once, while the consumer stores a batch and the
publisher records its attempts. Each write awaits its own durability, but a write that arrives
while a transaction is being committed does not start its own: it waits for the commit in
flight and then goes with every other write that arrived meanwhile, in the next transaction.
A write alone still goes at once (no waiting for company), so latency at low load is that of a
single commit; under load the cost of an fsync is shared by everything it makes durable.

A write's answer comes only after the transaction holding it is committed, so "stored" (an
API's 202, a committed offset) still means on disk. Each write is all or nothing on its own
(the store runs it in a savepoint): one that raises gets its exception, the others go on. A disk
that refuses the transaction fails every write in it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
Write = Callable[[], Any]
RunBatch = Callable[[Sequence[Write]], Awaitable[list[Any]]]


class GroupCommit:
    """Queues writes and runs them, as many as have arrived, in one call of ``run_batch``
    (:meth:`node.store.sqlite.SqliteStore.batch` on the store's thread); one batch at a time."""

    def __init__(self, run_batch: RunBatch, max_writes: int = 1000) -> None:
        self._run_batch = run_batch
        self._max_writes = max_writes
        self._pending: list[tuple[Write, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0  # transactions run (a measurement: writes per transaction)
        self.writes = 0

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in the next transaction; its result once committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((functools.partial(fn, *args, **kwargs), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="group-commit")
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_writes]
            del self._pending[: self._max_writes]
            try:
                results = await self._run_batch([write for write, _ in batch])
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise
            except Exception as exc:  # the disk refused the transaction: nothing kept
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            self.writes += len(batch)
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():  # the writer stopped waiting; what it wrote is kept
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
