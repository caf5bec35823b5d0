"""The broker killed (SIGKILL) and restarted empty while the nodes keep running.

Everything here runs as separate OS processes, the way an operator meets it: the development
broker as `xnode broker`, each node as `xnode run`; the test talks to the nodes only through
their HTTP API, their /metrics and /readyz, and by reading their store files. The nodes are
never restarted: their consumers keep positions and committed offsets that no longer exist on
the new, empty broker, which is exactly the case that used to skip records.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from node.transport.broker import free_port
from tests.process_helpers import (
    EXAMPLES,
    BrokerProcess,
    http,
    init_nodes,
    metric,
    metric_sum,
    node_env,
    read_store,
    spawn,
    stop,
    wait_for,
    xnode,
)

SPECS = {"zm-police": "law-enforcement", "zw-police": "law-enforcement"}
PAYLOAD = json.loads((EXAMPLES / "case-update.json").read_text())


class Network:
    """A broker process and two node processes, zm-police sending to zw-police."""

    def __init__(self, root: Path, retry: tuple[int, int] = (1, 3)) -> None:
        self.root = root
        self.broker = BrokerProcess(root)
        self.broker.start()
        self.dirs = init_nodes(root, SPECS)
        self.token = xnode("token", "create", "--dir", self.dirs["zm-police"], "--name", "case",
                           "--scopes", "send:*,admin").stdout.strip()  # fmt: skip
        self.ports = {node_id: free_port() for node_id in SPECS}
        self.processes = {
            node_id: spawn(
                "run",
                "--dir",
                path,
                env=node_env(
                    self.broker.bootstrap,
                    XNODE_API_PORT=str(self.ports[node_id]),
                    XNODE_DELIVERY_BROKER_CHECK_SECONDS="2",
                    XNODE_DELIVERY_BROKER_TIMEOUT_SECONDS="6",
                    XNODE_DELIVERY_RETRY_INITIAL_SECONDS=str(retry[0]),
                    XNODE_DELIVERY_RETRY_MAX_SECONDS=str(retry[1]),
                ),
                log=root / f"{node_id}.log",
            )
            for node_id, path in self.dirs.items()
        }
        wait_for(lambda: all(self.ready(n) for n in SPECS), 60, "both nodes ready")

    def api(self, node_id: str) -> str:
        return f"http://127.0.0.1:{self.ports[node_id]}"

    def ready(self, node_id: str) -> bool:
        try:
            return http("GET", f"{self.api(node_id)}/readyz", timeout=5)[0] == 200
        except OSError:
            return False

    def readyz(self, node_id: str) -> tuple[int, dict]:
        return http("GET", f"{self.api(node_id)}/readyz", timeout=5)

    def metrics(self, node_id: str) -> str:
        return http("GET", f"{self.api(node_id)}/metrics", timeout=5)[1]

    def send(self, count: int, label: str) -> list[str]:
        """Submit ``count`` messages through the sender's API; the ids it answered 202 with."""

        def one(i: int) -> str:
            payload = {**PAYLOAD, "note": f"{label} {i}: minibus seen at Chirundu"}
            status, body = http("POST", f"{self.api('zm-police')}/v1/messages", self.token, {
                "kind": "mla", "to": ["zw-police"], "schema": "CaseUpdate", "payload": payload,
            }, timeout=30)  # fmt: skip
            assert status == 202, body
            return str(body["id"])

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(one, range(count)))

    def states(self, ids: list[str]) -> Counter[str]:
        wanted = set(ids)
        rows = read_store(self.dirs["zm-police"] / "node.db",
                          "SELECT message_id, state FROM outbox_recipients")  # fmt: skip
        return Counter(state for message_id, state in rows if message_id in wanted)

    def handed_over(self) -> Counter[str]:
        """How often the receiver handed each message to its local side (audit: received)."""
        rows = read_store(self.dirs["zw-police"] / "node.db",
                          "SELECT message_id FROM audit WHERE event = 'received'")  # fmt: skip
        return Counter(r[0] for r in rows)

    def close(self) -> None:
        for process in self.processes.values():
            stop(process)
        self.broker.stop()


