"""How end-to-end throughput scales with payload size and with the number of recipients.

Two series, each row next to a plain-Kafka baseline measured in the same run on the same broker:

* **payload size** — case updates of ~1 KB, 64 KB and 1 MB (Avro-encoded payload, grown in
  the free-text ``note``, which has no length limit of its own) to one recipient;
* **recipients** — a ~1 KB case update addressed to 1, 3 and 10 recipients at once.

Each row starts a fresh embedded broker and fresh nodes in this process (as
``bench/throughput.py`` does): one sender and N recipients, every one persisting to SQLite. The
row's messages go in a burst from 64 concurrent submitters (``throughput.submit_concurrently``),
after two warm-up messages; a message is done when every recipient has verified, opened,
validated and stored it and the sender has applied every recipient's signed receipt. Printed:
messages/s from the first submission to the last receipt applied (a message counts once,
whatever its recipients), MB/s of payload (10^6 bytes of Avro payload, counted once per
message), the sealed envelope's size, and the baseline:

* **Kafka one way** — aiokafka produces records of the envelope's size, one copy to each of N
  topics (xnode publishes one copy per recipient topic), and N consumers each read all of
  theirs; records/s until the last consumer has the last one. Same producer and fetch settings
  as the node's (acks=all, linger 2 ms, the node's request and fetch sizes).

and the ratio xnode / baseline: what signatures, HPKE, AEAD, Avro, validation, the durable
stores and the receipt cost at that size or fan-out. Machines are shared and noisy: compare
ratios within a run, not absolute figures across runs.

Limits. ``envelope.max_bytes`` (default 1 MiB, ``XNODE_ENVELOPE_MAX_BYTES``) bounds the sealed
envelope, which is the payload plus ~390 bytes plus ~125 per extra recipient; a payload of a
full MiB does not fit, so the 1 MB row raises the limit on its nodes to 2 MiB and says so (the
node's Kafka request and fetch sizes follow, as twice the limit). Over the HTTP API the JSON body
is also bounded by ``api.max_body_bytes`` (default 1 MiB); this benchmark submits in process.

Run: ``python bench/scale.py [--quick] [--scale 1.0] [--series payload,recipients]``. The
default counts (1000 messages of 1 KB, 300 of 64 KB, 40 of 1 MB; 600 to 3 recipients, 300 to
10) are sized to stay under three minutes on two cores; ``--quick`` runs a tenth of them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.pipeline import NOTE, delivered, inbox_count, query, wait_until
from bench.throughput import submit_concurrently
from node import logging as node_logging
from node import submit
from node.codec import default_registry
from node.compose import build_node
from node.envelope import DEFAULT_MAX_ENVELOPE_BYTES
from node.service import Node
from node.transport.broker import EmbeddedBroker
from tests.runtime_helpers import case_update, create_nodes, node_env

KIB = 1024
MIB = 1024 * KIB
SENDER = "zm-police"
RECIPIENTS = ("zw-police", "mw-police", "za-police", "bw-police", "na-police", "mz-police",
              "tz-police", "ao-police", "ls-police", "sz-police")  # fmt: skip
SCHEMA = "xnode.payload.CaseUpdate"
# The sealed envelope around a payload, measured: ~390 bytes, plus ~125 per extra recipient.
ENVELOPE_ALLOWANCE = 512
PER_RECIPIENT_ALLOWANCE = 128
RAISED_MAX_BYTES = 2 * MIB
RETRY_SECONDS = 30
WAIT_SECONDS = 600.0  # give up (not a measurement) if a burst has not completed by then


@dataclasses.dataclass(frozen=True)
class Row:
    series: str
    label: str
    payload_bytes: int
    recipients: int
    messages: int


@dataclasses.dataclass
class Result:
    row: Row
    rate: float  # messages/s, every recipient stored, every receipt applied
    envelope_bytes: int
    baseline_rate: float  # records/s to every consumer
    raised_limit: int | None  # envelope.max_bytes set for this row, None: the default
    republished: int  # deliveries published more than once (a failed or unanswered first try)


def rows(scale: float, series: set[str]) -> list[Row]:
    def n(count: int) -> int:
        return max(2, round(count * scale))

    out = []
    if "payload" in series:
        out += [
            Row("payload", "1 KB", 1 * KIB, 1, n(1000)),
            Row("payload", "64 KB", 64 * KIB, 1, n(300)),
            Row("payload", "1 MB", 1 * MIB, 1, n(40)),
        ]
    if "recipients" in series:
        out += [
            Row("recipients", "1 recipient", 1 * KIB, 1, n(1000)),
            Row("recipients", "3 recipients", 1 * KIB, 3, n(600)),
            Row("recipients", "10 recipients", 1 * KIB, 10, n(300)),
        ]
    return out


def payload_of(size: int) -> dict[str, Any]:
    """A valid case update (JSON, as a local system submits it) whose Avro encoding is ``size``
    bytes: the note is grown with text until it is (its length prefix grows with it)."""
    registry = default_registry()

    def encoded(doc: dict[str, Any]) -> int:
        return len(registry.encode(SCHEMA, registry.from_json(SCHEMA, doc)))

    note_length = max(1, size - encoded(case_update("x")))
    for _ in range(4):  # the varint length prefix may take a byte or two more
        doc = case_update((NOTE * (note_length // len(NOTE) + 1))[:note_length])
        short = size - encoded(doc)
        if short == 0:
            break
        note_length = max(1, note_length + short)
    return doc


def envelope_limit(row: Row) -> int | None:
    """The envelope.max_bytes a row needs beyond the default, if any."""
    needed = row.payload_bytes + ENVELOPE_ALLOWANCE + PER_RECIPIENT_ALLOWANCE * row.recipients
    return RAISED_MAX_BYTES if needed > DEFAULT_MAX_ENVELOPE_BYTES else None


def max_request_bytes(limit: int | None) -> int:
    """The node's Kafka request and fetch size for an envelope limit (node/service.py)."""
    return max(2 * (limit or DEFAULT_MAX_ENVELOPE_BYTES), MIB)


