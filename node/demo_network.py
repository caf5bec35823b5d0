"""``xnode demo``: six agencies on the embedded broker, one scripted cross-border story.

Starts the development broker and six nodes in this process — the Lusaka and Harare
secretariats, Zambia Police, Zimbabwe Republic Police, a Johannesburg shelter and the SADC
Secretariat as a regional body — exchanges their descriptors, and plays: an urgent alert from
Zambia to its neighbours; an MLA request and its response; a TRM referral of a Zambian victim
from the shelter, with her consent recorded; a repatriation thread up to the handover at the
border; a smuggling alert found again by a phone number typed another way; and the two national
secretariats sending their quarterly anonymised statistics to the SADC regional body, which
writes its regional report. Each step waits for the signed receipt and prints it on a timeline.
Payloads are the worked examples in schemas/examples/, their dates moved to today. Ends by
itself; exit status 0 when every message was delivered and receipted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from node import audit, submit
from node.codec import SchemaRegistry, format_timestamp, parse_timestamp, schemas_directory
from node.compose import build_node
from node.nodedir import NodeDir
from node.service import Node
from node.stats.periods import last_complete
from node.stats.report import write_report
from node.stats.sample import sample_cases, to_csv
from node.transport.broker import EmbeddedBroker

AGENCIES = {
    "zm-secretariat": ("secretariat", "Zambia Anti-Human Trafficking Secretariat, Lusaka"),
    "zm-police": ("law-enforcement", "Zambia Police Service"),
    "zw-police": ("law-enforcement", "Zimbabwe Republic Police"),
    "za-shelter-johannesburg": ("shelter", "Place of Safety, Johannesburg"),
    "zw-secretariat": ("secretariat", "Zimbabwe Anti-Trafficking Secretariat, Harare"),
    "bw-sadc": ("regional-body", "SADC Secretariat, Gaborone (regional body)"),
}
# the regional body expects Malawi's release too: the report flags it as missing
EXPECTED_FROM = "zm-secretariat,zw-secretariat,mw-secretariat"
CASE_RECORDS = {"zm-secretariat": ("ZM", 420), "zw-secretariat": ("ZW", 260)}
NEIGHBOURS = {"zm-police": ("zw-police",)}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def shift_dates(value: Any, delta: dt.timedelta) -> Any:
    """Move every date and timestamp in a JSON document by ``delta`` (ages stay the same)."""
    if isinstance(value, dict):
        return {k: shift_dates(v, delta) for k, v in value.items()}
    if isinstance(value, list):
        return [shift_dates(v, delta) for v in value]
    if isinstance(value, str) and _STAMP.match(value):
        return format_timestamp(parse_timestamp(value, "$") + delta)
    if isinstance(value, str) and _DATE.match(value):
        return (dt.date.fromisoformat(value) + dt.timedelta(days=delta.days)).isoformat()
    return value


class Examples:
    """The worked examples, dated for today."""

    def __init__(self, now: dt.datetime) -> None:
        folder = schemas_directory() / "examples"
        index = json.loads((folder / "index.json").read_text("utf-8"))
        valid_at = parse_timestamp(index["valid_at"], "valid_at")
        self.delta = dt.timedelta(days=(now - valid_at).days + 1)
        self.folder = folder

    def __call__(self, name: str, **changes: Any) -> dict[str, Any]:
        doc = json.loads((self.folder / name).read_text("utf-8"))
        doc = shift_dates(doc, self.delta)
        doc.update(changes)
        return dict(doc)


class Timeline:
    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.t0 = time.monotonic()

    def line(self, text: str) -> None:
        self.say(f"  +{time.monotonic() - self.t0:6.2f}s  {text}")


async def run_network_demo(
    registry: SchemaRegistry, workdir: Path | None = None, say: Callable[[str], None] = print
) -> int:
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="xnode-demo-") as tmp:
            return await run_network_demo(registry, Path(tmp), say)
    broker = EmbeddedBroker(log_path=workdir / "broker.log")
    await broker.start()
    say(f"xnode demo: embedded broker on {broker.bootstrap_servers}; nodes in {workdir}\n")
    nodes: dict[str, Node] = {}
    try:
        nodes = await _start_nodes(registry, workdir, broker.bootstrap_servers, say)
        ok = await _scenario(nodes, Timeline(say), Examples(dt.datetime.now(dt.UTC)))
        for node_id, node in nodes.items():
            report = audit.verify(await node._run(node.store.audit_entries))
            state = "intact" if report.ok else f"BROKEN at {report.broken_at}"
            say(f"  audit log of {node_id:<24} {report.length:>3} entries, chain {state}")
            ok &= report.ok
        say("\nWhile it ran, each node served its local API, health checks and Prometheus metrics:")
        for node_id, node in nodes.items():
            totals = _metric_totals((await node.render_metrics()).decode())
            say(
                f"  {node_id:<24} {node.api_url}/metrics  receipted "
                f"{totals.get('xnode_messages_delivered_total', 0):.0f}, received "
                f"{totals.get('xnode_messages_received_total', 0):.0f}, quarantined "
                f"{totals.get('xnode_messages_quarantined_total', 0):.0f}"
            )
        say("(a node you run with `xnode run` serves them on [api] host:port, 127.0.0.1:8470)")
    finally:
        for node in nodes.values():
            await node.stop()
        await broker.stop()
    say("Node state stays in each node directory: xnode status / inbox / audit show --dir DIR.")
    say(f"\n{'demo finished: every message delivered and receipted' if ok else 'demo FAILED'}")
    return 0 if ok else 1


def _metric_totals(exposition: str) -> dict[str, float]:
    """Sum each counter over its labels, from the text a Prometheus scrape would read."""
    totals: dict[str, float] = {}
    for line in exposition.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        series, _, value = line.rpartition(" ")
        name = series.split("{", 1)[0]
        totals[name] = totals.get(name, 0.0) + float(value)
    return totals


async def _start_nodes(
    registry: SchemaRegistry, workdir: Path, bootstrap: str, say: Callable[[str], None]
) -> dict[str, Node]:
    now = dt.datetime.now(dt.UTC)
    dirs, signed = {}, {}
    for node_id, (role, name) in AGENCIES.items():
        dirs[node_id] = NodeDir(workdir / node_id)
        signed[node_id] = dirs[node_id].create(
            registry, node_id=node_id, roles=(role,), name=name, now=now, passphrase=None
        )
        say(f"  created {node_id:<24} {name}")
    for node_id, node_dir in dirs.items():
        for other, descriptor in signed.items():
            if other != node_id:
                node_dir.add_peer(registry, node_id, descriptor, now)
    say("  descriptors exchanged; starting the nodes\n")
    nodes = {}
    for node_id, node_dir in dirs.items():
        env = {
            "XNODE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "XNODE_DELIVERY_POLL_INTERVAL_MS": "50",
            "XNODE_DELIVERY_RETRY_INITIAL_SECONDS": "2",
            "XNODE_NODE_NEIGHBOURS": ",".join(NEIGHBOURS.get(node_id, ())),
            "XNODE_API_PORT": "0",  # a free port each; printed at the end
            "XNODE_STATISTICS_EXPECTED_FROM": EXPECTED_FROM if node_id == "bw-sadc" else "",
            "XNODE_STATISTICS_DUE_DAYS": "90",  # the last quarter is still on time today
        }
        nodes[node_id] = build_node(node_dir, registry=registry, env=env)
        await nodes[node_id].start()
    await asyncio.gather(*(n.connected.wait() for n in nodes.values()))
    return nodes


async def _receipted(node: Node, message_id: str, timeline: Timeline, started: float) -> bool:
    """Wait (30 s at most) for every recipient's signed receipt and print each."""
    deadline = started + 30
    while time.monotonic() < deadline:
        statuses = await node._run(node.store.message_status, message_id)
        if statuses and all(s.state in ("delivered", "rejected", "expired") for s in statuses):
            for s in statuses:
                detail = f" ({s.reason})" if s.reason else ""
                timeline.line(
                    f"    {s.recipient} stored it; signed receipt back: {s.state}{detail} "
                    f"after {time.monotonic() - started:.2f}s"
                )
            return all(s.state == "delivered" for s in statuses)
        await asyncio.sleep(0.05)
    timeline.line(f"    no receipt within 30 s for {message_id}")
    return False


