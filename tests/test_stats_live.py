"""Statistics end to end between `xnode run` processes, the way a region runs them: two national
secretariats and a police agency import their own (invented) case records through the API,
release the quarter up the chain, and the SADC regional body reports on what it received.
Faults and bad actors as they happen: a file with a bad row imports nothing, an agency cannot
report abroad, the privacy budget runs out, a member with a valid key slips a small count and a
total that does not add up into a release (refused by the receiver with a negative receipt), a
corrected release replaces the first with both in the audit."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from node import envelope, validation
from node.codec import default_registry
from node.nodedir import NodeDir
from node.stats import release
from node.stats.indicators import Inputs, compute_all
from node.stats.model import TOTAL, Method
from node.stats.periods import parse_period
from node.stats.sample import sample_cases, to_csv
from node.transport.broker import free_port
from tests.process_helpers import (
    BrokerProcess,
    http,
    init_nodes,
    node_env,
    read_store,
    spawn,
    stop,
    wait_for,
    xnode,
)

pytestmark = pytest.mark.slow
REGISTRY = default_registry()
Q3 = parse_period("2026-Q3")
NODES = {"zm-secretariat": "secretariat", "zw-secretariat": "secretariat",
         "zm-police": "law-enforcement", "bw-sadc": "regional-body"}  # fmt: skip


def _upload(url: str, token: str, body: bytes, media: str) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("Content-Type", media)
    req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _get(url: str, token: str) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url)
    req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=60) as response:
        return response.status, response.read(), response.headers["Content-Type"]


class Region:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.broker = BrokerProcess(root)
        self.broker.start()
        self.dirs = init_nodes(root, NODES)
        self.tokens = {n: xnode("token", "create", "--dir", d, "--name", "case-system",
                                "--scopes", "send:*,read:*,admin").stdout.strip()
                       for n, d in self.dirs.items()}  # fmt: skip
        self.ports = {n: free_port() for n in NODES}
        self.procs = {}
        for node_id, path in self.dirs.items():
            env = node_env(self.broker.bootstrap, XNODE_API_PORT=str(self.ports[node_id]))
            if node_id == "bw-sadc":
                env["XNODE_STATISTICS_EXPECTED_FROM"] = (
                    "zm-secretariat,zw-secretariat,mw-secretariat"
                )
            self.procs[node_id] = spawn("run", "--dir", path, env=env,
                                        log=root / f"{node_id}.log")  # fmt: skip
        wait_for(lambda: all(self.ready(n) for n in NODES), 90, "every node ready")

    def api(self, node_id: str) -> str:
        return f"http://127.0.0.1:{self.ports[node_id]}"

    def ready(self, node_id: str) -> bool:
        try:
            return http("GET", f"{self.api(node_id)}/readyz", timeout=5)[0] == 200
        except OSError:
            return False

    def call(self, node_id: str, method: str, path: str, body: object = None) -> tuple[int, Any]:
        return http(method, self.api(node_id) + path, self.tokens[node_id], body)

    def delivered(self, node_id: str, message_id: str) -> bool:
        return self.call(node_id, "GET", f"/v1/messages/{message_id}")[1]["status"] == "delivered"

    def audit(self, node_id: str, event: str) -> list[dict[str, Any]]:
        rows = read_store(self.dirs[node_id] / "node.db",
                          "SELECT detail, peer FROM audit WHERE event = ? ORDER BY seq", (event,))  # fmt: skip
        return [{**json.loads(d), "peer": p} for d, p in rows]

    def close(self) -> None:
        for proc in self.procs.values():
            stop(proc)
        self.broker.stop()


def _hostile_release(region: Region, mutate: Any) -> bytes:
    """A release zw-secretariat's own key signs, built by software that skips the checks."""
    node_dir = NodeDir(region.dirs["zw-secretariat"])
    keys = node_dir.load_keys(REGISTRY, None)
    peers = node_dir.peers(REGISTRY)
    records = sample_cases(400, "ZW", Q3.start, Q3.end, seed=99)
    tables = compute_all(Inputs(records), Q3, ["smuggled_migrants"])
    made = release.make_release(tables, Q3, Method(5), coverage="National", area="ZW")
    payload = release.to_payload(made, release.default_handling("TraffickingInPersonsProtocol"))
    mutate(payload, tables[0].cube())
    now = dt.datetime.now(dt.UTC)
    original = validation.check
    validation.check = lambda *a, **k: None  # type: ignore[assignment]
    try:
        sealed = envelope.seal(
            REGISTRY, identity=keys.identity, sender_id="zw-secretariat", kind="statistics",
            schema_name="StatisticsRelease",
            payload=REGISTRY.from_json("xnode.payload.StatisticsRelease", payload),
            recipients=[peers["bw-sadc"].descriptor], now=now,
            expires_at=now + dt.timedelta(days=2),
        )  # fmt: skip
    finally:
        validation.check = original  # type: ignore[assignment]
    return sealed.data


