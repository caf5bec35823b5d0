"""End-to-end throughput and latency of xnode next to plain aiokafka, in one run.

Both sides run on the same embedded broker, in this process, with records of the same size:

* **baseline, one way** — aiokafka produces N records, a consumer reads them;
* **baseline, request/reply** — a record goes out, a consumer answers on a second topic, the
  first side reads the answer: the bare-Kafka shape of xnode's message-and-receipt;
* **xnode** — node A submits, node B verifies, decrypts, validates and stores it, seals a
  signed receipt, and A applies that receipt (both nodes persist to SQLite with fsync).

Printed: messages/s for a burst of N, and p50/p99 latency of messages sent one at a time, with
ratios xnode / baseline. The ratio is the cost of what xnode adds (signatures, HPKE, AEAD,
Avro, validation, durable outbox/inbox/dedupe/audit, the receipt). Machines are shared and
noisy: compare ratios within a run, not absolute figures across runs.

Run: ``python bench/throughput.py [--messages 300] [--sequential 100]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from node import logging as node_logging
from node import submit
from node.compose import build_node
from node.service import Node
from node.transport.broker import EmbeddedBroker
from tests.runtime_helpers import case_update, create_nodes, node_env


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- baseline -----------------------------------------------------------------------------------


async def baseline(bootstrap: str, size: int, burst: int, sequential: int) -> dict[str, float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    options = {
        "bootstrap_servers": bootstrap,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": 50,
    }  # the same fetch wait as xnode's consumer
    consumer = AIOKafkaConsumer(group_id=None, **options)
    await consumer.start()
    replier_in = AIOKafkaConsumer(**options)
    await replier_in.start()
    results: dict[str, float] = {}
    try:
        payload = os.urandom(size)
        # one way, burst
        consumer.subscribe(["bench.oneway"])
        await producer.send_and_wait("bench.oneway", b"warm", key=b"k")
        await _drain(consumer, 1)
        start = time.perf_counter()
        await asyncio.gather(*(producer.send_and_wait("bench.oneway", payload, key=b"k%d" % i)
                               for i in range(burst)))  # fmt: skip
        await _drain(consumer, burst)
        results["oneway_rate"] = burst / (time.perf_counter() - start)

        # request/reply, one at a time and in a burst
        consumer.unsubscribe()
        consumer.subscribe(["bench.reply"])
        replier_in.subscribe(["bench.request"])
        await producer.send_and_wait("bench.reply", b"warm")
        await _drain(consumer, 1)

        async def replier() -> None:
            while True:
                batch = await replier_in.getmany(timeout_ms=100)
                for messages in batch.values():
                    for m in messages:
                        await producer.send_and_wait("bench.reply", m.value[:64], key=m.key)

        task = asyncio.create_task(replier())
        latencies = []
        for i in range(sequential):
            t0 = time.perf_counter()
            await producer.send_and_wait("bench.request", payload, key=b"s%d" % i)
            await _drain(consumer, 1)
            latencies.append(time.perf_counter() - t0)
        results["rr_p50"], results["rr_p99"] = (
            percentile(latencies, 0.5),
            percentile(latencies, 0.99),
        )
        start = time.perf_counter()
        await asyncio.gather(*(producer.send_and_wait("bench.request", payload, key=b"b%d" % i)
                               for i in range(burst)))  # fmt: skip
        await _drain(consumer, burst)
        results["rr_rate"] = burst / (time.perf_counter() - start)
        task.cancel()
    finally:
        await producer.stop()
        await consumer.stop()
        await replier_in.stop()
    return results


async def _drain(consumer: AIOKafkaConsumer, n: int) -> None:
    seen = 0
    while seen < n:
        batch = await consumer.getmany(timeout_ms=50)
        seen += sum(len(v) for v in batch.values())


# -- xnode --------------------------------------------------------------------------------------


CLIENTS = 64  # local systems submitting at once, as API clients under load would


async def submit_concurrently(
    node: Node, request: Callable[[], submit.Request], n: int
) -> list[str]:
    """Submit ``n`` messages from ``CLIENTS`` concurrent submitters; ids in submission order."""
    ids: list[str] = [""] * n
    queue = iter(range(n))

    async def client() -> None:
        for i in queue:
            ids[i] = await node.submit(request())

    await asyncio.gather(*(client() for _ in range(min(CLIENTS, n))))
    return ids


async def xnode_run(bootstrap: str, burst: int, sequential: int) -> tuple[dict[str, float], int]:
    root = Path(tempfile.mkdtemp(prefix="xnode-bench-"))
    dirs = create_nodes(root, {"zm-police": "law-enforcement", "zw-police": "law-enforcement"})
    env = node_env(bootstrap, XNODE_DELIVERY_POLL_INTERVAL_MS="20",
                   XNODE_DELIVERY_RETRY_INITIAL_SECONDS="30")  # fmt: skip
    a, b = build_node(dirs["zm-police"], env=env), build_node(dirs["zw-police"], env=env)
    await a.start()
    await b.start()
    await a.connected.wait()
    await b.connected.wait()
    receipted: dict[str, float] = {}
    apply = a.store.apply_receipt

    def timed_apply(message_id: str, *args: object, **kwargs: object) -> object:  # measurement hook
        matched = apply(message_id, *args, **kwargs)  # type: ignore[arg-type]
        if matched:
            receipted.setdefault(message_id, time.perf_counter())
        return matched

    a.store.apply_receipt = timed_apply  # type: ignore[method-assign]
    payload = case_update("x" * 900)
    results: dict[str, float] = {}

    def request() -> submit.Request:
        return submit.Request(kind="mla", to=["zw-police"], payload=payload, schema="CaseUpdate")

    async def wait_for(ids: list[str]) -> None:
        while not all(i in receipted for i in ids):
            await asyncio.sleep(0.002)

    try:
        await wait_for([await a.submit(request())])  # warm up
        size = 0
        latencies = []
        for _ in range(sequential):
            t0 = time.perf_counter()
            message_id = await a.submit(request())
            await wait_for([message_id])
            latencies.append(receipted[message_id] - t0)
        results["p50"], results["p99"] = percentile(latencies, 0.5), percentile(latencies, 0.99)
        start = time.perf_counter()
        ids = await submit_concurrently(a, request, burst)
        await wait_for(ids)
        results["rate"] = burst / (time.perf_counter() - start)
        sample = await b._run(b.store.inbox, 0, None, 1)
        size = len(sample[0].envelope) if sample else size
    finally:
        await a.stop()
        await b.stop()
    return results, size


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300, help="burst size")
    parser.add_argument("--sequential", type=int, default=100, help="one-at-a-time samples")
    args = parser.parse_args()
    node_logging.configure("console", "error")
    async with EmbeddedBroker() as broker:
        x, size = await xnode_run(broker.bootstrap_servers, args.messages, args.sequential)
        base = await baseline(broker.bootstrap_servers, size, args.messages, args.sequential)
    print(f"record size {size} bytes (a sealed 1 KB case update); burst {args.messages}, "
          f"sequential {args.sequential}\n")  # fmt: skip
    print(f"  {'':<44}{'xnode':>12}{'baseline':>12}{'ratio':>8}")
    rows = [
        ("burst, messages/s (vs Kafka request/reply)", x["rate"], base["rr_rate"]),
        ("burst, messages/s (vs Kafka one way)", x["rate"], base["oneway_rate"]),
        ("one at a time, p50 latency ms", x["p50"] * 1e3, base["rr_p50"] * 1e3),
        ("one at a time, p99 latency ms", x["p99"] * 1e3, base["rr_p99"] * 1e3),
    ]
    for label, ours, theirs in rows:
        print(f"  {label:<44}{ours:>12.1f}{theirs:>12.1f}{ours / theirs:>8.2f}")
    print(f"\n  median of ratios: {statistics.median(r[1] / r[2] for r in rows):.2f}")


if __name__ == "__main__":
    asyncio.run(main())