async def _send(
    nodes: dict[str, Node],
    timeline: Timeline,
    sender: str,
    request: submit.Request,
    label: str,
) -> str | None:
    node = nodes[sender]
    started = time.monotonic()
    message_id = await node.submit(request)
    recipients = ", ".join(request.to) if not isinstance(request.to, str) else request.to
    timeline.line(f"{sender} -> {recipients}: {label}  [{request.kind}, {message_id[:13]}...]")
    return message_id if await _receipted(node, message_id, timeline, started) else None


async def _scenario(nodes: dict[str, Node], timeline: Timeline, ex: Examples) -> bool:
    sent: list[str | None] = []

    def req(
        kind: str, to: list[str] | str, doc: dict[str, Any], schema: str, **kw: Any
    ) -> submit.Request:
        return submit.Request(kind=kind, to=to, payload=doc, schema=schema, **kw)

    say = timeline.say
    say("1. Cross-border alert: two girls moving towards Beitbridge")
    sent.append(
        await _send(
            nodes,
            timeline,
            "zm-police",
            req("alert", "neighbours", ex("alert.json"), "Alert", priority="urgent"),
            "urgent Alert",
        )
    )

    say("\n2. Mutual legal assistance: mobile-money records from Harare")
    request_id = await _send(
        nodes,
        timeline,
        "zm-police",
        req("mla", ["zw-police"], ex("mla-request.json"), "MlaRequest"),
        "MlaRequest",
    )
    sent.append(request_id)
    if request_id:
        sent.append(
            await _send(
                nodes,
                timeline,
                "zw-police",
                req(
                    "mla",
                    ["zm-police"],
                    ex("mla-response.json", request_id=request_id),
                    "MlaResponse",
                    thread_id=request_id,
                    in_reply_to=request_id,
                ),
                "MlaResponse (partially executed)",
            )
        )

    say("\n3. Transnational referral of a Zambian survivor, with her consent")
    referred = {
        "org_Name": "Zambia Anti-Human Trafficking Secretariat",
        "org_Type": "CentralGovernmentOrganisation",
        "org_ShippingCountry": "ZM",
        "node_id": "zm-secretariat",
    }
    referral = ex("referral.json", cas_ReferredOrganisation=referred)
    referral["consent"]["share_with_nodes"] = ["zm-secretariat"]
    referral_id = await _send(
        nodes,
        timeline,
        "za-shelter-johannesburg",
        req("referral", ["zm-secretariat"], referral, "Referral"),
        "Referral",
    )
    sent.append(referral_id)
    if referral_id:
        sent.append(
            await _send(
                nodes,
                timeline,
                "zm-secretariat",
                req(
                    "referral",
                    ["za-shelter-johannesburg"],
                    ex("referral-response.json", referral_id=referral_id),
                    "ReferralResponse",
                    thread_id=referral_id,
                    in_reply_to=referral_id,
                ),
                "ReferralResponse (accepted)",
            )
        )

    say("\n4. Repatriation of a child, one thread from proposal to handover")
    proposal = ex("repatriation-1-proposal.json")
    proposal["consent"]["share_with_nodes"] = ["zm-secretariat"]
    thread = await _send(
        nodes,
        timeline,
        "za-shelter-johannesburg",
        req("repatriation", ["zm-secretariat"], proposal, "RepatriationProposal"),
        "proposal",
    )
    sent.append(thread)
    if thread:
        zm, za = "zm-secretariat", "za-shelter-johannesburg"
        steps = [
            (zm, "2-family-assessment", "RepatriationFamilyAssessment", "family assessment"),
            (zm, "3-risk-assessment", "RepatriationRiskAssessment", "risk assessment"),
            (zm, "4-approval", "RepatriationApproval", "approval by Zambia"),
            (za, "5-travel", "RepatriationTravelConfirmed", "travel confirmed"),
            (za, "6-handover", "RepatriationHandover", "handover at Chirundu"),
        ]
        for sender, step, schema, label in steps:
            file = f"repatriation-{step}.json"
            to = "za-shelter-johannesburg" if sender == "zm-secretariat" else "zm-secretariat"
            sent.append(
                await _send(
                    nodes,
                    timeline,
                    sender,
                    req("repatriation", [to], ex(file), schema, thread_id=thread),
                    label,
                )
            )
    sent.extend(await _smuggling(nodes, timeline, ex))
    sent.extend(await _statistics(nodes, timeline))
    say("")
    return all(sent)


