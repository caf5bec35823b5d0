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
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import structlog

from node import (
    casework,
    checkpoint,
    control,
    delivery,
    envelope,
    identifiers,
    intake,
    keylife,
    procedures,
    quarantine,
    submit,
    trustlist,
    views,
)
from node.audit import AuditEvent
from node.codec import SchemaRegistry, default_registry
from node.config import Config
from node.crypto.keys import EncryptionKey, IdentityKey, key_id
from node.delivery import Accepted, Duplicate, ReceiptReceived, Rejected, RetryPolicy
from node.erasures import ErasureDesk
from node.forwards import ForwardDesk
from node.groupcommit import GroupCommit
from node.metrics import Metrics
from node.nodedir import NodeDir, NodeDirError, read_passphrase
from node.policy import Policy
from node.routing.ids import country_of
from node.routing.topics import control_topic, inbox_topic, own_topics
from node.statistics_desk import StatisticsDesk
from node.store.base import (
    Attempt,
    DedupeEntry,
    Delivery,
    InboxMessage,
    OutboundMessage,
    ProcedureStep,
    Retention,
    StatusEvent,
    StoreFull,
    StoreUnavailable,
)
from node.store.sqlite import SqliteStore
from node.transport import offsets
from node.transport.health import BrokerHealth, HealthEvent
from node.transport.kafka import (
    InboundRecord,
    KafkaSettings,
    KafkaTransport,
    OffsetReset,
    PositionOutOfRange,
    TransportUnavailable,
)
from node.trust import Descriptor, PeerDirectory, SignedDescriptor, TrustError

ListRefusal = tuple[trustlist.SignedTrustList, trustlist.TrustListRejected]
log = structlog.get_logger("xnode")
T = TypeVar("T")
Clock = Callable[[], dt.datetime]
MessageHandler = Callable[[envelope.Opened, InboxMessage], Awaitable[None]]
DEDUPE_MARGIN = dt.timedelta(days=2)
# A record whose processing fails this often (not for lack of disk) is quarantined and skipped,
# so no record can hold up the records behind it on its partition.
MAX_RECORD_ATTEMPTS = 3


OFFSET_CHECK_SECONDS = 1.0
STORE_PROBE_SECONDS = 2.0


SubmitRequest = submit.Request  # the name `submit` is also a method of Node
ERASURE_RECORDS = ("xnode.payload.ErasureRequest", "xnode.payload.ErasureResult")


def _sender(outcome: delivery.Outcome | None) -> str:
    """The authenticated sender of an outcome ("unknown" for a record that has none)."""
    if isinstance(outcome, Accepted):
        return outcome.opened.header.sender
    header = getattr(outcome, "header", None)
    return header.sender if header is not None else "unknown"


