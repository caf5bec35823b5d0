"""Helpers for runtime tests: node directories wired to a broker, and waiting with a deadline."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path

from node.codec import default_registry
from node.nodedir import NodeDir
from node.service import Node

EXAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "examples"


def node_env(bootstrap: str, **extra: str) -> dict[str, str]:
    env = {
        "XNODE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "XNODE_DELIVERY_RETRY_INITIAL_SECONDS": "1",
        "XNODE_DELIVERY_RETRY_MAX_SECONDS": "3",
        "XNODE_DELIVERY_POLL_INTERVAL_MS": "100",
        "XNODE_API_PORT": "0",  # the OS picks a free port: several nodes share this machine
    }
    env.update(extra)
    return env


def create_nodes(root: Path, specs: dict[str, str]) -> dict[str, NodeDir]:
    """Create node directories and make every node a peer of every other."""
    registry = default_registry()
    now = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)  # keys valid for backdated tests
    dirs, signed = {}, {}
    for node_id, role in specs.items():
        dirs[node_id] = NodeDir(root / node_id)
        signed[node_id] = dirs[node_id].create(
            registry, node_id=node_id, roles=(role,), name=node_id, now=now, passphrase=None
        )
    for node_id, node_dir in dirs.items():
        for other, descriptor in signed.items():
            if other != node_id:
                node_dir.add_peer(registry, node_id, descriptor, now)
    return dirs


def example(name: str) -> dict:
    """A worked example with its dates moved to today (as the demo does), so that an alert's
    valid_until or an MLA deadline is not in the past on the day the tests run."""
    from node.demo_network import Examples

    return Examples(dt.datetime.now(dt.UTC))(name)


def case_update(note: str = "Suspect arrested in Lusaka.") -> dict:
    doc = example("case-update.json")
    doc["note"] = note
    return doc


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 30, what: str = ""
) -> None:
    """Poll ``check`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if await check():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


async def states(node: Node, message_id: str) -> dict[str, str]:
    return {s.recipient: s.state for s in await node._run(node.store.message_status, message_id)}
