"""The operational endpoints behind a token when ``[api] ops_token_required`` is set.

/metrics and /readyz name the node's peers and its broker; on loopback they stay open (a local
Prometheus, a local probe), but a node whose API is reachable from elsewhere needs them behind a
token with scope ``ops`` (or ``admin``). /healthz says only "alive" and stays open.
"""

from __future__ import annotations

import aiohttp
import pytest

from node import tokens
from node.compose import build_node
from node.service import Node
from tests.runtime_helpers import create_nodes, node_env


async def _token(node: Node, name: str, scopes: str) -> str:
    record, secret = tokens.new_token(name, tokens.parse_scopes(scopes), node.clock())
    await node._run(node.store.add_token, record)
    return secret


async def _get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        return response.status, await response.text()


@pytest.fixture
async def node(tmp_path, broker, request):
    dirs = create_nodes(tmp_path, {"zm-police": "law-enforcement", "zw-police": "law-enforcement"})
    required = "true" if request.param else "false"
    n = build_node(dirs["zm-police"], env=node_env(broker.bootstrap_servers,
                                             XNODE_API_OPS_TOKEN_REQUIRED=required))  # fmt: skip
    await n.start()
    yield n
    await n.stop()


@pytest.mark.parametrize("node", [True], indirect=True)
async def test_ops_endpoints_need_an_ops_or_admin_token_when_required(node):
    ops, admin = await _token(node, "prometheus", "ops"), await _token(node, "root", "admin")
    reader = await _token(node, "cases", "read:*,send:*")
    for path in ("/metrics", "/readyz"):
        url = f"{node.api_url}{path}"
        status, body = await _get(url)
        assert status == 401 and '"field": "Authorization"' in body, (path, body)
        assert (await _get(url, "xnt_0123456789ab_" + "A" * 43))[0] == 401  # never issued
        status, body = await _get(url, reader)
        assert status == 403 and "has no scope ops" in body, (path, body)
        for good in (ops, admin):
            assert (await _get(url, good))[0] in (200, 503), path  # 503: broker not yet ready
    status, body = await _get(f"{node.api_url}/metrics", ops)
    assert status == 200 and "xnode_outbox_depth" in body and "zw-police" in body
    assert (await _get(f"{node.api_url}/healthz"))[0] == 200  # reveals nothing: open
    assert (await _get(f"{node.api_url}/v1/openapi.json"))[0] == 200
    # an ops token is for operations only: no case data
    status, _ = await _get(f"{node.api_url}/v1/inbox", ops)
    assert status == 403


@pytest.mark.parametrize("node", [False], indirect=True)
async def test_ops_endpoints_are_open_by_default_on_loopback(node):
    assert node.config.api.host == "127.0.0.1"
    status, body = await _get(f"{node.api_url}/metrics")
    assert status == 200 and "xnode_outbox_depth" in body
    assert (await _get(f"{node.api_url}/readyz"))[0] in (200, 503)


def test_ops_is_a_scope_of_its_own():
    assert tokens.parse_scopes("ops") == ("ops",)
    assert tokens.allows_ops(("ops",)) and tokens.allows_ops(("admin",))
    assert not tokens.allows_ops(("read:*", "send:*"))
    assert not tokens.allows(("ops",), "read", "mla")
