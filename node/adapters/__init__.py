"""Adapters: how local systems reach the node (DESIGN §7). Each is a small class with
``start()``/``stop()`` that :class:`node.service.Node` runs when its config asks for it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from node.service import Adapter, Node


class AdapterError(RuntimeError):
    """An adapter cannot start (port taken, secret missing...); the message says what to fix."""


def from_config(node: Node) -> list[Adapter]:
    """The adapters ``node.config`` enables, in start order."""
    from node.adapters.api import ApiServer
    from node.adapters.folder import FolderAdapter
    from node.adapters.webhook import WebhookAdapter

    config = node.config
    adapters: list[Adapter] = []
    if config.api.enabled:
        adapters.append(ApiServer(node))
    if config.webhook.url:
        adapters.append(WebhookAdapter(node))
    if config.folder.path:
        adapters.append(FolderAdapter(node))
    return adapters
