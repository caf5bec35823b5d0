"""Codec: schema loading, fingerprints, strict binary decoding, JSON conversion with paths."""

from __future__ import annotations

import copy
import json
import re

import pytest

from node.codec import CodecError, SchemaError, SchemaRegistry, format_timestamp, parse_timestamp
from tests.conftest import CASE_UPDATE_JSON

CASE = "xnode.payload.CaseUpdate"

PERSON = {
    "type": "record",
    "name": "Person",
    "namespace": "t",
    "fields": [
        {"name": "name", "type": "string"},
        {
            "name": "birthdate",
            "type": ["null", {"type": "int", "logicalType": "date"}],
            "default": None,
        },
        {"name": "photo", "type": ["null", "bytes"], "default": None},
        {"name": "age", "type": ["null", "int"], "default": None},
        {
            "name": "ref",
            "type": ["null", {"type": "string", "logicalType": "uuid"}],
            "default": None,
        },
        {"name": "weight", "type": ["null", "double"], "default": None},
        {"name": "flags", "type": {"type": "map", "values": "boolean"}, "default": {}},
        {
            "name": "digest",
            "type": ["null", {"type": "fixed", "name": "D4", "size": 4}],
            "default": None,
        },
    ],
}
ALERT = {
    "type": "record",
    "name": "Alert",
    "namespace": "t",
    "fields": [
        {"name": "subjects", "type": {"type": "array", "items": "t.Person"}},
        {"name": "id", "type": "long"},
    ],
}


@pytest.fixture(scope="module")
def toy() -> SchemaRegistry:
    # Deliberately in dependency-reversed order: names resolve across documents.
    return SchemaRegistry.from_documents([("alert.avsc", ALERT), ("person.avsc", PERSON)])


def subjects(*people: dict) -> dict:
    return {"subjects": list(people), "id": 7}


def test_loads_repository_schemas(registry):
    assert {CASE, "xnode.envelope.Envelope", "xnode.trust.NodeDescriptor"} <= set(registry.names())


def test_fingerprint_covers_types_from_other_files(toy):
    changed = copy.deepcopy(PERSON)
    changed["fields"][0]["type"] = "bytes"
    other = SchemaRegistry.from_documents([("a", ALERT), ("p", changed)])
    assert toy.schema("t.Alert").fingerprint != other.schema("t.Alert").fingerprint
    assert '"name":"t.Person"' in toy.schema("t.Alert").canonical_form
    assert toy.by_fingerprint(toy.schema("t.Alert").fingerprint).name == "t.Alert"
    assert toy.by_fingerprint(b"\x00" * 32) is None


def test_unresolvable_and_broken_schemas_are_reported():
    with pytest.raises(SchemaError, match=re.escape("alert.avsc needs t.Person")):
        SchemaRegistry.from_documents([("alert.avsc", ALERT)])
    with pytest.raises(SchemaError, match=re.escape("bad.avsc: Every symbol must match")):
        SchemaRegistry.from_documents(
            [("bad.avsc", {"type": "enum", "name": "E", "symbols": ["a-b"]})]
        )


def test_schema_directory_errors(tmp_path):
    (tmp_path / "x.avsc").write_text("{not json")
    with pytest.raises(SchemaError, match=re.escape("x.avsc: not valid JSON")):
        SchemaRegistry.from_directory(tmp_path)


def test_json_round_trip(registry):
    value = registry.from_json(CASE, CASE_UPDATE_JSON)
    data = registry.encode(CASE, value)
    back = registry.to_json(CASE, registry.decode(CASE, data))
    assert back["note"] == CASE_UPDATE_JSON["note"]
    assert back["recorded_at"] == "2026-11-22T08:00:00.000Z"
    assert back["handling"]["conditions"] is None  # defaults filled in


def test_toy_round_trip_with_every_conversion(toy):
    person = {
        "name": "Chipo Mwale",
        "birthdate": "2011-03-14",
        "photo": "AAEC",
        "age": 15,
        "ref": "0192F3A4-5B6C-7D8E-9F00-112233445566",
        "weight": 41,
        "flags": {"minor": True},
        "digest": "AQIDBA==",
    }
    value = toy.from_json("t.Alert", subjects(person))
    back = toy.to_json("t.Alert", toy.decode("t.Alert", toy.encode("t.Alert", value)))
    expected = dict(person, ref=person["ref"].lower(), weight=41.0)
    assert back == subjects(expected)


