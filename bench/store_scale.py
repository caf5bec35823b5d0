"""How the node's store, its queries and its memory scale with the number of stored messages.

For each size N (``--messages``, default 10,000 and 1,000,000; ``--quick``: 10,000 and 100,000),
in a fresh temporary directory with two peer nodes (zm-police sends, zw-police receives):

* **fill** — the receiving node's store (``node.db`` in its directory) is filled through
  ``SqliteStore.record_inbound``, a few thousand messages per transaction (``store.batch``),
  with what the node writes for a received message: the inbox row (a real ~1.4 KB envelope
  sealed by zm-police to zw-police's key, ``--envelopes`` of them reused in turn), its dedupe
  entry and the two audit events the intake writes (``received``; ``receipt-sent`` when its
  receipt is queued). Ids are fresh UUIDv7s; threads of 5 messages, 200 open at a time;
  arrival times spread over the last 300 days (inside the default 365-day inbox retention). Not
  written: the receipts themselves (outbox rows, batched, deleted 90 days after delivery);
* **disk** — bytes per message of ``node.db`` + ``node.db-wal`` right after the fill;
* **queries** — median and p99 latency (warm OS cache) of what a local system and the
  operators' tools call: a page of the inbox after a random cursor (``inbox``, 50 rows), a
  message by id (``inbox_message``), a thread (``thread``), the gauges each ``/metrics`` scrape
  reads (``snapshot``), and the retention purge the node runs at start and hourly (``purge``,
  which deletes nothing here but holds the write lock while it looks);
* **memory** — a real node process (``xnode run``) on that store, connected to the embedded
  broker: VmRSS after ``--settle`` seconds (startup purge and maintenance rounds done,
  ``/metrics`` scraped), next to the 150 MB goal and to the same node with an empty store,
  measured in the same run before the first fill.

Printed: one table row per size, then one line per goal. Machines are shared and noisy: compare
figures within a run (the ratios, the growth from one size to the next), not across runs.

Run: ``python bench/store_scale.py [--quick] [--messages 10000,1000000]`` (the 1M fill takes
minutes and ~3.2 GB of disk under $TMPDIR; progress goes to stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node import envelope
from node.audit import AuditEvent
from node.codec import default_registry
from node.intake import DEDUPE_MARGIN
from node.nodedir import NodeDir
from node.store.base import DedupeEntry, InboxMessage, Retention
from node.store.sqlite import SqliteStore
from node.transport.broker import EmbeddedBroker
from node.uuid7 import uuid7
from tests.runtime_helpers import case_update, create_nodes

ROOT = Path(__file__).resolve().parent.parent
SENDER, RECEIVER = "zm-police", "zw-police"
RSS_GOAL_MB = 150.0
SPAN = dt.timedelta(days=300)  # arrival times of the stored messages
TTL = dt.timedelta(days=30)  # the default envelope lifetime (envelope.default_ttl_days)
MAX_LIFETIME = dt.timedelta(days=90)  # envelope.max_lifetime_days, which bounds dedupe rows
THREAD_LENGTH, OPEN_THREADS = 5, 200
QUERY_BUDGET_SECONDS = 20.0  # per query kind; at least MIN_SAMPLES calls even if slower
MIN_SAMPLES = 5
XNODE = Path(sys.executable).parent / "xnode"
MB = 1024 * 1024


@dataclass(frozen=True)
class Latency:
    p50: float  # seconds
    p99: float
    calls: int


@dataclass(frozen=True)
class NodeFigures:
    rss_mb: float  # VmRSS at the end of the settle time
    hwm_mb: float  # VmHWM: the peak resident set since the process started
    started_s: float  # from exec to the node_started log line
    metrics_ms: float | None  # median of a few /metrics scrapes through the node's API
    audit_length: float | None  # xnode_audit_chain_length as /metrics reported it


@dataclass(frozen=True)
class SizeResult:
    messages: int
    fill_rate: float  # rows/s
    empty_pages_bytes: int  # the database's pages before the fill (schema only)
    pages_bytes: int  # after: page_count x page_size, counting pages still in the WAL
    by_table: dict[str, int]  # bytes of pages: inbox, audit, dedupe, indexes, other
    db_bytes: int
    wal_bytes: int
    inbox: Latency
    by_id: Latency
    thread: Latency
    snapshot: Latency
    purge: Latency
    node: NodeFigures

    @property
    def bytes_per_message(self) -> float:
        return (self.db_bytes + self.wal_bytes) / self.messages

    @property
    def marginal_bytes_per_message(self) -> float:
        """What each message added to the database, without the schema and the write-ahead
        log's fixed few MB (as large as the largest transaction: here one fill batch)."""
        return (self.pages_bytes - self.empty_pages_bytes) / self.messages


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the store ----------------------------------------------------------------------------------