async def _smuggling(nodes: dict[str, Node], timeline: Timeline, ex: Examples) -> list[str | None]:
    """A smuggling alert names a phone in E.164; an officer at the other end types it the way
    it was said on the phone, and finds the alert (docs/payloads.md)."""
    timeline.say("\n5. Migrant smuggling through Nakonde: the same phone, typed another way")
    alert = ex("alert-smuggling.json")
    message_id = await _send(
        nodes, timeline, "zm-police",
        submit.Request(kind="alert", to=["zw-police"], payload=alert, schema="Alert"),
        "Alert (MigrantSmuggling), naming phones, accounts and an agency",
    )  # fmt: skip
    if message_id is None:
        return [None]
    number = alert["phone_numbers"][0]["number"]  # +260 97 ... in the example
    # dialled from Zimbabwe: the international prefix 00, spaces as said on the phone
    typed = f"00 {number[1:4]} {number[4:6]} {number[6:9]} {number[9:]}"
    found = await nodes["zw-police"].inbox_items(0, ("alert",), 10, match=typed)
    names = ", ".join(item["payload"]["title"] for item in found) or "nothing"
    timeline.line(f"zw-police searches its inbox for {typed!r}: {names}")
    return [message_id if [item["id"] for item in found] == [message_id] else None]


