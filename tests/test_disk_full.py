"""A full disk, the way it happens: the sender's node directory on a small tmpfs that fills up
while the node runs as its own `xnode run` process.

Required behaviour: new submissions are refused with 507 and a JSON reason (never a 500),
`/readyz` says why the node is not ready, `xnode_store_writable` is 0; every background loop
survives the failed transactions and resumes by itself once space is freed, and nothing that
was accepted with 202 is left behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from pathlib import Path

import pytest

from node.transport.broker import free_port
from tests.process_helpers import (
    EXAMPLES,
    BrokerProcess,
    http,
    init_nodes,
    metric,
    node_env,
    read_store,
    spawn,
    stop,
    wait_for,
    xnode,
)

PAYLOAD = json.loads((EXAMPLES / "case-update.json").read_text())


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs; skipped only where mounting is not permitted."""
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs",
                             str(mount)], capture_output=True, text=True)  # fmt: skip
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write a filler file until the file system says ENOSPC."""
    filler = directory / "filler.bin"
    chunk = b"\0" * 65536
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, chunk)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_refuses_new_work_and_resumes_when_space_returns(tmp_path, small_disk):
    broker = BrokerProcess(tmp_path)
    broker.start()
    dirs = init_nodes(tmp_path / "nodes", {"zm-police": "law-enforcement",
                                           "zw-police": "law-enforcement"})  # fmt: skip
    sender_dir = small_disk / "zm-police"  # the sender's whole node directory on the tmpfs
    subprocess.run(["cp", "-a", str(dirs["zm-police"]), str(sender_dir)], check=True)
    token = xnode("token", "create", "--dir", sender_dir, "--name", "case",
                  "--scopes", "send:*").stdout.strip()  # fmt: skip
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    sender = spawn("run", "--dir", sender_dir, log=tmp_path / "zm.log",
                   env=node_env(broker.bootstrap, XNODE_API_PORT=str(port)))  # fmt: skip
    receiver = None
    filler = None
    try:
        wait_for(lambda: _ready(api), 60, "the sender ready")

        def submit(i: int) -> tuple[int, dict]:
            return http("POST", f"{api}/v1/messages", token, {
                "kind": "mla", "to": ["zw-police"], "schema": "CaseUpdate",
                "payload": {**PAYLOAD, "note": f"case {i}: girls seen at Nakonde"},
            })  # fmt: skip

        accepted = []
        for i in range(20):  # accepted; the receiver is not running, so they wait for receipts
            status, body = submit(i)
            assert status == 202, body
            accepted.append(body["id"])

        filler = fill(small_disk)

        def not_ready() -> bool:
            status, body = http("GET", f"{api}/readyz")
            return status == 503 and body["checks"]["store"]["ok"] is False

        # nobody submits: the outbox publisher's own retries meet the full disk first (its
        # transaction fails), which used to end the publisher for good
        wait_for(not_ready, 30, "/readyz 503 for the store")
        status, body = submit(20)
        assert status == 507, body
        assert "no space left" in body["error"] and body["code"] == "store_unavailable"
        _, body = http("GET", f"{api}/readyz")
        assert "no space left" in body["checks"]["store"]["detail"]
        metrics = http("GET", f"{api}/metrics")[1]
        assert metric(metrics, "xnode_store_writable") == 0
        assert metric(metrics, "xnode_store_write_failures_total", cause="full") >= 1

        # the receiver comes up while the sender's disk is still full; the sender publishes
        # nothing it could not record, and everything it accepted is still in its outbox
        receiver = spawn("run", "--dir", dirs["zw-police"], log=tmp_path / "zw.log",
                         env=node_env(broker.bootstrap))  # fmt: skip
        wait_for(lambda: _ready(api) is False and _received(dirs["zw-police"]) >= 0, 5, "")

        filler.unlink()  # space returns; nobody restarts anything
        filler = None
        wait_for(lambda: _ready(api), 30, "/readyz 200 again")
        assert metric(http("GET", f"{api}/metrics")[1], "xnode_store_writable") == 1
        status, body = submit(99)
        assert status == 202, body
        accepted.append(body["id"])

        def all_delivered() -> bool:
            rows = read_store(sender_dir / "node.db",
                              "SELECT message_id, state FROM outbox_recipients")  # fmt: skip
            states = {m: s for m, s in rows}
            return all(states.get(m) == "delivered" for m in accepted)

        wait_for(all_delivered, 90, "every accepted message delivered")
        received = read_store(dirs["zw-police"] / "node.db", "SELECT message_id FROM inbox")
        assert sorted(r[0] for r in received) == sorted(accepted)  # once each, none lost
    finally:
        if filler is not None:
            with contextlib.suppress(OSError):
                filler.unlink()
        stop(sender)
        if receiver is not None:
            stop(receiver)
        broker.stop()
    log = (tmp_path / "zm.log").read_text()
    assert "Traceback" not in log and '"status": 500' not in log
    events = [json.loads(line).get("event") for line in log.splitlines() if line.startswith("{")]
    assert "store_not_writable" in events and "store_writable_again" in events


def _ready(api: str) -> bool:
    try:
        return http("GET", f"{api}/readyz", timeout=5)[0] == 200
    except OSError:
        return False


def _received(node_dir: Path) -> int:
    try:
        return int(read_store(node_dir / "node.db", "SELECT count(*) FROM inbox")[0][0])
    except Exception:
        return 0