def seal_envelopes(dirs: dict[str, NodeDir], count: int) -> list[tuple[bytes, str]]:
    """``count`` real envelopes from the sender to the receiver (1 KB case update, handling H2),
    with their SHA-256: what the inbox rows hold."""
    registry = default_registry()
    identity = dirs[SENDER].load_keys(registry, None).identity
    recipient = dirs[SENDER].peers(registry)[RECEIVER].descriptor
    now = dt.datetime.now(dt.UTC)
    sealed = []
    for i in range(count):
        doc = case_update(f"Update {i}: " + "Two girls seen boarding a minibus at Chirundu. " * 20)
        doc["note"] = doc["note"][:900]
        doc["handling"]["code"] = "H2"
        payload = registry.from_json("xnode.payload.CaseUpdate", doc)
        data = envelope.seal(
            registry, identity=identity, sender_id=SENDER, kind="mla", schema_name="CaseUpdate",
            payload=payload, recipients=[recipient], now=now, expires_at=now + TTL,
        ).data  # fmt: skip
        sealed.append((data, hashlib.sha256(data).hexdigest()))
    return sealed


Row = tuple[InboxMessage, DedupeEntry, list[AuditEvent]]


def messages(n: int, envelopes: Sequence[tuple[bytes, str]], rng: random.Random) -> Iterator[Row]:
    """What the receiver stores for ``n`` messages received over the last 300 days, in arrival
    order: threads of ``THREAD_LENGTH`` messages, ``OPEN_THREADS`` of them interleaved."""
    now = dt.datetime.now(dt.UTC)
    start, step = now - SPAN, SPAN / n
    threads: list[tuple[str, str, int]] = [("", "", THREAD_LENGTH)] * OPEN_THREADS
    for i in range(n):
        received = start + step * i
        created = received - dt.timedelta(seconds=rng.uniform(0.05, 3.0))
        message_id = str(uuid7(created))
        slot = i % OPEN_THREADS
        thread_id, previous, length = threads[slot]
        if length >= THREAD_LENGTH:  # this slot opens a new thread
            thread_id, in_reply_to, length = message_id, None, 0
        else:
            in_reply_to = previous
        threads[slot] = (thread_id, message_id, length + 1)
        data, sha = envelopes[i % len(envelopes)]
        expires = created + TTL
        message = InboxMessage(
            seq=0, message_id=message_id, sender=SENDER, kind="mla", thread_id=thread_id,
            in_reply_to=in_reply_to, schema_name="xnode.payload.CaseUpdate", handling_code="H2",
            envelope=data, envelope_sha256=sha, created_at=created, expires_at=expires,
            received_at=received, state="received", recipients=(RECEIVER,),
        )  # fmt: skip
        dedupe = DedupeEntry(
            message_id=message_id, sender=SENDER, outcome="delivered", reason=None,
            envelope_sha256=sha, seen_at=received,
            keep_until=min(expires, received + MAX_LIFETIME) + DEDUPE_MARGIN,
        )  # fmt: skip
        audit = [
            AuditEvent("received", received, message_id=message_id, peer=SENDER,
                       detail={"kind": "mla", "envelope_sha256": sha}),
            AuditEvent("receipt-sent", received, message_id=message_id, peer=SENDER,
                       detail={"status": "delivered", "reason": None}),
        ]  # fmt: skip
        yield message, dedupe, audit