async def _statistics(nodes: dict[str, Node], timeline: Timeline) -> list[str | None]:
    """Two national secretariats import their own (invented) case records and send the last
    quarter's anonymised release to SADC, which writes the regional report
    (docs/statistics.md)."""
    timeline.say("\n6. Quarterly statistics: two secretariats report to the SADC regional body")
    today = dt.datetime.now(dt.UTC).date()
    quarter = last_complete(today, "quarter")
    sent: list[str | None] = []
    for node_id, (country, count) in CASE_RECORDS.items():
        node = nodes[node_id]
        records = sample_cases(count, country, quarter.start, quarter.end, seed=len(node_id))
        counts = await node.statistics.import_cases(to_csv(records), "text/csv",
                                                    replace_all=True, source="demo")  # fmt: skip
        timeline.line(f"{node_id} imports {counts['added']} local case records (they stay there)")
        started = time.monotonic()
        made = await node.statistics.send(quarter, ["bw-sadc"])
        timeline.line(
            f"{node_id} -> bw-sadc: StatisticsRelease {quarter.code}, {made['cells']} cells, "
            f"{made['suppressed']} suppressed  [statistics, {made['message_id'][:13]}...]"
        )
        ok = await _receipted(node, made["message_id"], timeline, started)
        sent.append(made["message_id"] if ok else None)
    sadc = nodes["bw-sadc"]
    data = await sadc.statistics.roll_up([quarter])
    victims = data.total("victims_detected", quarter)
    shown = "unknown" if victims is None else (
        str(victims.value) if victims.value is not None else f"at least {victims.at_least}"
    )  # fmt: skip
    received = sum(s.received is not None for s in data.submissions)
    timeline.line(f"bw-sadc combines {received} national releases: {shown} detected victims "
                  f"in {quarter.code} (the sum of what each country published)")  # fmt: skip
    for s in data.submissions:
        timeline.line(f"    {s.issuer:<16} {quarter.code}: {s.status}")
    path = sadc.node_dir.path / f"regional-report-{quarter.code}.html"
    await asyncio.to_thread(
        write_report, data, path, title=f"SADC regional report, {quarter.code}",
        language="en", generated_at=dt.datetime.now(dt.UTC),
        threshold=sadc.config.statistics.threshold,
    )  # fmt: skip
    timeline.line(f"bw-sadc writes its regional report: {path.name}")
    return sent
