"""Statistics at work in a running node: the asyncio shell the API and the demo use around
:mod:`node.statistics` (store work on the store's thread) and :mod:`node.stats` (decisions).
A release is submitted like any other message, so it has the outbox's retries and receipts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from node import statistics, submit
from node.config import Config
from node.stats import rollup
from node.stats.model import ReleasedTable
from node.stats.periods import Period
from node.store.sqlite import SqliteStore
from node.trust import Descriptor

RunInStore = Callable[..., Awaitable[Any]]
PAGE = 500


class StatisticsDesk:
    """One node's statistics: ``run`` runs a store call on the store's thread, ``send``
    submits a message the way the local API does, ``inbox`` lists received messages with their
    payloads, ``peers`` the known peer descriptors."""

    def __init__(
        self, config: Config, store: SqliteStore, run: RunInStore,
        send: Callable[[submit.Request], Awaitable[str]],
        inbox: Callable[[int, Sequence[str], int], Awaitable[list[dict[str, Any]]]],
        peers: Callable[[], Iterable[Descriptor]], clock: Callable[[], dt.datetime],
    ) -> None:  # fmt: skip
        self.config, self.store, self._run, self._send = config, store, run, send
        self._inbox, self._peers, self._clock = inbox, peers, clock

    async def import_cases(
        self, text: str, media_type: str, *, replace_all: bool, source: str
    ) -> dict[str, int]:
        """All rows or none (:class:`node.stats.cases.ImportRefused` lists every error)."""
        counts = await self._run(statistics.import_cases, self.store, text, media_type,
                                 self._clock(), replace_all=replace_all, source=source)  # fmt: skip
        total = await self._run(self.store.local_case_count)
        return {**counts, "total": total}

    async def tables(self, period: Period, raw: bool,
                     chosen: Sequence[str] | None = None) -> list[ReleasedTable]:  # fmt: skip
        """One period's tables: protected as a release would carry them, or ``raw``."""
        tables = await self._run(statistics.compute, self.store, period, chosen)
        return statistics.shown(tables, self.config, raw)

    async def send(self, period: Period, to: Sequence[str] | None,
                   epsilon: float | None = None) -> dict[str, Any]:  # fmt: skip
        """Prepare, submit and record one release; :class:`release.ReleaseError` says why not."""
        recipients = list(to) if to else statistics.default_recipients(self.config, self._peers())
        at = self._clock()
        made = await self._run(statistics.prepare, self.store, self.config, period, at, epsilon)
        message_id = await self._send(statistics.request(made, self.config, recipients))
        await self._run(statistics.record_sent, self.store, made, message_id, recipients, at)
        return {
            "message_id": message_id, "release_id": made.release_id, "period": period.code,
            "to": recipients, "replaces": made.replaces, "epsilon": made.method.epsilon,
            "budget_remaining": made.budget_remaining,
            "cells": sum(len(t.cells) for t in made.tables),
            "suppressed": sum(v is None for t in made.tables for v in t.cells.values()),
        }  # fmt: skip

    async def received(self) -> list[rollup.Received]:
        items, after = [], 0
        while True:
            page = await self._inbox(after, ("statistics",), PAGE)
            items.extend(page)
            if len(page) < PAGE:
                break
            after = int(page[-1]["cursor"])
        return statistics.received_releases(i for i in items if i.get("payload") is not None)

    async def roll_up(self, periods: Sequence[Period]) -> rollup.RollUp:
        settings = self.config.statistics
        return rollup.roll_up(await self.received(), periods, settings.expected_from,
                              self._clock().date(), settings.due_days)  # fmt: skip
