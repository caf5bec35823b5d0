"""How long a new trust list takes to reach every node of a federation.

Starts the embedded broker and N nodes (default 20) in this process, all pinned to version 1 of a
federation list (2 of 3 governors), waits until every node knows every other from the control
topic, then installs version 2 on one node and measures the time until all N apply it — the
path `xnode trust publish` takes in production. Also reports how long the members took to learn
each other's keys at the start. Nodes share one process and one CPU here, so the figures are an
upper bound for separate machines. Run: ``python bench/trustlist_spread.py [--nodes 20]
[--heartbeat 1]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node import trustlist
from node.codec import default_registry
from node.compose import build_node
from node.crypto.keys import IdentityKey
from node.logging import configure as configure_logging
from node.nodedir import NodeDir
from node.transport.broker import EmbeddedBroker
from node.trustlist import Governor, Member, TrustList


async def wait_until(check, timeout: float) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise TimeoutError
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def run(n: int, heartbeat: int) -> None:
    registry = default_registry()
    now = dt.datetime.now(dt.UTC)
    governors = [IdentityKey.generate() for _ in range(3)]
    gov = tuple(Governor(f"governor {i}", g.public_raw) for i, g in enumerate(governors))
    with tempfile.TemporaryDirectory(prefix="xnode-spread-") as tmp:
        dirs = []
        for i in range(n):
            node_dir = NodeDir(Path(tmp) / f"n{i}")
            node_dir.create(registry, node_id=f"zm-agency-{i:03d}", roles=("law-enforcement",),
                            name=f"Agency {i}", now=now, passphrase=None)  # fmt: skip
            dirs.append(node_dir)
        members = tuple(
            Member(d.node_id, d.country, d.roles, d.display_name, d.identity_key, "active", now)
            for d in (nd.own_descriptor(registry).descriptor for nd in dirs)
        )
        v1 = TrustList("bench", 1, now, now + dt.timedelta(days=30), 2, gov, members)

        def sign(t: TrustList) -> trustlist.SignedTrustList:
            s = trustlist.prepare(registry, t)
            for g in governors[:2]:
                s = trustlist.add_signature(s, g)
            return s

        signed = sign(v1)
        for node_dir in dirs:
            node_dir.save_trust_list(registry, signed)
        broker = EmbeddedBroker()
        await broker.start()
        env = {"XNODE_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "XNODE_API_ENABLED":
               "false", "XNODE_DELIVERY_HEARTBEAT_SECONDS": str(heartbeat)}  # fmt: skip
        nodes = [build_node(d, registry=registry, env=env) for d in dirs]
        try:
            started = time.monotonic()
            for node in nodes:
                await node.start()
            await asyncio.gather(*(node.connected.wait() for node in nodes))
            print(f"{n} nodes started and connected in {time.monotonic() - started:.1f} s")
            met = await wait_until(lambda: all(len(x.peers) == n - 1 for x in nodes), 300)
            print(f"every node knows the {n - 1} others from the control topic after {met:.1f} s")
            v2 = trustlist.next_version(v1, "renewed", dt.datetime.now(dt.UTC),
                                        dt.timedelta(days=30))  # fmt: skip
            dirs[0].save_trust_list(registry, sign(v2))  # what `xnode trust publish` does
            spread = await wait_until(
                lambda: all(x.trust_list is not None and x.trust_list.trust_list.list_version == 2
                            for x in nodes), 300)  # fmt: skip
            print(f"version 2 published on one node, applied by all {n} after {spread:.1f} s "
                  f"(heartbeat {heartbeat} s, peer reload every 5 s)")  # fmt: skip
        finally:
            for node in nodes:
                await node.stop()
            await broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--heartbeat", type=int, default=1, help="delivery.heartbeat_seconds")
    args = parser.parse_args()
    configure_logging("console", "error")
    asyncio.run(run(args.nodes, args.heartbeat))


if __name__ == "__main__":
    main()
