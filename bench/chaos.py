"""Chaos benchmark: nodes as separate processes under a steady load, a broker that is killed and
restarted empty, and nodes killed with SIGKILL and restarted — then an account of every message.

Everything runs as OS processes, the way an operator meets it: the development broker as
`xnode broker --port P` (SIGKILL, then started again EMPTY on the same port: it keeps nothing),
each node as `xnode run --dir D` with a fixed API port (SIGKILL, restarted after a few seconds).
Every node submits at ``--rate`` messages/s to all the others through its HTTP API, or with
`xnode send` while its API is down; a message counts as sent only once the API answered 202 (or
`xnode send` exited 0) with its id. Faults follow a plan drawn from ``--seed`` before the run.

When the load stops, the nodes get a bounded drain period; then the store files are read
(read-only) and every (message, recipient) pair is accounted for: delivered and receipted on the
sender's side, handed to the recipient's local side exactly once (inbox rows and `received`
audit events), lost, duplicated, still open; delays from submission (`outbox.created_at`) to
reception (`inbox.received_at`); each node's quarantine by reason; tracebacks and errors in the
logs. Exit status 1 if anything was lost, duplicated or left undelivered.

Run from the repository root: ``python bench/chaos.py --minutes 10 --nodes 3 --seed 7``
(``--help`` for the rest). Logs and node directories stay in the printed directory.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.transport.broker import free_port
from tests.process_helpers import (
    EXAMPLES,
    BrokerProcess,
    http,
    init_nodes,
    kill,
    node_env,
    read_store,
    spawn,
    stop,
    xnode,
)

NODE_IDS = ("zm-police", "zw-police", "mw-police")
PAYLOAD = json.loads((EXAMPLES / "case-update.json").read_text())
PLACES = ("Chirundu", "Sesheke", "Nakonde", "Beitbridge", "Lusaka", "Harare", "Lilongwe")
BROKER = "broker"
OPEN_STATES = ("queued", "sent")
PROGRESS_SECONDS = 10.0
AUDIT_EVENTS_QUERY = "SELECT event, count(*) FROM audit GROUP BY event"
WINDOW_SECONDS = 60.0  # width of a row of the timeline
LOG_KINDS = 12  # kinds of log findings shown per file

# -- functional core: the fault plan and the account (pure, no I/O) -----------------------------


@dataclass(frozen=True)
class Fault:
    """One planned fault: at ``at`` seconds after the load began, ``target`` (the broker or a node
    id) is killed with SIGKILL and started again ``down`` seconds later."""

    at: float
    target: str
    down: float


def plan_faults(
    seed: int, seconds: float, mean_interval: float, nodes: Sequence[str], broker_share: float = 0.5
) -> list[Fault]:
    """The whole fault schedule, drawn before the run so that a seed names the same faults on
    every machine: gaps uniform in [0.5, 1.5] x ``mean_interval``, the broker down 1-8 s, a node
    down 1-5 s. Faults do not overlap (the next gap starts when the previous fault ends)."""
    rng = random.Random(seed)
    faults: list[Fault] = []
    t = 0.0
    while True:
        t += rng.uniform(0.5 * mean_interval, 1.5 * mean_interval)
        if t >= seconds:
            return faults
        if rng.random() < broker_share:
            fault = Fault(round(t, 1), BROKER, round(rng.uniform(1, 8), 1))
        else:
            fault = Fault(round(t, 1), rng.choice(list(nodes)), round(rng.uniform(1, 5), 1))
        faults.append(fault)
        t += fault.down


@dataclass(frozen=True)
class Sent:
    """A submission the node acknowledged with an id."""

    message_id: str
    sender: str
    recipients: tuple[str, ...]
    via: str  # "api" or "cli"


@dataclass(frozen=True)
class Observed:
    """What the store files say, keyed by (message id, recipient) unless noted."""

    state: Mapping[tuple[str, str], str]  # the sender's outbox_recipients.state
    created_at: Mapping[str, float]  # the sender's outbox.created_at, by message id
    inbox_rows: Mapping[tuple[str, str], int]  # rows in the recipient's inbox
    handed_over: Mapping[tuple[str, str], int]  # 'received' events in the recipient's audit
    received_at: Mapping[tuple[str, str], float]  # the recipient's first inbox.received_at


@dataclass(frozen=True)
class Account:
    """Every sent (message, recipient) pair, classified."""

    messages: int
    pairs: int
    delivered: int  # the sender's state is 'delivered' (the signed receipt came back)
    received_once: int  # exactly one copy on the recipient's local side
    duplicated: int  # pairs with more than one copy on the local side
    extra_copies: int  # the copies beyond the first, summed
    lost: int  # no copy on the recipient's side
    still_open: int  # the sender still waits for a receipt (queued or sent)
    other_final: Counter[str]  # rejected or expired, by state
    delays: list[float]  # submission to reception, seconds, one per received pair
    lost_pairs: list[tuple[str, str]] = field(default_factory=list)
    duplicated_pairs: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.pairs > 0
            and self.lost == self.duplicated == self.still_open == 0
            and (self.delivered == self.received_once == self.pairs)
        )


def account(sent: Iterable[Sent], seen: Observed) -> Account:
    """Classify every pair of ``sent`` by what the stores say. The local side got a message as
    often as the larger of its inbox rows and its 'received' audit events: the inbox has one row
    per id by construction, so a second hand-over shows only in the audit."""
    messages = pairs = delivered = once = duplicated = extra = lost = still_open = 0
    other: Counter[str] = Counter()
    delays: list[float] = []
    lost_pairs: list[tuple[str, str]] = []
    duplicated_pairs: list[tuple[str, str]] = []
    for message in sent:
        messages += 1
        for recipient in message.recipients:
            key = (message.message_id, recipient)
            pairs += 1
            state = seen.state.get(key, "missing")
            if state == "delivered":
                delivered += 1
            elif state in OPEN_STATES:
                still_open += 1
            else:
                other[state] += 1
            copies = max(seen.inbox_rows.get(key, 0), seen.handed_over.get(key, 0))
            if copies == 0:
                lost += 1
                lost_pairs.append(key)
                continue
            if copies == 1:
                once += 1
            else:
                duplicated += 1
                extra += copies - 1
                duplicated_pairs.append(key)
            created, received = seen.created_at.get(message.message_id), seen.received_at.get(key)
            if created is not None and received is not None:
                delays.append(max(0.0, received - created))
    return Account(
        messages,
        pairs,
        delivered,
        once,
        duplicated,
        extra,
        lost,
        still_open,
        other,
        delays,
        lost_pairs,
        duplicated_pairs,
    )


@dataclass(frozen=True)
class Window:
    """The pairs submitted in one stretch of the run, and what became of them: shows which
    faults preceded a loss or a delay."""

    start: float  # seconds after the load began
    pairs: int
    received: int
    delivered: int
    max_delay: float


def timeline(
    sent: Iterable[Sent], seen: Observed, load_began: float, width: float = WINDOW_SECONDS
) -> list[Window]:
    """Pairs grouped by submission time (``outbox.created_at``, epoch seconds) into windows of
    ``width`` seconds from ``load_began``."""
    rows: dict[int, list[float]] = {}  # window -> [pairs, received, delivered, max delay]
    for message in sent:
        created = seen.created_at.get(message.message_id)
        if created is None:
            continue
        row = rows.setdefault(int(max(0.0, created - load_began) // width), [0, 0, 0, 0.0])
        for recipient in message.recipients:
            key = (message.message_id, recipient)
            row[0] += 1
            received = seen.received_at.get(key)
            if received is not None:
                row[1] += 1
                row[3] = max(row[3], received - created)
            row[2] += seen.state.get(key) == "delivered"
    return [
        Window(i * width, int(r[0]), int(r[1]), int(r[2]), r[3]) for i, r in sorted(rows.items())
    ]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# -- imperative shell: processes, load, faults, stores ------------------------------------------


@dataclass
class Options:
    """What to run; the command line's arguments (the test sets its own)."""

    minutes: float = 10.0
    nodes: int = 3
    rate: float = 5.0  # messages per second from each node
    seed: int = 1
    fault_interval: float = 30.0  # mean seconds between faults
    broker_share: float = 0.5  # probability that a fault hits the broker rather than a node
    drain: float = 180.0  # longest wait after the load for every pair to settle
    retry_initial: int = 1  # delivery.retry_initial_seconds of the nodes (as in the tests)
    retry_max: int = 3  # delivery.retry_max_seconds of the nodes (as in the tests)
    out: Path | None = None
    quiet: bool = False


