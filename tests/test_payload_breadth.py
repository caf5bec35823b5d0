"""The payload breadth of the second release, judged as the issue asks: old messages (every
released version in schemas/history/) decode with the new readers, new messages decode with the
old readers (which drop what they do not know), and each new concept travels end to end between
two `xnode run` processes through the public API (tests/test_payload_breadth_live.py)."""

from __future__ import annotations

import io
import json

import fastavro
import pytest

from node import payloads
from node.codec import CodecError, history_versions, released_info, schemas_directory
from tests.test_examples import EXAMPLES, INDEX, convert_and_check

CHANGED = sorted(
    (file, entry["schema"], version)
    for file, entry in INDEX["examples"].items()
    for version, _ in enumerate(
        history_versions(schemas_directory(), payloads.full_name(entry["schema"]))[:-1], 1
    )
)


def _fields(schema: dict) -> set[str]:
    return {f["name"] for f in schema["fields"]}


@pytest.mark.parametrize(("file", "schema", "version"), CHANGED)
def test_an_older_release_and_this_one_read_each_other(registry, file, schema, version):
    """A record written with released version ``version`` decodes with the current reader (new
    fields take their defaults), and a current record decodes with that version as reader."""
    name = payloads.full_name(schema)
    old = released_info(registry, history_versions(schemas_directory(), name)[version - 1])
    current = registry.schema(name)
    assert old.fingerprint != current.fingerprint
    value = convert_and_check(registry, schema, json.loads((EXAMPLES / file).read_text()))

    # old writer -> new reader: what the old release knew survives; the rest is defaulted (a
    # value with a code the old release did not have, e.g. MigrantSmuggling, it could not write)
    try:
        written_old = registry.encode(name, value, writer=old)
    except CodecError as exc:
        assert "is not in list" in exc.problem, exc.problem
        written_old = None
    if written_old is not None:
        _old_to_new(registry, name, old, current, value, written_old)
    _new_to_old(registry, name, old, current, value)


def _old_to_new(registry, name, old, current, value, written_old) -> None:
    read_new = registry.to_json(name, registry.decode(name, written_old, writer=old))
    sent = registry.to_json(name, value)
    assert isinstance(read_new, dict) and isinstance(sent, dict)
    for field in _fields(old.standalone):
        assert read_new[field] == _as_old(sent[field], read_new[field]), field
    added = _fields(current.standalone) - _fields(old.standalone)
    defaults = {f["name"]: f.get("default") for f in current.standalone["fields"]}
    assert all(read_new[f] == defaults[f] for f in added)


def _new_to_old(registry, name, old, current, value) -> None:
    """New writer -> old reader (a node of the previous release that knew this fingerprint
    would resolve it so): the fields it knows, nothing else; a new code reads as the enum's
    default."""
    written_new = registry.encode(name, value)
    read_old = fastavro.schemaless_reader(io.BytesIO(written_new), current.parsed, old.parsed)
    assert set(read_old) == _fields(old.standalone)
    assert read_old["handling"] == value["handling"]
    if value.get("alert_type") == "MigrantSmuggling":  # a code the old list lacks
        assert read_old["alert_type"] == "Other"


def _as_old(new_value, old_read):
    """A nested record of the current value seen through the old schema: fields the old
    schema lacks are not in what it read back, so compare on the fields it has."""
    if isinstance(new_value, dict) and isinstance(old_read, dict):
        return {k: _as_old(new_value[k], old_read[k]) if k in new_value else old_read[k]
                for k in old_read}  # fmt: skip
    if isinstance(new_value, list) and isinstance(old_read, list):
        return [_as_old(n, o) for n, o in zip(new_value, old_read, strict=True)]
    return new_value


def test_the_records_that_changed_are_the_ones_documented():
    changed = {payloads.short_name(payloads.full_name(s)) for _, s, _ in CHANGED}
    assert {"Alert", "Referral", "RepatriationProposal", "MlaRequest", "CaseUpdate"} <= changed
    # receipts did not change, so nodes of both releases keep answering each other
    assert len(history_versions(schemas_directory(), "xnode.payload.Receipt")) == 3