def _small_cell(payload: dict[str, Any], cube: dict[tuple[str, ...], int]) -> None:
    cells = payload["tables"][0]["cells"]
    cell = next(c for c in cells if c["value"] is None and 0 < cube[tuple(c["codes"])] < 5)
    cell["value"] = cube[tuple(cell["codes"])]


def _bad_total(payload: dict[str, Any], cube: dict[tuple[str, ...], int]) -> None:
    # a grand total of 0 beside published positive counts: whatever the suppressed cells hold,
    # it cannot add up
    total = next(c for c in payload["tables"][0]["cells"] if c["codes"] == [TOTAL, TOTAL])
    total["value"] = 0


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    import asyncio

    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 * 1024 * 1024)
        await producer.start()
        try:
            for value in values:
                await producer.send_and_wait(topic, value)
        finally:
            await producer.stop()

    asyncio.run(run())


def test_a_region_reports_statistics_up_the_chain(tmp_path: Path) -> None:
    region = Region(tmp_path)
    try:
        _run(region)
    finally:
        region.close()


def _run(r: Region) -> None:
    zm_cases = sample_cases(700, "ZM", Q3.start, Q3.end, seed=1)
    zw_cases = sample_cases(450, "ZW", Q3.start, Q3.end, seed=2)
    police_cases = sample_cases(120, "ZM", Q3.start, Q3.end, seed=3)

    # 1. a file with one bad row imports nothing, and says where
    text = to_csv(zm_cases)
    bad = text + "ZM-late,Victim,2099-01-01,Feminine,15,ZM,,,,,,,\n"
    status, body = _upload(f"{r.api('zm-secretariat')}/v1/cases", r.tokens["zm-secretariat"],
                           bad.encode(), "text/csv")  # fmt: skip
    assert status == 422, body
    assert body["field"] == f"line {len(zm_cases) + 2}.identified_on"
    assert body["errors"] == [{"where": f"line {len(zm_cases) + 2}", "field": "identified_on",
                               "message": "2099-01-01 is in the future"}]  # fmt: skip
    status, raw = r.call("zm-secretariat", "GET", "/v1/statistics/2026-Q3?raw=true")
    victims = next(t for t in raw["tables"] if t["indicator"] == "victims_detected")
    assert next(c["value"] for c in victims["cells"] if c["codes"] == [TOTAL] * 3) == 0

    # 2. the good files: CSV at Lusaka and at Zambia Police, JSON at Harare
    for node_id, records in (("zm-secretariat", zm_cases), ("zm-police", police_cases)):
        status, body = _upload(f"{r.api(node_id)}/v1/cases", r.tokens[node_id],
                               to_csv(records).encode(), "text/csv")  # fmt: skip
        assert (status, body["added"], body["total"]) == (200, len(records), len(records))
    rows = list(csv.DictReader(io.StringIO(to_csv(zw_cases))))
    rows = [{k: v for k, v in row.items() if v} for row in rows]
    status, body = _upload(f"{r.api('zw-secretariat')}/v1/cases", r.tokens["zw-secretariat"],
                           json.dumps({"cases": rows}).encode(), "application/json")  # fmt: skip
    assert (status, body["added"]) == (200, len(zw_cases))

    # 3. an agency reports to its own secretariat, not abroad
    status, body = r.call("zm-police", "POST", "/v1/statistics-releases",
                          {"period": "2026-Q3", "to": ["zw-secretariat"]})  # fmt: skip
    assert status == 422 and body["field"] == "payload.coverage", body
    status, police = r.call("zm-police", "POST", "/v1/statistics-releases", {"period": "2026-Q3"})
    assert status == 202 and police["to"] == ["zm-secretariat"], police
    status, body = r.call("zm-police", "POST", "/v1/statistics-releases", {"period": "2026-Q2",
                          "to": ["bw-sadc"]})  # fmt: skip
    assert status == 403 and body["field"] == "to", body  # policy: agencies -> secretariat

    # 4. the secretariats release the quarter to the regional body (Harare with noise)
    status, zm = r.call("zm-secretariat", "POST", "/v1/statistics-releases", {"period": "2026-Q3"})
    assert status == 202 and zm["to"] == ["bw-sadc"] and zm["replaces"] is None, zm
    status, zw = r.call("zw-secretariat", "POST", "/v1/statistics-releases",
                        {"period": "2026-Q3", "epsilon": 1.0})  # fmt: skip
    assert status == 202 and zw["budget_remaining"] == pytest.approx(2.0), zw
    status, body = r.call("zw-secretariat", "POST", "/v1/statistics-releases",
                          {"period": "2026-Q3", "epsilon": 2.5})  # fmt: skip
    assert status == 422 and "privacy budget spent" in body["error"], body
    status, body = r.call(
        "zm-secretariat", "POST", "/v1/statistics-releases", {"period": "2026-07"}
    )
    assert status == 422 and "releases by quarter" in body["error"], body
    for node_id, sent in (("zm-police", police), ("zm-secretariat", zm), ("zw-secretariat", zw)):
        wait_for(
            lambda n=node_id, m=sent["message_id"]: r.delivered(n, m), 60, f"{node_id} release"
        )

    # 5. a member with a valid key behaving badly: refused by the receiver, with a reason
    _produce(r.broker.bootstrap, "xchg.bw-sadc.statistics",
             [_hostile_release(r, _small_cell), _hostile_release(r, _bad_total)])  # fmt: skip

    def refused() -> list[tuple[Any, ...]]:
        return read_store(r.dirs["bw-sadc"] / "node.db",
                          "SELECT reason FROM dedupe WHERE sender = 'zw-secretariat' AND"
                          " outcome = 'rejected'")  # fmt: skip

    wait_for(lambda: len(refused()) == 2, 60, "both hostile releases refused")
    text = json.dumps(read_store(r.dirs["bw-sadc"] / "node.db",
                                 "SELECT reason, detail FROM quarantine WHERE sender = ?",
                                 ("zw-secretariat",)))  # fmt: skip
    assert "below-threshold" in text and "inconsistent" in text, text

    # 6. a corrected release replaces the first; both stay in the audit
    status, again = r.call(
        "zm-secretariat", "POST", "/v1/statistics-releases", {"period": "2026-Q3"}
    )
    assert status == 202 and again["replaces"] == zm["release_id"], again
    wait_for(lambda: r.delivered("zm-secretariat", again["message_id"]), 60, "the correction")
    received = [
        e for e in r.audit("bw-sadc", "statistics-received") if e["peer"] == "zm-secretariat"
    ]
    assert [(e["release_id"], e["replaces"]) for e in received] == [
        (zm["release_id"], None), (again["release_id"], zm["release_id"])]  # fmt: skip

    # 7. the regional report: what each country published, the sum, who is missing
    token = r.tokens["bw-sadc"]
    status, html, media = _get(f"{r.api('bw-sadc')}/v1/statistics-report?periods=2026-Q3", token)
    page = html.decode()
    assert status == 200 and media.startswith("text/html")
    for name in ("zm-secretariat", "zw-secretariat", "mw-secretariat"):
        assert name in page
    assert "<script" not in page and "<svg" in page
    status, data, media = _get(
        f"{r.api('bw-sadc')}/v1/statistics-report?periods=2026-Q3&format=csv", token)  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    own = r.call("zm-secretariat", "GET", "/v1/statistics/2026-Q3")[1]
    published = next(c["value"] for t in own["tables"] if t["indicator"] == "victims_detected"
                      for c in t["cells"] if c["codes"] == [TOTAL] * 3)  # fmt: skip
    zm_total = [row for row in rows if row["SERIES"] == "VC_HTF_DETV" and row["ISSUER"] ==
                "zm-secretariat" and row["SEX"] == "_T" and row["AGE"] == "_T"]  # fmt: skip
    assert [int(row["OBS_VALUE"]) for row in zm_total] == [published]
    status, pdf, media = _get(
        f"{r.api('bw-sadc')}/v1/statistics-report?periods=2026-Q3&format=pdf", token)  # fmt: skip
    assert pdf.startswith(b"%PDF") and media == "application/pdf"
    # the police release reached its secretariat, which reports on it as well
    status, html, _ = _get(f"{r.api('zm-secretariat')}/v1/statistics-report?periods=2026-Q3",
                           r.tokens["zm-secretariat"])  # fmt: skip
    assert "zm-police" in html.decode()

    # 8. the CLI on the regional body's directory reads the same (the node still running)
    out = tmp = r.root / "sadc-q3.html"
    expected = {"XNODE_STATISTICS_EXPECTED_FROM": "zm-secretariat,zw-secretariat,mw-secretariat"}
    result = xnode("stats", "report", "--dir", r.dirs["bw-sadc"], "2026-Q3", "--output", out,
                   env=expected)  # fmt: skip
    assert "mw-secretariat: 2026-Q3 missing" in result.stdout, result.stdout
    assert tmp.stat().st_mode & 0o777 == 0o600
    listed = xnode("stats", "releases", "--dir", r.dirs["bw-sadc"], "--received", "--json")
    assert len(json.loads(listed.stdout)) == 3  # zm twice, zw once; the hostile ones never

    # nothing of a case record left its node: no case id in any other node's store or log
    for node_id in ("bw-sadc", "zw-secretariat"):
        blob = (r.dirs[node_id] / "node.db").read_bytes() + (r.root / f"{node_id}.log").read_bytes()
        assert zm_cases[0].case_id.encode() not in blob
