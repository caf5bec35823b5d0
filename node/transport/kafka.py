"""aiokafka producer and consumer for one node, with explicit ``start()``/``stop()``.

Reliability is not delegated to Kafka: the outbox re-publishes until receipted and the inbox
dedupes, so this layer only needs to move bytes and report failure. It never commits an offset
by itself; the node commits after the record is safely in its store.

A broker that is down is a normal condition: :meth:`KafkaTransport.start` raises
:class:`TransportUnavailable` and the node tries again later, while submissions keep landing in
the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, OffsetOutOfRangeError, TopicAlreadyExistsError

from node.transport import offsets

T = TypeVar("T")
CLOSE_TIMEOUT_SECONDS = 3.0
# A fetch answer younger than this is taken as the partition's current log end.
FRESH_FETCH_MS = 5_000


class TransportUnavailable(Exception):
    """The broker cannot be reached or refused the operation; try again later."""


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str
    topic_prefix: str = "xchg"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    partitions: int = 3
    replication_factor: int = 1
    request_timeout_ms: int = 10_000
    max_request_bytes: int = 2 * 1024 * 1024
    fetch_max_wait_ms: int = 50

    def client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            context = ssl.create_default_context(cafile=self.ssl_cafile)
            if self.ssl_certfile:
                context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
            options["ssl_context"] = context
        if self.security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.sasl_mechanism or "SCRAM-SHA-512"
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options


@dataclass(frozen=True)
class OffsetReset:
    """One partition rewound to its log start (see :mod:`node.transport.offsets`)."""

    topic: str
    partition: int
    reason: str
    from_offset: int
    to_offset: int


@dataclass(frozen=True)
class InboundRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


class KafkaTransport:
    """Producer plus a consumer of this node's own topics (manual assignment), and an admin
    client for topics, group offsets and connectivity probes."""

    def __init__(self, settings: KafkaSettings, node_id: str, topics: Iterable[str]) -> None:
        self.settings = settings
        self.node_id = node_id
        self.group_id = f"xnode-{node_id}"
        self.topics = tuple(topics)
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        # What this process last committed per partition: a broker that no longer holds it has
        # lost its state, and the partition is read again from its log start.
        self._committed: dict[TopicPartition, int] = {}
        # Rewinds found while (re)connecting, for the node to count and act on.
        self.pending_resets: list[OffsetReset] = []
        self._verified: dict[TopicPartition, int] = {}  # positions whose last record was seen
        self._probe: AIOKafkaConsumer | None = None
        self._listed: set[str] = set()  # topics the broker listed (see publish)
        self._listed_at = -1e9

    @property
    def started(self) -> bool:
        return self._producer is not None and self._consumer is not None

    async def start(self) -> None:
        """Connect, create this node's topics if the broker allows, start consuming."""
        if self.started:
            return
        options = self.settings.client_options()
        producer = AIOKafkaProducer(
            **options,
            client_id=f"xnode-{self.node_id}",
            acks="all",
            max_request_size=self.settings.max_request_bytes,
            # room for a few hundred sealed messages per partition batch: a publishing round
            # of the outbox then waits for few batches to drain instead of many small ones
            max_batch_size=min(self.settings.max_request_bytes, 512 * 1024),
            linger_ms=2,
        )
        # Manual assignment, not group subscription: a node is one process reading only its own
        # topics, so group rebalancing would add start-up delay and pauses and buy nothing.
        # Offsets are still committed under the node's group id. No automatic offset reset: an
        # out-of-range position is reported, counted and rewound by the node (offsets.py).
        consumer = AIOKafkaConsumer(
            **options,
            client_id=f"xnode-{self.node_id}",
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="none",
            metadata_max_age_ms=5_000,
            # Some brokers (the development one among them) hold a fetch for the full wait
            # even when records arrive; a short wait bounds the latency this adds.
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            max_partition_fetch_bytes=self.settings.max_request_bytes,
            fetch_max_bytes=4 * self.settings.max_request_bytes,
        )
        admin = AIOKafkaAdminClient(**options, client_id=f"xnode-{self.node_id}-admin")
        try:
            await self._bounded(admin.start())
            self._admin = admin
            await self._bounded(producer.start())
            await self.ensure_topics(self.topics)
            await self._bounded(consumer.start())
            self._consumer = consumer
            await self.refresh_assignment()
        except (KafkaError, OSError, TransportUnavailable) as exc:
            self._consumer = self._admin = None
            for client in (producer, consumer):
                with contextlib.suppress(Exception):
                    await client.stop()
            with contextlib.suppress(Exception):
                await admin.close()
            raise TransportUnavailable(f"broker {self.settings.bootstrap_servers}: {exc}") from exc
        self._producer, self._consumer = producer, consumer

    async def stop(self) -> None:
        """Close every client, concurrently and each within a few seconds: a client talking to
        a broker that vanished may never finish closing, and the node must not wait for it."""
        clients: list[Any] = [self._consumer, self._producer, self._probe]
        admin = self._admin
        self._producer = self._consumer = self._admin = self._probe = None
        self._verified.clear()
        self._listed.clear()
        self._listed_at = -1e9
        closing = [c.stop() for c in clients if c is not None]
        if admin is not None:
            closing.append(admin.close())
        await asyncio.gather(
            *(asyncio.wait_for(c, CLOSE_TIMEOUT_SECONDS) for c in closing), return_exceptions=True
        )

    async def _bounded(self, work: Awaitable[T]) -> T:
        """Every broker conversation of the consume path ends in bounded time: a client that
        waits forever on a broker in a strange state would stop the node reading."""
        try:
            return await asyncio.wait_for(work, 2 * self.settings.request_timeout_ms / 1000)
        except TimeoutError as exc:
            raise TransportUnavailable("the broker did not answer in time") from exc

    async def probe(self, timeout: float) -> None:
        """Ask the broker for cluster metadata; raise :class:`TransportUnavailable` if it does
        not answer within ``timeout`` seconds. The measurement behind readiness."""
        admin = self._admin
        if admin is None:
            raise TransportUnavailable("not connected")
        try:
            await asyncio.wait_for(admin.describe_cluster(), timeout)
        except TimeoutError as exc:
            raise TransportUnavailable(f"no answer from the broker in {timeout:g} s") from exc
        except (KafkaError, OSError) as exc:
            raise TransportUnavailable(f"broker: {exc}") from exc

    async def refresh_assignment(self) -> list[str]:
        """See :meth:`_refresh_assignment`; bounded by the request timeout."""
        return await self._bounded(self._refresh_assignment())

    async def _refresh_assignment(self) -> list[str]:
        """Assign every partition of this node's topics (again, if a topic was recreated) and
        position new ones at the group's committed offset, or the log start."""
        consumer = self._consumer
        if consumer is None:
            return []
        try:
            await consumer.topics()  # refreshes metadata
            wanted = {
                TopicPartition(topic, p)
                for topic in self.topics
                for p in consumer.partitions_for_topic(topic) or ()
            }
            current = consumer.assignment()
            if not wanted or wanted == current:
                return []
            new = sorted(wanted - current)
            consumer.assign(sorted(wanted))
            for tp in set(self._committed) - wanted:
                del self._committed[tp]
            committed = await self._broker_committed(new)
            starts = await consumer.beginning_offsets(new) if new else {}
        except (KafkaError, OSError) as exc:
            raise TransportUnavailable(f"assignment: {exc}") from exc
        baseline: dict[TopicPartition, int] = {}
        for tp in new:
            offset = committed.get(tp)
            start = starts.get(tp, 0)
            # This process's memory of its commits outlives its clients: fresh clients after an
            # outage find out here whether the broker still holds what was committed.
            lost = offsets.committed_reset(self._committed.get(tp), offset)
            if lost is not None:
                self.pending_resets.append(
                    OffsetReset(tp.topic, tp.partition, lost, self._committed[tp], start)
                )
                offset = None
            if offset is None:  # nothing committed (any more): from the start, and say so
                offset = start
                baseline[tp] = offset
            else:
                self._committed[tp] = offset
            consumer.seek(tp, offset)
        try:
            await self._commit_exact(baseline)
        except (KafkaError, OSError) as exc:
            raise TransportUnavailable(f"commit: {exc}") from exc
        return [f"{tp.topic}/{tp.partition}" for tp in new]

    async def _broker_committed(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The group's committed offsets the broker holds (partitions without one are absent)."""
        tps = list(tps)
        if not tps or self._admin is None:
            return {}
        answer = await self._admin.list_consumer_group_offsets(self.group_id, partitions=tps)
        return {tp: meta.offset for tp, meta in answer.items() if meta.offset >= 0}

    async def _commit_exact(self, positions: Mapping[TopicPartition, int]) -> None:
        if positions and self._consumer is not None:
            await self._consumer.commit(dict(positions))
            self._committed.update(positions)

    async def ensure_topics(self, topics: Iterable[str]) -> list[str]:
        """See :meth:`_ensure_topics`; bounded by the request timeout."""
        return await self._bounded(self._ensure_topics(topics))

    async def _ensure_topics(self, topics: Iterable[str]) -> list[str]:
        """Create missing topics and return their names; brokers that forbid it (ACLs) are left
        to their operators."""
        admin = self._admin
        if admin is None:
            return []
        try:
            existing = set(await admin.list_topics())
            missing = [t for t in topics if t not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(
                        [
                            NewTopic(t, self.settings.partitions, self.settings.replication_factor)
                            for t in missing
                        ]
                    )
            return missing
        except KafkaError:
            return []  # no permission or a race with another creator: publishing will tell

    async def _topic_exists(self, topic: str) -> bool:
        """From the broker's list of all topics (a request that never creates one), refreshed
        at most once a second while a wanted topic is missing."""
        if topic in self._listed:
            return True
        now = time.monotonic()
        if self._admin is not None and now - self._listed_at >= 1.0:
            self._listed_at = now
            try:
                self._listed = set(await self._bounded(self._admin.list_topics()))
            except (KafkaError, OSError, TransportUnavailable):
                return False
        return topic in self._listed

    async def publish(self, topic: str, key: str, value: bytes) -> None:
        """Write one record to an existing topic. Topics are created by their owners only (a
        node creates its own inbox topics; in production an administrator does): publishing
        to a topic the broker does not list fails, instead of letting the broker create it on
        first use with a default layout — which the development broker, after a restart, does
        in a way that loses what is written to it."""
        if self._producer is None:
            raise TransportUnavailable("not connected")
        if not await self._topic_exists(topic):
            raise TransportUnavailable(f"topic {topic} does not exist (yet): its owner creates it")
        try:
            await self._bounded(self._producer.send_and_wait(topic, value, key=key.encode()))
        except (KafkaError, OSError) as exc:
            raise TransportUnavailable(f"publish to {topic}: {exc}") from exc

    async def publish_many(self, records: Sequence[tuple[str, str, bytes]]) -> list[str | None]:
        """Write several records at once: all handed to the producer, which packs them into
        batches per partition, then every acknowledgement awaited together (within one bound).
        Per record, None when the broker acknowledged it, else why not (the caller retries
        later). The same rules as :meth:`publish` (topics must exist)."""
        if self._producer is None:
            return ["not connected"] * len(records)
        results: list[str | None] = [None] * len(records)
        producer = self._producer
        sent: dict[int, asyncio.Future[Any]] = {}
        try:
            async with asyncio.timeout(2 * self.settings.request_timeout_ms / 1000):
                for i, (topic, key, value) in enumerate(records):
                    if not await self._topic_exists(topic):
                        results[i] = f"topic {topic} does not exist (yet): its owner creates it"
                        continue
                    try:
                        sent[i] = await producer.send(topic, value, key=key.encode())
                    except (KafkaError, OSError) as exc:
                        results[i] = f"publish to {topic}: {exc}"
                acks = await asyncio.gather(*sent.values(), return_exceptions=True)
        except TimeoutError:
            for future in sent.values():
                future.cancel()
            return [r or "the broker did not answer in time" for r in results]
        for i, ack in zip(sent, acks, strict=True):
            topic = records[i][0]
            results[i] = f"publish to {topic}: {ack}" if isinstance(ack, BaseException) else None
        return results

    async def fetch(self, timeout_ms: int, max_records: int) -> list[InboundRecord]:
        """Records from this node's partitions, in offset order per partition. A position the
        broker calls out of range is rewound by :meth:`check_offsets` (raised as such)."""
        if self._consumer is None:
            raise TransportUnavailable("not connected")
        try:
            batches = await self._bounded(
                self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
            )
        except OffsetOutOfRangeError as exc:
            raise PositionOutOfRange(_out_of_range(exc)) from exc
        except (KafkaError, OSError) as exc:
            raise TransportUnavailable(f"fetch: {exc}") from exc
        records = [
            InboundRecord(m.topic, m.partition, m.offset, m.key, m.value or b"")
            for messages in batches.values()
            for m in messages
        ]
        records.sort(key=lambda r: (r.topic, r.partition, r.offset))
        return records

    async def check_offsets(
        self, out_of_range: Iterable[tuple[str, int]] = ()
    ) -> tuple[list[OffsetReset], dict[str, int]]:
        """See :meth:`_check_offsets`; bounded by the request timeout."""
        return await self._bounded(self._check_offsets(out_of_range))

    async def _check_offsets(
        self, out_of_range: Iterable[tuple[str, int]] = ()
    ) -> tuple[list[OffsetReset], dict[str, int]]:
        """Compare every assigned partition with the broker's log and committed offsets, rewind
        those that do not add up (:func:`node.transport.offsets.decide`), and return the
        rewinds and the lag per topic (end offset minus position, not clamped)."""
        consumer = self._consumer
        if consumer is None:
            return [], {}
        assigned = sorted(consumer.assignment())
        if not assigned:
            return [], {}
        forced = {TopicPartition(t, p) for t, p in out_of_range}
        try:
            starts = await consumer.beginning_offsets(assigned)
            ends = await consumer.end_offsets(assigned)
            committed = await self._broker_committed(assigned)
            positions = {tp: await consumer.position(tp) for tp in assigned if tp not in forced}
        except (KafkaError, OSError) as exc:
            raise TransportUnavailable(f"offsets: {exc}") from exc
        resets: list[OffsetReset] = []
        lag: dict[str, int] = {}
        rewind: dict[TopicPartition, int] = {}
        for tp in assigned:
            start, end = starts.get(tp, 0), _log_end(consumer, tp, ends.get(tp, 0))
            if tp in forced:
                decision: offsets.Reset | None = offsets.Reset(
                    offsets.OUT_OF_RANGE, self._committed.get(tp, -1), start
                )
                position = start
            else:
                position = positions[tp]
                view = offsets.PartitionView(
                    position, start, end, committed.get(tp), self._committed.get(tp)
                )
                decision = offsets.decide(view)
            if (
                decision is not None
                and decision.reason == offsets.BEYOND_END
                and await self._last_read_exists(tp, position, end)
            ):
                decision = None  # the broker under-reported its log end; nothing was lost
                end = max(end, position)
            if decision is not None:
                self._verified.pop(tp, None)
                resets.append(OffsetReset(tp.topic, tp.partition, *_fields(decision)))
                rewind[tp] = decision.to_offset
                position = decision.to_offset
            lag[tp.topic] = lag.get(tp.topic, 0) + (end - position)

        for tp, offset in rewind.items():
            consumer.seek(tp, offset)
        try:
            await self._commit_exact(rewind)
        except (KafkaError, OSError) as exc:
            raise TransportUnavailable(f"commit: {exc}") from exc
        return resets, lag

    async def _last_read_exists(self, tp: TopicPartition, position: int, end: int) -> bool:
        """Does the log really end below ``position``? Asked only when the reported end says
        so, by reading: some brokers (the development one) report the base offset of the last
        record batch as the log end and return nothing for a fetch inside a batch, so the probe
        reads from the reported end's last record onwards and takes the highest offset it gets.
        A rewind on the reported end alone would re-read whole partitions again and again."""
        if self._verified.get(tp) == position:
            return True
        probe = self._probe
        if probe is None:
            probe = AIOKafkaConsumer(
                **self.settings.client_options(), client_id=f"xnode-{self.node_id}-probe",
                group_id=None, enable_auto_commit=False, auto_offset_reset="none",
                fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
                max_partition_fetch_bytes=self.settings.max_request_bytes,
            )  # fmt: skip
            await probe.start()
            self._probe = probe
        probe.assign([tp])
        probe.seek(tp, max(end - 1, 0))
        highest = -1
        for _ in range(3):
            try:
                batch = await probe.getmany(tp, timeout_ms=1000, max_records=500)
            except OffsetOutOfRangeError:
                return False
            got = batch.get(tp, [])
            if not got:
                break
            highest = max(highest, *(m.offset for m in got))
            if highest >= position - 1:
                self._verified[tp] = position
                return True
        return False

    async def seek(self, topic: str, partition: int, offset: int) -> None:
        """Read ``offset`` again next (after a record could not be stored)."""
        if self._consumer is not None:
            self._consumer.seek(TopicPartition(topic, partition), offset)

    async def commit(self, positions: Mapping[tuple[str, int], int]) -> list[OffsetReset]:
        """See :meth:`_commit`; bounded by the request timeout."""
        return await self._bounded(self._commit(positions))

    async def _commit(self, positions: Mapping[tuple[str, int], int]) -> list[OffsetReset]:
        """Commit ``next offset to read`` per (topic, partition) — unless the broker no longer
        holds what this process committed last: then it has lost its state since (restarted
        empty, topic recreated) and the records just read may sit above a new log's unread
        start. Those partitions are rewound instead, and returned."""
        consumer = self._consumer
        if consumer is None or not positions:
            return []
        wanted = {TopicPartition(t, p): o for (t, p), o in positions.items()}
        try:
            held = await self._broker_committed(wanted)
            resets: list[OffsetReset] = []
            rewind: dict[TopicPartition, int] = {}
            for tp in list(wanted):
                reason = offsets.committed_reset(self._committed.get(tp), held.get(tp))
                if reason is None:
                    continue
                start = (await consumer.beginning_offsets([tp])).get(tp, 0)
                resets.append(OffsetReset(tp.topic, tp.partition, reason, wanted.pop(tp), start))
                rewind[tp] = start
            for tp, offset in rewind.items():
                consumer.seek(tp, offset)
            await self._commit_exact({**wanted, **rewind})
        except (KafkaError, OSError) as exc:
            raise TransportUnavailable(f"commit: {exc}") from exc
        return resets


class PositionOutOfRange(TransportUnavailable):
    """The broker called a position out of range; ``partitions`` are to be rewound."""

    def __init__(self, partitions: list[tuple[str, int]]) -> None:
        super().__init__(f"offset out of range on {len(partitions)} partition(s)")
        self.partitions = partitions


def _out_of_range(exc: OffsetOutOfRangeError) -> list[tuple[str, int]]:
    found = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    return [(tp.topic, tp.partition) for tp in found]


def _log_end(consumer: AIOKafkaConsumer, tp: TopicPartition, listed: int) -> int:
    """The partition's log end: the high watermark of the latest fetch response when it is
    fresh, else what ListOffsets said. The fetch answer is the better witness — it comes with
    the records — and some brokers (the development one) answer ListOffsets with the start of
    the last record batch rather than the log end."""
    highwater = consumer.highwater(tp)
    polled = consumer.last_poll_timestamp(tp)
    if highwater is None or polled is None or time.time() * 1000 - polled > FRESH_FETCH_MS:
        return listed
    return int(highwater)


def _fields(reset: offsets.Reset) -> tuple[str, int, int]:
    return reset.reason, reset.from_offset, reset.to_offset
