"""Hostile trust lists and descriptors on the control topic, against running node processes.

Anyone who can write to the shared control topic (a member, or whoever broke into one) tries to
change the federation: a list one signature short, one "signed" by a non-governor, one that
replaces the governors without the old quorum, an expired one, a descriptor giving a member's id
another key. zm-police, running as an `xnode run` process, refuses each with a reason in its
log, its audit chain and a metric, keeps running and keeps exchanging messages. Then the
governors suspend zw-police and reinstate it: refused while suspended, accepted again after.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from node import control, trustlist
from node.codec import default_registry
from node.crypto.keys import IdentityKey
from node.crypto.primitives import sign
from node.nodedir import NodeDir
from node.routing.topics import control_topic
from node.trust import issue_descriptor
from node.trustlist import Governor, GovernorSignature, SignedTrustList, TrustList
from tests.process_helpers import http, metric, read_store, wait_for, xnode
from tests.test_federation import GOVERNORS, Region

pytestmark = pytest.mark.slow
REGISTRY = default_registry()


@pytest.fixture
def region(tmp_path: Path):
    r = Region(tmp_path)
    yield r
    r.close()


def governor_key(r: Region, name: str) -> IdentityKey:
    return NodeDir(r.dirs[name]).load_keys(REGISTRY, None).identity


def signed_by(t: TrustList, *keys: IdentityKey) -> SignedTrustList:
    """``t`` with a signature of each key, governor of it or not (as an attacker would)."""
    prepared = trustlist.prepare(REGISTRY, t)
    signatures = tuple(
        GovernorSignature(k.key_id, sign(k, trustlist.LIST_DOMAIN, prepared.body)) for k in keys
    )
    return dataclasses.replace(prepared, signatures=signatures)


def produce(bootstrap: str, *records: bytes) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for record in records:
                await producer.send_and_wait(control_topic("xchg"), record, key=b"intruder")
        finally:
            await producer.stop()

    asyncio.run(run())


def refused_count(r: Region, reason: str) -> float:
    text = http("GET", f"{r.api('zm-police')}/metrics")[1]
    return metric(text, "xnode_trust_list_refused_total", reason=reason) or 0


def audited(r: Region, event: str) -> list[dict]:
    rows = read_store(r.dirs["zm-police"] / "node.db",
                      "SELECT detail FROM audit WHERE event = ? ORDER BY seq", (event,))  # fmt: skip
    return [json.loads(d) for (d,) in rows]


def test_hostile_lists_and_descriptors_are_refused_and_a_suspension_is_reversible(region):
    r = region
    v1, pin = r.found("zm-secretariat", "zw-secretariat")
    for member in ("zm-police", "zw-police"):
        xnode("trust", "publish", "--dir", r.dirs[member], v1, "--pin", pin)
        r.start(member)
    wait_for(lambda: r.peers("zm-police") == {"zw-police"} and r.peers("zw-police") ==
             {"zm-police"}, 60, "the members to learn each other's keys")  # fmt: skip

    held = trustlist.decode(REGISTRY, v1.read_bytes()).trust_list
    now = dt.datetime.now(dt.UTC)
    gov = [governor_key(r, g) for g in GOVERNORS]
    outsider = IdentityKey.generate()
    renewed = trustlist.next_version(held, "renew", now, dt.timedelta(days=30))
    strangers = [IdentityKey.generate() for _ in range(3)]
    coup = trustlist.next_version(
        held, "new governors", now, dt.timedelta(days=30),
        governors=[Governor(f"usurper {i}", k.public_raw) for i, k in enumerate(strangers)],
    )  # fmt: skip
    stale = dataclasses.replace(
        renewed, issued_at=now - dt.timedelta(days=60), expires_at=now - dt.timedelta(days=1),
        history=(*held.history, trustlist.ListChange(2, now - dt.timedelta(days=60), "old")),
    )  # fmt: skip
    hostile = {
        "one signature short": signed_by(renewed, gov[0]),
        "a non-governor's signature": signed_by(renewed, gov[0], outsider),
        "governors replaced without the old quorum": signed_by(coup, *strangers),
        "an expired list": signed_by(stale, gov[0], gov[1]),
    }
    zw = NodeDir(r.dirs["zw-police"]).own_descriptor(REGISTRY).descriptor
    forged = issue_descriptor(outsider, dataclasses.replace(
        zw, identity_key=outsider.public_raw, descriptor_version=9), REGISTRY)  # fmt: skip
    produce(r.broker.bootstrap, *(control.issue_trust_list(REGISTRY, s) for s in hostile.values()),
            control.issue_descriptor(REGISTRY, forged))  # fmt: skip

    wait_for(lambda: len(audited(r, "trust-list-refused")) >= 4, 60, "each hostile list refused")
    reasons = sorted(e["reason"] for e in audited(r, "trust-list-refused"))
    assert reasons == ["expired", *["insufficient-signatures"] * 3]
    assert refused_count(r, "insufficient-signatures") >= 3 and refused_count(r, "expired") >= 1
    log = (r.root / "zm-police.log").read_text()
    assert log.count("trust_list_refused") == 4
    wait_for(lambda: audited(r, "descriptor-refused"), 30, "the forged descriptor refused")
    assert audited(r, "descriptor-refused")[0]["identity_key_id"] == outsider.key_id
    assert r.list_version("zm-police") == 1
    # still running, and still using zw-police's real key
    status, body = r.send("zw-police", "zm-police", "After the intruder's lists.")
    assert status == 202, body
    wait_for(lambda: r.delivered("zw-police", body["id"]), 60, "delivered with the real key")

    # the governors suspend zw-police: refused both ways; then they reinstate it
    v2, v3 = r.root / "v2.xtl", r.root / "v3.xtl"
    xnode("trust", "propose", "--dir", r.dirs["zm-police"], "suspend", "zw-police", "--reason",
          "misbehaviour", "--out", v2)  # fmt: skip
    r.approve(v2, "zm-secretariat", "bw-secretariat")
    xnode("trust", "publish", "--dir", r.dirs["zm-police"], v2)
    wait_for(lambda: r.list_version("zw-police") == 2, 60, "zw-police to apply its suspension")
    status, body = r.send("zm-police", "zw-police", "Nothing goes to a suspended member.")
    assert status == 403 and body["field"] == "to", body
    status, held_back = r.send("zw-police", "zm-police", "Sent while suspended.")
    assert status == 202, held_back

    def quarantined() -> bool:
        return bool(read_store(r.dirs["zm-police"] / "node.db",
                               "SELECT 1 FROM quarantine WHERE reason = 'revoked-sender'"))  # fmt: skip

    wait_for(quarantined, 60, "zw-police's message refused while it is suspended")
    assert not r.delivered("zw-police", held_back["id"])
    xnode("trust", "propose", "--dir", r.dirs["zm-police"], "reinstate", "zw-police",
          "--out", v3)  # fmt: skip
    r.approve(v3, "zw-secretariat", "bw-secretariat")
    xnode("trust", "publish", "--dir", r.dirs["zm-police"], v3)
    # zw-police re-publishes what waits for a receipt: accepted once it is active again
    wait_for(lambda: r.delivered("zw-police", held_back["id"]), 90,
             "the message held back by the suspension delivered after reinstatement")  # fmt: skip
    status, body = r.send("zm-police", "zw-police", "Welcome back.")
    assert status == 202, body
    wait_for(lambda: r.delivered("zm-police", body["id"]), 60, "sending to it again")
    assert http("GET", f"{r.api('zm-police')}/healthz")[0] == 200

    # junk published right behind a valid list cannot push it out before it is applied
    current = trustlist.decode(REGISTRY, v3.read_bytes()).trust_list
    v4 = trustlist.next_version(current, "renew", dt.datetime.now(dt.UTC), dt.timedelta(days=30))
    junk = [signed_by(trustlist.next_version(v4, f"junk {i}", dt.datetime.now(dt.UTC),
                                             dt.timedelta(days=30)), gov[2]) for i in range(5)]  # fmt: skip
    produce(r.broker.bootstrap, control.issue_trust_list(REGISTRY, signed_by(v4, gov[0], gov[2])),
            *(control.issue_trust_list(REGISTRY, j) for j in junk))  # fmt: skip
    wait_for(lambda: r.list_version("zm-police") == 4, 60, "the valid list applied despite junk")