# -- xnode --------------------------------------------------------------------------------------


async def xnode_row(
    bootstrap: str, root: Path, row: Row, limit: int | None
) -> tuple[float, int, int]:
    """Messages/s of a burst of ``row.messages``, the sealed envelope's size, and how many
    deliveries (of messages and receipts) were published more than once."""
    to = list(RECIPIENTS[: row.recipients])
    dirs = create_nodes(root, {n: "law-enforcement" for n in (SENDER, *to)})
    extra = {
        "XNODE_DELIVERY_POLL_INTERVAL_MS": "20",
        # a first copy unanswered for this long is published again (reported with the row)
        "XNODE_DELIVERY_RETRY_INITIAL_SECONDS": str(RETRY_SECONDS),
        "XNODE_DELIVERY_RETRY_MAX_SECONDS": "600",
    }
    if limit is not None:
        extra["XNODE_ENVELOPE_MAX_BYTES"] = str(limit)
    env = node_env(bootstrap, **extra)
    nodes: dict[str, Node] = {n: build_node(d, env=env) for n, d in dirs.items()}
    sender = nodes[SENDER]
    receipted: dict[tuple[str, str], float] = {}
    refused: list[str] = []

    def hook_receipts() -> None:  # measurement hook, once the sender's store is open
        apply = sender.store.apply_receipt

        def timed_apply(message_id: str, recipient: str, *args: Any, **kwargs: Any) -> Any:
            matched = apply(message_id, recipient, *args, **kwargs)
            if matched is not None:
                receipted.setdefault((message_id, recipient), time.perf_counter())
                if not kwargs.get("delivered", True):
                    refused.append(f"{recipient} refused {message_id}: {kwargs.get('reason')}")
            return matched

        sender.store.apply_receipt = timed_apply  # type: ignore[method-assign]

    payload = payload_of(row.payload_bytes)

    def request() -> submit.Request:
        return submit.Request(kind="mla", to=to, payload=payload, schema="CaseUpdate")

    def done(ids: list[str]) -> bool:
        if refused:
            raise SystemExit(f"{row.label}: {refused[0]}")
        return all((i, r) in receipted for i in ids for r in to)

    try:
        for node in nodes.values():
            await node.start()
        for node in nodes.values():
            await node.connected.wait()
        # Every topic exists now, but a node caches the broker's topic list for a second: a
        # receipt published sooner to a topic created meanwhile would wait for its retry.
        await asyncio.sleep(1.1)
        hook_receipts()
        warm = [await sender.submit(request()) for _ in range(2)]  # topics, connections, caches
        await wait_until(lambda: done(warm), WAIT_SECONDS, f"{row.label}: the warm-up")
        start = time.perf_counter()
        ids = await submit_concurrently(sender, request, row.messages)
        await wait_until(lambda: done(ids), WAIT_SECONDS, f"{row.label}: the burst")
        finished = max(receipted[(i, r)] for i in ids for r in to)
        first = nodes[to[0]]
        sample = await first._run(first.store.inbox, 0, None, 1)
        size = len(sample[0].envelope)
    finally:
        for node in nodes.values():
            await node.stop()
    # what the stores hold agrees with what the hook saw (not timed)
    expected = (len(warm) + row.messages) * len(to)
    if delivered(dirs[SENDER].path / "node.db") != expected:
        raise SystemExit(f"{row.label}: the sender's store does not show {expected} deliveries")
    for n in to:
        if inbox_count(dirs[n].path / "node.db") != len(warm) + row.messages:
            raise SystemExit(f"{row.label}: {n} did not store every message")
    republished = sum(republications(d.path / "node.db") for d in dirs.values())
    return row.messages / (finished - start), size, republished


