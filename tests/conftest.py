"""Shared fixtures: in-memory nodes for core tests, CLI-created node directories for shell tests."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from node import logging as logging_config
from node.codec import SchemaRegistry, default_registry
from node.crypto.keys import EncryptionKey, IdentityKey
from node.store.sqlite import SqliteStore
from node.transport.broker import EmbeddedBroker
from node.trust import Descriptor, EncryptionKeyInfo, PeerDirectory

logging_config.configure("console", "warning")

NOW = dt.datetime(2026, 11, 22, 8, 30, tzinfo=dt.UTC)

CASE_UPDATE_JSON: dict[str, Any] = {
    "handling": {
        "code": "H2",
        "legal_basis": "SADC Protocol on Mutual Legal Assistance in Criminal Matters, art. 5",
        "language": "en",
        "retention_days": 365,
        "sender_reference": "ZP/CHR/2026/0142",
    },
    "status": "Active",
    "note": "Two girls of about fifteen seen boarding a minibus at Chirundu towards Harare",
    "recorded_at": "2026-11-22T08:00:00Z",
    "recorded_by": "Insp. Mwila Banda",
}


@dataclass(frozen=True)
class MemNode:
    """A node held in memory: enough to seal and open without touching the disk."""

    node_id: str
    identity: IdentityKey
    encryption: EncryptionKey
    descriptor: Descriptor

    @property
    def keys(self) -> dict[str, EncryptionKey]:
        return {self.encryption.key_id: self.encryption}


def make_node(node_id: str, roles: tuple[str, ...] = ("law-enforcement",)) -> MemNode:
    identity, encryption = IdentityKey.generate(), EncryptionKey.generate()
    descriptor = Descriptor(
        node_id=node_id,
        country=node_id[:2],
        roles=roles,
        display_name=node_id,
        identity_key=identity.public_raw,
        encryption_keys=(
            EncryptionKeyInfo(
                encryption.key_id,
                encryption.public_raw,
                NOW - dt.timedelta(days=1),
                NOW + dt.timedelta(days=365),
            ),
        ),
        descriptor_version=1,
        created_at=NOW,
    )
    return MemNode(node_id, identity, encryption, descriptor)


@pytest.fixture(scope="session")
def registry() -> SchemaRegistry:
    return default_registry()


@pytest.fixture(scope="session")
def nodes() -> dict[str, MemNode]:
    ids = ["zm-police", "zw-police", "mw-police", "za-shelter-johannesburg", "bw-police"]
    return {i: make_node(i) for i in ids}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    """A node's SQLite store in a temporary directory."""
    with SqliteStore.open(tmp_path / "node.db") as s:
        yield s


@pytest.fixture
def payload(registry: SchemaRegistry) -> dict[str, Any]:
    return registry.from_json("xnode.payload.CaseUpdate", CASE_UPDATE_JSON, "payload")


@pytest.fixture
def payload_file(tmp_path: Path) -> Path:
    path = tmp_path / "case-update.json"
    path.write_text(json.dumps(CASE_UPDATE_JSON))
    return path


def peers_of(*nodes: MemNode) -> PeerDirectory:
    return PeerDirectory.of(n.descriptor for n in nodes)


@pytest.fixture
async def broker():
    """A real Tansu broker on a free loopback port, for one test (some tests restart it)."""
    b = EmbeddedBroker()
    await b.start()
    yield b
    await b.stop()
