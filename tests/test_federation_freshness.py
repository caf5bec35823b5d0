"""An expired trust list does not stop the region: the node is degraded — it keeps receiving and
keeps sending for ``federation.grace_days`` — and only then refuses to send, with a clear error
(API 503 ``trust_list_expired``, ``/readyz`` 503, metrics with the expiry)."""

from __future__ import annotations

import datetime as dt

import aiohttp
import pytest

from node import tokens, trustlist
from node.codec import default_registry
from node.compose import build_node
from node.crypto.keys import IdentityKey
from node.service import utc_now
from node.trustlist import Governor, Member, TrustList
from tests.process_helpers import metric
from tests.runtime_helpers import case_update, create_nodes, node_env

DAY = dt.timedelta(days=1)
SPECS = {"zm-police": "law-enforcement", "zw-police": "law-enforcement"}


def install_list(dirs, expires: dt.datetime) -> None:
    """Governors sign a list naming both nodes, which each node applies."""
    registry = default_registry()
    governors = [IdentityKey.generate() for _ in range(2)]
    now = expires - 30 * DAY
    members = []
    for node_id, node_dir in sorted(dirs.items()):
        d = node_dir.own_descriptor(registry).descriptor
        members.append(Member(node_id, d.country, d.roles, d.display_name, d.identity_key,
                              "active", now))  # fmt: skip
    t = TrustList("sadc-tip", 1, now, expires, 2,
                  tuple(Governor(f"governor {i}", g.public_raw) for i, g in enumerate(governors)),
                  tuple(members))  # fmt: skip
    signed = trustlist.prepare(registry, t)
    for g in governors:
        signed = trustlist.add_signature(signed, g)
    for node_dir in dirs.values():
        node_dir.save_trust_list(registry, signed)


@pytest.mark.parametrize(
    ("age", "state", "ready", "sends"),
    [(-DAY, "valid", 200, True), (DAY, "degraded", 200, True), (8 * DAY, "expired", 503, False)],
)  # fmt: skip
async def test_a_node_with_an_old_list_degrades_then_stops_sending(
    tmp_path, broker, age, state, ready, sends
):
    dirs = create_nodes(tmp_path, SPECS)
    expires = utc_now() - age  # the list expired `age` ago (negative: expires in the future)
    install_list(dirs, expires)
    node = build_node(dirs["zm-police"], env=node_env(broker.bootstrap_servers))
    await node.start()
    try:
        record, secret = tokens.new_token("cases", ("send:*", "ops"), node.clock())
        await node._run(node.store.add_token, record)
        headers = {"Authorization": f"Bearer {secret}"}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{node.api_url}/v1/messages", headers=headers, json={
                "kind": "mla", "to": ["zw-police"], "schema": "CaseUpdate",
                "payload": case_update("Seen at Nakonde."),
            }) as r:  # fmt: skip
                status, body = r.status, await r.json()
            await node.connected.wait()
            async with http.get(f"{node.api_url}/readyz") as r:
                ready_status, readiness = r.status, await r.json()
            async with http.get(f"{node.api_url}/metrics") as r:
                metrics = await r.text()
        if sends:
            assert status == 202, body
        else:
            assert (status, body["code"]) == (503, "trust_list_expired")
            assert "federation.grace_days" in body["error"] and "newer list" in body["error"]
        trust = readiness["checks"]["trust"]
        assert (ready_status, trust["state"]) == (ready, state)
        assert ("EXPIRED" in trust["detail"]) is (state != "valid")
        expiry = metric(metrics, "xnode_trust_list_expiry_timestamp_seconds", federation="sadc-tip")
        assert expiry == pytest.approx(expires.timestamp(), abs=1)
        assert metric(metrics, "xnode_trust_list_members", federation="sadc-tip",
                      status="active") == 2  # fmt: skip
    finally:
        await node.stop()
