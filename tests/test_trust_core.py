"""Trust edges that mutation testing found untested (docs/mutation-testing.md).

test_trust.py covers issuing, verifying and peer decisions; this file pins key validity at its
boundaries, the choice of key during a rotation, neighbours surviving the round trip, and the
exact sentences an operator reads when ``xnode peers add`` refuses a file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from node.codec import SchemaRegistry
from node.crypto.keys import EncryptionKey
from node.crypto.primitives import sign
from node.trust import (
    DESCRIPTOR_DOMAIN,
    DESCRIPTOR_SCHEMA,
    MAX_DESCRIPTOR_BYTES,
    SIGNED_DESCRIPTOR_SCHEMA,
    Descriptor,
    EncryptionKeyInfo,
    PeerDirectory,
    TrustError,
    decide_peer_add,
    issue_descriptor,
    verify_descriptor,
)
from tests.conftest import NOW, MemNode, make_node

DAY = dt.timedelta(days=1)


def key_info(valid_from: dt.datetime, valid_until: dt.datetime) -> EncryptionKeyInfo:
    key = EncryptionKey.generate()
    return EncryptionKeyInfo(key.key_id, key.public_raw, valid_from, valid_until)


def hand_signed(registry: SchemaRegistry, node: MemNode, record: dict[str, Any]) -> bytes:
    """A descriptor file built without the issuer's checks, as a hostile or buggy peer could."""
    body = registry.encode(DESCRIPTOR_SCHEMA, record)
    signature = sign(node.identity, DESCRIPTOR_DOMAIN, body)
    return registry.encode(SIGNED_DESCRIPTOR_SCHEMA, {"descriptor": body, "signature": signature})


def refusal(registry: SchemaRegistry, raw: bytes) -> str:
    with pytest.raises(TrustError) as err:
        verify_descriptor(raw, registry)
    return str(err.value)


def test_a_key_is_valid_from_its_first_instant_until_just_before_its_end():
    key = key_info(NOW, NOW + DAY)
    assert key.valid_at(NOW)
    assert key.valid_at(NOW + DAY - dt.timedelta(milliseconds=1))
    assert not key.valid_at(NOW + DAY)
    assert not key.valid_at(NOW - dt.timedelta(milliseconds=1))


def test_during_a_rotation_senders_encrypt_to_the_newest_key():
    old = key_info(NOW - 30 * DAY, NOW + 30 * DAY)
    new = key_info(NOW - DAY, NOW + 365 * DAY)
    descriptor = dataclasses.replace(make_node("zm-police").descriptor, encryption_keys=(old, new))
    assert descriptor.encryption_key_at(NOW) == new
    assert descriptor.encryption_key_at(NOW - 2 * DAY) == old  # before the new one starts
    assert descriptor.encryption_key_at(NOW + 400 * DAY) is None


def test_issued_and_verified_descriptors_carry_the_same_signed_bytes(registry, nodes):
    zm = nodes["zm-police"]
    issued = issue_descriptor(zm.identity, zm.descriptor, registry)
    verified = verify_descriptor(issued.raw, registry)
    assert (verified.body, verified.signature, verified.raw) == (
        issued.body,
        issued.signature,
        issued.raw,
    )
    assert len(issued.signature) == 64
    assert registry.decode(SIGNED_DESCRIPTOR_SCHEMA, issued.raw) == {
        "descriptor": issued.body,
        "signature": issued.signature,
    }


def test_neighbours_survive_issue_and_verify(registry, nodes):
    zm = nodes["zm-police"]
    with_neighbours = dataclasses.replace(zm.descriptor, neighbours=("zw-police", "mw-police"))
    issued = issue_descriptor(zm.identity, with_neighbours, registry)
    assert verify_descriptor(issued.raw, registry).descriptor.neighbours == (
        "zw-police",
        "mw-police",
    )


def test_a_record_without_neighbours_reads_as_none():
    """Descriptors written before neighbours existed decode without the field."""
    record = make_node("zm-police").descriptor.to_record()
    del record["neighbours"]
    assert Descriptor.from_record(record).neighbours == ()


def test_a_malformed_neighbour_is_refused(registry, nodes):
    zm = nodes["zm-police"]
    bad = dataclasses.replace(zm.descriptor, neighbours=("zw-police", "Zimbabwe Police"))
    message = refusal(registry, hand_signed(registry, zm, bad.to_record()))
    assert message.startswith("descriptor refused: invalid node id 'Zimbabwe Police'")


