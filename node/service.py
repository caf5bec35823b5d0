"""The running node: store + transport + loops (DESIGN §6). The imperative shell.

Three loops share one store (on its own thread, so the event loop never waits on the disk):

* **publisher** — re-reads due deliveries from the outbox and publishes each envelope to the
  recipient's inbox topic; re-publishes with backoff until a receipt arrives or it expires;
* **consumer** — reads this node's topics, lets :func:`node.delivery.classify` decide, stores
  the outcome (inbox, quarantine, receipt), queues the receipt it owes, and only then commits
  the offsets;
* **maintenance** — reconnects the broker, recreates topics after a broker lost its state,
  expires old deliveries, reloads peers added with the CLI.

Everything durable happens in the store before anything is acknowledged to anyone, so the
process can be killed at any instant and resume without loss or duplicate hand-over.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import structlog

from node import control, delivery, envelope, submit, views
from node.adapters import from_config
from node.adapters.api import ApiServer
from node.audit import AuditEvent
from node.codec import SchemaRegistry, default_registry
from node.config import Config
from node.crypto.keys import IdentityKey
from node.delivery import Accepted, Duplicate, ReceiptReceived, Rejected, RetryPolicy
from node.metrics import Metrics
from node.nodedir import NodeDir, read_passphrase
from node.policy import Policy
from node.routing.topics import control_topic, inbox_topic, own_topics
from node.store.base import (
    Attempt,
    DedupeEntry,
    Delivery,
    InboxMessage,
    OutboundMessage,
    QuarantineEntry,
    Retention,
)
from node.store.sqlite import SqliteStore
from node.transport.kafka import InboundRecord, KafkaSettings, KafkaTransport, TransportUnavailable
from node.trust import Descriptor, PeerDirectory

log = structlog.get_logger("xnode")
T = TypeVar("T")
Clock = Callable[[], dt.datetime]
MessageHandler = Callable[[envelope.Opened, InboxMessage], Awaitable[None]]
DEDUPE_MARGIN = dt.timedelta(days=2)


class Adapter(Protocol):
    """A bridge to a local system that the node runs (HTTP API, webhook, folder)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class Pulse:
    """Wakes every waiter when something happened (new inbox message); no payload, no queue."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> bool:
        """True if notified within ``timeout`` seconds."""
        event = self._event
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def kafka_settings(config: Config, base: Path | None = None) -> KafkaSettings:
    """Transport settings from ``[kafka]``; relative file paths are taken from ``base`` (the
    node directory), so a unit file or container need not care about the working directory."""
    k = config.kafka

    def path(value: str) -> str | None:
        if not value:
            return None
        p = Path(value)
        return str(p if p.is_absolute() or base is None else base / p)

    password_file = path(k.sasl_password_file)
    return KafkaSettings(
        bootstrap_servers=k.bootstrap_servers,
        topic_prefix=k.topic_prefix,
        security_protocol=k.security_protocol,
        sasl_mechanism=k.sasl_mechanism or None,
        sasl_username=k.sasl_username or None,
        sasl_password=(read_passphrase(password_file) or b"").decode() if password_file else None,
        ssl_cafile=path(k.ssl_cafile),
        ssl_certfile=path(k.ssl_certfile),
        ssl_keyfile=path(k.ssl_keyfile),
        partitions=k.partitions,
        replication_factor=k.replication_factor,
        max_request_bytes=max(config.envelope.max_bytes * 2, 1024 * 1024),
    )


def open_store(node_dir: NodeDir, config: Config) -> SqliteStore:
    path = Path(config.store.path)
    return SqliteStore.open(path if path.is_absolute() else node_dir.path / path)


class Node:
    """One node. ``start()`` brings it up (the broker may still be down); ``stop()`` drains."""

    def __init__(
        self,
        node_dir: NodeDir,
        *,
        registry: SchemaRegistry | None = None,
        env: dict[str, str] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.node_dir = node_dir
        self.registry = registry or default_registry()
        self._env = env
        self.clock = clock
        self._handlers: list[MessageHandler] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._wake_publisher = asyncio.Event()
        self._db: ThreadPoolExecutor | None = None
        self.connected = asyncio.Event()
        self.inbox_changed = Pulse()
        self.last_seen: dict[str, float] = {}  # peer -> unix time of its latest heartbeat
        self.adapters: list[Adapter] = []

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self.config: Config = self.node_dir.load_config(self._env)
        self.node_id = self.config.node.id
        keys = self.node_dir.load_keys(
            self.registry, self.node_dir.passphrase(self.config, self._env)
        )
        self.identity: IdentityKey = keys.identity
        self._encryption = keys.encryption
        self.own_descriptor: Descriptor = self.node_dir.own_descriptor(self.registry).descriptor
        self._reload_peers()
        self.metrics = Metrics(self.node_id)
        self.metrics.up_since.set(time.time())
        self.metrics.known_peers(self.peers)
        self.retry = RetryPolicy(
            initial=dt.timedelta(seconds=self.config.delivery.retry_initial_seconds),
            maximum=dt.timedelta(seconds=self.config.delivery.retry_max_seconds),
        )
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"store-{self.node_id}")
        self.store = await self._run(open_store, self.node_dir, self.config)
        settings = kafka_settings(self.config, self.node_dir.path)
        self.prefix = settings.topic_prefix
        self.control = control_topic(self.prefix)
        self.transport = KafkaTransport(
            settings, self.node_id, [*own_topics(self.prefix, self.node_id), self.control]
        )
        self._stopping.clear()
        self._tasks = [
            asyncio.create_task(self._maintenance_loop(), name=f"{self.node_id}-maintenance"),
            asyncio.create_task(self._publish_loop(), name=f"{self.node_id}-publish"),
            asyncio.create_task(self._consume_loop(), name=f"{self.node_id}-consume"),
        ]
        log.info("node_started", node=self.node_id, broker=settings.bootstrap_servers)
        try:
            for adapter in from_config(self):
                await adapter.start()
                self.adapters.append(adapter)
        except Exception:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop the adapters, finish the record or publication in hand, close broker and store."""
        for adapter in reversed(self.adapters):
            await adapter.stop()
        self.adapters = []
        self._stopping.set()
        self._wake_publisher.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 30)
        self._tasks = []
        await self.transport.stop()
        self.connected.clear()
        await self._run(self.store.close)
        if self._db is not None:
            self._db.shutdown(wait=True)
            self._db = None
        log.info("node_stopped", node=self.node_id)

    async def kill(self) -> None:
        """Stop abruptly, as a crash would: cancel loops mid-work, commit nothing more.

        For fault tests; whatever was committed to the store survives, everything else is lost.
        """
        self._stopping.set()
        for adapter in reversed(self.adapters):
            await adapter.stop()
        self.adapters = []
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self.transport.stop()
        if self._db is not None:
            self._db.shutdown(wait=True)
            self._db = None
        self.store.close()

    @property
    def api_url(self) -> str | None:
        """Where this node's local API (and /metrics) listens, once started; None if disabled."""
        return next((a.url for a in self.adapters if isinstance(a, ApiServer)), None)

    def on_message(self, handler: MessageHandler) -> None:
        """Call ``handler`` for each new message, after it is safely stored (adapters)."""
        self._handlers.append(handler)

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db, functools.partial(fn, *args, **kwargs))

    def _reload_peers(self) -> None:
        signed = self.node_dir.peers(self.registry)
        self.peers: dict[str, Descriptor] = {n: s.descriptor for n, s in signed.items()}
        self.peer_directory = PeerDirectory.of(self.peers.values())
        self._receive_ctx = delivery.ReceiveContext(
            registry=self.registry,
            own_id=self.node_id,
            own_keys=self._encryption,
            peers=self.peer_directory,
            max_skew=dt.timedelta(seconds=self.config.envelope.clock_skew_seconds),
            max_bytes=self.config.envelope.max_bytes,
            own_roles=self.config.node.roles,
            policy=Policy.from_config(self.config.policy.rules),
        )

    # -- submitting -----------------------------------------------------------------------------

    async def submit(self, request: submit.Request) -> str:
        """Validate, seal and store in the outbox; return the message id. The broker may be down."""
        if request.idempotency_key is not None:
            existing = await self._run(self.store.find_by_idempotency_key, request.idempotency_key)
            if existing is not None:
                return existing
        started = time.perf_counter()
        message, event = submit.prepare(
            self.registry, request, config=self.config, identity=self.identity,
            peers=self.peers, now=self.clock(),
        )  # fmt: skip
        self.metrics.seal_seconds.observe(time.perf_counter() - started)
        message_id = await self._run(self.store.submit, message, event)
        if message_id == message.message_id:
            self.metrics.submitted.labels(message.kind).inc()
        self._wake_publisher.set()
        log.info("message_submitted", node=self.node_id, message_id=message_id,
                 thread_id=message.thread_id, kind=message.kind)  # fmt: skip
        return message_id

    def _receipt(
        self, header: envelope.Header, envelope_sha256: str, reason: str | None, detail: str | None
    ) -> tuple[OutboundMessage, AuditEvent] | None:
        """The signed receipt owed to an authenticated sender, ready for the outbox."""
        sender = self.peers.get(header.sender)
        if sender is None:
            return None
        now = self.clock()
        payload = delivery.receipt_payload(header.message_id, envelope_sha256, now, reason, detail)
        sealed = envelope.seal(
            self.registry, identity=self.identity, sender_id=self.node_id, kind="receipt",
            schema_name=delivery.RECEIPT_SCHEMA, payload=payload, recipients=[sender], now=now,
            expires_at=max(header.expires_at, now + dt.timedelta(days=1)),
            thread_id=header.thread_id, in_reply_to=header.message_id,
        )  # fmt: skip
        message = submit.outbound(sealed, delivery.RECEIPT_SCHEMA, expects_receipt=False)
        event = AuditEvent(
            "receipt-sent", now, message_id=header.message_id, peer=header.sender,
            detail={"status": "delivered" if reason is None else "rejected", "reason": reason},
        )  # fmt: skip
        return message, event

    async def _queue_receipt(
        self, header: envelope.Header, envelope_sha256: str, reason: str | None, detail: str | None
    ) -> None:
        receipt = self._receipt(header, envelope_sha256, reason, detail)
        if receipt is not None:
            await self._run(self.store.submit, *receipt)
            self._wake_publisher.set()

    # -- views for local systems (API, adapters) ---------------------------------------------------

    def inbox_item(self, message: InboxMessage) -> dict[str, Any]:
        return views.inbox_item(
            self.registry, message, own_id=self.node_id, own_keys=self._encryption,
            peers=self.peer_directory,
        )  # fmt: skip

    async def inbox_items(
        self, after: int, kinds: Sequence[str] | None, limit: int
    ) -> list[dict[str, Any]]:
        messages = await self._run(self.store.inbox, after, kinds, limit)
        return [self.inbox_item(m) for m in messages]

    async def sent_item(self, message_id: str) -> dict[str, Any] | None:
        message = await self._run(self.store.outbox_message, message_id)
        if message is None:
            return None
        statuses = await self._run(self.store.message_status, message_id)
        return views.sent_item(message, statuses)

    async def thread(self, thread_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(sent, received) views of one case."""
        sent, received = await self._run(self.store.thread, thread_id)
        sent_items = []
        for message in sent:
            statuses = await self._run(self.store.message_status, message.message_id)
            sent_items.append(views.sent_item(message, statuses))
        received_items = []
        for m in received:
            item = self.inbox_item(m)
            item["direction"] = "received"
            received_items.append(item)
        return sent_items, received_items

    # -- operations -----------------------------------------------------------------------------

    async def readiness(self) -> dict[str, dict[str, Any]]:
        """What ``/readyz`` reports: store answering, broker connected, a usable own key."""
        checks: dict[str, dict[str, Any]] = {}
        try:
            version = await self._run(lambda: self.store.schema_version)
            checks["store"] = {"ok": True, "detail": f"schema version {version}"}
        except Exception as exc:
            checks["store"] = {"ok": False, "detail": str(exc)[:200]}
        connected = self.transport.started
        checks["broker"] = {
            "ok": connected,
            "detail": ("connected to " if connected else "not connected to ")
            + self.transport.settings.bootstrap_servers,
        }
        now = self.clock()
        valid = [k for k in self.own_descriptor.encryption_keys if k.valid_at(now)]
        checks["keys"] = {
            "ok": bool(valid) and bool(self._encryption),
            "detail": f"{len(valid)} valid encryption key(s), identity {self.identity.key_id}",
        }
        return checks

    async def render_metrics(self) -> bytes:
        """Refresh the gauges read from the store and the keys, then expose everything."""
        now = self.clock()
        snapshot = await self._run(self.store.snapshot)
        self.metrics.observe_store(snapshot, self.peers, now)
        self.metrics.observe_keys(self.own_descriptor, self.peers, now)
        self.metrics.broker_connected.set(1 if self.transport.started else 0)
        return self.metrics.render()

    def _control(self, record: InboundRecord) -> None:
        """A heartbeat (or other control record) from the shared control topic."""
        try:
            heartbeat = control.read_heartbeat(self.registry, record.value, self.peer_directory)
        except control.ControlRejected as exc:
            if not (exc.reason == "unknown-sender" and record.key == self.node_id.encode()):
                self.metrics.control_ignored.labels(exc.reason).inc()
            return
        seen = max(self.last_seen.get(heartbeat.node_id, 0.0), heartbeat.sent_at.timestamp())
        self.last_seen[heartbeat.node_id] = seen
        self.metrics.peer_last_seen.labels(heartbeat.node_id).set(seen)

    async def _purge(self) -> None:
        """Apply ``[store]`` retention; the audit log keeps ids and hashes of what went."""
        now, store = self.clock(), self.config.store
        retention = Retention(
            inbox_before=now - dt.timedelta(days=store.inbox_retention_days),
            outbox_before=now - dt.timedelta(days=store.outbox_retention_days),
            quarantine_before=now - dt.timedelta(days=store.quarantine_retention_days),
        )
        counts = await self._run(self.store.purge, now, retention)
        if any(counts.values()):
            log.info("retention_purge", node=self.node_id, **counts)

    async def _heartbeat(self) -> None:
        beat = control.Heartbeat(
            self.node_id, self.clock(), self.own_descriptor.descriptor_version,
            self.identity.key_id,
        )  # fmt: skip
        with contextlib.suppress(TransportUnavailable):
            await self.transport.publish(
                self.control, self.node_id, control.issue_heartbeat(self.registry, self.identity,
                                                                    beat)
            )  # fmt: skip

    # -- loops ----------------------------------------------------------------------------------

    async def _sleep(self, seconds: float, event: asyncio.Event | None = None) -> None:
        waiter = event or self._stopping
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.wait(), seconds)

    async def _maintenance_loop(self) -> None:
        backoff, last_topics, last_peers, last_beat, last_lag = 0.2, 0.0, 0.0, -1e9, 0.0
        last_purge = -1e9
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            if not self.transport.started:
                try:
                    await self.transport.start()
                except TransportUnavailable as exc:
                    log.warning("broker_unavailable", node=self.node_id, error=str(exc))
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                backoff, last_topics = 0.2, loop.time()
                self.connected.set()
                self._wake_publisher.set()
                log.info("broker_connected", node=self.node_id)
            now = loop.time()
            if now - last_topics > 5:  # an empty broker (restart) has lost our topics
                await self.transport.ensure_topics(self.transport.topics)
                with contextlib.suppress(Exception):
                    await self.transport.refresh_assignment()
                last_topics = now
            if now - last_peers > 5:
                await self._run(self._reload_peers)
                self.metrics.known_peers(self.peers)
                last_peers = now
            if now - last_beat >= self.config.delivery.heartbeat_seconds:
                await self._heartbeat()
                last_beat = now
            if now - last_lag > 5:
                with contextlib.suppress(TransportUnavailable):
                    for topic, lag in (await self.transport.lag()).items():
                        self.metrics.consumer_lag.labels(topic).set(lag)
                last_lag = now
            if now - last_purge > 3600:  # hourly, and once at start
                await self._purge()
                last_purge = now
            expired = await self._run(self.store.expire_due, self.clock())
            for message_id, recipient in expired:
                self.metrics.expired.labels(recipient).inc()
                log.warning(
                    "message_expired", node=self.node_id, message_id=message_id, peer=recipient
                )
            await self._sleep(1.0)

    async def _publish_loop(self) -> None:
        interval = self.config.delivery.poll_interval_ms / 1000
        while not self._stopping.is_set():
            if not self.transport.started:
                await self._sleep(interval)
                continue
            self._wake_publisher.clear()
            due = await self._run(self.store.due_deliveries, self.clock(), 200)
            if due:
                attempts = await asyncio.gather(*(self._publish(d) for d in due))
                await self._run(self.store.record_attempts, attempts)  # one transaction
            else:
                await self._sleep(interval, self._wake_publisher)

    async def _publish(self, d: Delivery) -> Attempt:
        """Publish one delivery; return the attempt for the caller to record."""
        topic = inbox_topic(self.prefix, d.recipient, d.kind)
        try:
            await self.transport.publish(topic, d.thread_id, d.envelope)
            published, error = True, None
        except TransportUnavailable as exc:
            published, error = False, str(exc)
        now = self.clock()
        attempts = d.attempts + 1
        if published and not d.expects_receipt:
            next_at = None
            event = AuditEvent("published", now, message_id=d.message_id, peer=d.recipient,
                               detail={"attempt": attempts, "topic": topic})  # fmt: skip
        else:
            next_at = self.retry.next_attempt(attempts, now)
            name = "published" if published else "publish-failed"
            detail: dict[str, Any] = {"attempt": attempts, "topic": topic}
            if error:
                detail["error"] = error[:200]
            event = AuditEvent(name, now, message_id=d.message_id, peer=d.recipient, detail=detail)
        if published:
            self.metrics.published.labels(d.kind, d.recipient).inc()
            if attempts > 1:
                self.metrics.retries.labels(d.kind, d.recipient).inc()
        else:
            self.metrics.publish_failures.labels(d.recipient).inc()
            log.warning("publish_failed", node=self.node_id, message_id=d.message_id,
                        thread_id=d.thread_id, peer=d.recipient, error=error)  # fmt: skip
        return Attempt(d.message_id, d.recipient, published, now, next_at, event)

    async def _consume_loop(self) -> None:
        while not self._stopping.is_set():
            if not self.transport.started:
                await self._sleep(0.2)
                continue
            try:
                records = await self.transport.fetch(timeout_ms=300, max_records=100)
            except TransportUnavailable as exc:
                log.warning("fetch_failed", node=self.node_id, error=str(exc))
                await self._sleep(0.5)
                continue
            offsets: dict[tuple[str, int], int] = {}
            failed: dict[tuple[str, int], int] = {}
            for record in records:
                partition = (record.topic, record.partition)
                if partition in failed:
                    continue
                try:
                    await self._handle(record)
                except Exception:  # the store failed (disk full...): retry this record later
                    log.exception("record_not_stored", node=self.node_id, topic=record.topic,
                                  offset=record.offset)  # fmt: skip
                    failed[partition] = record.offset
                    continue
                offsets[partition] = record.offset + 1
            with contextlib.suppress(TransportUnavailable):
                await self.transport.commit(offsets)
                for (topic, part), offset in failed.items():
                    await self.transport.seek(topic, part, offset)
            if failed:
                await self._sleep(1.0)

    async def _handle(self, record: InboundRecord) -> None:
        """Decide and store the outcome of one record; never raises for bad input."""
        now = self.clock()
        if record.topic == self.control:
            self._control(record)
            return
        started = time.perf_counter()
        outcome = await self._run(
            delivery.classify, self._receive_ctx, record.value, now, self.store.seen
        )
        self.metrics.open_seconds.observe(time.perf_counter() - started)
        if isinstance(outcome, Accepted):
            await self._accept(outcome, record, now)
        elif isinstance(outcome, Duplicate):
            await self._duplicate(outcome, record, now)
        elif isinstance(outcome, ReceiptReceived):
            await self._receipt_received(outcome, record, now)
        else:
            await self._reject(outcome, record, now)

    async def _accept(self, outcome: Accepted, record: InboundRecord, now: dt.datetime) -> None:
        header = outcome.opened.header
        sha = outcome.opened.envelope_sha256.hex()
        message = InboxMessage(
            seq=0, message_id=header.message_id, sender=header.sender, kind=header.kind,
            thread_id=header.thread_id, in_reply_to=header.in_reply_to,
            schema_name=outcome.opened.payload_schema.name,
            handling_code=outcome.opened.payload["handling"]["code"], envelope=outcome.raw,
            envelope_sha256=sha, created_at=header.created_at, expires_at=header.expires_at,
            received_at=now, state="received",
        )  # fmt: skip
        remembered = self._dedupe(header, sha, now, "delivered", None)
        event = AuditEvent("received", now, message_id=header.message_id, peer=header.sender,
                           detail={"kind": header.kind, "envelope_sha256": sha})  # fmt: skip
        receipt = self._receipt(header, sha, None, None)
        seq = await self._run(self.store.record_inbound, message, remembered, [event], receipt)
        self._wake_publisher.set()
        log.info("message_received", node=self.node_id, message_id=header.message_id,
                 thread_id=header.thread_id, peer=header.sender, kind=header.kind)  # fmt: skip
        stored = InboxMessage(**{**message.__dict__, "seq": seq})
        self.metrics.received.labels(header.kind, header.sender).inc()
        self.inbox_changed.notify()
        for handler in self._handlers:
            try:
                await handler(outcome.opened, stored)
            except Exception:  # an adapter's failure must not stop the node
                log.exception("handler_failed", node=self.node_id, message_id=header.message_id)

    def _dedupe(
        self, header: envelope.Header, sha: str, now: dt.datetime, outcome: str, reason: str | None
    ) -> DedupeEntry:
        return DedupeEntry(
            message_id=header.message_id, sender=header.sender, outcome=outcome, reason=reason,
            envelope_sha256=sha, seen_at=now, keep_until=header.expires_at + DEDUPE_MARGIN,
        )  # fmt: skip

    async def _duplicate(self, outcome: Duplicate, record: InboundRecord, now: dt.datetime) -> None:
        header, previous = outcome.header, outcome.previous
        quarantine = self._quarantine_entry(
            record, now, "replay", f"message id seen at {previous.seen_at:%Y-%m-%dT%H:%M:%SZ}",
            header.sender, header.message_id,
        )  # fmt: skip
        event = AuditEvent("duplicate", now, message_id=header.message_id, peer=header.sender)
        self.metrics.duplicates.labels(header.sender).inc()
        self.metrics.quarantined.labels("replay").inc()
        await self._run(self.store.record_rejection, None, quarantine, [event])
        if header.kind != "receipt":  # answer as before, so a sender whose receipt was lost stops
            await self._queue_receipt(header, previous.envelope_sha256, previous.reason, None)

    async def _receipt_received(
        self, outcome: ReceiptReceived, record: InboundRecord, now: dt.datetime
    ) -> None:
        header, receipt = outcome.header, outcome.receipt
        sha = hashlib.sha256(record.value).hexdigest()
        delivered = receipt["status"] == "delivered"
        reason = delivery.reason_code(receipt.get("reason"))
        event = AuditEvent(
            "receipted" if delivered else "rejected", now, message_id=str(receipt["message_id"]),
            peer=header.sender, detail={"reason": reason} if reason else {},
        )  # fmt: skip
        remembered = self._dedupe(header, sha, now, "delivered", None)
        matched = await self._run(
            self.store.apply_receipt, str(receipt["message_id"]), header.sender,
            receipt["envelope_sha256"], delivered=delivered, reason=reason,
            detail=receipt.get("detail"), now=now, audit=event, seen=remembered,
        )  # fmt: skip
        if matched:
            if matched.first:
                if delivered:
                    self.metrics.delivered.labels(matched.kind, header.sender).inc()
                else:
                    self.metrics.rejected.labels(matched.kind, header.sender,
                                                 reason or "unknown").inc()  # fmt: skip
                latency = max((now - matched.created_at).total_seconds(), 0.0)
                self.metrics.receipt_latency.labels(matched.kind, header.sender).observe(latency)
        else:
            quarantine = self._quarantine_entry(
                record, now, "invalid-payload", "receipt for a message this node did not send",
                header.sender, header.message_id,
            )  # fmt: skip
            q_event = AuditEvent(
                "quarantined", now, message_id=header.message_id, peer=header.sender,
                detail={"reason": "invalid-payload"},
            )  # fmt: skip
            await self._run(self.store.record_rejection, remembered, quarantine, [q_event])
            self.metrics.quarantined.labels("invalid-payload").inc()

    async def _reject(self, outcome: Rejected, record: InboundRecord, now: dt.datetime) -> None:
        header = outcome.header
        remembered = (
            self._dedupe(header, outcome.envelope_sha256, now, "rejected", outcome.reason)
            if header is not None and outcome.remember
            else None
        )
        quarantine = self._quarantine_entry(
            record, now, outcome.reason, outcome.detail,
            header.sender if header else None, header.message_id if header else None,
        )  # fmt: skip
        event = AuditEvent(
            "quarantined", now, message_id=header.message_id if header else None,
            peer=header.sender if header else None,
            detail={"reason": outcome.reason, "topic": record.topic, "offset": record.offset},
        )  # fmt: skip
        await self._run(self.store.record_rejection, remembered, quarantine, [event])
        self.metrics.quarantined.labels(outcome.reason).inc()
        log.warning("message_quarantined", node=self.node_id, reason=outcome.reason,
                    message_id=header.message_id if header else None,
                    thread_id=header.thread_id if header else None,
                    peer=header.sender if header else None, topic=record.topic,
                    offset=record.offset)  # fmt: skip
        if header is not None and outcome.answer_sender:
            await self._queue_receipt(
                header, outcome.envelope_sha256, outcome.reason, outcome.detail
            )

    def _quarantine_entry(
        self, record: InboundRecord, now: dt.datetime, reason: str, detail: str,
        sender: str | None, message_id: str | None,
    ) -> QuarantineEntry:  # fmt: skip
        return QuarantineEntry(
            received_at=now, reason=reason, detail=detail, raw=record.value, topic=record.topic,
            partition=record.partition, offset=record.offset, sender=sender, message_id=message_id,
        )  # fmt: skip
