"""Envelope edges that mutation testing found untested (docs/mutation-testing.md).

test_envelope.py covers sealing, opening and tampering; this file pins what an API client, an
operator or another implementation relies on beyond the reason code: the request field a
:class:`SealError` names, the exact refusal details, times truncated to what the wire keeps
and shown in UTC, and the receiver's own payload checks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from node import envelope, validation
from node.codec import CodecError, SchemaRegistry, _schema_documents, avro_bytes
from node.envelope import EnvelopeError, SealError
from node.payloads import all_payloads, short_name
from tests.conftest import NOW, MemNode, peers_of

EXAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "examples"


def seal(
    registry: SchemaRegistry,
    sender: MemNode,
    to: list[MemNode],
    payload: dict[str, Any],
    **overrides: Any,
) -> envelope.Sealed:
    args: dict[str, Any] = {
        "identity": sender.identity,
        "sender_id": sender.node_id,
        "kind": "alert",
        "schema_name": "CaseUpdate",
        "payload": payload,
        "recipients": [r.descriptor for r in to],
        "now": NOW,
        "expires_at": NOW + dt.timedelta(days=7),
    }
    args.update(overrides)
    return envelope.seal(registry, **args)


def open_as(
    registry: SchemaRegistry, node: MemNode, data: bytes, peers: Any, **kw: Any
) -> envelope.Opened:
    kw.setdefault("now", NOW)
    return envelope.open_envelope(
        registry, data, own_id=node.node_id, own_keys=node.keys, peers=peers, **kw
    )


def referral(registry: SchemaRegistry) -> dict[str, Any]:
    """The worked referral: consent covers zm-social-welfare and zm-iom only."""
    document = json.loads((EXAMPLES / "referral.json").read_text())
    return registry.from_json("xnode.payload.Referral", document, "payload")


@pytest.fixture
def harare_clock(monkeypatch):
    """The machine's local time zone is Central Africa Time (UTC+2), as on many nodes."""
    monkeypatch.setenv("TZ", "CAT-2")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# -- sealing: refusals name the request field ---------------------------------------------------

PAYLOADS = ", ".join(short_name(n) for n in all_payloads())


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"kind": "gossip"}, "kind",
         "unknown kind 'gossip'; expected one of alert, mla, referral, repatriation, statistics, receipt"),
        ({"priority": "asap"}, "priority",
         "unknown priority 'asap'; expected one of low, normal, high, urgent"),
        ({"recipients": []}, "to", "at least one recipient is required"),
        ({"expires_at": NOW}, "expires_at", "expiry must be after the creation time"),
        ({"schema_name": "NoSuchThing"}, "schema",
         f"unknown payload schema 'NoSuchThing'; known: {PAYLOADS}"),
        ({"schema_name": "xnode.common.Handling"}, "schema",
         f"unknown payload schema 'xnode.common.Handling'; known: {PAYLOADS}"),
        ({"kind": "mla", "schema_name": "Alert"}, "schema",
         "a mla message cannot carry Alert; it carries MlaRequest, MlaResponse, "
         "JointInvestigationTeam, ArrestWarrantNotice, ProceedingsTransfer, "
         "AssetRecoveryRequest, VideoTestimonyRequest, SpontaneousInformation, CaseUpdate, "
         "ErasureRequest, ErasureResult, Forward, ForwardPermissionRequest, "
         "ForwardPermissionDecision"),
    ],
)  # fmt: skip
def test_seal_refusals_name_the_field(registry, nodes, payload, change, field, message):
    with pytest.raises(SealError) as err:
        seal(registry, nodes["zm-police"], [nodes["zw-police"]], payload, **change)
    assert (str(err.value), err.value.field) == (message, field)


def test_seal_refusals_about_recipients_name_the_to_field(registry, nodes, payload):
    zm, zw = nodes["zm-police"], nodes["zw-police"]
    later = NOW + dt.timedelta(days=400)
    cases = [
        ({"recipients": [zw.descriptor, zw.descriptor]}, "a recipient is listed twice"),
        ({"recipients": [zm.descriptor]}, "a node does not send to itself"),
        (
            {"now": later, "expires_at": later + dt.timedelta(days=1)},
            "zw-police has no encryption key valid at 2027-12-27",
        ),
    ]
    for change, message in cases:
        with pytest.raises(SealError) as err:
            seal(registry, zm, [zw], payload, **change)
        assert (str(err.value), err.value.field) == (message, "to")


def test_a_payload_schema_this_installation_lacks_is_unknown(nodes):
    """A node built with fewer schemas (an older release) refuses what it cannot encode."""
    documents = [
        (source, doc)
        for source, doc in _schema_documents(Path(__file__).resolve().parent.parent / "schemas")
        if doc.get("name") != "Referral"
    ]
    older = SchemaRegistry.from_documents(documents)
    assert "xnode.payload.Referral" in all_payloads()
    with pytest.raises(SealError, match="unknown payload schema 'Referral'"):
        envelope.payload_schema_name(older, "Referral", "referral")