@dataclass
class Report:
    """The run's figures (what the table shows), for the caller and the test."""

    directory: Path
    plan: list[Fault]
    account: Account
    broker_kills: int
    node_kills: Counter[str]
    submissions: Counter[str]  # api, cli, and every kind of failure
    quarantine: dict[str, Counter[str]]
    activity: dict[str, Counter[str]]
    log_problems: dict[str, list[str]]
    not_back: list[str]
    exit_codes: dict[str, int]
    drained_in: float | None
    seconds: float
    timeline: list[Window] = field(default_factory=list)
    faults_done: list[tuple[float, str]] = field(default_factory=list)  # (seconds, what)

    @property
    def ok(self) -> bool:
        return self.account.ok and not self.not_back


class Chaos:
    """The broker, the nodes, the load and the faults of one run."""

    def __init__(self, options: Options, directory: Path) -> None:
        self.options = options
        self.dir = directory
        self.node_ids = NODE_IDS[: options.nodes]
        self.broker = BrokerProcess(directory)
        self.ports = {n: free_port() for n in self.node_ids}
        self.dirs: dict[str, Path] = {}
        self.tokens: dict[str, str] = {}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.lock = threading.Lock()
        self.sent: list[Sent] = []
        self.submissions: Counter[str] = Counter()
        self.broker_kills = 0
        self.node_kills: Counter[str] = Counter()
        self.not_back: list[str] = []
        self.down: set[str] = set()
        self.started = self.started_load = time.monotonic()
        self.load_began = time.time()  # epoch, comparable with the stores' timestamps
        self.faults_done: list[tuple[float, str]] = []
        self.load_stop = threading.Event()

    # output

    def say(self, text: str) -> None:
        if not self.options.quiet:
            print(f"[{time.monotonic() - self.started:7.1f} s] {text}", flush=True)

    # processes

    def setup(self) -> None:
        self.broker.start()
        self.dirs = init_nodes(self.dir, dict.fromkeys(self.node_ids, "law-enforcement"))
        self.tokens = {
            n: xnode(
                "token", "create", "--dir", d, "--name", "chaos", "--scopes", "send:*,read:*"
            ).stdout.strip()
            for n, d in self.dirs.items()
        }
        for n in self.node_ids:
            self.start_node(n)
        for n in self.node_ids:
            if self.wait_up(n, "readyz", 60) is None:
                raise RuntimeError(f"{n} did not become ready; see {self.dir / (n + '.log')}")

    def env(self, node_id: str) -> dict[str, str]:
        return node_env(
            self.broker.bootstrap,
            XNODE_API_PORT=str(self.ports[node_id]),
            XNODE_DELIVERY_RETRY_INITIAL_SECONDS=str(self.options.retry_initial),
            XNODE_DELIVERY_RETRY_MAX_SECONDS=str(self.options.retry_max),
        )

    def start_node(self, node_id: str) -> None:
        self.processes[node_id] = spawn(
            "run",
            "--dir",
            self.dirs[node_id],
            env=self.env(node_id),
            log=self.dir / f"{node_id}.log",
        )

    def api(self, node_id: str) -> str:
        return f"http://127.0.0.1:{self.ports[node_id]}"

    def wait_up(self, node_id: str, probe: str, timeout: float) -> float | None:
        """Seconds until ``/probe`` answers 200, or None after ``timeout``."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                if http("GET", f"{self.api(node_id)}/{probe}", timeout=5)[0] == 200:
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.2)
        return None

    def shutdown(self) -> dict[str, int]:
        codes = {}
        for n, process in self.processes.items():
            codes[n] = stop(process)
        self.broker.stop()
        return codes

    # load

    def load(self, node_id: str) -> None:
        """Submit at a steady rate until told to stop; never burst to catch up after a stall."""
        others = tuple(n for n in self.node_ids if n != node_id)
        payload_file = self.dir / f"payload-{node_id}.json"
        interval = 1.0 / self.options.rate
        next_at = time.monotonic()
        number = 0
        while not self.load_stop.is_set():
            number += 1
            place = PLACES[number % len(PLACES)]
            payload = {**PAYLOAD, "note": f"chaos {node_id} #{number}: minibus seen at {place}"}
            self.submit(node_id, others, payload, payload_file)
            next_at += interval
            wait = next_at - time.monotonic()
            if wait > 0:
                self.load_stop.wait(wait)
            else:
                next_at = time.monotonic()

    def submit(
        self, node_id: str, to: tuple[str, ...], payload: dict[str, object], payload_file: Path
    ) -> None:
        body = {"kind": "mla", "to": list(to), "schema": "CaseUpdate", "payload": payload}
        try:
            status, answer = http(
                "POST", f"{self.api(node_id)}/v1/messages", self.tokens[node_id], body, timeout=10
            )
        except OSError as exc:
            if not refused(exc):  # it may or may not have been queued: not counted as sent
                self.count(f"api no answer ({type(exc).__name__})")
                return
        else:
            if status == 202:
                self.record(Sent(str(answer["id"]), node_id, to, "api"))
            else:
                self.count(f"api {status}")
                self.say(f"{node_id} API answered {status}: {str(answer)[:200]}")
            return
        # the API is down (the node is being restarted): queue with the command line instead
        payload_file.write_text(json.dumps(payload))
        result = xnode(
            "send",
            "--dir",
            self.dirs[node_id],
            "--kind",
            "mla",
            "--schema",
            "CaseUpdate",
            "--to",
            ",".join(to),
            "--in",
            payload_file,
            check=False,
            timeout=60,
        )
        if result.returncode == 0 and result.stdout.strip():
            self.record(Sent(result.stdout.strip(), node_id, to, "cli"))
        else:
            self.count(f"cli exit {result.returncode}")
            self.say(f"{node_id} xnode send failed: {result.stderr.strip()[-200:]}")

    def record(self, sent: Sent) -> None:
        with self.lock:
            self.sent.append(sent)
            self.submissions[sent.via] += 1

    def count(self, what: str) -> None:
        with self.lock:
            self.submissions[what] += 1

    # faults

    def faults(self, plan: list[Fault]) -> None:
        """Carry out the plan; a fault that began always ends with its target started again."""
        for fault in plan:
            if self.load_stop.wait(max(0.0, self.started_load + fault.at - time.monotonic())):
                return
            try:
                self.inflict(fault)
            except Exception as exc:  # a restart that failed is a finding, not a crash
                self.not_back.append(f"{fault.target} at {fault.at:.0f} s: {exc}")
                self.say(f"      {fault.target} did NOT come back: {exc}")

    def inflict(self, fault: Fault) -> None:
        if fault.target == BROKER:
            self.broker.kill()
            self.broker_kills += 1
            self.faults_done.append((time.monotonic() - self.started_load, f"broker {fault.down}s"))
            self.down.add(BROKER)
            self.say(f"FAULT broker SIGKILL, down {fault.down:.1f} s")
            time.sleep(fault.down)
            self.broker.start()
            self.down.discard(BROKER)
            self.say(f"      broker restarted empty (start {self.broker.starts})")
            return
        node_id = fault.target
        kill(self.processes[node_id])
        self.node_kills[node_id] += 1
        self.faults_done.append((time.monotonic() - self.started_load, f"{node_id} {fault.down}s"))
        self.down.add(node_id)
        self.say(f"FAULT {node_id} SIGKILL, down {fault.down:.1f} s")
        time.sleep(fault.down)
        self.start_node(node_id)
        back = self.wait_up(node_id, "healthz", 60)
        self.down.discard(node_id)
        if back is None:
            raise RuntimeError("restarted, but no answer on /healthz within 60 s")
        self.say(f"      {node_id} restarted, answering after {back:.1f} s")

    # stores

    def observe(self) -> Observed:
        state: dict[tuple[str, str], str] = {}
        created: dict[str, float] = {}
        inbox_rows: dict[tuple[str, str], int] = {}
        handed: dict[tuple[str, str], int] = {}
        received_at: dict[tuple[str, str], float] = {}
        for n, d in self.dirs.items():
            db = d / "node.db"
            for message_id, recipient, s in read_store(
                db, "SELECT message_id, recipient, state FROM outbox_recipients"
            ):
                state[(message_id, recipient)] = s
            created.update(read_store(db, "SELECT message_id, created_at FROM outbox"))
            for message_id, rows, first in read_store(
                db, "SELECT message_id, count(*), min(received_at) FROM inbox GROUP BY message_id"
            ):
                inbox_rows[(message_id, n)] = rows
                received_at[(message_id, n)] = first
            for message_id, events in read_store(
                db,
                "SELECT message_id, count(*) FROM audit WHERE event = 'received'"
                " AND message_id IS NOT NULL GROUP BY message_id",
            ):
                handed[(message_id, n)] = events
        return Observed(state, created, inbox_rows, handed, received_at)

    def activity(self) -> dict[str, Counter[str]]:
        """Each node's audit events by kind: how much work the run caused (publications per
        message submitted, duplicates discarded, receipts sent)."""
        return {
            n: Counter(dict(read_store(d / "node.db", AUDIT_EVENTS_QUERY)))
            for n, d in self.dirs.items()
        }

    def quarantine(self) -> dict[str, Counter[str]]:
        return {
            n: Counter(
                dict(
                    read_store(
                        d / "node.db", "SELECT reason, count(*) FROM quarantine GROUP BY reason"
                    )
                )
            )
            for n, d in self.dirs.items()
        }

    def snapshot(self) -> Account:
        with self.lock:
            sent = list(self.sent)
        return account(sent, self.observe())

    def progress(self, phase: str) -> Account:
        with self.lock:
            sent = list(self.sent)
        a = account(sent, self.observe())
        via = Counter(s.via for s in sent)
        down = ", ".join(sorted(self.down)) or "none"
        self.say(
            f"{phase}: sent {a.messages} ({via['api']} api, {via['cli']} cli)"
            f" pairs {a.pairs}: delivered {a.delivered}, received {a.pairs - a.lost},"
            f" open {a.still_open}, duplicated {a.duplicated}; down: {down}"
        )
        return a

    # the run

    def run(self) -> Report:
        o = self.options
        seconds = o.minutes * 60
        plan = plan_faults(o.seed, seconds, o.fault_interval, self.node_ids, o.broker_share)
        self.say(f"output in {self.dir}")
        self.say(
            f"{len(self.node_ids)} nodes, {o.rate:g} msg/s each, {o.minutes:g} min, seed "
            f"{o.seed}, retry {o.retry_initial}-{o.retry_max} s; plan: "
            + ", ".join(f"{f.at:.0f}s {f.target} {f.down}s" for f in plan)
        )
        self.setup()
        self.say("all nodes ready; load starts")
        self.started_load, self.load_began = time.monotonic(), time.time()
        loaders = [
            threading.Thread(target=self.load, args=(n,), daemon=True) for n in self.node_ids
        ]
        faulter = threading.Thread(target=self.faults, args=(plan,), daemon=True)
        for thread in (*loaders, faulter):
            thread.start()
        end = self.started_load + seconds
        while time.monotonic() < end:
            time.sleep(min(PROGRESS_SECONDS, max(0.0, end - time.monotonic())))
            if time.monotonic() < end:
                self.progress("load")
        self.load_stop.set()
        for thread in loaders:
            thread.join()
        faulter.join()  # a fault under way finishes: everything is up again
        self.say("load stopped; draining")
        drain_started = time.monotonic()
        drained_in: float | None = None
        next_progress = drain_started + PROGRESS_SECONDS
        while time.monotonic() - drain_started < o.drain:
            a = self.snapshot()
            if a.still_open == 0 and a.lost == 0:
                drained_in = time.monotonic() - drain_started
                break
            if time.monotonic() >= next_progress:
                self.progress("drain")
                next_progress += PROGRESS_SECONDS
            time.sleep(1)
        self.say(
            f"drained in {drained_in:.1f} s"
            if drained_in is not None
            else f"NOT drained after {o.drain:g} s"
        )
        exit_codes = self.shutdown()
        final = self.snapshot()
        with self.lock:
            sent = list(self.sent)
        return Report(
            directory=self.dir,
            plan=plan,
            account=final,
            broker_kills=self.broker_kills,
            node_kills=self.node_kills,
            submissions=self.submissions,
            quarantine=self.quarantine(),
            activity=self.activity(),
            log_problems=log_problems(self.dir),
            not_back=self.not_back,
            exit_codes=exit_codes,
            drained_in=drained_in,
            seconds=time.monotonic() - self.started,
            timeline=timeline(sent, self.observe(), self.load_began),
            faults_done=list(self.faults_done),
        )


def refused(exc: OSError) -> bool:
    """Nobody listening on the API port: the node process is down."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(reason, ConnectionRefusedError)


