"""Metrics and logs of running nodes: what /metrics exposes, that promtool accepts it, that a
real Prometheus server scrapes it, and that a full run's logs hold no payload plaintext."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from node import submit
from node.compose import build_node
from node.service import Node
from node.transport.broker import free_port
from tests.runtime_helpers import case_update, create_nodes, eventually, node_env

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_prometheus = pytest.mark.skipif(
    PROMTOOL is None or PROMETHEUS is None,
    reason="Debian's prometheus package (promtool, prometheus) is not installed; .ci/run installs it",
)


def samples(text: str, name: str) -> dict[str, float]:
    """{label text: value} of one metric in the exposition format."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            series, _, value = line.rpartition(" ")
            found[series[len(name) :]] = float(value)
    return found


@pytest.fixture
async def two_nodes(tmp_path: Path, broker):
    dirs = create_nodes(tmp_path, {"zm-police": "law-enforcement", "zw-police": "law-enforcement"})
    env = node_env(broker.bootstrap_servers, XNODE_DELIVERY_HEARTBEAT_SECONDS="1")
    a, b = build_node(dirs["zm-police"], env=env), build_node(dirs["zw-police"], env=env)
    await a.start()
    await b.start()
    yield a, b
    await a.stop()
    await b.stop()


async def scrape(node: Node) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{node.api_url}/metrics") as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        return await r.text()


async def test_metrics_follow_a_message_and_the_heartbeats(two_nodes):
    a, b = two_nodes
    message_id = await a.submit(submit.Request(kind="mla", to=["zw-police"],
                                               payload=case_update(), schema="CaseUpdate"))  # fmt: skip

    async def delivered() -> bool:
        status = await a._run(a.store.message_status, message_id)
        return status[0].state == "delivered"

    await eventually(delivered, 20, "delivery")

    async def peer_seen() -> bool:
        text = await scrape(a)
        return samples(text, "xnode_peer_last_seen_timestamp_seconds").get(
            '{peer="zw-police"}', 0) > 0  # fmt: skip

    await eventually(peer_seen, 20, "a heartbeat from zw-police")
    sent, got = await scrape(a), await scrape(b)
    assert samples(sent, "xnode_messages_submitted_total") == {'{kind="mla"}': 1.0}
    assert samples(sent, "xnode_messages_delivered_total") == {'{kind="mla",peer="zw-police"}': 1.0}
    assert samples(got, "xnode_messages_received_total") == {'{kind="mla",peer="zm-police"}': 1.0}
    assert samples(sent, "xnode_receipt_latency_seconds_count") == {
        '{kind="mla",peer="zw-police"}': 1.0}  # fmt: skip
    assert samples(sent, "xnode_seal_duration_seconds_count")[""] == 1.0
    assert samples(got, "xnode_open_duration_seconds_count")[""] >= 1.0
    assert samples(sent, "xnode_outbox_depth") == {'{peer="zw-police"}': 0.0}
    assert samples(sent, "xnode_audit_chain_length")[""] >= 3  # submitted, published, receipted
    expiry = samples(sent, "xnode_key_expiry_seconds")
    assert sorted('owner="own"' in k for k in expiry) == [False, True]  # own key, peer's key
    assert all(300 * 86400 < v < 366 * 86400 for v in expiry.values())
    assert samples(sent, "xnode_broker_connected")[""] == 1.0
    assert any('topic="xchg.zm-police.receipt"' in k for k in samples(sent, "xnode_consumer_lag"))
    assert 'node="zm-police"' in sent and "xnode_build_info" in sent
    assert message_id not in sent + got  # never an id as a label


async def test_backlog_and_age_of_the_oldest_unreceipted_message(tmp_path: Path, broker):
    dirs = create_nodes(tmp_path, {"zm-police": "law-enforcement", "zw-police": "law-enforcement"})
    a = build_node(dirs["zm-police"], env=node_env(broker.bootstrap_servers))
    await a.start()  # zw-police is not running: nothing will be receipted
    try:
        for note in ("one", "two", "three"):
            await a.submit(submit.Request(kind="mla", to=["zw-police"], payload=case_update(note),
                                          schema="CaseUpdate"))  # fmt: skip
        await asyncio.sleep(1.1)
        text = await scrape(a)
        assert samples(text, "xnode_outbox_depth") == {'{peer="zw-police"}': 3.0}
        assert (
            samples(text, "xnode_outbox_oldest_unreceipted_age_seconds")['{peer="zw-police"}'] >= 1
        )
        assert samples(text, "xnode_peer_last_seen_timestamp_seconds") == {
            '{peer="zw-police"}': 0.0
        }
    finally:
        await a.stop()


@needs_prometheus
async def test_promtool_accepts_the_exposition(two_nodes):
    a, _ = two_nodes
    await a.submit(submit.Request(kind="mla", to=["zw-police"], payload=case_update(),
                                  schema="CaseUpdate"))  # fmt: skip
    text = await scrape(a)
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                            text=True, timeout=30)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", (
        result.stdout + result.stderr
    )