@pytest.fixture
def network(tmp_path):
    net = Network(tmp_path)
    yield net
    net.close()
    for node_id in SPECS:
        assert "Traceback" not in (tmp_path / f"{node_id}.log").read_text(), node_id


def outage_with_messages_in_flight(net: Network, warm_up: int, in_flight: int) -> None:
    """Deliver ``warm_up`` messages (so the receiver's positions are high), then kill the broker
    with ``in_flight`` messages submitted and not yet receipted, keep it down a few seconds,
    restart it empty; every message must reach the receiver's local side exactly once."""
    warm = net.send(warm_up, "before")
    wait_for(lambda: net.states(warm)["delivered"] == warm_up, 120, "the warm-up deliveries")

    flying = net.send(in_flight // 2, "in flight")
    net.broker.kill()
    open_at_kill = sum(n for s, n in net.states(flying).items() if s != "delivered")
    assert open_at_kill > 0, "nothing was in flight when the broker died"
    flying += net.send(in_flight - len(flying), "during the outage")  # the API still accepts
    time.sleep(4)  # an outage of several seconds, after connections were made
    net.broker.start()  # empty: no topics, no records, no committed offsets

    took = wait_for(lambda: net.states(flying)["delivered"] == in_flight,
                    30 if in_flight <= 200 else 600, "every in-flight message receipted")  # fmt: skip
    print(f"{in_flight} in flight ({open_at_kill} open at the kill): all receipted {took:.1f} s"
          " after the broker's return")  # fmt: skip
    handed = net.handed_over()
    assert {m: n for m, n in handed.items() if n != 1} == {}, "handed over more than once"
    assert set(warm + flying) <= set(handed), "lost on the way"
    inbox = read_store(net.dirs["zw-police"] / "node.db", "SELECT count(*) FROM inbox")[0][0]
    assert inbox == warm_up + in_flight
    # the rewind was measured and counted, and the lag reported honestly afterwards
    resets = metric_sum(net.metrics("zw-police"), "xnode_consumer_offset_resets_total")
    assert resets >= 1

    def caught_up() -> bool:
        return metric(net.metrics("zw-police"), "xnode_consumer_lag",
                      topic="xchg.zw-police.mla") == 0  # fmt: skip

    wait_for(caught_up, 30 if in_flight <= 200 else 600, "consumer lag 0")


def test_broker_restarted_empty_with_200_in_flight(network):
    outage_with_messages_in_flight(network, warm_up=150, in_flight=200)


@pytest.mark.slow
def test_broker_restarted_empty_with_10000_in_flight(tmp_path):
    # Re-publication waits as in production (from 5 s, doubling): with 10,000 open and a wait of
    # a few seconds, re-publications would outrun what one receiver can open and answer.
    net = Network(tmp_path, retry=(5, 120))
    try:
        outage_with_messages_in_flight(net, warm_up=300, in_flight=10_000)
    finally:
        net.close()


def test_readiness_and_broker_metric_follow_the_broker(network):
    """Within 15 s of losing the broker: not ready with a reason, metric 0; within 15 s of its
    return: ready, metric 1 — and the nodes were never restarted."""
    assert metric(network.metrics("zm-police"), "xnode_broker_connected") == 1
    network.broker.kill()
    lost = wait_for(lambda: network.readyz("zm-police")[0] == 503, 15, "/readyz 503")
    status, body = network.readyz("zm-police")
    assert status == 503 and body["checks"]["broker"]["ok"] is False
    assert "no answer from" in body["checks"]["broker"]["detail"]
    assert metric(network.metrics("zm-police"), "xnode_broker_connected") == 0
    network.broker.start()
    back = wait_for(lambda: network.readyz("zm-police")[0] == 200, 15, "/readyz 200 again")
    assert metric(network.metrics("zm-police"), "xnode_broker_connected") == 1
    print(f"not ready {lost:.1f} s after the kill, ready {back:.1f} s after the return")
    # the outage is three lines in the log, not a flood from the Kafka client
    time.sleep(1)
    lines = (network.root / "zm-police.log").read_text().splitlines()
    events = [json.loads(line).get("event", "") for line in lines if line.startswith("{")]
    assert events.count("broker_lost") == 1 and events.count("broker_back") == 1
    assert len(lines) < 60, "\n".join(lines[-60:])