def fill(store: SqliteStore, rows: Iterator[Row], n: int, batch: int) -> float:
    """Write ``n`` rows, ``batch`` per transaction; return the seconds it took."""
    started = time.perf_counter()
    done, reported = 0, 0
    while done < n:
        writes: list[Callable[[], object]] = [
            functools.partial(store.record_inbound, *row)
            for row in (next(rows) for _ in range(min(batch, n - done)))
        ]
        for result in store.batch(writes):
            if isinstance(result, Exception):
                raise result
        done += len(writes)
        if done - reported >= 100_000 or done == n:
            reported = done
            elapsed = time.perf_counter() - started
            print(f"  filled {done:>9,} / {n:,} rows, {done / elapsed:,.0f} rows/s",
                  file=sys.stderr, flush=True)  # fmt: skip
    return time.perf_counter() - started


def database_bytes(db: Path) -> int:
    """The database's size as SQLite sees it (page count x page size), pages still in the
    write-ahead log included: node.db alone lags until the next checkpoint."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        return int(pages) * int(conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()


def bytes_by_table(db: Path) -> dict[str, int]:
    """Bytes of pages per table (the sqlite ``dbstat`` table), every index counted as one."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='index'")}
        found = dict.fromkeys(("inbox", "audit", "dedupe", "indexes", "other"), 0)
        for name, size in conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
            if name in indexes or name.startswith("sqlite_autoindex"):
                name = "indexes"
            found[name if name in found else "other"] += int(size)
        return found
    except sqlite3.OperationalError:  # SQLite built without dbstat
        return {}
    finally:
        conn.close()


