"""Two node processes, as operators run them: throughput, latency and backlog drain, each next
to a baseline measured in the same run.

Both nodes run as separate `xnode run` processes on the bundled broker; the sender's local
system submits over the HTTP API (bearer token, JSON, as the API adapter's clients do). What
is timed is the whole path of the throughput issue: validated → sealed → stored → published →
verified → opened → validated → stored durably → receipted → receipt applied at the sender.
Done means the sender's store records the receipt (read from its SQLite file, read-only).

Measured:

* **burst** — N messages submitted by 64 concurrent API clients; messages/s from the first
  submission to the last receipt applied;
* **latency at an offered load** — messages submitted one by one at a fixed rate (default
  200/s, open loop: the next one goes at its time whether or not the last has arrived); p50 and
  p99 of submission → stored in the recipient's inbox (the recipient's ``received_at``; one
  machine, one clock);
* **backlog drain** — the recipient stopped, M messages submitted and published meanwhile
  (with the re-publications the sender's backoff makes), the recipient started again: seconds
  from its start until every receipt is applied, and until its inbox holds them all;
* **baselines** — the cryptographic floor of one message (seal to one recipient + open, plus
  the receipt's share: one seal + open per receipt batch) on one core, measured in this run
  (``bench/crypto_floor.py``); and plain aiokafka one-way for the same record size.

Printed with the issue's goals. Machines are shared and noisy; the ratios are what compares.
Run: ``python bench/pipeline.py [--burst 10000] [--backlog 100000] [--rate 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench import crypto_floor
from bench.throughput import baseline, percentile
from node.transport.broker import EmbeddedBroker, free_port
from tests.process_helpers import init_nodes, node_env, spawn, wait_for, xnode
from tests.runtime_helpers import case_update

CLIENTS = 64
NOTE = ("Two girls seen boarding a minibus at Chirundu towards Harare. " * 17)[:900]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def query(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def delivered(db: Path) -> int:
    rows = query(
        db,
        "SELECT count(*) FROM outbox_recipients r JOIN outbox o USING (message_id)"
        " WHERE o.expects_receipt = 1 AND r.state = 'delivered'",
    )
    return int(rows[0][0])


def published_records(db: Path) -> int:
    """Records the sender has published (each attempt of each message to each recipient)."""
    return int(query(db, "SELECT COALESCE(SUM(attempts), 0) FROM outbox_recipients")[0][0])


def inbox_count(db: Path) -> int:
    return int(query(db, "SELECT count(*) FROM inbox")[0][0])


async def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)
    return time.perf_counter()


class Sender:
    """The sender's local system: submits over the API."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url + "/v1/messages"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CLIENTS), headers=self.headers
        )

    async def submit(self, i: int) -> str:
        body = {"kind": "mla", "to": ["zw-police"], "schema": "CaseUpdate",
                "payload": case_update(f"{i:08d} {NOTE}")}  # fmt: skip
        async with self.session.post(self.url, json=body) as response:
            answer = await response.json()
            if response.status != 202:
                raise SystemExit(f"submission refused: {response.status} {answer}")
            return str(answer["id"])

    async def burst(self, n: int, start: int = 0) -> list[str]:
        ids: list[str] = [""] * n
        todo = iter(range(n))

        async def client() -> None:
            for i in todo:
                ids[i] = await self.submit(start + i)

        await asyncio.gather(*(client() for _ in range(min(CLIENTS, n))))
        return ids

    async def close(self) -> None:
        await self.session.close()


class Nodes:
    """Two node directories and their `xnode run` processes."""

    def __init__(self, root: Path, bootstrap: str) -> None:
        self.root = root
        self.dirs = init_nodes(root, {"zm-police": "law-enforcement",
                                      "zw-police": "law-enforcement"})  # fmt: skip
        self.env = node_env(bootstrap, XNODE_DELIVERY_RETRY_INITIAL_SECONDS="5",
                            XNODE_DELIVERY_RETRY_MAX_SECONDS="600",
                            XNODE_LOGGING_LEVEL="warning")  # fmt: skip
        self.port = free_port()
        created = xnode("token", "create", "--dir", self.dirs["zm-police"], "--name", "bench",
                        "--scopes", "send:*")  # fmt: skip
        self.token = created.stdout.strip()
        self.sender_db = self.dirs["zm-police"] / "node.db"
        self.recipient_db = self.dirs["zw-police"] / "node.db"
        self.processes: dict[str, Any] = {}

    def start(self, node: str) -> None:
        env = {**self.env, "XNODE_API_PORT": str(self.port)} if node == "zm-police" else self.env
        self.processes[node] = spawn("run", "--dir", self.dirs[node], env=env,
                                     log=self.root / f"{node}.log")  # fmt: skip

    def stop(self, node: str) -> None:
        process = self.processes.pop(node)
        process.send_signal(signal.SIGTERM)
        process.wait(60)

    def ready(self, node: str) -> None:
        def up() -> bool:
            text = (self.root / f"{node}.log").read_text(errors="replace")
            return "node_started" in text or (node == "zm-police" and _api_up(self.port))

        wait_for(up, 60, f"{node} to start")