@pytest.mark.parametrize(
    ("change", "path", "problem"),
    [
        ({"birthdate": "14/03/2011"}, "payload.subjects[1].birthdate", "expected date YYYY-MM-DD"),
        ({"birthdate": "2011-02-30"}, "payload.subjects[1].birthdate", "expected date YYYY-MM-DD"),
        ({"nickname": "x"}, "payload.subjects[1].nickname", "unknown field"),
        ({"name": None}, "payload.subjects[1].name", "expected a string; got null"),
        ({"age": "15"}, "payload.subjects[1].age", "expected an integer; got string"),
        ({"age": True}, "payload.subjects[1].age", "expected an integer; got boolean"),
        ({"age": 2**31}, "payload.subjects[1].age", "out of range"),
        ({"photo": "***"}, "payload.subjects[1].photo", "expected base64"),
        ({"ref": "not-a-uuid"}, "payload.subjects[1].ref", "expected a UUID"),
        ({"weight": "heavy"}, "payload.subjects[1].weight", "expected a number"),
        ({"flags": {"minor": "yes"}}, "payload.subjects[1].flags.minor", "expected true or false"),
        ({"digest": "AQID"}, "payload.subjects[1].digest", "expected 4 bytes; got 3"),
    ],
)
def test_json_errors_name_the_field_path(toy, change, path, problem):
    good = {"name": "Tendai Moyo"}
    with pytest.raises(CodecError) as err:
        toy.from_json("t.Alert", subjects(good, dict(good, **change)), "payload")
    assert err.value.path == path
    assert problem in err.value.problem
    assert str(err.value).startswith(path + ": ")


def test_missing_required_and_wrong_container(toy):
    with pytest.raises(CodecError) as err:
        toy.from_json("t.Alert", {"subjects": [{}], "id": 1}, "payload")
    assert str(err.value) == "payload.subjects[0].name: required field missing"
    with pytest.raises(
        CodecError, match=re.escape("payload.subjects: expected an array; got object")
    ):
        toy.from_json("t.Alert", {"subjects": {}, "id": 1}, "payload")
    with pytest.raises(CodecError, match="payload: expected an object; got array"):
        toy.from_json("t.Alert", [], "payload")


def test_enum_and_timestamp_errors(registry):
    bad = copy.deepcopy(CASE_UPDATE_JSON)
    bad["handling"]["code"] = "H9"
    with pytest.raises(CodecError, match=r"payload.handling.code: expected one of H0, H1, H2, H3"):
        registry.from_json(CASE, bad, "payload")
    for stamp in ("2026-11-22T08:00:00", "2026-11-22", "yesterday", 1700000000):
        bad = dict(CASE_UPDATE_JSON, recorded_at=stamp)
        with pytest.raises(
            CodecError, match=re.escape("payload.recorded_at: expected timestamp ISO 8601")
        ):
            registry.from_json(CASE, bad, "payload")


def test_timestamps_normalise_to_utc_milliseconds():
    value = parse_timestamp("2026-11-22T10:30:00.123456+02:00", "$")
    assert format_timestamp(value) == "2026-11-22T08:30:00.123Z"


def test_binary_decoding_is_strict(registry):
    data = registry.encode_json(CASE, CASE_UPDATE_JSON)
    with pytest.raises(CodecError, match="1 trailing bytes"):
        registry.decode(CASE, data + b"\x00")
    with pytest.raises(CodecError, match="malformed Avro data"):
        registry.decode(CASE, data[:10])


def test_encode_reports_values_that_do_not_fit(registry):
    with pytest.raises(CodecError, match="cannot encode"):
        registry.encode(CASE, {"handling": None})


def test_schema_files_are_valid_json_with_docs():
    from node.codec import schemas_directory

    for path in schemas_directory().rglob("*.avsc"):
        schema = json.loads(path.read_text())
        assert schema.get("doc"), f"{path.name} has no doc"


@pytest.mark.parametrize("size", [0, 1, 63, 64, 127, 128, 8191, 8192, 300_000])
def test_avro_bytes_matches_fastavro(size):
    import io

    import fastavro

    from node.codec import avro_bytes

    value = bytes(size)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, "bytes", value)
    assert avro_bytes(value) == buf.getvalue()
