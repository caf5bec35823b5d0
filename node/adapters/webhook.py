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
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

from node.adapters import AdapterError
from node.audit import AuditEvent
from node.crypto.keyfile import KeyFileError
from node.delivery import RetryPolicy
from node.nodedir import read_passphrase
from node.store.base import AdapterDelivery

if TYPE_CHECKING:
    from node.service import Node

log = structlog.get_logger("xnode.webhook")
ADAPTER = "webhook"
SIGNATURE_HEADER = "X-Xnode-Signature"


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


class WebhookAdapter:
    def __init__(self, node: Node) -> None:
        self.node = node
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stopping = asyncio.Event()

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
        self._task = asyncio.create_task(self._loop(), name=f"{self.node.node_id}-webhook")
        log.info("webhook_started", node=self.node.node_id, url=self.url)

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, 30)
            self._task = None
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
            return 5.0
        return max(0.0, min(5.0, (min(times) - now).total_seconds()))

    async def _attempt(self, delivery: AdapterDelivery) -> None:
        node = self.node
        message = await node._run(node.store.inbox_at, delivery.seq)
        if message is None:  # purged meanwhile: nothing left to post
            await self._record(delivery, "done", None, "message no longer in the inbox")
            return
        body = json.dumps(node.inbox_item(message), separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(self._secret, body),
            "X-Xnode-Message-Id": delivery.message_id,
            "X-Xnode-Node": node.node_id,
            "X-Xnode-Delivery-Attempt": str(delivery.attempts + 1),
        }
        assert self._session is not None
        try:
            # Never follow a redirect: the body is decrypted case data and the header proves it
            # came from this node; a 3xx is a failed attempt, whatever it points at.
            async with self._session.post(
                self.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                status, location = response.status, response.headers.get("Location")
            error = response_error(status, location)
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__
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