def _api_up(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


async def burst(nodes: Nodes, sender: Sender, n: int) -> dict[str, float]:
    before = delivered(nodes.sender_db)
    started = time.perf_counter()
    await sender.burst(n)
    submitted = time.perf_counter()
    done = await wait_until(lambda: delivered(nodes.sender_db) >= before + n, 600, "the burst")
    result = {"rate": n / (done - started), "submit_rate": n / (submitted - started)}
    print(f"  {result}", file=sys.stderr)
    return result


async def latency(nodes: Nodes, sender: Sender, rate: float, seconds: float) -> dict[str, float]:
    """Open loop: message i goes at start + i/rate."""
    count = int(rate * seconds)
    before = inbox_count(nodes.recipient_db)
    sent: dict[str, float] = {}
    start = time.time() + 0.2
    print(f"  {count} messages at {rate:.0f}/s", file=sys.stderr)

    async def one(i: int) -> None:
        await asyncio.sleep(max(0.0, start + i / rate - time.time()))
        t0 = time.time()
        sent[await sender.submit(10_000_000 + i)] = t0

    await asyncio.gather(*(one(i) for i in range(count)))
    await wait_until(lambda: inbox_count(nodes.recipient_db) >= before + count, 120,
                     "the paced messages")  # fmt: skip
    rows = query(nodes.recipient_db, "SELECT message_id, received_at FROM inbox")
    latencies = [received - sent[m] for m, received in rows if m in sent]
    return {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
            "n": len(latencies)}  # fmt: skip


async def backlog(nodes: Nodes, sender: Sender, n: int) -> dict[str, float]:
    nodes.stop("zw-police")
    before = delivered(nodes.sender_db)
    records_before = published_records(nodes.sender_db)
    inbox_before = inbox_count(nodes.recipient_db)
    t0 = time.perf_counter()
    step = 5000
    for start in range(0, n, step):
        await sender.burst(min(step, n - start), 20_000_000 + start)
        print(f"  backlog: {min(start + step, n):,} of {n:,} submitted", file=sys.stderr)
    submitted = time.perf_counter() - t0

    def published() -> bool:
        rows = query(nodes.sender_db, "SELECT count(*) FROM outbox_recipients WHERE state ="
                     " 'queued'")  # fmt: skip
        return int(rows[0][0]) == 0

    await wait_until(published, 600, "the backlog published")
    started = time.perf_counter()
    nodes.start("zw-police")
    stored = await wait_until(lambda: inbox_count(nodes.recipient_db) >= inbox_before + n, 1800,
                              "the backlog stored")  # fmt: skip
    done = await wait_until(lambda: delivered(nodes.sender_db) >= before + n, 1800,
                            "the backlog receipted")  # fmt: skip
    # the sender re-published what went unanswered while the recipient was down (its backoff):
    # the recipient read each message that many times, the copies cheaply (dedupe by hash)
    copies = (published_records(nodes.sender_db) - records_before) / n
    return {"submit_seconds": submitted, "stored": stored - started, "receipted": done - started,
            "copies_per_message": copies}  # fmt: skip


def floor_per_message(receipt_batch: float) -> float:
    """Seconds of cryptography one message needs on one core (see the module docstring)."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        costs = crypto_floor.primitive_costs(seconds=0.3)
    seal = costs["hpke wrap"] + costs["aead encrypt 1KB"] + costs["ed25519 sign"]
    open_ = costs["ed25519 verify"] + costs["hpke unwrap"] + costs["aead decrypt 1KB"]
    return seal + open_ + (seal + open_) / receipt_batch


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=10_000, help="messages in the burst")
    parser.add_argument("--rate", type=float, default=200.0, help="offered load, messages/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of the paced run")
    parser.add_argument("--backlog", type=int, default=100_000, help="messages in the backlog")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="xnode-pipeline-"))
    results: dict[str, dict[str, float]] = {}
    async with EmbeddedBroker() as broker:
        nodes = Nodes(root, broker.bootstrap_servers)
        nodes.start("zm-police")
        nodes.start("zw-police")
        nodes.ready("zm-police")
        nodes.ready("zw-police")
        sender = Sender(f"http://127.0.0.1:{nodes.port}", nodes.token)
        try:
            await sender.burst(200, 30_000_000)  # warm up: connections, topics, caches
            await wait_until(lambda: delivered(nodes.sender_db) >= 200, 120, "the warm-up")
            print("burst ...", file=sys.stderr)
            results["burst"] = await burst(nodes, sender, args.burst)
            print("paced ...", file=sys.stderr)
            results["paced"] = await latency(nodes, sender, args.rate, args.seconds)
            if args.backlog:
                print("backlog ...", file=sys.stderr)
                results["backlog"] = await backlog(nodes, sender, args.backlog)
            results["rss"] = {n: rss_mb(p.pid) for n, p in nodes.processes.items()}
            size = os.path.getsize(nodes.recipient_db)
            results["disk"] = {"bytes_per_message": size / max(inbox_count(nodes.recipient_db),
                                                               1)}  # fmt: skip
            batches = query(nodes.sender_db, "SELECT count(*) FROM inbox WHERE kind = 'receipt'")
            del batches
        finally:
            await sender.close()
            for node in list(nodes.processes):
                nodes.stop(node)
        envelope = query(nodes.recipient_db, "SELECT length(envelope) FROM inbox LIMIT 1")[0][0]
        results["kafka"] = await baseline(broker.bootstrap_servers, envelope, 3000, 20)
    receipts = query(nodes.recipient_db, "SELECT count(*) FROM outbox WHERE kind = 'receipt'")[0][0]
    answered = inbox_count(nodes.recipient_db)
    per_receipt = answered / max(receipts, 1)
    floor = floor_per_message(per_receipt)
    report(args, results, floor, per_receipt, envelope)


def report(args: argparse.Namespace, r: dict[str, dict[str, float]], floor: float,
           per_receipt: float, size: int) -> None:  # fmt: skip
    rate = r["burst"]["rate"]
    print(f"\n1 KB case updates, {size}-byte envelopes; two `xnode run` processes, bundled broker;"
          f" {os.cpu_count()} cores; {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n")  # fmt: skip
    print(f"  {'':<52}{'xnode':>10}{'baseline':>11}{'ratio':>8}")
    rows = [
        ("burst, messages/s (vs crypto floor, one core)", rate, 1 / floor),
        ("burst, messages/s (vs Kafka one way)", rate, r["kafka"]["oneway_rate"]),
        ("API submissions/s during the burst", r["burst"]["submit_rate"], 1 / floor),
    ]
    for label, ours, theirs in rows:
        print(f"  {label:<52}{ours:>10,.0f}{theirs:>11,.0f}{ours / theirs:>8.2f}")
    p = r["paced"]
    label = f"p50 / p99 submit -> remote inbox at {args.rate:.0f}/s, ms"
    print(f"  {label:<52}"
          f"{p['p50'] * 1e3:>5.1f} / {p['p99'] * 1e3:.1f}")  # fmt: skip
    print(f"  messages per receipt: {per_receipt:.1f}; floor per message {floor * 1e6:.0f} us")
    if "backlog" in r:
        b = r["backlog"]
        print(f"  backlog of {args.backlog:,}: stored in {b['stored']:.1f} s, receipted in"
              f" {b['receipted']:.1f} s after the recipient started"
              f" ({args.backlog / b['receipted']:,.0f} messages/s)")  # fmt: skip
        if "copies_per_message" in b:
            records = args.backlog * b["copies_per_message"]
            print(f"  backlog records read: {b['copies_per_message']:.1f} copies per message"
                  f" (the sender's re-publications while the recipient was down),"
                  f" {records / b['receipted']:,.0f} records/s")  # fmt: skip
    print("  peak RSS: " + ", ".join(f"{n} {mb:.0f} MB" for n, mb in r["rss"].items()))
    print(f"  recipient store: {r['disk']['bytes_per_message']:,.0f} bytes per message")
    print("\ngoals:")
    goals = [
        (">= 3,000 messages/s", rate >= 3000, f"{rate:,.0f}"),
        (">= 0.6 of the crypto floor", rate * floor >= 0.6, f"{rate * floor:.2f}"),
        ("p99 <= 50 ms at 200/s", p["p99"] <= 0.05, f"{p['p99'] * 1e3:.1f} ms"),
    ]
    if "backlog" in r and args.backlog >= 100_000:
        goals.append(("100,000 backlog drained <= 60 s", r["backlog"]["receipted"] <= 60,
                      f"{r['backlog']['receipted']:.1f} s"))  # fmt: skip
    for goal, met, value in goals:
        print(f"  {goal:<34} {value:>12}  {'met' if met else 'NOT met'}")
    print(json.dumps(r, indent=None), file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
