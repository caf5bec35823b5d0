"""The composition root: the one place that knows the concrete adapters and wires them to a node.

The runtime (:class:`node.service.Node`) knows adapters only as :class:`node.service.Adapter`
and receives a factory for them; this module supplies it. So the dependencies point one way,
edges (adapters, CLI) -> runtime (service) -> core, and ``xnode run``, the demos, the benchmarks
and the tests all build the same node.

A new adapter is one import and one ``if`` in :func:`adapters_for`.
"""

from __future__ import annotations

from node.adapters.api import ApiServer
from node.adapters.console import ConsoleServer
from node.adapters.folder import FolderAdapter
from node.adapters.webhook import WebhookAdapter
from node.codec import SchemaRegistry
from node.nodedir import NodeDir
from node.service import Adapter, Clock, Node, utc_now


def adapters_for(node: Node) -> list[Adapter]:
    """The adapters ``node.config`` enables, in start order (the node stops them in reverse).

    Called by :meth:`Node.start` once the configuration and the store are loaded."""
    config = node.config
    adapters: list[Adapter] = []
    if config.api.enabled:
        adapters.append(ApiServer(node))
    if config.webhook.url:
        adapters.append(WebhookAdapter(node))
    if config.folder.path:
        adapters.append(FolderAdapter(node))
    if config.console.enabled:
        adapters.append(ConsoleServer(node))
    # Further adapters go here, one `if` on their own setting each, in the order they start.
    return adapters


def build_node(
    node_dir: NodeDir,
    *,
    registry: SchemaRegistry | None = None,
    env: dict[str, str] | None = None,
    clock: Clock = utc_now,
) -> Node:
    """A node with the adapters its configuration enables: what ``xnode run`` runs."""
    return Node(node_dir, registry=registry, env=env, clock=clock, adapters=adapters_for)