class Adapter(Protocol):
    """A bridge to a local system that the node runs (HTTP API, webhook, folder).

    The runtime knows adapters only through this; which ones exist and how they are built is
    the composition root's business (:mod:`node.compose`), so dependencies point one way:
    edges -> runtime -> core."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


# Builds a node's adapters once its configuration and store are loaded, in start order.
AdapterFactory = Callable[["Node"], list[Adapter]]


def no_adapters(node: Node) -> list[Adapter]:
    """The default factory: a bare node, as the core tests and tools want it."""
    return []


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
        adapters: AdapterFactory = no_adapters,
    ) -> None:
        """``adapters`` is called by :meth:`start` with this node, once its configuration and
        store are loaded; the adapters it returns start in order and stop in reverse."""
        self.node_dir = node_dir
        self.registry = registry or default_registry()
        self._env = env
        self.clock = clock
        self._handlers: list[MessageHandler] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._wake_publisher = asyncio.Event()
        self._erasure_due = asyncio.Event()  # an erasure request or answer was stored
        self._db: ThreadPoolExecutor | None = None
        self._crypto: ThreadPoolExecutor | None = None
        self.connected = asyncio.Event()  # set once the broker first answered
        self.inbox_changed = Pulse()
        self.status_changed = Pulse()  # a sent message's delivery became final (status events)
        self.store_problem: str | None = None  # why the store cannot write, while it cannot
        self._record_failures: dict[tuple[str, int, int], int] = {}
        self._single_answer_writer = delivery.single_answer_writer(self.registry)
        self._evicted_since_summary = 0  # unauthenticated quarantine entries evicted, unaudited
        self._offered_list: trustlist.SignedTrustList | None = None  # from the control topic
        self._list_refusals: list[ListRefusal] = []  # logged and audited by maintenance
        self._offered_descriptors: dict[str, SignedDescriptor] = {}
        self._warned_identity = False  # the list names an identity key this node does not hold
        self._list_announced: tuple[int, float] | None = None  # (version, monotonic time)
        self._refusals_seen: dict[tuple[str, ...], None] = {}  # insertion-ordered, bounded
        self._out_of_range: list[tuple[str, int]] = []
        self._loop_errors: dict[str, float] = {}
        self._last_run: dict[str, float] = {}
        self.audit_checkpoints = checkpoint.CheckpointBook()
        self._checkpoint_lock = asyncio.Lock()
        self.last_seen: dict[str, float] = {}  # peer -> unix time of its latest heartbeat
        self._make_adapters = adapters
        self.adapters: list[Adapter] = []  # started, in start order
        # Where the local API (and /metrics) listens: set by the API adapter while it listens,
        # None otherwise (not started, stopped, or [api] disabled).
        self.api_url: str | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self.config: Config = self.node_dir.load_config(self._env)
        self.node_id = self.config.node.id
        self._passphrase = self.node_dir.passphrase(self.config, self._env)
        keys = self.node_dir.load_keys(self.registry, self._passphrase)
        self.identity: IdentityKey = keys.identity
        self._encryption = keys.encryption
        self._index_secret = self.node_dir.index_secret()
        # announced as held in memory, never re-read from the file: a descriptor rotated on disk
        # is announced only once this process holds its keys (else peers could seal to a key
        # this node cannot open yet)
        self._own_signed = self.node_dir.own_descriptor(self.registry)
        self.own_descriptor: Descriptor = self._own_signed.descriptor
        self._reload_peers()
        self.metrics = Metrics(self.node_id)
        self.metrics.up_since.set(time.time())
        self.metrics.known_peers(self.peers)
        store = self.config.store
        self._quarantine_limits = quarantine.QuarantineLimits(
            prefix_bytes=store.quarantine_prefix_bytes,
            sender_quota_bytes=store.quarantine_sender_quota_mb * 1024 * 1024,
            unauthenticated_max=store.quarantine_unauthenticated_max,
        )
        self.retry = RetryPolicy(
            initial=dt.timedelta(seconds=self.config.delivery.retry_initial_seconds),
            maximum=dt.timedelta(seconds=self.config.delivery.retry_max_seconds),
        )
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"store-{self.node_id}")
        self._crypto_workers = self.config.delivery.crypto_workers
        self._crypto = ThreadPoolExecutor(
            max_workers=self._crypto_workers, thread_name_prefix=f"crypto-{self.node_id}"
        )
        self._group = GroupCommit(functools.partial(self._run, self._batch))
        self.store = await self._run(open_store, self.node_dir, self.config)
        settings = kafka_settings(self.config, self.node_dir.path)
        self.prefix = settings.topic_prefix
        self.control = control_topic(self.prefix)
        self.transport = KafkaTransport(
            settings, self.node_id, [*own_topics(self.prefix, self.node_id), self.control]
        )
        self.broker_health = BrokerHealth(timeout=self.config.delivery.broker_timeout_seconds)
        self.metrics.store_writable.set(1)
        self.erasures = ErasureDesk(
            self.node_id,
            self.store,
            self._run,
            self.submit,
            self._payload_json,
            self.clock,
            revoked=lambda: self.peer_directory.revoked,
        )
        self.forwards = ForwardDesk(
            self.registry, self.store, self._run, self.submit, self._payload_json, self.clock
        )
        self.statistics = StatisticsDesk(
            self.config, self.store, self._run, self.submit,
            lambda after, kinds, limit: self.inbox_items(after, kinds, limit),
            lambda: self.peers.values(), self.clock,
        )  # fmt: skip
        self._stopping.clear()
        self._tasks = [
            self._loop_task("broker", self._watch_broker_once),
            self._loop_task("maintenance", self._maintain_once),
            self._loop_task("publish", self._publish_once),
            self._loop_task("consume", self._consume_once),
            self._loop_task("erasure", self._erasure_once),
        ]
        log.info("node_started", node=self.node_id, broker=settings.bootstrap_servers)
        try:
            for adapter in self._make_adapters(self):
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
        self._shutdown_pools()
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
        self._shutdown_pools()
        self.store.close()

    def on_message(self, handler: MessageHandler) -> None:
        """Call ``handler`` for each new message, after it is safely stored (adapters)."""
        self._handlers.append(handler)

    def _shutdown_pools(self) -> None:
        if self._db is not None:
            self._db.shutdown(wait=True)
            self._db = None
        if self._crypto is not None:
            self._crypto.shutdown(wait=True)
            self._crypto = None

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn`` on the store's thread (reads, and writes that need a transaction alone)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db, functools.partial(fn, *args, **kwargs))

    def _batch(self, writes: Sequence[Callable[[], Any]]) -> list[Any]:
        return self.store.batch(writes)

    async def _write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn`` in the next group commit (:mod:`node.groupcommit`): durable when it returns,
        sharing one transaction and fsync with the writes that arrived meanwhile."""
        return await self._group.write(fn, *args, **kwargs)

    async def _compute(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn`` in a crypto worker: CPU work (verify, decrypt, seal) off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._crypto, functools.partial(fn, *args))

    def _reload_own_keys(self) -> None:
        """Pick up a descriptor rotated while running (``xnode keys rotate``): its keys open
        what is sealed to the new key, and the heartbeat announces the new version."""
        self._adopt_listed_identity()
        signed = self.node_dir.own_descriptor(self.registry)
        if signed.descriptor.descriptor_version == self.own_descriptor.descriptor_version:
            return
        keys = self.node_dir.load_keys(self.registry, self._passphrase)
        self.identity, self._encryption = keys.identity, keys.encryption
        self._own_signed, self.own_descriptor = signed, signed.descriptor
        log.info("own_descriptor_reloaded", node=self.node_id,
                 descriptor_version=signed.descriptor.descriptor_version)  # fmt: skip

    def _destroy_retired_keys(self) -> None:
        """Destroy each encryption key replaced at least ``keys.retired_key_days`` ago, after
        re-wrapping the content keys of the stored messages sealed to it to the current key
        (node/keylife.py). Runs on the store's only thread, so no message is stored meanwhile;
        a crash part-way is finished by the next run (re-wrapped rows are not sealed to it)."""
        keep = dt.timedelta(days=self.config.keys.retired_key_days)
        keys = self.own_descriptor.encryption_keys
        for retired in keylife.retired_keys_due(keys, self.clock(), keep):
            current = self._encryption[keylife.newest(keys).key_id]
            rewrapped, unreadable = self._rewrap_stored(retired, current)
            now = self.clock()
            signed = self.node_dir.destroy_encryption_key(
                self.registry, self._passphrase, retired, now
            )
            self.store.append_audit([
                AuditEvent("messages-rewrapped", now, detail={
                    "from_key_id": retired, "to_key_id": current.key_id, "messages": rewrapped,
                    "unreadable": unreadable}),
                AuditEvent("key-destroyed", now, detail={
                    "key_id": retired, "key": "encryption",
                    "descriptor_version": signed.descriptor.descriptor_version}),
            ])  # fmt: skip
            log.info(
                "encryption_key_destroyed", node=self.node_id, key_id=retired,
                rewrapped=rewrapped, unreadable=unreadable, current=current.key_id,
            )  # fmt: skip
            self._reload_own_keys()
            keys = self.own_descriptor.encryption_keys

    def _rewrap_stored(self, retired: str, current: EncryptionKey) -> tuple[int, int]:
        """Re-wrap every stored message sealed to ``retired``; (re-wrapped, unreadable)."""
        rewrapped = unreadable = 0
        after = 0
        while batch := self.store.inbox(after, None, 500):
            wraps = []
            for m in batch:
                try:
                    parsed = envelope.parse(self.registry, m.envelope, max(len(m.envelope), 1))
                    if envelope.sealed_to(parsed, self.node_id, m.local_wrap) != retired:
                        continue
                    key_id, wrap = envelope.rewrap(parsed, self.node_id, self._encryption,
                                                   current, m.local_wrap)  # fmt: skip
                except envelope.EnvelopeError as exc:  # it did not open before either
                    unreadable += 1
                    log.warning(
                        "message_not_rewrapped", node=self.node_id, message_id=m.message_id,
                        peer=m.sender, reason=exc.reason,
                    )  # fmt: skip
                    continue
                wraps.append((m.seq, key_id, wrap))
            self.store.set_local_wraps(wraps)
            rewrapped += len(wraps)
            after = batch[-1].seq
        return rewrapped, unreadable

    def _adopt_listed_identity(self) -> None:
        """Switch to the identity key a rotation request asked for (``xnode keys rotate
        --identity``) once the trust list names it; the old private key is destroyed."""
        if self.trust_list is None:
            return
        t = self.trust_list.trust_list
        listed = t.member(self.node_id)
        if listed is None or listed.identity_key == self.identity.public_raw:
            return
        old = self.identity.key_id
        now = self.clock()
        signed = self.node_dir.adopt_next_identity(
            self.registry, self._passphrase, listed.identity_key, now
        )
        if signed is None:
            if not self._warned_identity:
                log.error("own_identity_not_listed", node=self.node_id,
                          list_version=t.list_version, listed=key_id(listed.identity_key),
                          held=old)  # fmt: skip
                self._warned_identity = True
            return
        new = signed.descriptor.identity_key_id
        self.store.append_audit([
            AuditEvent("key-changed", now, detail={
                "identity_key_id": new, "previous": old, "list_version": t.list_version,
                "descriptor_version": signed.descriptor.descriptor_version}),
            AuditEvent("key-destroyed", now, detail={"key_id": old, "key": "identity"}),
        ])  # fmt: skip
        log.info("identity_key_switched", node=self.node_id, identity_key_id=new, previous=old,
                 list_version=t.list_version)  # fmt: skip

    def _reload_peers(self) -> None:
        """Peers from the node directory. In federated mode (a trust list in ``trust/``) only the
        descriptors the list backs, with the roles it grants, and its suspended and revoked
        members refused as revoked; local revocations (``xnode peers revoke``) apply in both."""
        signed = self.node_dir.peers(self.registry)
        descriptors = {n: s.descriptor for n, s in signed.items()}
        revoked = set(self.node_dir.revocations())
        self.trust_list = self.node_dir.trust_list(self.registry)
        self._held_list_record = (
            None if self.trust_list is None
            else control.issue_trust_list(self.registry, self.trust_list)
        )  # fmt: skip
        keys = None
        if self.trust_list is not None:
            federated = trustlist.federated_directory(
                self.trust_list.trust_list, descriptors, self.clock()
            )
            descriptors, keys = federated.peers, federated.keys
            revoked |= federated.barred
        self.peers: dict[str, Descriptor] = descriptors
        self.peer_directory = PeerDirectory.of(descriptors.values(), revoked, keys)
        self._receive_ctx = delivery.ReceiveContext(
            registry=self.registry,
            own_id=self.node_id,
            own_keys=self._encryption,
            peers=self.peer_directory,
            max_skew=dt.timedelta(seconds=self.config.envelope.clock_skew_seconds),
            max_bytes=self.config.envelope.max_bytes,
            own_roles=self.config.node.roles,
            policy=Policy.from_config(self.config.policy.rules),
            max_lifetime=dt.timedelta(days=self.config.envelope.max_lifetime_days),
        )

    # -- submitting -----------------------------------------------------------------------------

    async def submit(self, request: submit.Request) -> str:
        """Validate, seal and store in the outbox; return the message id. The broker may be down.

        Under an idempotency key already stored, the same request (same fingerprint) returns the
        first message's id without sealing again, and a different one raises
        :class:`submit.IdempotencyKeyReused`; the store checks again in the transaction that
        inserts, so two concurrent requests under one key cannot both be stored."""
        if request.idempotency_key is not None:
            existing = await self._run(
                self.store.find_by_idempotency_key, request.idempotency_key,
                submit.fingerprint(request),
            )  # fmt: skip
            if existing is not None:
                log.info("message_submit_repeated", node=self.node_id, message_id=existing)
                return existing
        grace = dt.timedelta(days=self.config.federation.grace_days)
        submit.check_federation(self.trust_list, self.clock(), grace)

        def prepare() -> tuple[OutboundMessage, AuditEvent, float]:
            started = time.perf_counter()
            message, event = submit.prepare(
                self.registry, request, config=self.config, identity=self.identity,
                peers=self.peers, now=self.clock(), revoked=self.peer_directory.revoked,
            )  # fmt: skip
            return message, event, time.perf_counter() - started

        message, event, seconds = await self._compute(prepare)
        self.metrics.seal_seconds.observe(seconds)
        step, events = await self._procedure_step(request, message)
        fact = submit.sent_fact(request, message)
        message_id = await self._write(self.store.submit, message, [event, *events], step, fact)
        if message_id == message.message_id:
            self.metrics.submitted.labels(message.kind).inc()
        self._wake_publisher.set()
        log.info("message_submitted", node=self.node_id, message_id=message_id,
                 thread_id=message.thread_id, kind=message.kind)  # fmt: skip
        return message_id

    async def _procedure_step(
        self, request: SubmitRequest, message: OutboundMessage
    ) -> tuple[ProcedureStep | None, list[AuditEvent]]:
        """:func:`casework.sent_step` on the store's thread."""
        return await self._run(casework.sent_step, self.store, self.registry, request, message,
                               self.node_id, self.config.procedures.defaults())  # fmt: skip

    async def procedure(self, thread_id: str) -> dict[str, Any] | None:
        """A thread's procedure (docs/procedures.md): state, steps done, next expected step,
        deadline, overdue; None for a thread without one."""
        steps = await self._run(self.store.procedure_steps, thread_id)
        state = procedures.state_of(steps, self.config.procedures.defaults())
        return None if state is None else procedures.describe(state, now=self.clock())

    async def overdue(self) -> list[dict[str, Any]]:
        """Requests past their deadline without an answer, sent or received, oldest first."""
        return await self._run(casework.overdue, self.store, self.config.procedures.defaults(),
                               self.node_id, self.clock())  # fmt: skip

    async def _check_overdue(self) -> None:
        """Count overdue requests (metric) and announce each newly overdue one once to the
        local system: a status event ``overdue`` (webhook, folder, API) and an audit entry."""
        items = await self.overdue()
        counts: dict[tuple[str, str], int] = {
            (p, d): 0 for p in procedures.PROCEDURES for d in ("sent", "received")
        }
        for item in items:
            counts[(item["procedure"], item["direction"])] += 1
        for (procedure, direction), count in counts.items():
            self.metrics.overdue.labels(procedure, direction).set(count)
        announced = await self._run(self.store.announced_overdue)
        now = self.clock()
        for item in items:
            deadline = dt.datetime.fromisoformat(item["deadline"].replace("Z", "+00:00"))
            if announced.get(item["thread_id"]) == deadline:
                continue
            detail = (f"{item['procedure']} request {item['request_id']}: deadline "
                      f"{item['deadline']} passed without an answer")  # fmt: skip
            events = [StatusEvent(0, item["request_id"], party, item["procedure"],
                                  item["thread_id"], "overdue", item["direction"], detail, now)
                      for party in item["owed_by"] or [""]]  # fmt: skip
            audit = AuditEvent("overdue", now, message_id=item["request_id"],
                               detail={"deadline": item["deadline"],
                                       "direction": item["direction"]})  # fmt: skip
            if await self._run(self.store.announce_overdue, events, deadline, audit):
                self.status_changed.notify()
                log.warning("request_overdue", node=self.node_id, thread_id=item["thread_id"],
                            procedure=item["procedure"], direction=item["direction"],
                            deadline=item["deadline"])  # fmt: skip

    # -- views for local systems (API, adapters) ---------------------------------------------------

    def inbox_item(self, message: InboxMessage) -> dict[str, Any]:
        return views.inbox_item(
            self.registry, message, own_id=self.node_id, own_keys=self._encryption,
            peers=self.peer_directory,
        )  # fmt: skip

    def _payload_json(self, message: InboxMessage) -> dict[str, Any] | None:
        payload: dict[str, Any] | None = self.inbox_item(message).get("payload")
        return payload

    async def _erasure_once(self) -> None:
        """Carry out received erasure requests and report answers to passed-on ones; woken when
        one arrives, and every 5 s anyway (one stored before a crash)."""
        if not await self.erasures.run_once():
            waiters = [asyncio.ensure_future(e.wait()) for e in (self._erasure_due, self._stopping)]
            try:
                await asyncio.wait(waiters, timeout=5, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
            self._erasure_due.clear()

    async def inbox_items(
        self, after: int, kinds: Sequence[str] | None, limit: int, match: str | None = None
    ) -> list[dict[str, Any]]:
        """Received messages after ``after``; with ``match``, those naming that identifier
        (a phone number, an account, a handle...: :func:`identifiers.query_keys`)."""
        naming = None
        if match is not None:
            region = country_of(self.node_id).upper()
            naming = identifiers.searched(self._index_secret, match, region)
        messages = await self._run(self.store.inbox, after, kinds, limit, naming)
        return [self.inbox_item(m) for m in messages]

    async def sent_item(self, message_id: str) -> dict[str, Any] | None:
        message = await self._run(self.store.outbox_message, message_id)
        if message is None:
            return None
        statuses = await self._run(self.store.message_status, message_id)
        return views.sent_item(message, statuses, self.node_id)

    async def thread(self, thread_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(sent, received) views of one case."""
        sent, received = await self._run(self.store.thread, thread_id)
        sent_items = []
        for message in sent:
            statuses = await self._run(self.store.message_status, message.message_id)
            sent_items.append(views.sent_item(message, statuses, self.node_id))
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
            if self.store_problem is None:
                checks["store"] = {"ok": True, "detail": f"schema version {version}"}
            else:
                checks["store"] = {"ok": False, "detail": self.store_problem}
        except Exception as exc:
            checks["store"] = {"ok": False, "detail": str(exc)[:200]}
        servers = self.transport.settings.bootstrap_servers
        health = self.broker_health
        if health.connected:
            detail = f"connected to {servers}"
        else:
            down = health.down_for(asyncio.get_running_loop().time())
            detail = f"no answer from {servers}" + (f" for {down:.0f} s" if down else "")
        checks["broker"] = {"ok": health.connected, "detail": detail}
        now = self.clock()
        valid = [k for k in self.own_descriptor.encryption_keys if k.valid_at(now)]
        checks["keys"] = {
            "ok": bool(valid) and bool(self._encryption),
            "detail": f"{len(valid)} valid encryption key(s), identity {self.identity.key_id}",
        }
        if self.trust_list is not None:
            checks["trust"] = self._trust_check(now)
        return checks

    def _trust_check(self, now: dt.datetime) -> dict[str, Any]:
        """Federated mode: the held list valid (ok), expired within the grace period (ok,
        degraded: still sending), or expired beyond it (not ok: sending refused)."""
        assert self.trust_list is not None
        t = self.trust_list.trust_list
        grace = dt.timedelta(days=self.config.federation.grace_days)
        state = trustlist.freshness(t, now, grace)
        detail = (
            f"{t.federation} version {t.list_version}, expires {t.expires_at:%Y-%m-%d %H:%M} UTC"
        )
        if state is trustlist.Freshness.DEGRADED:
            detail += (
                f"; EXPIRED: degraded, sending until {t.expires_at + grace:%Y-%m-%d %H:%M} UTC"
            )
        elif state is trustlist.Freshness.EXPIRED:
            detail += "; EXPIRED beyond the grace period: sending refused until a newer list"
        return {"ok": state is not trustlist.Freshness.EXPIRED, "state": state.value,
                "detail": detail}  # fmt: skip

    async def render_metrics(self) -> bytes:
        """Refresh the gauges read from the store and the keys, then expose everything."""
        now = self.clock()
        snapshot = await self._run(self.store.snapshot)
        self.metrics.observe_store(snapshot, self.peers, now)
        self.metrics.observe_keys(self.own_descriptor, self.peers, now)
        self.metrics.broker_connected.set(1 if self.broker_health.connected else 0)
        if self.trust_list is not None:
            self.metrics.observe_trust_list(self.trust_list.trust_list)
        with contextlib.suppress(OSError):
            usage = os.statvfs(self.store.path.parent)
            self.metrics.store_free_bytes.set(usage.f_bavail * usage.f_frsize)
        return self.metrics.render()

    def _control(self, record: InboundRecord) -> None:
        """A heartbeat or a peer's audit checkpoint from the shared control topic. A checkpoint
        newer than the one held is kept in memory until :meth:`checkpoint_tick` saves it; one
        that goes back (a sign that the peer rolled its audit log back) is never kept, and
        :meth:`checkpoint_tick` reports it. The list this node holds, as every member announces
        it, is recognised by its bytes and not decoded again."""
        if record.value == self._held_list_record:
            return
        try:
            item = control.read_control(
                self.registry, record.value, self.peer_directory, self.clock()
            )
            if isinstance(item, control.Heartbeat):
                control.check_heartbeat_time(item, self.clock(), self._receive_ctx.max_skew)
        except control.ControlRejected as exc:
            if not (exc.reason == "unknown-sender" and record.key == self.node_id.encode()):
                self.metrics.control_ignored.labels(exc.reason).inc()
            return
        if isinstance(item, checkpoint.SignedCheckpoint):
            self.audit_checkpoints.offer(item)
            return
        if isinstance(item, SignedDescriptor):
            if item.node_id != self.node_id:
                self._offered_descriptors[item.node_id] = item
            return
        if isinstance(item, trustlist.SignedTrustList):
            self._offer_list(item)
            return
        heartbeat = item
        seen = max(self.last_seen.get(heartbeat.node_id, 0.0), heartbeat.sent_at.timestamp())
        self.last_seen[heartbeat.node_id] = seen
        self.metrics.peer_last_seen.labels(heartbeat.node_id).set(seen)

    def _offer_list(self, candidate: trustlist.SignedTrustList) -> None:
        """Judge a list from the control topic as it arrives (pure and fast: 18 ms for 1,000
        members), so that junk published after a valid list cannot push it out before the
        maintenance loop applies it: only a list :func:`trustlist.decide` accepts is kept (the
        highest version), and each refusal is counted now and logged and audited there."""
        held = self.trust_list
        if held is None or candidate.body == held.body:
            return
        try:
            trustlist.decide(held, candidate, self.clock())
        except trustlist.TrustListRejected as exc:
            self.metrics.trust_list_refused.labels(exc.reason).inc()
            if exc.reason == "rollback":
                self._list_announced = None  # a member lags (or replays): ours goes out next
            if len(self._list_refusals) < 32:
                self._list_refusals.append((candidate, exc))
            return
        best = self._offered_list
        if best is None or candidate.trust_list.list_version > best.trust_list.list_version:
            self._offered_list = candidate

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
        """Announce this node; then its newest audit checkpoint (signed first if one is due), so
        that the peers keep a copy of it out of this node's reach."""
        beat = control.Heartbeat(
            self.node_id, self.clock(), self.own_descriptor.descriptor_version,
            self.identity.key_id,
        )  # fmt: skip
        with contextlib.suppress(TransportUnavailable):
            await self.transport.publish(
                self.control, self.node_id, control.issue_heartbeat(self.registry, self.identity,
                                                                    beat)
            )  # fmt: skip
        if self.trust_list is not None:  # federated: members learn each other's keys from here
            with contextlib.suppress(TransportUnavailable):
                await self.transport.publish(
                    self.control, self.node_id,
                    control.issue_descriptor(self.registry, self._own_signed),
                )  # fmt: skip
                await self._announce_list()
        await self.checkpoint_tick()
        own = self.audit_checkpoints.own
        if own is not None:
            with contextlib.suppress(TransportUnavailable):
                await self.transport.publish(
                    self.control, self.node_id, control.issue_checkpoint(self.registry, own)
                )

    async def _announce_list(self) -> None:
        """The held trust list, when :func:`control.list_announcement_due` says so."""
        if self._held_list_record is None or self.trust_list is None:
            return
        version = self.trust_list.trust_list.list_version
        now = time.monotonic()
        interval = self.config.federation.list_announce_seconds
        if not control.list_announcement_due(version, self._list_announced, now, interval):
            return
        await self.transport.publish(self.control, self.node_id, self._held_list_record)
        self._list_announced = (version, now)

    async def checkpoint_tick(self) -> None:
        """See :meth:`_checkpoint_tick`; one at a time (maintenance and heartbeats both call)."""
        async with self._checkpoint_lock:
            await self._checkpoint_tick()

    async def _checkpoint_tick(self) -> None:
        """Audit checkpoints (:mod:`node.checkpoint`): sign one when due and keep it in the
        checkpoint file; save the peers' newest checkpoints received since the last tick. Cheap
        when nothing is due (one indexed read), so it may run every maintenance round.

        A chain that no longer holds the node's own latest checkpoint (entries cut off or
        rewritten since it was signed) is logged as an error, and no checkpoint is signed over it
        any more: the evidence in the file and at the peers is not replaced by a checkpoint of
        the cut chain. Only an operator clears that state (docs/audit.md)."""
        book = self.audit_checkpoints
        if not book.own_loaded:
            try:
                book.own = await self._run(
                    self.node_dir.own_checkpoint, self.registry, self.config, self.own_descriptor
                )
            except NodeDirError as exc:
                book.problem = str(exc)
                log.error("audit_checkpoint_file_refused", node=self.node_id, error=str(exc))
            book.own_loaded = True
        if book.problem is None:
            length, head = await self._run(self.store.audit_head)
            own = book.own.checkpoint if book.own is not None else None
            if own is not None:
                at = head if length == own.count else (
                    await self._run(self.store.audit_head, own.count))[1]  # fmt: skip
                verdict = checkpoint.compare(own, length, at, "checkpoint file")
                if not verdict.intact:
                    book.problem = verdict.line
                    log.error("audit_chain_behind_checkpoint", node=self.node_id,
                              verdict=verdict.status, detail=verdict.detail)  # fmt: skip
            now, settings = self.clock(), self.config.audit
            if (
                book.problem is None
                and head is not None
                and checkpoint.due(own, length, now, every_events=settings.checkpoint_events,
                                   every_seconds=settings.checkpoint_seconds)
            ):  # fmt: skip
                signed = checkpoint.issue(
                    self.registry, self.identity,
                    checkpoint.Checkpoint(self.node_id, length, head, now),
                )  # fmt: skip
                try:  # a full disk must not stop heartbeats or the rest of maintenance
                    await self._run(self.node_dir.save_own_checkpoint, self.config, signed)
                except OSError as exc:
                    if book.note_save_error(str(exc)):
                        log.warning("audit_checkpoint_not_saved", node=self.node_id,
                                    error=str(exc))  # fmt: skip
                else:
                    book.own = signed
        for peer in sorted(book.unsaved):
            incoming, descriptor = book.peers[peer], self.peers.get(peer)
            if descriptor is not None:
                try:
                    held = await self._run(self.node_dir.peer_checkpoint, self.registry, descriptor)
                except NodeDirError as exc:  # replaced below by one that verifies
                    log.warning("peer_audit_checkpoint_file_refused", node=self.node_id,
                                peer=peer, error=str(exc))  # fmt: skip
                    held = None
                if book.settle(held, incoming) is checkpoint.PeerDecision.NEWER:
                    try:
                        await self._run(self.node_dir.save_peer_checkpoint, incoming)
                    except OSError as exc:  # tried again next tick
                        if book.note_save_error(str(exc)):
                            log.warning("audit_checkpoint_not_saved", node=self.node_id,
                                        peer=peer, error=str(exc))  # fmt: skip
                        continue
                elif held is not None:  # the file on disk is newer (held before a restart)
                    book.peers[peer] = held
            book.unsaved.discard(peer)
        for back in book.take_went_back():
            log.error("peer_audit_checkpoint_went_back", node=self.node_id,
                      peer=back.got.node_id, decision=back.decision.value,
                      held_count=back.held.count, held_hash=back.held.head_hash,
                      got_count=back.got.count, got_hash=back.got.head_hash)  # fmt: skip

    # -- loops ----------------------------------------------------------------------------------

    async def _sleep(self, seconds: float, event: asyncio.Event | None = None) -> None:
        waiter = event or self._stopping
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.wait(), seconds)

    def _loop_task(self, name: str, once: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        return asyncio.create_task(self._supervise(name, once), name=f"{self.node_id}-{name}")

    async def _supervise(self, name: str, once: Callable[[], Awaitable[None]]) -> None:
        """Run one round of a loop after another until the node stops. A round that fails does
        not end the loop: a store that cannot write marks the node not ready and the round is
        tried again once the disk has room; anything else is logged (once a minute per loop),
        counted, and retried after a pause. Nothing the node accepted is left behind."""
        pause = 0.5
        while not self._stopping.is_set():
            try:
                await once()
                pause = 0.5
            except asyncio.CancelledError:
                raise
            except StoreUnavailable as exc:
                self.note_store_failure(exc)
                await self._sleep(STORE_PROBE_SECONDS)
            except Exception:
                self.metrics.loop_failures.labels(name).inc()
                now = time.monotonic()
                if now - self._loop_errors.get(name, -1e9) >= 60:
                    self._loop_errors[name] = now
                    log.exception("loop_failed", node=self.node_id, loop=name, retry_in=pause)
                await self._sleep(pause)
                pause = min(pause * 2, 10.0)

    def note_store_failure(self, exc: StoreUnavailable) -> None:
        """A write was refused by the disk: not ready until a probe write succeeds."""
        cause = "full" if isinstance(exc, StoreFull) else "io"
        self.metrics.store_write_failures.labels(cause).inc()
        if self.store_problem is None:
            log.error("store_not_writable", node=self.node_id, cause=cause, error=str(exc))
        self.store_problem = str(exc)
        self.metrics.store_writable.set(0)

    async def _probe_store(self) -> None:
        try:
            await self._run(self.store.probe_write)
        except StoreUnavailable as exc:
            self.note_store_failure(exc)
            return
        log.info("store_writable_again", node=self.node_id)
        self.store_problem = None
        self.metrics.store_writable.set(1)
        self._wake_publisher.set()

    async def _log_health(self, events: Sequence[HealthEvent]) -> None:
        for event in events:
            getattr(log, event.level)(event.name, node=self.node_id,
                                      broker=self.transport.settings.bootstrap_servers,
                                      **event.fields)  # fmt: skip
            if event.name == "broker_back":  # what was published before may be gone with it
                await self._republish_open("broker back after an outage")

    async def _republish_open(self, why: str) -> None:
        """Re-publish every unreceipted message now instead of at its backoff time."""
        count = await self._run(self.store.retry_open_now, self.clock())
        if count:
            log.info("republishing_open_messages", node=self.node_id, count=count, reason=why)
        self._wake_publisher.set()

    async def _watch_broker_once(self) -> None:
        """Connect if needed, then measure: one metadata request per broker_check_seconds."""
        delivery_settings = self.config.delivery
        loop = asyncio.get_running_loop()
        if not self.transport.started:
            try:
                await self.transport.start()
            except TransportUnavailable as exc:
                await self._log_health(self.broker_health.observe(False, loop.time(), str(exc)))
                await self._sleep(min(delivery_settings.broker_check_seconds, 2))
                return
            self._wake_publisher.set()
        try:
            await self.transport.probe(timeout=delivery_settings.broker_timeout_seconds / 2)
            ok, error = True, None
        except TransportUnavailable as exc:
            ok, error = False, str(exc)
            # Drop the clients: a broker that comes back may be a new, empty one, and clients
            # that remember the old one write where nobody reads (seen with the development
            # broker). Fresh clients connect when it answers again; nothing is lost meanwhile.
            await self.transport.stop()
        await self._log_health(self.broker_health.observe(ok, loop.time(), error))
        self.metrics.broker_connected.set(1 if self.broker_health.connected else 0)
        if ok:
            self.connected.set()
        await self._sleep(delivery_settings.broker_check_seconds)

    async def _maintain_once(self) -> None:
        """Topics, peers, heartbeats, expiry, retention, store probes: each on its own period."""
        loop = asyncio.get_running_loop()
        now, due = loop.time(), self._due
        if self.store_problem is not None and due("store-probe", STORE_PROBE_SECONDS, now):
            await self._probe_store()
        if self.transport.started and due("topics", 5, now):  # an empty broker lost our topics
            created = await self.transport.ensure_topics(self.transport.topics)
            if created:
                log.info("topics_created", node=self.node_id, topics=created)
            with contextlib.suppress(TransportUnavailable):
                added = await self.transport.refresh_assignment()
                if added:
                    log.info("partitions_assigned", node=self.node_id, partitions=added)
        if self._offered_list or self._list_refusals or self._offered_descriptors:
            await self._apply_federation()
        if due("peers", 5, now):
            await self._run(self._reload_own_keys)
            await self._run(self._destroy_retired_keys)
            await self._run(self._reload_peers)
            self.metrics.known_peers(self.peers)
            await self._end_deliveries_to_revoked()
        if self.transport.started and due("heartbeat", self.config.delivery.heartbeat_seconds, now):
            await self._heartbeat()
        await self.checkpoint_tick()  # signed even while the broker is away
        if due("evictions", 60, now):
            await self._summarise_evictions()
        if due("overdue", self.config.procedures.overdue_check_seconds, now):
            await self._check_overdue()
        if due("purge", 3600, now):  # hourly, and once at start
            await self._purge()
        if due("expire", 1, now):
            expired = await self._run(self.store.expire_due, self.clock())
            if expired:
                self.status_changed.notify()
            for message_id, recipient in expired:
                self.metrics.expired.labels(recipient).inc()
                log.warning(
                    "message_expired", node=self.node_id, message_id=message_id, peer=recipient
                )
        await self._sleep(0.5)

    async def _end_deliveries_to_revoked(self) -> None:
        """Messages still waiting for a revoked or suspended peer end as rejected with reason
        ``recipient-revoked``: the local system sees it in the message's status (API, xnode
        status) instead of a message that silently never arrives."""
        for recipient in sorted(self.peer_directory.revoked):
            ended = await self._run(
                self.store.reject_open, recipient, "recipient-revoked",
                f"{recipient} was revoked or suspended; nothing more is sent to it", self.clock(),
            )  # fmt: skip
            if ended:
                self.status_changed.notify()
            for message_id, kind in ended:
                self.metrics.rejected.labels(kind, recipient, "recipient-revoked").inc()
                log.warning("delivery_ended_recipient_revoked", node=self.node_id,
                            message_id=message_id, peer=recipient)  # fmt: skip

    async def _apply_federation(self) -> None:
        """Judge a trust list and member descriptors received on the control topic: a list
        signed by the quorum of the governors this node trusts replaces the held one (audited);
        a descriptor is stored when the held list backs its key. Refusals are counted and
        logged; the node keeps running on what it holds."""
        offered, self._offered_list = self._offered_list, None
        refusals, self._list_refusals = self._list_refusals, []
        descriptors, self._offered_descriptors = self._offered_descriptors, {}
        now = self.clock()
        for candidate, exc in refusals:
            await self._report_list_refusal(candidate, exc, now)
        if offered is not None and self.trust_list is not None:
            await self._judge_list(offered, now)
        if self.trust_list is None:
            return
        t = self.trust_list.trust_list
        known = await self._run(self.node_dir.peers, self.registry)
        for node_id, signed in descriptors.items():
            reason = trustlist.backs(t, node_id, signed.descriptor.identity_key)
            if reason is not None:
                self.metrics.control_ignored.labels("descriptor-not-backed").inc()
                key = signed.descriptor.identity_key_id
                if t.member(node_id) is not None and self._first_refusal(("key", node_id, key)):
                    # a member's id with a key the list does not name: a forgery or a rotation
                    # not approved yet; an outsider's descriptor is only counted
                    log.warning("descriptor_refused", node=self.node_id, peer=node_id,
                                identity_key_id=key, reason=reason)  # fmt: skip
                    await self._run(self.store.append_audit, [AuditEvent(
                        "descriptor-refused", now, peer=node_id,
                        detail={"identity_key_id": key, "reason": reason})])  # fmt: skip
                continue
            held = known.get(node_id)
            if held is not None and held.body == signed.body:
                continue
            if held is not None and held.descriptor.identity_key != signed.descriptor.identity_key:
                await self._run(self.node_dir.remove_peer, node_id)  # the list rotated its key
            try:
                await self._run(self.node_dir.add_peer, self.registry, self.node_id, signed, now)
            except TrustError as exc:
                self.metrics.control_ignored.labels("bad-descriptor").inc()
                log.warning("descriptor_refused", node=self.node_id, peer=node_id,
                            error=str(exc)[:200])  # fmt: skip
                continue
            detail = {"from": "control topic", "fingerprint": signed.descriptor.fingerprint}
            event = AuditEvent("peer-added" if held is None else "peer-updated", now,
                               peer=node_id, detail=detail)  # fmt: skip
            await self._run(self.store.append_audit, [event])
            log.info("peer_descriptor_applied", node=self.node_id, peer=node_id)
        await self._run(self._reload_peers)

    async def _judge_list(self, offered: trustlist.SignedTrustList, now: dt.datetime) -> None:
        """Apply a list accepted on arrival (:meth:`_offer_list`), judged again against the list
        held now."""
        assert self.trust_list is not None
        try:
            change = trustlist.decide(self.trust_list, offered, now)
        except trustlist.TrustListRejected as exc:
            self.metrics.trust_list_refused.labels(exc.reason).inc()
            await self._report_list_refusal(offered, exc, now)
            return
        if change is not trustlist.Change.APPLY:
            return
        await self._run(self.node_dir.save_trust_list, self.registry, offered)
        t = offered.trust_list
        event = AuditEvent("trust-list-applied", now, detail={
            "federation": t.federation, "list_version": t.list_version,
            "members": len(t.members), "from": "control topic"})  # fmt: skip
        await self._run(self.store.append_audit, [event])
        log.info("trust_list_applied", node=self.node_id, federation=t.federation,
                 list_version=t.list_version)  # fmt: skip
        await self._run(self._reload_peers)

    async def _report_list_refusal(
        self,
        offered: trustlist.SignedTrustList,
        exc: trustlist.TrustListRejected,
        now: dt.datetime,
    ) -> None:
        """Log and audit a refused list the first time this exact list is seen (members
        re-announce what they hold: copies are counted only)."""
        digest = hashlib.sha256(offered.encode(self.registry)).hexdigest()  # with signatures
        if not self._first_refusal(("list", digest)):
            return
        version = offered.trust_list.list_version
        log.warning("trust_list_refused", node=self.node_id, reason=exc.reason,
                    list_version=version, detail=exc.detail[:200])  # fmt: skip
        await self._run(self.store.append_audit, [AuditEvent("trust-list-refused", now, detail={
            "reason": exc.reason, "detail": exc.detail[:200], "list_version": version,
            "list_sha256": digest})])  # fmt: skip

    def _first_refusal(self, key: tuple[str, ...]) -> bool:
        """True the first time a refusal of this kind and content is seen (remembering the
        latest 256): what the control topic repeats is logged and audited once, counted always."""
        if key in self._refusals_seen:
            return False
        self._refusals_seen[key] = None
        while len(self._refusals_seen) > 256:
            self._refusals_seen.pop(next(iter(self._refusals_seen)))
        return True

    def _due(self, job: str, period: float, now: float) -> bool:
        """True (and remembered) when ``job`` last ran ``period`` seconds ago or never."""
        last = self._last_run.get(job)
        if last is not None and now - last < period:
            return False
        self._last_run[job] = now
        return True

    async def _publish_once(self) -> None:
        interval = self.config.delivery.poll_interval_ms / 1000
        if not self.transport.started or self.store_problem is not None:
            await self._sleep(interval)
            return
        self._wake_publisher.clear()
        due = await self._run(
            self.store.due_deliveries, self.clock(), self.config.delivery.publish_batch
        )
        if due:
            topics = [inbox_topic(self.prefix, d.recipient, d.kind) for d in due]
            errors = await self.transport.publish_many(
                [(topic, d.thread_id, d.envelope) for topic, d in zip(topics, due, strict=True)]
            )
            attempts = [self._attempt(*a) for a in zip(due, topics, errors, strict=True)]
            await self._write(self.store.record_attempts, attempts)
        else:
            await self._sleep(interval, self._wake_publisher)

    def _attempt(self, d: Delivery, topic: str, error: str | None) -> Attempt:
        """The attempt to record for one delivery published (``error`` None) or not."""
        published = error is None
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
            # While the broker is known to be down, the outage has been reported once already.
            report = log.warning if self.broker_health.connected else log.debug
            report("publish_failed", node=self.node_id, message_id=d.message_id,
                   thread_id=d.thread_id, peer=d.recipient, error=error)  # fmt: skip
        return Attempt(d.message_id, d.recipient, published, now, next_at, event)

    async def _consume_once(self) -> None:
        """Read a batch, decide it (verify, open, validate), store it in one transaction, then
        commit each partition up to its first record not stored; check offsets against the
        broker now and then.

        The steps run one after the other: overlapping the decision of one batch with the write
        of the one before was measured slower (both stages are mostly Python, serialised by the
        GIL, and they competed for it; docs/capacity.md)."""
        if not self.transport.started:
            await self._sleep(0.2)
            return
        if self._out_of_range or self._due("offsets", OFFSET_CHECK_SECONDS, time.monotonic()):
            await self._check_offsets()
        try:
            records = await self.transport.fetch(
                timeout_ms=300, max_records=self.config.delivery.consume_batch
            )
        except PositionOutOfRange as exc:
            self._out_of_range = exc.partitions
            return
        except TransportUnavailable:  # the broker watch reports the outage, once
            await self._sleep(0.5)
            return
        for record in records:
            if record.topic == self.control:
                self._control(record)
        inbox = [r for r in records if r.topic != self.control]
        items = await self._decide(inbox)
        done = await self._intake(items) if items is not None else [False] * len(inbox)
        stored = {id(r): ok for r, ok in zip(inbox, done, strict=True)}
        plan = offsets.commit_plan(records, lambda r: stored.get(id(r), True))
        try:
            await self._note_resets(await self.transport.commit(plan.positions))
            for (topic, part), offset in plan.rewind.items():
                await self.transport.seek(topic, part, offset)
        except TransportUnavailable:
            pass  # not committed: read again after reconnecting, dedupe keeps it once
        if plan.rewind:
            await self._sleep(1.0)

    async def _check_offsets(self) -> None:
        found, self.transport.pending_resets = self.transport.pending_resets, []
        if found:  # at (re)connection: the clients are new already
            await self._note_resets(found, rebuild=False)
        forced, self._out_of_range = self._out_of_range, []
        try:
            resets, lag = await self.transport.check_offsets(forced)
        except TransportUnavailable:
            self._out_of_range = forced
            return
        await self._note_resets(resets)
        for topic, value in lag.items():
            self.metrics.consumer_lag.labels(topic).set(value)

    async def _note_resets(self, resets: Sequence[OffsetReset], rebuild: bool = True) -> None:
        """Count rewinds and say so once per round (not once per partition). A broker that has
        lost the group's offsets has lost its logs too: what this node published and is still
        waiting a receipt for is re-published at once."""
        for reset in resets:
            self.metrics.offset_resets.labels(reset.topic, reset.reason).inc()
        lost_state = any(r.reason in offsets.STATE_LOST for r in resets)
        if resets:
            log.warning(
                "consumer_offsets_reset", node=self.node_id,
                reasons=sorted({r.reason for r in resets}),
                partitions=[f"{r.topic}/{r.partition}:{r.from_offset}->{r.to_offset}"
                            for r in resets],
            )  # fmt: skip
        if lost_state:
            if rebuild:
                # The Kafka clients' cached metadata, connections and fetch state describe a
                # broker that is gone; fresh clients read the new one from its log start.
                await self.transport.stop()
                with contextlib.suppress(TransportUnavailable):
                    await self.transport.start()
            await self._republish_open("the broker lost its state")

    async def _decide(self, records: Sequence[InboundRecord]) -> list[intake.Item] | None:
        """Parse, look up what was decided before (one query) and classify a batch in the
        crypto workers; None when the store cannot be read (the batch is read again)."""
        if not records:
            return []
        now, ctx = self.clock(), self._receive_ctx
        looked = await self._compute(
            lambda: [delivery.parse_for_lookup(ctx, r.value) for r in records]
        )
        try:
            seen = await self._run(self.store.seen_many, [k for _, k in looked if k])
        except StoreUnavailable as exc:
            self.note_store_failure(exc)
            return None
        except Exception:  # unreadable store: read the batch again rather than skip it
            log.exception("batch_lookup_failed", node=self.node_id, records=len(records))
            return None
        return await self._classify(records, looked, seen, now)

    async def _intake(self, items: list[intake.Item]) -> list[bool]:
        """Store a decided batch; for each item, True when its record may be committed.

        Every decision and the receipts owed are written in one store transaction
        (:mod:`node.intake`). A store that cannot write keeps the whole batch for later (all
        False); a record that fails for any other reason is retried a few times and then
        quarantined, so it cannot hold up its partition."""
        if not items:
            return []
        try:
            result = await self._write(intake.write_batch, self.store, self._intake_context(),
                                       items, self.clock())  # fmt: skip
        except StoreUnavailable as exc:
            self.note_store_failure(exc)
            return [False] * len(items)
        if result.receipts:
            self._wake_publisher.set()
        for failed in result.not_sealed:
            self.metrics.receipts_not_sealed.labels(failed.peer).inc(len(failed.message_ids))
            log.warning("receipt_not_sealed", node=self.node_id, peer=failed.peer,
                        message_ids=list(failed.message_ids), error=failed.error)  # fmt: skip
        return [await self._after(item) for item in result.items]

    async def _classify(
        self,
        records: Sequence[InboundRecord],
        looked: Sequence[tuple[envelope.ParsedEnvelope | envelope.EnvelopeError, Any]],
        seen: dict[tuple[str, str], DedupeEntry],
        now: dt.datetime,
    ) -> list[intake.Item]:
        """:func:`delivery.classify` for each record, spread over the crypto workers (the
        primitives release the GIL); a record that makes it raise becomes an item in error."""
        ctx = self._receive_ctx

        def classify(chunk: range) -> list[tuple[delivery.Outcome | Exception, float]]:
            out: list[tuple[delivery.Outcome | Exception, float]] = []
            for i in chunk:
                started = time.perf_counter()
                try:
                    outcome: delivery.Outcome | Exception = delivery.classify(
                        ctx, records[i].value, now, lambda s, m: seen.get((s, m)),
                        parsed=looked[i][0],
                    )  # fmt: skip
                except Exception as exc:
                    outcome = exc
                out.append((outcome, time.perf_counter() - started))
            return out

        workers = max(1, min(self._crypto_workers, len(records) // 16))
        step = -(-len(records) // workers)
        chunks = [range(i, min(i + step, len(records))) for i in range(0, len(records), step)]
        done = await asyncio.gather(*(self._compute(classify, c) for c in chunks))
        items = []
        for record, (outcome, seconds) in zip(records, (o for c in done for o in c), strict=True):
            self.metrics.open_seconds.observe(seconds)
            if isinstance(outcome, Exception):
                items.append(intake.Item(record, None, error=outcome))
            else:
                items.append(intake.Item(record, outcome))
        return items

    def _intake_context(self) -> intake.IntakeContext:
        return intake.IntakeContext(
            registry=self.registry, node_id=self.node_id, identity=self.identity,
            peers=self.peers, max_lifetime=self._receive_ctx.max_lifetime,
            quarantine_limits=self._quarantine_limits,
            duplicate_interval=dt.timedelta(seconds=self.config.delivery.duplicate_answer_seconds),
            receipt_batch=self.config.delivery.receipt_batch,
            single_answer_writer=self._single_answer_writer,
            procedure_defaults=self.config.procedures.defaults(),
            index_secret=self._index_secret,
        )  # fmt: skip

    async def _after(self, item: intake.Item) -> bool:
        """Count, log and hand over what was stored for one record; True when it may be
        committed."""
        record = item.record
        key = (record.topic, record.partition, record.offset)
        if item.error is not None:
            return await self._failed(item.record, item.error)
        self._record_failures.pop(key, None)
        outcome = item.outcome
        if item.copy_in_batch or isinstance(outcome, Duplicate):
            sender = _sender(outcome)
            self.metrics.duplicates.labels(sender).inc()
            if not item.answered:
                self.metrics.duplicates_unanswered.labels(sender).inc()
        elif isinstance(outcome, Accepted):
            await self._accepted(outcome, item)
        elif isinstance(outcome, ReceiptReceived):
            self._receipt_applied(outcome, item)
        elif isinstance(outcome, Rejected):
            self._rejected(outcome, item)
        return True

    async def _failed(self, record: intake.Record, exc: Exception) -> bool:
        """A record whose processing raised: read again (False) up to MAX_RECORD_ATTEMPTS times,
        then quarantined as ``processing-failed`` and skipped (True)."""
        key = (record.topic, record.partition, record.offset)
        self.metrics.record_failures.labels(record.topic).inc()
        attempts = self._record_failures.get(key, 0) + 1
        log.error("record_failed", node=self.node_id, topic=record.topic,
                  partition=record.partition, offset=record.offset, attempt=attempts,
                  error=type(exc).__name__, exc_info=exc)  # fmt: skip
        if attempts < MAX_RECORD_ATTEMPTS:
            self._record_failures[key] = attempts
            return False
        self._record_failures.pop(key, None)
        try:
            await self._quarantine_unprocessable(record, exc)
        except StoreUnavailable as store_exc:
            self.note_store_failure(store_exc)
            return False
        return True

    async def _quarantine_unprocessable(self, record: intake.Record, exc: Exception) -> None:
        now = self.clock()
        detail = f"processing failed {MAX_RECORD_ATTEMPTS} times ({type(exc).__name__})"

        def write() -> int:
            entry = intake.quarantine_entry(self.store, self._quarantine_limits, record, now,
                                            "processing-failed", detail, None, None)  # fmt: skip
            event = AuditEvent("quarantined", now, detail={"reason": "processing-failed",
                               "topic": record.topic, "offset": record.offset})  # fmt: skip
            return self.store.record_rejection(None, entry, [event])

        await self._write(write)
        self.metrics.quarantined.labels("processing-failed").inc()

    async def _accepted(self, outcome: Accepted, item: intake.Item) -> None:
        header = outcome.opened.header
        log.info("message_received", node=self.node_id, message_id=header.message_id,
                 thread_id=header.thread_id, peer=header.sender, kind=header.kind)  # fmt: skip
        if item.collisions:
            self.metrics.id_collisions.labels(header.sender).inc()
            log.warning("message_id_collision", node=self.node_id, message_id=header.message_id,
                        peer=header.sender, also_used_by=list(item.collisions))  # fmt: skip
        if not item.joined:
            self.metrics.thread_held_apart.labels(header.sender).inc()
            log.warning("thread_held_apart", node=self.node_id, message_id=header.message_id,
                        thread_id=header.thread_id, peer=header.sender)  # fmt: skip
        self.metrics.received.labels(header.kind, header.sender).inc()
        if outcome.opened.payload_schema.name in ERASURE_RECORDS:
            self._erasure_due.set()
        if item.out_of_order:
            self.metrics.out_of_order.labels(header.sender).inc()
            log.warning("procedure_step_out_of_order", node=self.node_id,
                        message_id=header.message_id, thread_id=header.thread_id,
                        peer=header.sender)  # fmt: skip
        self.inbox_changed.notify()
        assert item.stored is not None
        for handler in self._handlers:
            try:
                await handler(outcome.opened, item.stored)
            except Exception:  # an adapter's failure must not stop the node
                log.exception("handler_failed", node=self.node_id, message_id=header.message_id)

    def _receipt_applied(self, outcome: ReceiptReceived, item: intake.Item) -> None:
        header, now = outcome.header, self.clock()
        for answer, matched in item.matches:
            if matched is None or not matched.first:
                continue
            self.status_changed.notify()
            if answer["status"] == "delivered":
                self.metrics.delivered.labels(matched.kind, header.sender).inc()
            else:
                reason = delivery.reason_code(answer.get("reason")) or "unknown"
                self.metrics.rejected.labels(matched.kind, header.sender, reason).inc()
            latency = max((now - matched.created_at).total_seconds(), 0.0)
            self.metrics.receipt_latency.labels(matched.kind, header.sender).observe(latency)
        if item.quarantined:
            self.metrics.quarantined.labels(item.quarantined).inc()

    def _rejected(self, outcome: Rejected, item: intake.Item) -> None:
        header, record = outcome.header, item.record
        self.metrics.quarantined.labels(outcome.reason).inc()
        if item.evicted:
            self.metrics.quarantine_evicted.inc(item.evicted)
            self._evicted_since_summary += item.evicted
        else:
            log.warning("message_quarantined", node=self.node_id, reason=outcome.reason,
                        message_id=header.message_id if header else None,
                        thread_id=header.thread_id if header else None,
                        peer=header.sender if header else None, topic=record.topic,
                        offset=record.offset)  # fmt: skip

    async def _summarise_evictions(self) -> None:
        """One audit entry (and log line) for the unauthenticated records evicted since the
        last one, instead of one per record during a flood."""
        count, self._evicted_since_summary = self._evicted_since_summary, 0
        if count:
            event = AuditEvent("quarantine-evicted", self.clock(), detail={"count": count})
            await self._run(self.store.append_audit, [event])
            log.warning("quarantine_evicted", node=self.node_id, count=count,
                        kept=self._quarantine_limits.unauthenticated_max)  # fmt: skip