def republications(db: Path) -> int:
    """Deliveries (messages or receipts) a node published more than once."""
    sql = "SELECT count(*) FROM outbox_recipients WHERE attempts > 1"
    return int(query(db, sql)[0][0])


# -- baseline -----------------------------------------------------------------------------------


async def kafka_fanout(bootstrap: str, size: int, count: int, topics: int, request: int) -> float:
    """Records/s: ``count`` records of ``size`` bytes, each produced to ``topics`` topics, until
    every topic's consumer has read all of its."""
    names = [f"bench.scale.{i}" for i in range(topics)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2,
                                max_request_size=request,
                                max_batch_size=min(request, 512 * KIB))  # fmt: skip
    consumers = [
        AIOKafkaConsumer(name, bootstrap_servers=bootstrap, group_id=None,
                         auto_offset_reset="earliest", fetch_max_wait_ms=50,
                         max_partition_fetch_bytes=request, fetch_max_bytes=4 * request)
        for name in names
    ]  # fmt: skip
    await producer.start()
    for consumer in consumers:
        await consumer.start()
    try:
        await asyncio.gather(*(producer.send_and_wait(t, b"warm", key=b"w") for t in names))
        await asyncio.gather(*(drain(c, 1) for c in consumers))
        record = os.urandom(size)
        start = time.perf_counter()
        sends = (producer.send_and_wait(t, record, key=b"k%d" % i)
                 for i in range(count) for t in names)  # fmt: skip
        await asyncio.gather(*sends, *(drain(c, count) for c in consumers))
        return count / (time.perf_counter() - start)
    finally:
        await producer.stop()
        for consumer in consumers:
            await consumer.stop()


async def drain(consumer: AIOKafkaConsumer, n: int) -> None:
    seen = 0
    while seen < n:
        batch = await consumer.getmany(timeout_ms=50)
        seen += sum(len(v) for v in batch.values())


# -- running and printing -----------------------------------------------------------------------