def test_the_size_limit_is_inclusive(registry):
    assert refusal(registry, bytes(MAX_DESCRIPTOR_BYTES + 1)) == (
        f"descriptor is {MAX_DESCRIPTOR_BYTES + 1} bytes; the limit is {MAX_DESCRIPTOR_BYTES}"
    )
    # At the limit the size is fine; these bytes are refused for what they are.
    assert refusal(registry, bytes(MAX_DESCRIPTOR_BYTES)).startswith("not a node descriptor file")


def test_an_identity_key_of_the_wrong_size_is_named(registry, nodes):
    zm = nodes["zm-police"]
    record = dict(zm.descriptor.to_record(), identity_key=zm.identity.public_raw[:31])
    assert refusal(registry, hand_signed(registry, zm, record)) == (
        "identity key must be a 32-byte Ed25519 public key"
    )


def test_a_bad_signature_says_what_to_suspect(registry, nodes):
    zm, bw = nodes["zm-police"], nodes["bw-police"]
    raw = hand_signed(registry, bw, zm.descriptor.to_record())  # signed by another key
    assert refusal(registry, raw) == (
        "signature of the descriptor for 'zm-police' does not verify; the file was altered or "
        "is not what the peer sent"
    )


def test_signing_someone_elses_descriptor_is_refused(registry, nodes):
    with pytest.raises(TrustError) as err:
        issue_descriptor(nodes["bw-police"].identity, nodes["zm-police"].descriptor, registry)
    assert str(err.value) == "the descriptor's identity key is not the signing key"


def test_descriptor_checks_name_the_problem(registry, nodes):
    zm = nodes["zm-police"]
    (good,) = zm.descriptor.encryption_keys
    other = key_info(NOW, NOW + DAY)
    cases = [
        ({"display_name": " "}, "display name is empty"),
        ({"encryption_keys": ()}, "descriptor has no encryption key"),
        ({"descriptor_version": 0}, "descriptor version must be 1 or higher"),
        (
            {"encryption_keys": (dataclasses.replace(good, public_key=good.public_key[:31]),)},
            f"encryption key {good.key_id}: not a 32-byte X25519 public key",
        ),
        (
            {"encryption_keys": (dataclasses.replace(good, key_id=other.key_id),)},
            f"encryption key id {other.key_id} does not match its public key",
        ),
        (
            {"encryption_keys": (dataclasses.replace(good, valid_until=good.valid_from),)},
            f"encryption key {good.key_id}: validity window is empty",
        ),
    ]
    for change, message in cases:
        with pytest.raises(TrustError) as err:
            issue_descriptor(zm.identity, dataclasses.replace(zm.descriptor, **change), registry)
        assert str(err.value) == message, change
    # A window of one millisecond is short, not empty.
    short = dataclasses.replace(good, valid_until=good.valid_from + dt.timedelta(milliseconds=1))
    issue_descriptor(
        zm.identity, dataclasses.replace(zm.descriptor, encryption_keys=(short,)), registry
    )


def test_peer_add_refusals_tell_the_operator_what_to_do(registry, nodes):
    zm = nodes["zm-police"]
    impostor = make_node("zm-police")
    known = issue_descriptor(zm.identity, zm.descriptor, registry)
    fake = issue_descriptor(impostor.identity, impostor.descriptor, registry)
    with pytest.raises(TrustError) as err:
        decide_peer_add("zw-police", known, fake, NOW)
    assert str(err.value) == (
        f"refusing to replace the identity key of known peer 'zm-police': known fingerprint "
        f"{zm.descriptor.fingerprint}, file has {impostor.descriptor.fingerprint}. If the peer "
        "really changed its identity key, confirm it out of band, then run 'xnode peers remove "
        "zm-police' and add the new descriptor"
    )
    changed = issue_descriptor(
        zm.identity, dataclasses.replace(zm.descriptor, display_name="Zambia Police"), registry
    )
    with pytest.raises(TrustError) as err:
        decide_peer_add("zw-police", known, changed, NOW)
    assert str(err.value) == (
        "'zm-police' version 1 differs from the known descriptor of the same version; a changed "
        "descriptor needs a higher version"
    )


def test_the_directory_knows_its_peers_by_id():
    zm, zw = make_node("zm-police"), make_node("zw-police")
    peers = PeerDirectory.of([zm.descriptor, zw.descriptor], revoked=["zw-police"])
    assert "zm-police" in peers and "zw-police" in peers  # revoked, but still known
    assert "bw-police" not in peers
    assert len(peers) == 2
