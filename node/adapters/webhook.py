"""Webhook adapter: POST each received message to a local system (README "Webhook adapter").

At least once, never dropped, in order per thread. Progress lives in the store
(``adapter_deliveries``), not in memory: a message is queued for the webhook from the inbox
table itself, so a crash between storing a message and posting it loses nothing — the next
start posts it. A 2xx answer is done; anything else is retried with backoff up to
``[webhook] max_attempts``, after which the message stays in the inbox as ``webhook-failed``
(visible in the API, the audit log and metrics). While a message waits for a retry, later
messages of the same thread wait behind it; other threads go on.

The body is the inbox JSON; ``X-Xnode-Signature: sha256=<hex HMAC-SHA256 of the body>`` lets the
receiver check it came from its node (compare in constant time).

Status events (``[webhook] status_events``, on by default): the final outcome of every message
this node sent, per recipient (delivered, rejected — e.g. ``recipient-revoked`` — or expired),
is POSTed to the same URL with ``X-Xnode-Event: status`` (received messages carry
``X-Xnode-Event: message``), signed the same way, so the local system that sent a message
learns without polling that it did not arrive. They go one at a time in the order the store
recorded them (``status_events.seq``), from a cursor in the store (adapter ``webhook-status``)
that moves only after a 2xx: at least once. A failing event is retried with the same backoff up
to ``max_attempts`` (the count of the event in hand is kept in memory: after a restart it
starts again), then audited ``webhook-failed`` and passed over. Messages and status events run
in separate tasks, so neither holds the other back.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

from node.adapters import AdapterError
from node.audit import AuditEvent
from node.crypto.keyfile import KeyFileError
from node.delivery import RetryPolicy
from node.nodedir import read_passphrase
from node.store.base import AdapterDelivery, StatusEvent
from node.views import status_event_item

if TYPE_CHECKING:
    from node.service import Node

log = structlog.get_logger("xnode.webhook")
ADAPTER = "webhook"
STATUS_ADAPTER = "webhook-status"  # the cursor of status events in ``adapter_cursors``
SIGNATURE_HEADER = "X-Xnode-Signature"
EVENT_HEADER = "X-Xnode-Event"  # message | status
STATUS_BATCH = 100
MAX_WAIT = 5.0  # longest sleep of a loop: stop() waits for the loops to notice


def signature(secret: bytes, body: bytes) -> str:
    """The header value a receiver recomputes: ``sha256=<hex HMAC-SHA256(secret, body)>``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def due(pending: list[AdapterDelivery], now: dt.datetime) -> list[AdapterDelivery]:
    """The deliveries to attempt now: per thread only the oldest pending one, if it is due."""
    heads: dict[str, AdapterDelivery] = {}
    for d in pending:  # ordered by inbox sequence
        heads.setdefault(d.thread_id, d)
    return [d for d in heads.values() if d.next_attempt_at is None or d.next_attempt_at <= now]


def response_error(status: int, location: str | None) -> str | None:
    """None for a 2xx; otherwise why the attempt failed. A redirect names only where it pointed
    (scheme, host and port: a path or query could carry anything), and that it was not followed."""
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        target = "elsewhere"
        if location:
            parts = urllib.parse.urlsplit(location)
            if parts.hostname:  # never user:password@ or a path: only where it pointed
                port = f":{parts.port}" if parts.port else ""
                target = f"{parts.scheme}://{parts.hostname}{port}"
            else:
                target = "a path on the same host"
        return (
            f"HTTP {status} redirect to {target} not followed; webhook.url must name the final"
            " address"
        )
    return f"HTTP {status}"


@dataclass(frozen=True)
class HeadRetry:
    """The status event at the head of the queue that failed: how often, and when to try it
    again. Status events go strictly in order, so only the head ever waits."""

    seq: int
    attempts: int
    next_at: dt.datetime