@needs_prometheus
async def test_a_real_prometheus_scrapes_two_nodes(two_nodes, tmp_path: Path):
    a, b = two_nodes
    port = free_port()
    config = tmp_path / "prometheus.yml"
    targets = [a.api_url.removeprefix("http://"), b.api_url.removeprefix("http://")]
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "xnode", "static_configs": [{"targets": targets}]}],
    }))  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}", stdout=asyncio.subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("wb"),
    )  # fmt: skip
    try:

        def query(expr: str) -> list[dict]:
            url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())["data"]["result"]

        async def both_scraped() -> bool:
            try:
                result = await asyncio.to_thread(query, "xnode_build_info")
            except OSError:
                return False
            return len(result) == 2

        await eventually(both_scraped, 60, "Prometheus to scrape both nodes")
        nodes = {r["metric"]["node"] for r in await asyncio.to_thread(query, "xnode_build_info")}
        assert nodes == {"zm-police", "zw-police"}
        up = await asyncio.to_thread(query, 'up{job="xnode"}')
        assert [r["value"][1] for r in up] == ["1", "1"]
    finally:
        process.terminate()
        await process.wait()


def test_logs_of_a_full_run_hold_no_payload_plaintext(tmp_path: Path):
    """Two `xnode run` processes at debug level exchange every worked example through the API;
    their complete logs must not contain any text of any payload, nor the tokens."""
    import datetime as dt

    from node.demo_network import Examples
    from tests.runtime_helpers import EXAMPLES
    from tests.test_processes import http_json, spawn, stop, wait_for, xnode

    broker_port = free_port()
    broker = spawn("broker", "--port", broker_port, log=tmp_path / "broker.log")
    zm, zw = tmp_path / "zm-secretariat", tmp_path / "zw-secretariat"
    try:
        wait_for(lambda: "listening on" in (tmp_path / "broker.log").read_text(), 15, "broker")
        for path, node_id in ((zm, "zm-secretariat"), (zw, "zw-secretariat")):
            xnode("init", "--dir", path, "--id", node_id, "--roles",
                  "secretariat,social-welfare,immigration")  # fmt: skip
            xnode("peers", "export", "--dir", path, "--out", tmp_path / f"{node_id}.xnd")
        xnode("peers", "add", "--dir", zm, tmp_path / "zw-secretariat.xnd", "--yes")
        xnode("peers", "add", "--dir", zw, tmp_path / "zm-secretariat.xnd", "--yes")
        token = xnode("token", "create", "--dir", zm, "--name", "all",
                      "--scopes", "send:*").stdout.strip()  # fmt: skip
        port = free_port()
        env = {"XNODE_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker_port}",
               "XNODE_DELIVERY_RETRY_INITIAL_SECONDS": "1"}  # fmt: skip
        a = spawn("run", "--dir", zm, "--log-level", "debug",
                  env={**env, "XNODE_API_PORT": str(port)}, log=tmp_path / "zm.log")  # fmt: skip
        b = spawn("run", "--dir", zw, "--log-level", "debug", env={**env, "XNODE_API_PORT": "0"},
                  log=tmp_path / "zw.log")  # fmt: skip
        api = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: _ready(api), 30, "node ready")
            index = json.loads((EXAMPLES / "index.json").read_text())
            dated = Examples(dt.datetime.now(dt.UTC))  # the examples, dated for today
            strings: set[str] = set()
            ids, refused = [], []
            from node.payloads import PROCEDURAL

            # erasure and forwarding records are sent by the node itself (tests/test_erasure*)
            sent = {f: e for f, e in index["examples"].items()
                    if e["kind"] != "receipt" and e["schema"] not in PROCEDURAL}  # fmt: skip
            for file, entry in sent.items():
                payload = dated(file)
                if "consent" in payload:
                    payload["consent"]["share_with_nodes"] = ["zw-secretariat"]
                _collect(payload, strings)
                status, body = http_json("POST", f"{api}/v1/messages", token, {
                    "kind": entry["kind"], "to": ["zw-secretariat"], "schema": entry["schema"],
                    "payload": payload, "ttl_seconds": 86400,
                    "procedure_override": "every example on a thread of its own"})  # fmt: skip
                if status == 202:
                    ids.append(body["id"])
                else:
                    refused.append((file, body))
            assert refused == [] and len(ids) == len(sent)
            wait_for(lambda: all(
                http_json("GET", f"{api}/v1/messages/{i}", token)[1]["status"] == "delivered"
                for i in ids), 60, "all delivered")  # fmt: skip
        finally:
            assert stop(a) == 0
            assert stop(b) == 0
    finally:
        stop(broker)
        for name in ("zm.log", "zw.log", "broker.log"):  # shown by pytest only on failure
            path = tmp_path / name
            print(f"--- {name}", path.read_text()[-3000:] if path.exists() else "(none)")
    logs = (tmp_path / "zm.log").read_text() + (tmp_path / "zw.log").read_text()
    for line in logs.splitlines():  # one JSON object per line, each naming its node and event
        entry = json.loads(line)
        assert entry["node"] in ("zm-secretariat", "zw-secretariat") and entry["event"], line
    assert "message_received" in logs  # the logs are really there
    leaked = sorted(s for s in strings if s in logs)
    assert leaked == [], f"payload text found in logs: {leaked[:5]}"
    secret = token.split("_", 2)[2]  # the secret itself may contain "_"
    assert token not in logs and secret not in logs


def _ready(api: str) -> bool:
    from tests.test_processes import http_json

    try:
        return http_json("GET", f"{api}/readyz")[0] == 200
    except OSError:
        return False


def _collect(value: object, into: set[str]) -> None:
    """Every distinctive string of a payload (codes and short words would match anything)."""
    if isinstance(value, dict):
        for v in value.values():
            _collect(v, into)
    elif isinstance(value, list):
        for v in value:
            _collect(v, into)
    elif isinstance(value, str) and len(value) >= 8 and " " in value:
        into.add(value)
    elif isinstance(value, str) and len(value) >= 8 and not value.isupper() and "-" not in value:
        into.add(value)