def test_seal_checks_consent_against_the_actual_recipients(registry, nodes):
    """The person consented to sharing with two nodes; sealing to a third is refused."""
    with pytest.raises(validation.PayloadInvalid) as err:
        seal(
            registry, nodes["zm-police"], [nodes["zw-police"]], referral(registry),
            kind="referral", schema_name="Referral",
        )  # fmt: skip
    assert str(err.value) == (
        "payload.consent.share_with_nodes: the person did not consent to sharing with zw-police"
    )


def test_the_size_limit_is_inclusive(registry, nodes, payload):
    zm, zw = nodes["zm-police"], nodes["zw-police"]
    size = len(seal(registry, zm, [zw], payload).data)  # the same inputs give the same size
    assert len(seal(registry, zm, [zw], payload, max_bytes=size).data) == size
    with pytest.raises(envelope.EnvelopeTooLarge) as err:
        seal(registry, zm, [zw], payload, max_bytes=size - 1)
    assert str(err.value) == f"sealed envelope is {size} bytes; the limit is {size - 1}"


def test_header_times_are_what_the_wire_keeps_in_utc(registry, nodes, payload, harare_clock):
    """Sub-millisecond digits are dropped and the zone is UTC, so the sealed header equals the
    header every recipient decodes, whatever the sending machine's zone."""
    zm, zw = nodes["zm-police"], nodes["zw-police"]
    local = dt.timezone(dt.timedelta(hours=2))
    now = NOW.replace(microsecond=250_100).astimezone(local)
    sealed = seal(registry, zm, [zw], payload, now=now, expires_at=now + dt.timedelta(days=7))
    assert sealed.header.created_at == NOW.replace(microsecond=250_000)
    assert sealed.header.created_at.utcoffset() == dt.timedelta(0)
    assert sealed.header.expires_at.utcoffset() == dt.timedelta(0)
    assert envelope.parse(registry, sealed.data).header == sealed.header


# -- opening: exact refusals ----------------------------------------------------------------------


def test_refusal_text_is_reason_then_detail():
    error = EnvelopeError("expired", "expired at 2026-11-29T08:30:00Z")
    assert str(error) == "expired: expired at 2026-11-29T08:30:00Z"


def rebuild(registry: SchemaRegistry, sealed: envelope.Sealed, **changes: Any) -> bytes:
    """The envelope's parts re-encoded canonically, with header fields or parts replaced."""
    parsed = envelope.parse(registry, sealed.data)
    header = parsed.header.to_record()
    header.update(changes.pop("header", {}))
    ciphertext = changes.pop("ciphertext", parsed.ciphertext)
    signature = changes.pop("signature", parsed.signature)
    assert not changes
    return (
        registry.encode(envelope.HEADER_SCHEMA, header)
        + avro_bytes(ciphertext)
        + avro_bytes(signature)
    )


def refusal(registry: SchemaRegistry, data: bytes, nodes: dict[str, MemNode]) -> EnvelopeError:
    with pytest.raises(EnvelopeError) as err:
        open_as(registry, nodes["zw-police"], data, peers_of(nodes["zm-police"]))
    return err.value


def test_an_unknown_envelope_version_is_named(registry, nodes, payload):
    sealed = seal(registry, nodes["zm-police"], [nodes["zw-police"]], payload)
    error = refusal(registry, rebuild(registry, sealed, header={"version": 2}), nodes)
    assert (error.reason, error.detail) == ("malformed", "envelope version 2 is not supported")


def test_a_non_canonical_encoding_is_named(registry, nodes, payload):
    """The ciphertext length written with a redundant varint byte: same value, other bytes."""
    sealed = seal(registry, nodes["zm-police"], [nodes["zw-police"]], payload)
    parsed = envelope.parse(registry, sealed.data)
    start = len(parsed.header_bytes)
    length = avro_bytes(parsed.ciphertext)[: -len(parsed.ciphertext)]  # the varint alone
    padded = length[:-1] + bytes([length[-1] | 0x80, 0x00])
    data = sealed.data[:start] + padded + sealed.data[start + len(length) :]
    error = refusal(registry, data, nodes)
    assert (error.reason, error.detail) == (
        "malformed",
        "envelope is not in canonical Avro encoding",
    )


def test_a_short_signature_is_a_bad_signature(registry, nodes, payload):
    sealed = seal(registry, nodes["zm-police"], [nodes["zw-police"]], payload)
    parsed = envelope.parse(registry, sealed.data)
    error = refusal(registry, rebuild(registry, sealed, signature=parsed.signature[:63]), nodes)
    assert (error.reason, error.detail) == ("bad-signature", "signature has the wrong length")


