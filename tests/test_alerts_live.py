"""The shipped alert rules evaluated by a real Prometheus against a real node.

promtool's unit tests (tests/test_deploy.py) prove each rule fires on synthetic series; they
cannot prove the node ever produces those series. Here everything runs as separate OS processes,
the way an operator meets it: the development broker as `xnode broker`, the node as `xnode run`,
and a `prometheus` server that scrapes the node every second and loads
deploy/prometheus/xnode-alerts.yml exactly as shipped (by its path, never a copy). Killing the
broker must turn XnodeBrokerDisconnected pending for that node — its `for: 5m` is too long to
wait for firing here, but pending shows the expression is true on real data — while /readyz
answers 503 with its reason; a broker started again clears both. That broker is empty: the
node counts the offsets it lost, and XnodeBrokerLostState must fire on those counts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from node.transport.broker import free_port
from tests.process_helpers import BrokerProcess, http, init_nodes, node_env, spawn, stop, wait_for

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "xnode-alerts.yml"
PROMETHEUS = shutil.which("prometheus")
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="Debian's prometheus package (prometheus) is not installed; .ci/run installs it",
)


class Prometheus:
    """A `prometheus` server process scraping one job every second, with the shipped rules."""

    def __init__(self, root: Path, targets: list[str]) -> None:
        assert PROMETHEUS is not None
        self.port = free_port()
        config = root / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "xnode", "static_configs": [{"targets": targets}]}],
        }))  # fmt: skip
        self.log = (root / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={root / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=self.log, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def api(self, path: str, **params: str) -> Any:
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}{query}"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def alerts(self, name: str, instance: str) -> list[dict[str, Any]]:
        """Active (pending or firing) alerts called ``name`` for ``instance``."""
        return [a for a in self.api("alerts")["alerts"]
                if a["labels"].get("alertname") == name
                and a["labels"].get("instance") == instance]  # fmt: skip

    def rule(self, name: str) -> dict[str, Any]:
        rules = [r for g in self.api("rules")["groups"] for r in g["rules"]
                 if r.get("name") == name]  # fmt: skip
        assert len(rules) == 1, rules
        rule: dict[str, Any] = rules[0]
        return rule

    def scraped(self, expr: str) -> list[str]:
        """Values of an instant query (empty until scraped, or while Prometheus starts)."""
        try:
            return [r["value"][1] for r in self.api("query", query=expr)["result"]]
        except OSError:
            return []

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[BrokerProcess, str, Prometheus]]:
    """A broker process, one `xnode run` process probing it every second (lost after 3 s
    without an answer), and Prometheus scraping the node."""
    broker = BrokerProcess(tmp_path)
    broker.start()
    node_dir = init_nodes(tmp_path, {"zm-police": "law-enforcement"})["zm-police"]
    port = free_port()
    env = node_env(broker.bootstrap, XNODE_API_PORT=str(port),
                   XNODE_DELIVERY_BROKER_CHECK_SECONDS="1",
                   XNODE_DELIVERY_BROKER_TIMEOUT_SECONDS="3",
                   XNODE_DELIVERY_HEARTBEAT_SECONDS="1")  # fmt: skip
    node = spawn("run", "--dir", node_dir, env=env, log=tmp_path / "zm-police.log")
    instance = f"127.0.0.1:{port}"
    prometheus = None
    try:
        wait_for(lambda: readyz(instance)[0] == 200, 60, "the node to be ready")
        prometheus = Prometheus(tmp_path, [instance])
        yield broker, instance, prometheus
    finally:
        if prometheus is not None:
            prometheus.close()
        stop(node)
        broker.stop()
    assert "Traceback" not in (tmp_path / "zm-police.log").read_text()


def evaluated(rule: dict[str, Any]) -> bool:
    """Has Prometheus evaluated the rule without error (the API says year 1 before that)?"""
    return rule["health"] == "ok" and not rule["lastEvaluation"].startswith("0001-")


def readyz(instance: str) -> tuple[int, Any]:
    try:
        return http("GET", f"http://{instance}/readyz", timeout=5)
    except OSError:
        return 0, None


@needs_prometheus
def test_a_real_prometheus_sees_the_broker_go_and_come_back(
    running: tuple[BrokerProcess, str, Prometheus], record_property: Callable[[str, object], None]
) -> None:
    broker, instance, prometheus = running
    selector = f'{{instance="{instance}"}}'
    wait_for(lambda: prometheus.scraped(f"xnode_broker_connected{selector}") == ["1"], 30,
             "Prometheus to scrape the connected node")  # fmt: skip
    rule = prometheus.rule("XnodeBrokerDisconnected")  # the shipped rule, loaded as it is
    assert rule["query"] == "xnode_broker_connected == 0" and rule["duration"] == 300
    assert rule["labels"] == {"severity": "critical"}
    wait_for(lambda: evaluated(prometheus.rule("XnodeBrokerDisconnected")), 10,
             "the rule to be evaluated")  # fmt: skip
    assert prometheus.rule("XnodeBrokerDisconnected")["state"] == "inactive"
    assert prometheus.alerts("XnodeBrokerDisconnected", instance) == []
    # No reset was ever counted: its series appear only with the first count (the case
    # XnodeBrokerLostState's second branch exists for; promtool's unit test pins that branch).
    assert prometheus.scraped(f"xnode_consumer_offset_resets_total{selector}") == []

    broker.kill()
    killed = time.monotonic()
    wait_for(lambda: prometheus.alerts("XnodeBrokerDisconnected", instance) != [], 30,
             "XnodeBrokerDisconnected to become active")  # fmt: skip
    to_pending = time.monotonic() - killed
    [alert] = prometheus.alerts("XnodeBrokerDisconnected", instance)
    assert alert["state"] == "pending" and alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["summary"] == f"xnode {instance} cannot reach Kafka"
    assert prometheus.rule("XnodeBrokerDisconnected")["state"] == "pending"
    status, body = readyz(instance)
    assert status == 503 and body["ready"] is False, body
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["broker"]["detail"].startswith(f"no answer from {broker.bootstrap}")
    assert all(c["ok"] for name, c in body["checks"].items() if name != "broker"), body

    restarted = time.monotonic()
    broker.start()  # on the same port, empty; returns once it listens
    broker_boot = time.monotonic() - restarted
    wait_for(lambda: prometheus.alerts("XnodeBrokerDisconnected", instance) == [], 30,
             "XnodeBrokerDisconnected to clear")  # fmt: skip
    to_inactive = time.monotonic() - restarted
    assert prometheus.rule("XnodeBrokerDisconnected")["state"] == "inactive"
    assert prometheus.scraped(f"xnode_broker_connected{selector}") == ["1"]
    wait_for(lambda: readyz(instance)[0] == 200, 30, "/readyz 200 again")
    assert readyz(instance)[1]["checks"]["broker"]["ok"] is True

    # The new broker holds none of the offsets the node committed (its heartbeats on the
    # control topic, read back every second): counted as committed-offset-lost.
    wait_for(lambda: any(a["state"] == "firing"
                         for a in prometheus.alerts("XnodeBrokerLostState", instance)), 45,
             "XnodeBrokerLostState to fire")  # fmt: skip
    to_lost_state = time.monotonic() - restarted
    # and every shipped rule evaluates on the node's real series without error (label matching)
    rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
    assert len(rules) == RULES.read_text().count("- alert: ")
    assert [r["name"] for r in rules if not evaluated(r)] == []
    figures = {"kill_to_pending_s": round(to_pending, 1),
               "restart_to_broker_listening_s": round(broker_boot, 1),
               "restart_to_inactive_s": round(to_inactive, 1),
               "restart_to_lost_state_firing_s": round(to_lost_state, 1)}  # fmt: skip
    record_property("alert_timings", figures)
    print(f"alert timings: {figures}")
