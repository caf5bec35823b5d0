"""Every worked example is accepted; every invalid twin is refused naming the right field.

Examples also round-trip through an independent Avro implementation (Apache Avro).
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import avro.io
import pytest

from node import payloads, validation
from node.codec import CodecError, parse_timestamp
from tests.test_independent import apache_schemas

EXAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "examples"
INDEX = json.loads((EXAMPLES / "index.json").read_text())
INVALID = json.loads((EXAMPLES / "invalid" / "index.json").read_text())
VALID_AT = parse_timestamp(INDEX["valid_at"], "valid_at")


def convert_and_check(registry, schema: str, document: dict) -> dict:
    name = payloads.full_name(schema)
    value = registry.from_json(name, document, "payload")
    validation.check(registry, name, value, validation.Context(VALID_AT))
    return value


def test_every_payload_record_and_kind_has_an_example():
    covered = {payloads.full_name(e["schema"]) for e in INDEX["examples"].values()}
    assert covered == set(payloads.all_payloads())
    assert {e["kind"] for e in INDEX["examples"].values()} == set(payloads.KINDS)
    assert set(INVALID["examples"]) == set(INDEX["examples"])
    assert sorted(p.name for p in EXAMPLES.glob("*.json") if p.name != "index.json") == sorted(
        INDEX["examples"]
    )


@pytest.mark.parametrize("file", sorted(INDEX["examples"]))
def test_example_is_accepted_and_round_trips_through_apache_avro(registry, file):
    entry = INDEX["examples"][file]
    name = payloads.full_name(entry["schema"])
    assert name in payloads.payloads_of(entry["kind"])
    document = json.loads((EXAMPLES / file).read_text())
    value = convert_and_check(registry, entry["schema"], document)
    ours = registry.encode(name, value)

    apache = apache_schemas()[name]
    decoded = avro.io.DatumReader(apache).read(avro.io.BinaryDecoder(io.BytesIO(ours)))
    buf = io.BytesIO()
    avro.io.DatumWriter(apache).write(decoded, avro.io.BinaryEncoder(buf))
    assert buf.getvalue() == ours
    assert registry.to_json(name, registry.decode(name, buf.getvalue())) == registry.to_json(
        name, value
    )


@pytest.mark.parametrize("file", sorted(INVALID["examples"]))
def test_invalid_twin_is_refused_with_the_field_path(registry, file):
    entry = INVALID["examples"][file]
    document = json.loads((EXAMPLES / "invalid" / file).read_text())
    with pytest.raises((CodecError, validation.PayloadInvalid)) as err:
        convert_and_check(registry, entry["schema"], document)
    assert err.value.path == entry["field"]
    assert entry["problem"] in str(err.value)


def test_examples_are_dated_for_a_fixed_moment():
    assert VALID_AT == dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