def log_findings(lines: Iterable[str]) -> Counter[str]:
    """What deserves a look in a node's or broker's log: tracebacks (with the event that carried
    one), error-level records, and warnings counted by event. Library messages carry ids and
    addresses, so they are counted under their logger, not their text."""
    found: Counter[str] = Counter()
    for line in lines:
        record: dict[str, object] = {}
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                record = {}
        event = " ".join(str(record.get("event", "")).split())
        if not event.replace("_", "").isalnum():  # free text from a library: its gist
            gist = re.sub(r"\(\d+ more like this.*?\)", "", event)
            gist = re.sub(r"0x[0-9a-f]+|\d+", "N", gist)[:70].strip()
            event = f"{record.get('logger', 'library')}: {gist}"
        if "Traceback" in line:
            found[f"Traceback ({event})" if record else "Traceback"] += 1
        level = record.get("level")
        if level in ("error", "critical"):
            found[f"{level} {event}"] += 1
        elif level == "warning":
            found[f"warning {event.split(':')[0]}"] += 1
    return found


def log_problems(directory: Path) -> dict[str, list[str]]:
    """Per log file: its findings (see :func:`log_findings`), most frequent first."""
    found: dict[str, list[str]] = {}
    for log in sorted(directory.glob("*.log")):
        findings = log_findings(log.read_text(errors="replace").splitlines())
        if findings:
            listed = [f"{what} x{n}" for what, n in findings.most_common(LOG_KINDS)]
            if len(findings) > LOG_KINDS:
                listed.append(f"... {len(findings) - LOG_KINDS} more kinds")
            found[log.name] = listed
    return found


