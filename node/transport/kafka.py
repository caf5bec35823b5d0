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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError


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
class InboundRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


class KafkaTransport:
    """Producer plus a consumer of this node's own topics, in one consumer group."""

    def __init__(self, settings: KafkaSettings, node_id: str, topics: Iterable[str]) -> None:
        self.settings = settings
        self.node_id = node_id
        self.topics = tuple(topics)
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None

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
            linger_ms=2,
        )
        # Manual assignment, not group subscription: a node is one process reading only its own
        # topics, so group rebalancing would add start-up delay and pauses and buy nothing.
        # Offsets are still committed under the node's group id.
        consumer = AIOKafkaConsumer(
            **options,
            client_id=f"xnode-{self.node_id}",
            group_id=f"xnode-{self.node_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=5_000,
            # Some brokers (the development one among them) hold a fetch for the full wait
            # even when records arrive; a short wait bounds the latency this adds.
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            max_partition_fetch_bytes=self.settings.max_request_bytes,
            fetch_max_bytes=4 * self.settings.max_request_bytes,
        )
        try:
            await producer.start()
            await self.ensure_topics(self.topics)
            await consumer.start()
            self._consumer = consumer
            await self.refresh_assignment()
        except (KafkaError, OSError) as exc:
            self._consumer = None
            with contextlib.suppress(Exception):
                await producer.stop()
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise TransportUnavailable(f"broker {self.settings.bootstrap_servers}: {exc}") from exc
        self._producer, self._consumer = producer, consumer

    async def stop(self) -> None:
        producer, consumer = self._producer, self._consumer
        self._producer = self._consumer = None
        for client in (consumer, producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.stop(), 10)

    async def refresh_assignment(self) -> None:
        """Assign every partition of this node's topics (again, if a topic was recreated)."""
        consumer = self._consumer
        if consumer is None:
            return
        await consumer.topics()  # refreshes metadata
        wanted = {
            TopicPartition(topic, p)
            for topic in self.topics
            for p in consumer.partitions_for_topic(topic) or ()
        }
        if wanted and wanted != consumer.assignment():
            consumer.assign(sorted(wanted))

    async def ensure_topics(self, topics: Iterable[str]) -> None:
        """Create missing topics; brokers that forbid it (ACLs) are left to their operators."""
        admin = AIOKafkaAdminClient(**self.settings.client_options())
        try:
            await admin.start()
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
        except KafkaError:
            pass  # no permission or a race with another creator: publishing will tell
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    async def publish(self, topic: str, key: str, value: bytes) -> None:
        if self._producer is None:
            raise TransportUnavailable("not connected")
        try:
            await self._producer.send_and_wait(topic, value, key=key.encode())
        except (KafkaError, OSError) as exc:
            raise TransportUnavailable(f"publish to {topic}: {exc}") from exc

    async def fetch(self, timeout_ms: int, max_records: int) -> list[InboundRecord]:
        if self._consumer is None:
            raise TransportUnavailable("not connected")
        try:
            batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        except (KafkaError, OSError) as exc:
            raise TransportUnavailable(f"fetch: {exc}") from exc
        records = [
            InboundRecord(m.topic, m.partition, m.offset, m.key, m.value or b"")
            for messages in batches.values()
            for m in messages
        ]
        records.sort(key=lambda r: (r.topic, r.partition, r.offset))
        return records

    async def lag(self) -> dict[str, int]:
        """Records not yet read, per topic (end offset minus position, over its partitions)."""
        consumer = self._consumer
        if consumer is None:
            return {}
        assigned = sorted(consumer.assignment())
        if not assigned:
            return {}
        try:
            ends = await consumer.end_offsets(assigned)
            lag: dict[str, int] = {}
            for tp in assigned:
                position = await consumer.position(tp)
                lag[tp.topic] = lag.get(tp.topic, 0) + max(ends.get(tp, position) - position, 0)
        except (KafkaError, OSError) as exc:
            raise TransportUnavailable(f"lag: {exc}") from exc
        return lag

    async def seek(self, topic: str, partition: int, offset: int) -> None:
        """Read ``offset`` again next (after a record could not be stored)."""
        if self._consumer is not None:
            self._consumer.seek(TopicPartition(topic, partition), offset)

    async def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """Commit ``next offset to read`` per (topic, partition)."""
        if self._consumer is None or not offsets:
            return
        try:
            await self._consumer.commit({TopicPartition(t, p): o for (t, p), o in offsets.items()})
        except (KafkaError, OSError) as exc:
            raise TransportUnavailable(f"commit: {exc}") from exc