def test_a_header_that_does_not_re_encode_is_malformed(registry, nodes, payload, monkeypatch):
    """Defensive: a decoded header always re-encodes today (no byte change found one that does
    not), but if a codec change ever broke that, the envelope is refused, not crashed on."""
    sealed = seal(registry, nodes["zm-police"], [nodes["zw-police"]], payload)
    encode = registry.encode

    def failing(name: str, record: Any) -> bytes:  # failure injection
        if name == envelope.HEADER_SCHEMA:
            raise CodecError(name, "cannot encode")
        return encode(name, record)

    monkeypatch.setattr(registry, "encode", failing)
    error = refusal(registry, sealed.data, nodes)
    assert (error.reason, error.detail) == ("malformed", "envelope does not re-encode")


def test_a_foreign_identity_key_is_named(registry, nodes, payload):
    forger = dataclasses.replace(nodes["bw-police"], node_id="zm-police")
    forged = seal(registry, forger, [nodes["zw-police"]], payload)
    error = refusal(registry, forged.data, nodes)
    assert (error.reason, error.detail) == (
        "unknown-sender",
        f"sender 'zm-police' signed with key {forger.identity.key_id}, not a known identity key "
        f"of it ({nodes['zm-police'].identity.key_id})",
    )


def test_age_refusals_show_utc_times(registry, nodes, payload, harare_clock):
    sealed = seal(registry, nodes["zm-police"], [nodes["zw-police"]], payload)
    peers = peers_of(nodes["zm-police"])
    zw = nodes["zw-police"]
    with pytest.raises(EnvelopeError) as err:
        open_as(registry, zw, sealed.data, peers, now=NOW - dt.timedelta(minutes=10))
    assert err.value.detail == (
        "created 2026-11-22T08:30:00Z, later than now (2026-11-22T08:20:00Z) plus the allowed "
        "skew of 300 s"
    )
    with pytest.raises(EnvelopeError) as err:
        open_as(registry, zw, sealed.data, peers, now=NOW + dt.timedelta(days=8))
    assert err.value.detail == "expired at 2026-11-29T08:30:00Z"


def test_an_unknown_payload_schema_is_named_by_its_fingerprint(
    registry, nodes, payload, monkeypatch
):
    sealed = seal(registry, nodes["zm-police"], [nodes["zw-police"]], payload)
    monkeypatch.setattr(registry, "by_fingerprint", lambda fp: None)  # a node without it
    error = refusal(registry, sealed.data, nodes)
    fingerprint = registry.schema("xnode.payload.CaseUpdate").fingerprint.hex()
    assert (error.reason, error.detail) == (
        "schema-unsupported",
        f"payload schema {fingerprint[:16]}... is not known to this node",
    )


def test_a_payload_the_kind_does_not_carry_is_refused(registry, nodes, monkeypatch):
    """A sender whose catalogue lets an alert carry an MLA request (another release, or a bug):
    the receiver judges the pair by its own catalogue."""
    document = json.loads((EXAMPLES / "mla-request.json").read_text())
    request = registry.from_json("xnode.payload.MlaRequest", document, "payload")
    monkeypatch.setattr(envelope, "payloads_of", lambda kind: all_payloads())  # sender side
    sealed = seal(
        registry, nodes["zm-police"], [nodes["zw-police"]], request, schema_name="MlaRequest"
    )
    monkeypatch.undo()
    error = refusal(registry, sealed.data, nodes)
    assert (error.reason, error.detail) == (
        "invalid-payload",
        "a alert message cannot carry MlaRequest",
    )


def test_an_undecodable_payload_is_invalid(registry, nodes, payload, monkeypatch):
    """Signed by a known sender, but the plaintext is not the Avro it claims to be."""
    encode = registry.encode

    def with_trailing_byte(name: str, record: Any, writer: Any = None) -> bytes:  # injected
        data = encode(name, record, writer)
        return data + b"\x00" if name == "xnode.payload.CaseUpdate" else data

    monkeypatch.setattr(registry, "encode", with_trailing_byte)
    sealed = seal(registry, nodes["zm-police"], [nodes["zw-police"]], payload)
    monkeypatch.undo()
    error = refusal(registry, sealed.data, nodes)
    assert (error.reason, error.detail) == (
        "invalid-payload",
        "xnode.payload.CaseUpdate: 1 trailing bytes after the record",
    )


