"""Our wire format, read by other implementations following schemas/README.md alone.

Apache Avro (the `avro` package, not fastavro) decodes; PyNaCl (libsodium, not OpenSSL via
`cryptography`) verifies signatures and decrypts the payload once the content key is known.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import avro.errors
import avro.io
import avro.schema
import nacl.bindings
import nacl.exceptions
import nacl.signing
import pytest

from node import envelope
from node.crypto import primitives
from node.trust import issue_descriptor

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
ENVELOPE_DOMAIN = b"xnode-envelope-v1\x00"  # written out again from schemas/README.md
DESCRIPTOR_DOMAIN = b"xnode-descriptor-v1\x00"


def apache_decode(schema: avro.schema.Schema, data: bytes) -> dict:
    buf = io.BytesIO(data)
    value = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(buf))
    assert buf.tell() == len(data), "Apache Avro left bytes unread"
    return value


def apache_encode(schema: avro.schema.Schema, value: object) -> bytes:
    buf = io.BytesIO()
    avro.io.DatumWriter(schema).write(value, avro.io.BinaryEncoder(buf))
    return buf.getvalue()


def apache_schemas() -> dict[str, avro.schema.Schema]:
    """Every schema file parsed by Apache Avro alone, cross-file names resolved by retrying."""
    pending = [
        json.loads(p.read_text())
        for p in sorted(SCHEMAS.rglob("*.avsc"))
        if "history" not in p.relative_to(SCHEMAS).parts
    ]
    names, parsed = avro.schema.Names(), {}
    while pending:
        progress = []
        for doc in pending:
            trial = copy.deepcopy(names)
            try:
                schema = avro.schema.make_avsc_object(doc, trial)
            except avro.errors.SchemaParseException:
                continue
            names = trial
            parsed[schema.fullname] = schema
            progress.append(doc)
        assert progress, f"Apache Avro cannot resolve {len(pending)} schema files"
        pending = [d for d in pending if d not in progress]
    return parsed


@pytest.fixture(scope="module")
def envelope_schema() -> avro.schema.Schema:
    return avro.schema.parse((SCHEMAS / "envelope.avsc").read_text())


@pytest.fixture
def sealed(registry, nodes, payload) -> envelope.Sealed:
    import datetime as dt

    from tests.conftest import NOW

    return envelope.seal(
        registry,
        identity=nodes["zm-police"].identity,
        sender_id="zm-police",
        kind="referral",
        schema_name="CaseUpdate",
        payload=payload,
        recipients=[nodes["zw-police"].descriptor, nodes["za-shelter-johannesburg"].descriptor],
        now=NOW,
        expires_at=NOW + dt.timedelta(days=3),
    )


def test_envelope_decodes_with_apache_avro_from_the_schema_file_alone(envelope_schema, sealed):
    record = apache_decode(envelope_schema, sealed.data)
    header = record["header"]
    assert header["message_id"] == sealed.message_id
    assert header["kind"] == "referral"
    assert header["sender"] == "zm-police"
    assert [r["node_id"] for r in header["recipients"]] == ["zw-police", "za-shelter-johannesburg"]
    assert len(record["signature"]) == 64
    # Apache Avro writes exactly the bytes we wrote: the encoding is canonical.
    assert apache_encode(envelope_schema, record) == sealed.data


def test_signature_verifies_with_libsodium_following_the_documented_algorithm(
    envelope_schema, sealed, nodes
):
    record = apache_decode(envelope_schema, sealed.data)
    header_schema = envelope_schema.fields_dict["header"].type
    # README: signed bytes = Avro(header) || Avro bytes(ciphertext) = envelope minus last 66 bytes.
    signed = apache_encode(header_schema, record["header"]) + apache_encode(
        avro.schema.parse('"bytes"'), record["ciphertext"]
    )
    assert signed == sealed.data[:-66]
    verify_key = nacl.signing.VerifyKey(nodes["zm-police"].descriptor.identity_key)
    verify_key.verify(ENVELOPE_DOMAIN + signed, record["signature"])
    with pytest.raises(nacl.exceptions.BadSignatureError):
        verify_key.verify(b"xnode-descriptor-v1\x00" + signed, record["signature"])


def test_payload_decrypts_with_libsodium_and_decodes_with_apache_avro(
    envelope_schema, sealed, nodes, payload, registry
):
    """Only the HPKE unwrap uses `cryptography`; the AEAD and the decoding are independent."""
    record = apache_decode(envelope_schema, sealed.data)
    header = record["header"]
    zw = nodes["zw-police"]
    entry = next(r for r in header["recipients"] if r["node_id"] == "zw-police")
    info = b"xnode-wrap-v1\x00" + header["message_id"].encode() + b"\x00" + entry["key_id"].encode()
    content_key = primitives.HPKE_SUITE.decrypt(
        entry["wrapped_key"], zw.encryption.private, info=info
    )
    aad = apache_encode(envelope_schema.fields_dict["header"].type, header)
    plaintext = nacl.bindings.crypto_aead_chacha20poly1305_ietf_decrypt(
        record["ciphertext"], aad, header["payload_nonce"], content_key
    )
    case_update = apache_schemas()["xnode.payload.CaseUpdate"]
    decoded = apache_decode(case_update, plaintext)
    assert decoded["note"] == payload["note"]
    assert decoded["handling"]["code"] == "H2"
    # The header's fingerprint is SHA-256 of the Parsing Canonical Form, as Apache computes it.
    canonical = spec_canonical_form(case_update)
    assert hashlib.sha256(canonical.encode()).digest() == header["payload_schema"]


def spec_canonical_form(schema: avro.schema.Schema) -> str:
    """Apache Avro's canonical form, with its one known deviation from the specification undone.

    For a logical type on a primitive, Apache's Python package emits ``{"type":"long"}`` where
    the specification's [PRIMITIVES] rule (and the Java implementation) give ``"long"``.
    """

    def collapse(node: object) -> object:
        if isinstance(node, list):
            return [collapse(n) for n in node]
        if isinstance(node, dict):
            if set(node) == {"type"} and isinstance(node["type"], str):
                return node["type"]
            return {k: collapse(v) for k, v in node.items()}
        return node

    return json.dumps(collapse(json.loads(schema.canonical_form)), separators=(",", ":"))


def test_every_schema_file_parses_with_apache_avro_alone(registry):
    assert set(apache_schemas()) == set(registry.names())


def test_every_schema_parses_with_apache_avro_and_fingerprints_agree(registry):
    for name in registry.names():
        info = registry.schema(name)
        parsed = avro.schema.parse(json.dumps(info.standalone))
        assert spec_canonical_form(parsed) == info.canonical_form, name
        assert hashlib.sha256(spec_canonical_form(parsed).encode()).digest() == info.fingerprint


def test_descriptor_decodes_and_verifies_independently(registry, nodes):
    zm = nodes["zm-police"]
    signed = issue_descriptor(zm.identity, zm.descriptor, registry)
    wrapper = apache_decode(
        avro.schema.parse((SCHEMAS / "signed_node_descriptor.avsc").read_text()), signed.raw
    )
    body = apache_decode(
        avro.schema.parse((SCHEMAS / "node_descriptor.avsc").read_text()), wrapper["descriptor"]
    )
    assert body["node_id"] == "zm-police"
    nacl.signing.VerifyKey(body["identity_key"]).verify(
        DESCRIPTOR_DOMAIN + wrapper["descriptor"], wrapper["signature"]
    )
    # key id algorithm: first 16 bytes of SHA-256 of the raw public key, hex
    key = body["encryption_keys"][0]
    assert key["key_id"] == hashlib.sha256(key["public_key"]).digest()[:16].hex()


def test_schemas_readme_documents_the_constants():
    text = (SCHEMAS / "README.md").read_text()
    for constant in ("xnode-envelope-v1", "xnode-wrap-v1", "xnode-descriptor-v1", "SHA-256"):
        assert constant in text


def test_cli_runs_as_a_module():
    out = subprocess.run(
        [sys.executable, "-m", "node.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "envelope" in out.stdout