def render(report: Report) -> str:
    """The table printed at the end."""
    a = report.account
    lines = [
        "",
        f"chaos run: {report.seconds / 60:.1f} min in all; output in {report.directory}",
        "",
        f"  {'messages sent (202 or xnode send 0)':<50} {a.messages:>8}",
        f"  {'  of which via API / xnode send':<50} "
        f"{report.submissions.get('api', 0):>8} / {report.submissions.get('cli', 0)}",
    ]
    failures = {k: v for k, v in report.submissions.items() if k not in ("api", "cli")}
    for what, n in sorted(failures.items()):
        lines.append(f"  {'  not counted as sent, ' + what:<50} {n:>8}")
    lines += [
        f"  {'(message, recipient) pairs':<50} {a.pairs:>8}",
        f"  {'delivered + receipted':<50} {a.delivered:>8}",
        f"  {'received once on the local side':<50} {a.received_once:>8}",
        f"  {'duplicates to the local side (pairs/copies)':<50} "
        f"{a.duplicated:>8} / {a.extra_copies}",
        f"  {'lost (never received)':<50} {a.lost:>8}",
        f"  {'still open after the drain':<50} {a.still_open:>8}",
    ]
    for state, n in sorted(a.other_final.items()):
        lines.append(f"  {'final state ' + state:<50} {n:>8}")
    drained = f"{report.drained_in:.1f} s" if report.drained_in is not None else "NO (timeout)"
    lines += [
        f"  {'drained':<50} {drained:>8}",
        f"  {'delay submit -> received p50 / p99 / max':<50} "
        f"{percentile(a.delays, 0.5):>7.2f}s / {percentile(a.delays, 0.99):.2f}s / "
        f"{max(a.delays, default=0.0):.2f}s",
        f"  {'broker kills (restarted empty)':<50} {report.broker_kills:>8}",
        f"  {'node kills':<50} {sum(report.node_kills.values()):>8}  "
        + ", ".join(f"{n} {k}" for n, k in sorted(report.node_kills.items())),
    ]
    for node_id, reasons in report.quarantine.items():
        text = ", ".join(f"{r} {n}" for r, n in reasons.most_common()) or "-"
        lines.append(f"  {'quarantined at ' + node_id:<50} {sum(reasons.values()):>8}  {text}")
    for node_id, events in report.activity.items():
        per = events["published"] / max(1, events["submitted"] + events["receipt-sent"])
        lines.append(
            f"  {'audit at ' + node_id:<50} {events['submitted']:>8} submitted, "
            f"{events['published']} publications ({per:.1f} per message or receipt), "
            f"{events['duplicate']} duplicates discarded, {events['receipt-sent']} receipts sent"
        )
    for name, code in report.exit_codes.items():
        if code != 0:
            lines.append(f"  {name} exit status at the end: {code}")
    for what in report.not_back:
        lines.append(f"  node did not come back: {what}")
    for log, problems in report.log_problems.items():
        lines.append(f"  log {log}:")
        lines += [f"      {problem}" for problem in problems]
    if report.timeline:
        lines.append("  by minute of submission: pairs, received, delivered, max delay; faults")
    for w in report.timeline:
        faults = [
            what for at, what in report.faults_done if w.start <= at < w.start + WINDOW_SECONDS
        ]
        lines.append(
            f"    {w.start / 60:>4.0f}  {w.pairs:>6} {w.received:>6} {w.delivered:>6} "
            f"{w.max_delay:>8.1f}s  {', '.join(faults)}"
        )
    for label, pairs in (("lost", a.lost_pairs), ("duplicated", a.duplicated_pairs)):
        if pairs:
            lines.append(f"  {label} (first 10): " + ", ".join(f"{m}->{r}" for m, r in pairs[:10]))
    lines.append("")
    lines.append("RESULT: " + ("OK" if report.ok else "FAILED"))
    return "\n".join(lines)


