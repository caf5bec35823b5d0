"""Schema evolution: full transitive compatibility with released versions, and old writers read."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from node import envelope
from node.codec import SchemaRegistry, _schema_documents, history_versions, schemas_directory
from node.payloads import all_payloads
from node.schema_compat import (
    enums_without_default,
    full_transitive_problems,
    policy_problems,
    reader_problems,
)
from tests.conftest import CASE_UPDATE_JSON, NOW, make_node, peers_of

MESSAGE_SCHEMAS = (
    "xnode.envelope.Envelope",
    "xnode.trust.NodeDescriptor",
    "xnode.trust.SignedNodeDescriptor",
    *all_payloads(),
)


@pytest.mark.parametrize("name", MESSAGE_SCHEMAS)
def test_current_schema_is_fully_compatible_with_every_released_version(registry, name):
    released = history_versions(schemas_directory(), name)
    assert released, f"{name} has no released version: run tools/snapshot_schemas.py"
    assert full_transitive_problems(registry.schema(name).standalone, released) == []


def test_every_enum_can_grow(registry):
    for name in registry.names():
        assert enums_without_default(registry.schema(name).standalone) == [], name


RECORD = {
    "type": "record",
    "name": "t.Sighting",
    "fields": [
        {"name": "place", "type": "string"},
        {"name": "count", "type": "int"},
        {
            "name": "mode",
            "type": {
                "type": "enum",
                "name": "t.Mode",
                "symbols": ["Road", "Rail"],
                "default": "Road",
            },
        },
    ],
}


def evolve(change) -> dict:
    schema = copy.deepcopy(RECORD)
    change(schema)
    return schema


@pytest.mark.parametrize(
    ("label", "change", "expected"),
    [
        (
            "add field with default",
            lambda s: s["fields"].append(
                {"name": "note", "type": ["null", "string"], "default": None}
            ),
            [],
        ),
        (
            "add field without default",
            lambda s: s["fields"].append({"name": "note", "type": "string"}),
            ["note"],
        ),
        ("remove field", lambda s: s["fields"].pop(1), ["count"]),
        ("rename field", lambda s: s["fields"][0].update(name="location"), ["place"]),
        ("change type", lambda s: s["fields"][1].update(type="string"), ["count"]),
        (
            "promote int to long (backward only)",
            lambda s: s["fields"][1].update(type="long"),
            ["count"],
        ),
        ("grow enum with default", lambda s: s["fields"][2]["type"]["symbols"].append("Air"), []),
        ("shrink enum", lambda s: s["fields"][2]["type"]["symbols"].pop(), ["Rail"]),
        ("rename record", lambda s: s.update(name="t.Seen"), ["t.Seen"]),
    ],
)
def test_evolution_rules(label, change, expected):
    problems = full_transitive_problems(evolve(change), [RECORD])
    assert bool(problems) == bool(expected), (label, problems)
    for word in expected:
        assert any(word in p for p in problems), (label, problems)


def test_enum_without_default_cannot_grow():
    old = copy.deepcopy(RECORD)
    del old["fields"][2]["type"]["default"]
    new = copy.deepcopy(old)
    new["fields"][2]["type"]["symbols"].append("Air")
    assert reader_problems(old, new) == [
        "t.Sighting.mode: symbols Air unknown to the reader, which has no default"
    ]
    assert policy_problems(new, old) == ["t.Mode: grew, but older readers have no default symbol"]


def test_transitive_against_every_version():
    v1 = RECORD
    v2 = evolve(
        lambda s: s["fields"].append({"name": "note", "type": ["null", "string"], "default": None})
    )
    v3 = evolve(lambda s: s["fields"].append({"name": "note", "type": "string", "default": ""}))
    assert full_transitive_problems(v2, [v1]) == []
    problems = full_transitive_problems(v3, [v1, v2])
    assert problems and all(p.startswith("v2") or p.startswith("current -> v2") for p in problems)


# -- an older node's message is read by a newer node ---------------------------------------------


def older_case_update(current: dict) -> dict:
    """CaseUpdate as an older release might have had it: no recorded_by, no attachments."""
    old = copy.deepcopy(current)
    old["fields"] = [f for f in old["fields"] if f["name"] not in ("recorded_by", "attachments")]
    return old


def test_newer_node_reads_a_message_written_with_an_older_schema(registry):
    docs = _schema_documents(schemas_directory())
    old_docs = [
        (src, older_case_update(doc) if doc.get("name") == "CaseUpdate" else doc)
        for src, doc in docs
    ]
    older_node_registry = SchemaRegistry.from_documents(old_docs)
    old_info = older_node_registry.schema("xnode.payload.CaseUpdate")
    assert old_info.fingerprint != registry.schema("xnode.payload.CaseUpdate").fingerprint

    sender, receiver = make_node("zm-police"), make_node("zw-police")
    payload = {k: v for k, v in CASE_UPDATE_JSON.items() if k != "recorded_by"}
    sealed = envelope.seal(
        older_node_registry,
        identity=sender.identity,
        sender_id=sender.node_id,
        kind="mla",
        schema_name="CaseUpdate",
        payload=older_node_registry.from_json("xnode.payload.CaseUpdate", payload),
        recipients=[receiver.descriptor],
        now=NOW,
        expires_at=NOW + dt.timedelta(days=1),
    )

    def open_with(reader: SchemaRegistry) -> envelope.Opened:
        return envelope.open_envelope(
            reader, sealed.data, own_id=receiver.node_id, own_keys=receiver.keys,
            peers=peers_of(sender), now=NOW,
        )  # fmt: skip

    with pytest.raises(envelope.EnvelopeError) as err:
        open_with(registry)  # the old version was never released: unknown fingerprint
    assert err.value.reason == "schema-unsupported"

    newer = SchemaRegistry(registry._named, registry.top_level, history=[old_info.standalone])
    opened = open_with(newer)
    assert opened.payload["note"] == CASE_UPDATE_JSON["note"]
    assert opened.payload["recorded_by"] is None  # filled from the current schema's default
    assert opened.payload["attachments"] == []
    assert opened.payload_schema.fingerprint == old_info.fingerprint