def timed(call: Callable[[], object], samples: int) -> Latency:
    """Latency of ``call`` over ``samples`` calls, or as many as fit the time budget."""
    call()  # warm up
    times: list[float] = []
    deadline = time.perf_counter() + QUERY_BUDGET_SECONDS
    while len(times) < samples and (len(times) < MIN_SAMPLES or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return Latency(percentile(times, 0.5), percentile(times, 0.99), len(times))


def measure_queries(
    store: SqliteStore, n: int, retention: Retention, samples: int, rng: random.Random
) -> dict[str, Latency]:
    picks = [store.inbox_at(rng.randint(1, n)) for _ in range(samples)]
    ids = [m.message_id for m in picks if m is not None]
    threads = [m.thread_id for m in picks if m is not None]
    return {
        "inbox": timed(lambda: store.inbox(rng.randint(0, n), None, 50), samples),
        "by_id": timed(lambda: store.inbox_message(rng.choice(ids)), samples),
        "thread": timed(lambda: store.thread(rng.choice(threads)), samples),
        "snapshot": timed(store.snapshot, samples),
        # a write transaction (BEGIN IMMEDIATE, one fsync): a few calls are enough
        "purge": timed(lambda: store.purge(dt.datetime.now(dt.UTC), retention), 3),
    }


def retention_of(node_dir: NodeDir) -> Retention:
    """The retention cut-offs the node applies now, from its configuration."""
    settings, now = node_dir.load_config({}).store, dt.datetime.now(dt.UTC)
    return Retention(
        inbox_before=now - dt.timedelta(days=settings.inbox_retention_days),
        outbox_before=now - dt.timedelta(days=settings.outbox_retention_days),
        quarantine_before=now - dt.timedelta(days=settings.quarantine_retention_days),
    )


# -- the node process ---------------------------------------------------------------------------


def _log_events(log: Path) -> list[dict[str, object]]:
    events = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            events.append(item)
    return events


def _proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB."""
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) / 1024  # kB
    return found


def _audit_length(text: str) -> float | None:
    for line in text.splitlines():
        if line.startswith("xnode_audit_chain_length"):
            return float(line.split()[-1])
    return None


def measure_node(node_dir: Path, bootstrap: str, settle: float, log: Path) -> NodeFigures:
    """Run ``xnode run`` on the node directory (this checkout's code), let it settle, scrape its
    /metrics, read its memory from /proc, and stop it with SIGTERM."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "XNODE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "XNODE_API_PORT": "0",
    }
    launched = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(XNODE), "run", "--dir", str(node_dir)], stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip
    try:
        started_at: float | None = None
        url: str | None = None
        while started_at is None or url is None:
            if process.poll() is not None:
                raise RuntimeError(f"xnode run exited ({process.returncode}); see {log}")
            if time.monotonic() - launched > 120:
                raise RuntimeError(f"xnode run did not start within 120 s; see {log}")
            for event in _log_events(log):
                if event.get("event") == "node_started" and started_at is None:
                    started_at = time.monotonic()
                if event.get("event") == "api_listening":
                    url = str(event["url"])
            time.sleep(0.1)
        while time.monotonic() < started_at + settle:
            if process.poll() is not None:
                raise RuntimeError(f"xnode run exited ({process.returncode}); see {log}")
            time.sleep(0.5)
        scrapes: list[float] = []
        text = ""
        try:
            for _ in range(5):
                t0 = time.perf_counter()
                with urllib.request.urlopen(f"{url}/metrics", timeout=120) as response:
                    text = response.read().decode()
                scrapes.append(time.perf_counter() - t0)
        except OSError as exc:  # the figure is optional; the memory is what is measured here
            print(f"  /metrics not scraped: {exc}", file=sys.stderr)
        memory = _proc_status(process.pid)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return NodeFigures(
        rss_mb=memory["VmRSS"], hwm_mb=memory["VmHWM"], started_s=started_at - launched,
        metrics_ms=sorted(scrapes)[len(scrapes) // 2] * 1e3 if scrapes else None,
        audit_length=_audit_length(text),
    )  # fmt: skip


# -- one size -----------------------------------------------------------------------------------


def measure_size(
    n: int, bootstrap: str, args: argparse.Namespace, rng: random.Random, baseline: list[float]
) -> SizeResult:
    """Fill a fresh receiver store with ``n`` messages and measure it. The first call also runs
    the receiver once with its store still empty and appends that RSS to ``baseline``."""
    root = Path(tempfile.mkdtemp(prefix=f"xnode-store-scale-{n}-"))
    try:
        dirs = create_nodes(root, {SENDER: "law-enforcement", RECEIVER: "law-enforcement"})
        node_path = dirs[RECEIVER].path
        if not baseline:
            print("  node with an empty store ...", file=sys.stderr, flush=True)
            empty = measure_node(node_path, bootstrap, args.settle, root / "node-empty.log")
            baseline.append(empty.rss_mb)
        envelopes = seal_envelopes(dirs, args.envelopes)
        db = node_path / "node.db"
        store = SqliteStore.open(db)
        try:
            empty_pages_bytes = database_bytes(db)
            seconds = fill(store, messages(n, envelopes, rng), n, args.batch)
            db_bytes = db.stat().st_size
            wal = db.with_name(db.name + "-wal")
            wal_bytes = wal.stat().st_size if wal.exists() else 0
            pages_bytes = database_bytes(db)
            by_table = bytes_by_table(db)
            print("  queries ...", file=sys.stderr, flush=True)
            queries = measure_queries(store, n, retention_of(dirs[RECEIVER]), args.samples, rng)
        finally:
            store.close()
        print(f"  node with {n:,} messages ...", file=sys.stderr, flush=True)
        node = measure_node(node_path, bootstrap, args.settle, root / "node.log")
        if node.audit_length is not None and node.audit_length < 2 * n:
            raise RuntimeError(f"the node reports {node.audit_length:.0f} audit entries, < 2 x {n}")
        return SizeResult(
            messages=n, fill_rate=n / seconds, db_bytes=db_bytes, wal_bytes=wal_bytes,
            empty_pages_bytes=empty_pages_bytes, pages_bytes=pages_bytes, by_table=by_table,
            node=node, **queries,
        )  # fmt: skip
    finally:
        if args.keep:
            print(f"  kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


# -- report -------------------------------------------------------------------------------------


def _ms(latency: Latency) -> str:
    return f"{latency.p50 * 1e3:.2f}/{latency.p99 * 1e3:.2f}"


def report(results: Sequence[SizeResult], empty_rss: float, seconds: float) -> None:
    print(f"store scale: a {RECEIVER} store filled with N received messages; RSS of `xnode run` "
          f"on it; empty-store node RSS {empty_rss:.1f} MB\n")  # fmt: skip
    header = (
        f"  {'messages':>10} {'fill rows/s':>12} {'B/msg':>7} {'inbox p50/p99':>14} "
        f"{'by-id p50/p99':>14} {'thread p50/p99':>15} {'snapshot':>9} {'RSS MB':>7} "
        f"{'RSS ratio':>9}"
    )
    print(header)
    print(f"  {'':>10} {'':>12} {'disk':>7} {'ms':>14} {'ms':>14} {'ms':>15} {'ms':>9}")
    for r in results:
        print(
            f"  {r.messages:>10,} {r.fill_rate:>12,.0f} {r.bytes_per_message:>7,.0f} "
            f"{_ms(r.inbox):>14} {_ms(r.by_id):>14} {_ms(r.thread):>15} "
            f"{r.snapshot.p50 * 1e3:>9.1f} {r.node.rss_mb:>7.1f} {r.node.rss_mb / empty_rss:>9.2f}"
        )
    print("\n  details")
    print(f"  {'messages':>10} {'node.db MB':>11} {'wal MB':>7} {'B/msg added':>12} "
          f"{'snapshot p99':>13} "
          f"{'purge ms':>9} {'/metrics ms':>12} {'VmHWM MB':>9} {'start s':>8}")  # fmt: skip
    for r in results:
        metrics = "-" if r.node.metrics_ms is None else f"{r.node.metrics_ms:.1f}"
        print(
            f"  {r.messages:>10,} {r.db_bytes / MB:>11.1f} {r.wal_bytes / MB:>7.1f} "
            f"{r.marginal_bytes_per_message:>12,.0f} "
            f"{r.snapshot.p99 * 1e3:>13.1f} {r.purge.p50 * 1e3:>9.1f} {metrics:>12} "
            f"{r.node.hwm_mb:>9.1f} {r.node.started_s:>8.1f}"
        )
    calls = ", ".join(str(r.snapshot.calls) for r in results)
    print(f"  (snapshot: {calls} calls; what each /metrics scrape reads. purge: what the node"
          " runs at start and hourly)")  # fmt: skip
    if any(r.by_table for r in results):
        print("\n  bytes per message, by table (every index counted as one)")
    for r in results:
        if r.by_table:
            parts = "  ".join(f"{k} {v / r.messages:,.0f}" for k, v in r.by_table.items())
            print(f"  {r.messages:>10,}  {parts}")
    print()
    for r in results:
        verdict = "met" if r.node.rss_mb <= RSS_GOAL_MB else "not met"
        print(f"RSS with {r.messages:,} messages: {r.node.rss_mb:.1f} MB "
              f"(goal ≤ {RSS_GOAL_MB:.0f} MB): {verdict}")  # fmt: skip
    for r in results:
        print(f"store size per message with {r.messages:,} messages: "
              f"{r.bytes_per_message:,.0f} bytes on disk (node.db + node.db-wal), "
              f"{r.marginal_bytes_per_message:,.0f} bytes added to the database")  # fmt: skip
    print(f"\nrun took {seconds / 60:.1f} min")


def _sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=_sizes, default=[10_000, 1_000_000],
                        help="comma-separated store sizes (default 10000,1000000)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="sizes 10000,100000")
    parser.add_argument("--batch", type=int, default=2000, help="messages per fill transaction")
    parser.add_argument("--envelopes", type=int, default=256, help="distinct sealed envelopes")
    parser.add_argument("--samples", type=int, default=200, help="calls per query kind")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds the node runs before its memory is read")  # fmt: skip
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = parser.parse_args()
    sizes = [10_000, 100_000] if args.quick else args.messages
    rng = random.Random(args.seed)
    started = time.perf_counter()
    baseline: list[float] = []
    results: list[SizeResult] = []
    async with EmbeddedBroker() as broker:
        for n in sizes:
            print(f"{n:,} messages", file=sys.stderr, flush=True)
            results.append(
                await asyncio.to_thread(
                    measure_size, n, broker.bootstrap_servers, args, rng, baseline
                )
            )
    report(results, baseline[0], time.perf_counter() - started)


if __name__ == "__main__":
    asyncio.run(main())