class WebhookAdapter:
    def __init__(self, node: Node) -> None:
        self.node = node
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._stopping = asyncio.Event()
        self._head: HeadRetry | None = None

    async def start(self) -> None:
        config = self.node.config.webhook
        path = Path(config.secret_file)
        path = path if path.is_absolute() else self.node.node_dir.path / path
        try:
            secret = read_passphrase(str(path))
        except KeyFileError as exc:
            raise AdapterError(f"webhook.secret_file {path}: cannot be read or is empty") from exc
        if not secret:
            raise AdapterError(f"webhook.secret_file {path}: missing or empty")
        self._secret = secret
        self.url = config.url
        self.max_attempts = config.max_attempts
        self.retry = RetryPolicy(
            initial=dt.timedelta(seconds=config.retry_initial_seconds),
            maximum=dt.timedelta(seconds=config.retry_max_seconds),
        )
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=config.timeout_seconds)
        )
        self._stopping.clear()
        self._tasks = [asyncio.create_task(self._loop(), name=f"{self.node.node_id}-webhook")]
        if config.status_events:
            self._tasks.append(asyncio.create_task(
                self._status_loop(), name=f"{self.node.node_id}-webhook-status"
            ))  # fmt: skip
        log.info("webhook_started", node=self.node.node_id, url=self.url,
                 status_events=config.status_events)  # fmt: skip

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 30)
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _loop(self) -> None:
        node = self.node
        while not self._stopping.is_set():
            try:
                await node._run(node.store.enqueue_adapter, ADAPTER, 500)
                pending = await node._run(node.store.adapter_pending, ADAPTER, 500)
                for delivery in due(pending, node.clock()):
                    if self._stopping.is_set():
                        break
                    await self._attempt(delivery)
                wait = self._next_wait(pending)
            except Exception:  # the store failed: keep the adapter alive and try again
                log.exception("webhook_loop_failed", node=node.node_id)
                wait = 1.0
            if wait > 0:
                await node.inbox_changed.wait(wait)

    def _next_wait(self, pending: list[AdapterDelivery]) -> float:
        now = self.node.clock()
        times = [d.next_attempt_at for d in pending if d.next_attempt_at is not None]
        if not times:
            return MAX_WAIT
        return max(0.0, min(MAX_WAIT, (min(times) - now).total_seconds()))

    async def _post(self, body: bytes, headers: dict[str, str]) -> str | None:
        """POST one signed body; None for a 2xx, else why the attempt failed."""
        assert self._session is not None
        headers = {"Content-Type": "application/json",
                   SIGNATURE_HEADER: signature(self._secret, body), **headers}  # fmt: skip
        try:
            # Never follow a redirect: the body is decrypted case data (or what became of a
            # case's message) and the header proves it came from this node; a 3xx is a failed
            # attempt, whatever it points at.
            async with self._session.post(
                self.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                status, location = response.status, response.headers.get("Location")
            return response_error(status, location)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__

    async def _attempt(self, delivery: AdapterDelivery) -> None:
        node = self.node
        message = await node._run(node.store.inbox_at, delivery.seq)
        if message is None:  # purged meanwhile: nothing left to post
            await self._record(delivery, "done", None, "message no longer in the inbox")
            return
        body = json.dumps(node.inbox_item(message), separators=(",", ":")).encode()
        error = await self._post(body, {
            EVENT_HEADER: "message",
            "X-Xnode-Message-Id": delivery.message_id,
            "X-Xnode-Node": node.node_id,
            "X-Xnode-Delivery-Attempt": str(delivery.attempts + 1),
        })  # fmt: skip
        if error is None:
            await self._record(delivery, "done", None, None)
            return
        attempts = delivery.attempts + 1
        if attempts >= self.max_attempts:
            await self._record(delivery, "failed", None, error)
            node.metrics.webhook_failures.inc()
            log.error("webhook_failed", node=node.node_id, message_id=delivery.message_id,
                      thread_id=delivery.thread_id, attempts=attempts, error=error)  # fmt: skip
        else:
            await self._record(delivery, "pending", self.retry.next_attempt(attempts, node.clock()),
                               error)  # fmt: skip
            log.warning("webhook_retry", node=node.node_id, message_id=delivery.message_id,
                        attempts=attempts, error=error)  # fmt: skip

    async def _record(
        self, delivery: AdapterDelivery, state: str, next_at: dt.datetime | None, error: str | None
    ) -> None:
        now = self.node.clock()
        events = []
        if state != "pending":
            detail: dict[str, Any] = {"attempts": delivery.attempts + 1}
            if error:
                detail["error"] = error
            name = "webhook-delivered" if state == "done" else "webhook-failed"
            events.append(AuditEvent(name, now, message_id=delivery.message_id, detail=detail))
        await self.node._run(
            self.node.store.record_adapter_attempt, ADAPTER, delivery.seq, state=state, now=now,
            next_attempt_at=next_at, error=error, audit=events,
        )  # fmt: skip

    # -- status events --------------------------------------------------------------------------

    async def _status_loop(self) -> None:
        node = self.node
        while not self._stopping.is_set():
            try:
                wait = await self.post_status_events()
            except Exception:  # the store failed: keep the adapter alive and try again
                log.exception("webhook_status_loop_failed", node=node.node_id)
                wait = 1.0
            if wait > 0:
                await node.status_changed.wait(min(wait, MAX_WAIT))

    async def post_status_events(self) -> float:
        """Post the status events after the cursor, in order, until one fails; return how long
        to wait before the next round (0: more are waiting now)."""
        node = self.node
        cursor = await node._run(node.store.adapter_cursor, STATUS_ADAPTER)
        events = await node._run(node.store.status_events, cursor, STATUS_BATCH)
        for event in events:
            if self._stopping.is_set():
                return 0.0
            head = self._head if self._head is not None and self._head.seq == event.seq else None
            now = node.clock()
            if head is not None and head.next_at > now:
                return (head.next_at - now).total_seconds()
            attempts = (head.attempts if head else 0) + 1
            error = await self._post_status(event, attempts)
            if error is None:
                self._head = None
                await self._pass(event, "webhook-delivered", attempts, None)
            elif attempts >= self.max_attempts:
                self._head = None
                await self._pass(event, "webhook-failed", attempts, error)
                node.metrics.webhook_status_failures.inc()
                log.error("webhook_status_failed", node=node.node_id, seq=event.seq,
                          message_id=event.message_id, peer=event.recipient, attempts=attempts,
                          error=error)  # fmt: skip
            else:
                self._head = HeadRetry(event.seq, attempts, self.retry.next_attempt(attempts, now))
                log.warning("webhook_status_retry", node=node.node_id, seq=event.seq,
                            message_id=event.message_id, attempts=attempts,
                            error=error)  # fmt: skip
                return (self._head.next_at - node.clock()).total_seconds()
        return 0.0 if len(events) == STATUS_BATCH else MAX_WAIT

    async def _post_status(self, event: StatusEvent, attempt: int) -> str | None:
        body = json.dumps(status_event_item(event), separators=(",", ":")).encode()
        return await self._post(body, {
            EVENT_HEADER: "status",
            "X-Xnode-Status-Seq": str(event.seq),
            "X-Xnode-Node": self.node.node_id,
            "X-Xnode-Delivery-Attempt": str(attempt),
        })  # fmt: skip

    async def _pass(
        self, event: StatusEvent, outcome: str, attempts: int, error: str | None
    ) -> None:
        """Move the cursor past ``event``, with its audit entry in the same transaction."""
        detail: dict[str, Any] = {"event": "status", "seq": event.seq, "status": event.status,
                                  "attempts": attempts}  # fmt: skip
        if error:
            detail["error"] = error
        audit = AuditEvent(outcome, self.node.clock(), message_id=event.message_id,
                           peer=event.recipient, detail=detail)  # fmt: skip
        await self.node._run(self.node.store.set_adapter_cursor, STATUS_ADAPTER, event.seq, [audit])
