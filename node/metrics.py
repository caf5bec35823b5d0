"""Prometheus metrics of one node (DESIGN §7, served on ``/metrics`` by the API).

Each node has its own registry, so several nodes in one process (the demo, tests) never mix
their series. Labels come from bounded sets only — kinds, peers, reason codes — never ids.
"""

from __future__ import annotations

from importlib import metadata

from prometheus_client import CollectorRegistry, Counter, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


def xnode_version() -> str:
    try:
        return metadata.version("xnode")
    except metadata.PackageNotFoundError:
        return "unknown"


class Metrics:
    """The node's instruments; the shell increments them, :meth:`render` exposes them."""

    def __init__(self, node_id: str, version: str | None = None) -> None:
        version = version or xnode_version()
        self.registry = CollectorRegistry(auto_describe=True)
        self.build_info = Info(
            "xnode_build", "Version of the running xnode.", registry=self.registry
        )
        self.build_info.info({"version": version, "node": node_id})
        self.webhook_failures = Counter(
            "xnode_webhook_failures",
            "Received messages the webhook gave up on after its last attempt (webhook-failed).",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
