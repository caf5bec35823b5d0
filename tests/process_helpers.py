"""Helpers for tests (and benchmarks) that run xnode the way an operator does: separate OS
processes started with the `xnode` executable, a broker process that can be killed with SIGKILL
and restarted empty on the same port, node directories made with the CLI.

Nothing here imports the node's runtime; tests that use it see the node only from outside
(command line, store file, HTTP, Prometheus exposition).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from node.transport.broker import free_port

XNODE = [str(Path(sys.executable).parent / "xnode")]
EXAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "examples"


def xnode(*args: object, env: dict[str, str] | None = None, check: bool = True,
          timeout: float = 60) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run one `xnode` command to completion; with ``check``, fail on a non-zero exit."""
    result = subprocess.run(
        [*XNODE, *map(str, args)], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if check:
        assert result.returncode == 0, result.stderr
    return result


def spawn(*args: object, env: dict[str, str] | None = None, log: Path) -> subprocess.Popen[bytes]:
    """Start a long-running `xnode` command (run, broker) with its output in ``log``, in a
    process group of its own (so :func:`kill` takes any child with it, as a host crash would)."""
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [*XNODE, *map(str, args)], stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``predicate`` until true; return the seconds it took; fail after ``timeout``."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """SIGTERM and wait: the graceful stop an operator's service manager does."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(timeout)


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the process and its children (`xnode broker` runs the broker binary as a
    child): a crash, nothing gets to clean up."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


class BrokerProcess:
    """`xnode broker` as its own process on a fixed loopback port: killed with SIGKILL and
    started again, it comes back empty (the development broker keeps nothing)."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        log = self.directory / f"broker-{self.starts}.log"
        self.process = spawn("broker", "--port", self.port, log=log)
        wait_for(lambda: "listening on" in log.read_text(), 20, "the broker to listen")

    def kill(self) -> None:
        if self.process is not None:
            kill(self.process)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


def init_nodes(root: Path, specs: dict[str, str]) -> dict[str, Path]:
    """Create node directories with the CLI (``{node_id: role}``) and make each a peer of every
    other by exporting and adding descriptors, as operators do."""
    dirs = {node_id: root / node_id for node_id in specs}
    for node_id, role in specs.items():
        xnode("init", "--dir", dirs[node_id], "--id", node_id, "--roles", role)
        xnode("peers", "export", "--dir", dirs[node_id], "--out", root / f"{node_id}.xnd")
    for node_id, path in dirs.items():
        for other in specs:
            if other != node_id:
                xnode("peers", "add", "--dir", path, root / f"{other}.xnd", "--yes")
    return dirs


def node_env(bootstrap: str, **extra: str) -> dict[str, str]:
    """Settings for a test node process: short retries, an OS-chosen API port."""
    env = {
        "XNODE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "XNODE_DELIVERY_RETRY_INITIAL_SECONDS": "1",
        "XNODE_DELIVERY_RETRY_MAX_SECONDS": "3",
        "XNODE_DELIVERY_POLL_INTERVAL_MS": "100",
        "XNODE_API_PORT": "0",
    }
    env.update(extra)
    return env


def http(method: str, url: str, token: str | None = None, body: object = None,
         headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, Any]:  # fmt: skip
    """A plain urllib client: (status, parsed JSON body or text)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus text exposition (None if absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` matching ``labels`` (0 if none)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def read_store(path: Path, query: str, args: Iterable[object] = ()) -> list[tuple[Any, ...]]:
    """Read a node's SQLite store from outside its process (read-only, WAL-safe)."""
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return [tuple(r) for r in conn.execute(query, tuple(args)).fetchall()]
    finally:
        conn.close()