def test_the_receiver_applies_the_business_rules_itself(registry, nodes, monkeypatch):
    """A sender that skipped validation (or validates by other rules) cannot make a node accept
    a referral its subject did not consent to sharing with that node."""
    monkeypatch.setattr(validation, "check", lambda *args: None)  # sender side only
    sealed = seal(
        registry, nodes["zm-police"], [nodes["zw-police"]], referral(registry),
        kind="referral", schema_name="Referral",
    )  # fmt: skip
    monkeypatch.undo()
    error = refusal(registry, sealed.data, nodes)
    assert (error.reason, error.detail) == (
        "invalid-payload",
        "payload.consent.share_with_nodes: the person did not consent to sharing with zw-police",
    )


# -- an inbox copy, and the header for people ---------------------------------------------------


def test_an_inbox_copy_reopens_whatever_its_age_and_size(registry, nodes, payload):
    """Accepted when it arrived, so neither expiry nor today's size limit refuses it later."""
    zm, zw = nodes["zm-police"], nodes["zw-police"]
    big = dict(payload, note="Sesheke " * 140_000)  # over the default 1 MiB once sealed
    sealed = seal(registry, zm, [zw], big, max_bytes=2 * envelope.DEFAULT_MAX_ENVELOPE_BYTES)
    assert len(sealed.data) > envelope.DEFAULT_MAX_ENVELOPE_BYTES
    opened = envelope.reopen(
        registry, sealed.data, own_id=zw.node_id, own_keys=zw.keys, peers=peers_of(zm)
    )  # long after expiry: reopen takes no clock at all
    assert opened.header == sealed.header
    assert opened.sender == zm.descriptor
    assert opened.payload_schema == registry.schema("xnode.payload.CaseUpdate")
    assert opened.payload == big
    assert opened.envelope_sha256 == sealed.sha256


def test_an_inbox_copy_is_still_verified(registry, nodes, payload):
    zm, zw = nodes["zm-police"], nodes["zw-police"]
    sealed = seal(registry, zm, [zw], payload)
    for data, peers, reason in [
        (b"", peers_of(zm), "malformed"),
        (sealed.data, peers_of(nodes["mw-police"]), "unknown-sender"),
    ]:
        with pytest.raises(EnvelopeError) as err:
            envelope.reopen(registry, data, own_id=zw.node_id, own_keys=zw.keys, peers=peers)
        assert err.value.reason == reason
    with pytest.raises(EnvelopeError) as err:
        mw = nodes["mw-police"]
        envelope.reopen(
            registry, sealed.data, own_id=mw.node_id, own_keys=mw.keys, peers=peers_of(zm)
        )
    assert err.value.reason == "not-a-recipient"


def test_the_header_for_people_hides_wrapped_keys(registry, nodes, payload):
    zm, zw = nodes["zm-police"], nodes["zw-police"]
    header = seal(registry, zm, [zw], payload).header
    shown = envelope.header_json(registry, header)
    assert shown == {
        "version": 1,
        "message_id": header.message_id,
        "kind": "alert",
        "payload_schema": registry.schema("xnode.payload.CaseUpdate").fingerprint.hex(),
        "payload_schema_name": "xnode.payload.CaseUpdate",
        "sender": "zm-police",
        "sender_key_id": zm.identity.key_id,
        "created_at": "2026-11-22T08:30:00.000Z",
        "expires_at": "2026-11-29T08:30:00.000Z",
        "thread_id": header.message_id,
        "in_reply_to": None,
        "priority": "normal",
        "payload_nonce": header.payload_nonce.hex(),
        "recipients": [
            {"node_id": "zw-police", "key_id": zw.encryption.key_id,
             "wrapped_key": "<108 base64 chars>"},
        ],
    }  # fmt: skip
    unknown = dataclasses.replace(header, payload_schema=bytes(32))
    assert envelope.header_json(registry, unknown)["payload_schema_name"] is None


def test_a_new_thread_id_is_a_uuid7_of_its_time():
    from node.uuid7 import uuid7_time

    later = NOW + dt.timedelta(milliseconds=1)
    first, second = envelope.new_thread_id(NOW), envelope.new_thread_id(later)
    assert uuid7_time(uuid.UUID(first)) == NOW and uuid.UUID(first).version == 7
    assert uuid7_time(uuid.UUID(second)) == later
    assert first < second  # thread ids sort by creation time


@pytest.mark.parametrize(
    ("value", "canonical"),
    [("0192f3a4-5b6c-7d8e-9f00-112233445566", True),
     ("0192F3A4-5B6C-7D8E-9F00-112233445566", False), ("0192f3a45b6c7d8e9f00112233445566", False),
     ("{0192f3a4-5b6c-7d8e-9f00-112233445566}", False), ("../../etc/passwd", False), ("", False),
     (None, False), (12, False)],
)  # fmt: skip
def test_only_canonical_uuids_are_ids(value, canonical):
    assert envelope.is_canonical_uuid(value) is canonical