async def run_row(row: Row) -> Result:
    limit = envelope_limit(row)
    print(f"  {row.series}: {row.label}, {row.messages} messages ...", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="xnode-scale-") as tmp:
        async with EmbeddedBroker() as broker:  # a fresh broker per row: nothing left over
            rate, size, republished = await xnode_row(
                broker.bootstrap_servers, Path(tmp), row, limit
            )
            base = await kafka_fanout(broker.bootstrap_servers, size, row.messages,
                                      row.recipients, max_request_bytes(limit))  # fmt: skip
    return Result(row, rate, size, base, limit, republished)


def report(results: list[Result], started: float) -> None:
    print(f"\nxnode end to end next to Kafka one way, same broker, same record size;"
          f" {os.cpu_count()} cores; {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n")  # fmt: skip
    header = (f"  {'':<16}{'payload B':>10}{'envelope B':>11}{'messages':>9}{'xnode msg/s':>12}"
              f"{'payload MB/s':>13}{'kafka msg/s':>12}{'ratio':>7}")  # fmt: skip
    for series, title in (("payload", "payload size, one recipient"),
                          ("recipients", "recipients of a 1 KB message")):  # fmt: skip
        chosen = [r for r in results if r.row.series == series]
        if not chosen:
            continue
        print(f"{title}:\n{header}")
        for r in chosen:
            mb = r.rate * r.row.payload_bytes / 1e6
            print(f"  {r.row.label:<16}{r.row.payload_bytes:>10,}{r.envelope_bytes:>11,}"
                  f"{r.row.messages:>9,}{r.rate:>12,.1f}{mb:>13.2f}{r.baseline_rate:>12,.1f}"
                  f"{r.rate / r.baseline_rate:>7.3f}")  # fmt: skip
        print()
    for r in results:
        if r.raised_limit is not None:
            print(
                f"  note: {r.row.series}, {r.row.label}: envelope.max_bytes raised from"
                f" {DEFAULT_MAX_ENVELOPE_BYTES:,} to {r.raised_limit:,}"
                f" (XNODE_ENVELOPE_MAX_BYTES) on its nodes: its {r.envelope_bytes:,}-byte"
                f" envelope exceeds the default; the node's Kafka request and fetch size"
                f" follows ({max_request_bytes(r.raised_limit):,} bytes), as does the baseline's"
            )
    for r in results:
        if r.republished:
            print(
                f"  note: {r.row.series}, {r.row.label}: {r.republished} deliveries were published"
                f" more than once (a first try failed, or went unanswered for {RETRY_SECONDS} s);"
                f" its figure includes that"
            )
    default = [r for r in results if r.raised_limit is None and r.row.recipients == 1]
    if default:
        overhead = default[0].envelope_bytes - default[0].row.payload_bytes
        print(
            f"  with the default envelope.max_bytes a case update to one recipient holds at"
            f" most ~{DEFAULT_MAX_ENVELOPE_BYTES - overhead:,} bytes of payload"
            f" (envelope overhead {overhead} bytes)"
        )
    print(
        f"  messages/s: a message counts once, done when every recipient stored it and the"
        f" sender applied every receipt; run took {time.perf_counter() - started:.0f} s"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the messages")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply message counts")
    parser.add_argument("--series", default="payload,recipients",
                        help="comma-separated: payload, recipients")  # fmt: skip
    args = parser.parse_args()
    series = {s.strip() for s in args.series.split(",") if s.strip()}
    unknown = series - {"payload", "recipients"}
    if unknown:
        parser.error(f"unknown series: {', '.join(sorted(unknown))}")
    node_logging.configure("console", "error")
    started = time.perf_counter()
    measured: dict[tuple[int, int, int], Result] = {}  # the 1 KB, one-recipient row is in both
    results = []
    for row in rows(args.scale * (0.1 if args.quick else 1), series):
        key = (row.payload_bytes, row.recipients, row.messages)
        if key not in measured:
            measured[key] = await run_row(row)
        results.append(dataclasses.replace(measured[key], row=row))
    report(results, started)


if __name__ == "__main__":
    asyncio.run(main())