def run(options: Options) -> Report:
    """One whole run; the processes are stopped (or killed) whatever happens."""
    directory = options.out or Path(tempfile.mkdtemp(prefix="xnode-chaos-"))
    directory.mkdir(parents=True, exist_ok=True)
    chaos = Chaos(options, directory)
    try:
        return chaos.run()
    finally:
        chaos.load_stop.set()
        for process in chaos.processes.values():
            if process.poll() is None:
                kill(process)
        chaos.broker.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the load")
    parser.add_argument("--nodes", type=int, choices=(2, 3), default=3)
    parser.add_argument("--rate", type=float, default=5.0, help="messages/s from each node")
    parser.add_argument("--seed", type=int, default=1, help="seed of the fault plan")
    parser.add_argument(
        "--fault-interval",
        type=float,
        default=30.0,
        help="mean seconds between faults (uniform, 0.5x to 1.5x)",
    )
    parser.add_argument(
        "--broker-share",
        type=float,
        default=0.5,
        help="probability that a fault kills the broker rather than a node",
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=180.0,
        help="longest wait after the load for every message to settle",
    )
    parser.add_argument(
        "--retry-initial", type=int, default=1, help="delivery.retry_initial_seconds of the nodes"
    )
    parser.add_argument(
        "--retry-max", type=int, default=3, help="delivery.retry_max_seconds of the nodes"
    )
    parser.add_argument("--out", type=Path, help="directory for logs and nodes (default: new)")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.minutes <= 0 or args.fault_interval <= 0:
        parser.error("--rate, --minutes and --fault-interval must be positive")
    options = Options(
        minutes=args.minutes,
        nodes=args.nodes,
        rate=args.rate,
        seed=args.seed,
        fault_interval=args.fault_interval,
        broker_share=args.broker_share,
        drain=args.drain,
        retry_initial=args.retry_initial,
        retry_max=args.retry_max,
        out=args.out,
    )
    report = run(options)
    print(render(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
