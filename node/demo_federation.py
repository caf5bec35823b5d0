"""``xnode demo --federation``: a region run by a trust list, on the embedded broker.

Three governing bodies (the regional secretariat and two national secretariats) found the
federation with two police services as members; the members never swap a file, they learn each
other's keys from the control topic and exchange an alert. Malawi Police joins when two of the
three governors sign the next version, and exchanges an MLA request with a member it never met.
Then the stolen-key drill: Malawi's key is reported stolen, the governors revoke it, and the
thief's next message is refused by every member. Ends by itself; exit status 0 when every step
behaved as required.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from node import member_requests, submit, trustlist
from node.codec import SchemaRegistry
from node.compose import build_node
from node.crypto.keys import IdentityKey
from node.demo_network import Examples, Timeline, _send
from node.nodedir import NodeDir
from node.service import Node
from node.transport.broker import EmbeddedBroker
from node.trustlist import Governor, Member, SignedTrustList, TrustList

GOVERNORS = {
    "bw-secretariat": "SADC Secretariat, Gaborone",
    "zm-secretariat": "Zambia Anti-Human Trafficking Secretariat",
    "zw-secretariat": "Zimbabwe Anti-Trafficking Inter-Ministerial Committee",
}
MEMBERS = {
    "zm-police": "Zambia Police Service",
    "zw-police": "Zimbabwe Republic Police",
    "mw-police": "Malawi Police Service",
}
FEDERATION = "sadc-tip"


async def run_federation_demo(
    registry: SchemaRegistry, workdir: Path | None = None, say: Callable[[str], None] = print
) -> int:
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="xnode-federation-") as tmp:
            return await run_federation_demo(registry, Path(tmp), say)
    say(f"xnode demo --federation in {workdir}\n")
    broker = EmbeddedBroker()
    await broker.start()
    nodes: dict[str, Node] = {}
    try:
        ok = await _story(registry, workdir, broker.bootstrap_servers, nodes, say)
    finally:
        for node in nodes.values():
            await node.stop()
        await broker.stop()
    say(f"\n{'demo finished: every step behaved as required' if ok else 'demo FAILED'}")
    return 0 if ok else 1


async def _story(registry: SchemaRegistry, workdir: Path, bootstrap: str,
                 nodes: dict[str, Node], say: Callable[[str], None]) -> bool:  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    governors: dict[str, IdentityKey] = {}
    for node_id, name in GOVERNORS.items():
        node_dir = NodeDir(workdir / node_id)
        node_dir.create(registry, node_id=node_id, roles=("secretariat",), name=name, now=now,
                        passphrase=None)  # fmt: skip
        governors[node_id] = node_dir.load_keys(registry, None).identity
    dirs = {}
    for node_id, name in MEMBERS.items():
        dirs[node_id] = NodeDir(workdir / node_id)
        dirs[node_id].create(registry, node_id=node_id, roles=("law-enforcement",), name=name,
                             now=now, passphrase=None)  # fmt: skip

    def member(node_id: str, status: str = "active", reason: str | None = None) -> Member:
        d = dirs[node_id].own_descriptor(registry).descriptor
        return Member(node_id, d.country, d.roles, d.display_name, d.identity_key, status,
                      dt.datetime.now(dt.UTC), reason)  # fmt: skip

    def sign(t: TrustList, *by: str) -> SignedTrustList:
        signed = trustlist.prepare(registry, t)
        for name in by:
            signed = trustlist.add_signature(signed, governors[name])
        return signed

    say("1. Three governing bodies found the federation (2 of 3 must sign every version)")
    v1 = TrustList(
        FEDERATION, 1, now, now + dt.timedelta(days=90), 2,
        tuple(Governor(GOVERNORS[g], governors[g].public_raw) for g in GOVERNORS),
        (member("zm-police"), member("zw-police")),
        (trustlist.ListChange(1, now, "federation founded"),),
    )  # fmt: skip
    signed = sign(v1, "bw-secretariat", "zm-secretariat")
    pin = trustlist.governance_fingerprint(v1)
    say(f"   governance fingerprint, compared by phone once per member: {pin[:29]}...")
    for node_id in ("zm-police", "zw-police"):
        trustlist.decide(None, signed, dt.datetime.now(dt.UTC), pinned=pin)
        dirs[node_id].save_trust_list(registry, signed)
        nodes[node_id] = await _start(dirs[node_id], registry, bootstrap)
    ok = await _until(lambda: _knows(nodes, "zm-police", "zw-police")
                      and _knows(nodes, "zw-police", "zm-police"),
                      "members learn each other's keys from the control topic", say)  # fmt: skip
    ex = Examples(dt.datetime.now(dt.UTC))
    timeline = Timeline(say)
    say("\n2. An alert between two members that never swapped a file")
    ok &= await _send(nodes, timeline, "zm-police", submit.Request(
        kind="alert", to=["zw-police"], payload=ex("alert.json"), schema="Alert",
        priority="urgent"), "urgent Alert") is not None  # fmt: skip

    say(
        "\n3. Malawi Police joins: it sends a signed join request; the SADC and Zimbabwe"
        " secretariats sign version 2"
    )
    mw_dir = dirs["mw-police"]
    request = member_requests.make_request(
        registry, request=member_requests.JOIN, federation=FEDERATION,
        descriptor=mw_dir.own_descriptor(registry), roles=("law-enforcement",),
        contact="Lilongwe liaison office", note="", now=dt.datetime.now(dt.UTC),
        signers=[mw_dir.load_keys(registry, None).identity],
    )  # fmt: skip
    joining = member_requests.read_request(registry, request)
    say(f"   request of {joining.node_id}, key fingerprint read out by phone: "
        f"{joining.descriptor.descriptor.fingerprint[:29]}...")  # fmt: skip
    admitted = member_requests.admit(v1, joining, dt.datetime.now(dt.UTC))
    v2 = trustlist.next_version(v1, "add mw-police", dt.datetime.now(dt.UTC),
                                dt.timedelta(days=90),
                                members=trustlist.with_member(v1, admitted))  # fmt: skip
    signed2 = sign(v2, "bw-secretariat", "zw-secretariat")
    dirs["mw-police"].save_trust_list(registry, signed2)  # its operator pins the federation
    nodes["mw-police"] = await _start(dirs["mw-police"], registry, bootstrap)
    ok &= await _until(lambda: all(_version(nodes[n]) == 2 for n in ("zm-police", "zw-police"))
                       and _knows(nodes, "zw-police", "mw-police")
                       and _knows(nodes, "mw-police", "zw-police"),
                       "the members apply version 2 and meet the newcomer", say)  # fmt: skip
    ok &= await _send(nodes, timeline, "mw-police", submit.Request(
        kind="mla", to=["zw-police"], payload=ex("mla-request.json"), schema="MlaRequest"),
        "MlaRequest from a member it never met") is not None  # fmt: skip

    say("\n4. Stolen-key drill: Malawi's laptop is stolen; two governors revoke its key")
    v3 = trustlist.next_version(
        v2, "revoke mw-police (key-compromise)", dt.datetime.now(dt.UTC), dt.timedelta(days=90),
        members=trustlist.with_member(v2, member("mw-police", "revoked", "key-compromise")),
    )  # fmt: skip
    dirs["zm-police"].save_trust_list(registry, sign(v3, "zm-secretariat", "zw-secretariat"))
    ok &= await _until(lambda: all(_version(nodes[n]) == 3 for n in ("zm-police", "zw-police")),
                       "every member applies version 3", say)  # fmt: skip
    thief = nodes["mw-police"]  # whoever holds the stolen key
    stolen = submit.Request(kind="mla", to=["zw-police"], payload=ex("mla-request.json"),
                            schema="MlaRequest")  # fmt: skip
    message_id = await thief.submit(stolen)
    timeline.line(f"mw-police (the thief) -> zw-police: MlaRequest  [{message_id[:13]}...]")
    zw = nodes["zw-police"]

    async def refused() -> bool:
        rows = await zw._run(zw.store.quarantined, 50)
        return any(q.reason == "revoked-sender" for q in rows)

    refused_in_time = await _until_async(refused, 30)
    stored = await zw._run(zw.store.inbox_message, message_id)
    timeline.line("    zw-police refused it: revoked-sender (quarantined, not answered)"
                  if refused_in_time and stored is None else "    NOT refused")  # fmt: skip
    ok &= refused_in_time and stored is None
    say("\nAudit: the list versions each member applied from the control topic")
    for node_id in ("zm-police", "zw-police"):
        events = [e.event for e in await nodes[node_id]._run(nodes[node_id].store.audit_entries)]
        versions = [e.detail["list_version"] for e in events if e.event == "trust-list-applied"]
        say(f"  {node_id:<12} {versions or '-'}")
    return ok


async def _start(node_dir: NodeDir, registry: SchemaRegistry, bootstrap: str) -> Node:
    env = {
        "XNODE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "XNODE_DELIVERY_POLL_INTERVAL_MS": "50",
        "XNODE_DELIVERY_RETRY_INITIAL_SECONDS": "2",
        "XNODE_DELIVERY_HEARTBEAT_SECONDS": "1",
        "XNODE_API_PORT": "0",
    }
    node = build_node(node_dir, registry=registry, env=env)
    await node.start()
    await node.connected.wait()
    return node


def _knows(nodes: dict[str, Node], node_id: str, peer: str) -> bool:
    return peer in nodes[node_id].peers


def _version(node: Node) -> int | None:
    held = node.trust_list
    return None if held is None else held.trust_list.list_version


async def _until_async(check: Callable[[], Awaitable[bool]], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.1)
    return False


async def _until(check: Callable[[], bool], what: str, say: Callable[[str], None]) -> bool:
    started = time.monotonic()

    async def wrapped() -> bool:
        return check()

    done = await _until_async(wrapped, 60)
    say(f"   {what}: {'done' if done else 'NOT done'} after {time.monotonic() - started:.1f}s")
    return done
