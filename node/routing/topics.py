"""Kafka topic names (DESIGN §3): per recipient and kind, plus one control topic."""

from __future__ import annotations

from node.payloads import KINDS
from node.routing.ids import validate_node_id

DEFAULT_PREFIX = "xchg"


def inbox_topic(prefix: str, recipient: str, kind: str) -> str:
    """``xchg.zw-police.alert``: where messages of ``kind`` for ``recipient`` are written."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    return f"{prefix}.{validate_node_id(recipient)}.{kind}"


def own_topics(prefix: str, node_id: str) -> list[str]:
    """Every inbox topic of one node, urgent families first."""
    return [inbox_topic(prefix, node_id, kind) for kind in KINDS]


def control_topic(prefix: str) -> str:
    return f"{prefix}.control"


def parse_inbox_topic(prefix: str, topic: str) -> tuple[str, str] | None:
    """``xchg.zw-police.alert`` -> (``zw-police``, ``alert``); None if not an inbox topic."""
    if not topic.startswith(prefix + "."):
        return None
    rest = topic[len(prefix) + 1 :]
    node_id, _, kind = rest.rpartition(".")
    return (node_id, kind) if node_id and kind in KINDS else None
