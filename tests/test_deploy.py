"""The files under deploy/ are checked by the tools that will read them in production."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from node.config import _SECTIONS, parse_config
from node.metrics import Metrics

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="Debian's prometheus package is not installed; .ci/run installs it"
)


def promtool(*args: str, cwd: Path = PROMETHEUS) -> str:
    result = subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


@needs_promtool
def test_prometheus_config_and_rules_are_valid(tmp_path: Path):
    # as installed: beside the rules, with each node's ops token file in place
    config = (PROMETHEUS / "prometheus.yml").read_text()
    for name in ("prometheus.yml", "xnode-alerts.yml"):
        shutil.copy(PROMETHEUS / name, tmp_path / name)
    token_files = re.findall(r"credentials_file: ([^\s}]+)", config)
    assert len(token_files) == 3
    for name in token_files:
        path = tmp_path / name
        path.write_text("xnt_0123456789ab_" + "A" * 43 + "\n")
    assert "SUCCESS" in promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert "SUCCESS: 21 rules found" in promtool("check", "rules", "xnode-alerts.yml")


@needs_promtool
def test_every_alert_fires_in_its_unit_test():
    assert "SUCCESS" in promtool("test", "rules", "xnode-alerts.test.yml")
    alerts = set(re.findall(r"- alert: (\w+)", (PROMETHEUS / "xnode-alerts.yml").read_text()))
    tested = set(
        re.findall(r"alertname: (\w+)", (PROMETHEUS / "xnode-alerts.test.yml").read_text())
    )
    assert alerts == tested and len(alerts) == 21


def dashboard_queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "xnode-dashboard.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path: Path):
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": q.replace("$instance", ".*")}
        for i, q in enumerate(dashboard_queries())
    ]}]}  # fmt: skip
    (tmp_path / "dashboard-rules.yml").write_text(json.dumps(rules))
    assert "SUCCESS" in promtool("check", "rules", "dashboard-rules.yml", cwd=tmp_path)


def test_rules_and_dashboard_use_only_exported_metrics():
    metrics = Metrics("zm-police")
    exported = {
        sample.name for family in metrics.registry.collect() for sample in family.samples
    } | {family.name for family in metrics.registry.collect()}
    # histogram series appear once observed; their names follow from the family
    exported |= {f"{n}_{s}" for n in exported for s in ("bucket", "count", "sum", "total")}
    exported |= {"up"}
    text = (PROMETHEUS / "xnode-alerts.yml").read_text() + "\n".join(dashboard_queries())
    used = set(re.findall(r"\b(xnode_[a-z_]+)", text)) | {"up"}
    assert used - exported == set()
    assert {"xnode_receipt_latency_seconds_bucket", "xnode_peer_last_seen_timestamp_seconds",
            "xnode_key_expiry_seconds", "xnode_consumer_lag"} <= used  # fmt: skip


def test_production_config_loads_and_names_every_setting():
    text = (DEPLOY / "node.production.toml").read_text()
    config = parse_config(text, {}, "node.production.toml")
    assert config.kafka.security_protocol == "SASL_SSL" and config.kafka.replication_factor == 3
    written = tomllib.loads(text)
    for section, cls in _SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert f.name in written.get(section, {}), f"{section}.{f.name} missing"
    for path in (DEPLOY / "kafka" / "nodes").glob("*.toml"):
        node = parse_config(path.read_text(), {}, path.name)
        assert node.kafka.sasl_username == node.node.id == path.stem


def test_shell_scripts_parse():
    for script in (DEPLOY / "kafka").glob("*.sh"):
        subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_make_certs_produces_a_chain_that_verifies(tmp_path: Path):
    work = tmp_path / "kafka"
    shutil.copytree(DEPLOY / "kafka", work)
    subprocess.run(["bash", str(work / "make-certs.sh"), "kafka.xchg.example.org"], check=True,
                   capture_output=True)  # fmt: skip
    secrets = work / "secrets"
    verified = subprocess.run(["openssl", "verify", "-CAfile", secrets / "ca.pem",
                               secrets / "broker.crt"], capture_output=True, text=True)  # fmt: skip
    assert verified.returncode == 0 and "OK" in verified.stdout
    assert "PRIVATE KEY" in (secrets / "broker.pem").read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_unit_is_valid(tmp_path: Path):
    unit = tmp_path / "xnode@zm-police.service"
    unit.write_text((DEPLOY / "systemd" / "xnode.service").read_text())
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True)  # fmt: skip
    problems = [line for line in result.stderr.splitlines()
                if line.strip() and "is not executable" not in line]  # fmt: skip
    assert problems == [], result.stderr


def test_example_node_config_gives_the_kafka_client_tls_and_scram(tmp_path: Path):
    """What deploy/kafka/nodes/zm-police.toml hands aiokafka: a TLS context trusting the
    cluster's CA (hostname checked) and SCRAM-SHA-512 credentials read from the node dir.
    (No TLS + SASL Kafka can run here; this checks everything up to the socket.)"""
    import ssl

    from node.service import kafka_settings

    work = tmp_path / "kafka"
    shutil.copytree(DEPLOY / "kafka", work)
    subprocess.run(["bash", str(work / "make-certs.sh"), "kafka.example.org"], check=True,
                   capture_output=True)  # fmt: skip
    node_dir = tmp_path / "zm-police"
    node_dir.mkdir()
    shutil.copy(work / "secrets" / "ca.pem", node_dir / "kafka-ca.pem")
    (node_dir / "kafka.password").write_text("password-printed-by-setup-principals\n")
    config = parse_config((DEPLOY / "kafka" / "nodes" / "zm-police.toml").read_text(), {})
    options = kafka_settings(config, node_dir).client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "zm-police"
    assert options["sasl_plain_password"] == "password-printed-by-setup-principals"
    context: ssl.SSLContext = options["ssl_context"]
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("commonName", "xnode regional Kafka CA"),),)]  # fmt: skip
