"""Descriptors: issue, verify, refuse tampering, malformed ids and silent key replacement."""

from __future__ import annotations

import dataclasses

import pytest

from node.trust import (
    PeerChange,
    TrustError,
    decide_peer_add,
    issue_descriptor,
    verify_descriptor,
)
from tests.conftest import NOW, make_node


def test_issue_and_verify(registry, nodes):
    zm = nodes["zm-police"]
    signed = issue_descriptor(zm.identity, zm.descriptor, registry)
    assert verify_descriptor(signed.raw, registry).descriptor == zm.descriptor


def test_any_change_breaks_the_signature(registry, nodes):
    zm = nodes["zm-police"]
    raw = issue_descriptor(zm.identity, zm.descriptor, registry).raw
    for position in range(len(raw)):
        tampered = bytearray(raw)
        tampered[position] ^= 0x20
        with pytest.raises(TrustError):
            verify_descriptor(bytes(tampered), registry)


def test_signed_by_another_key_is_refused(registry, nodes):
    zm, bw = nodes["zm-police"], nodes["bw-police"]
    with pytest.raises(TrustError, match="not the signing key"):
        issue_descriptor(bw.identity, zm.descriptor, registry)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"node_id": "ZM_Police"}, "invalid node id"),
        ({"node_id": "zm-x"}, "invalid node id"),
        ({"roles": ("spy",)}, "unknown role"),
        ({"roles": ()}, "at least one role"),
        ({"country": "zw"}, "does not match node id"),
        ({"display_name": "  "}, "display name is empty"),
        ({"encryption_keys": ()}, "no encryption key"),
        ({"descriptor_version": 0}, "version must be 1"),
    ],
)
def test_malformed_descriptors_are_refused(registry, nodes, change, message):
    zm = nodes["zm-police"]
    bad = dataclasses.replace(zm.descriptor, **change)
    # Build the bytes without the issuer's own checks, as a hostile or buggy peer could.
    body = registry.encode("xnode.trust.NodeDescriptor", bad.to_record())
    from node.crypto.primitives import sign
    from node.trust import DESCRIPTOR_DOMAIN

    raw = registry.encode(
        "xnode.trust.SignedNodeDescriptor",
        {"descriptor": body, "signature": sign(zm.identity, DESCRIPTOR_DOMAIN, body)},
    )
    with pytest.raises(TrustError, match=message):
        verify_descriptor(raw, registry)


def test_not_a_descriptor(registry):
    with pytest.raises(TrustError, match="not a node descriptor file"):
        verify_descriptor(b"PK\x03\x04 this is a zip file", registry)


def test_peer_add_decisions(registry, nodes):
    zm = nodes["zm-police"]
    v1 = issue_descriptor(zm.identity, zm.descriptor, registry)
    v2 = issue_descriptor(
        zm.identity, dataclasses.replace(zm.descriptor, descriptor_version=2), registry
    )
    v1_changed = issue_descriptor(
        zm.identity, dataclasses.replace(zm.descriptor, display_name="Zambia Police"), registry
    )
    assert decide_peer_add("zw-police", None, v1, NOW) is PeerChange.NEW
    assert decide_peer_add("zw-police", v1, v1, NOW) is PeerChange.UNCHANGED
    assert decide_peer_add("zw-police", v1, v2, NOW) is PeerChange.UPDATE
    with pytest.raises(TrustError, match="older than the known version 2"):
        decide_peer_add("zw-police", v2, v1, NOW)
    with pytest.raises(TrustError, match="needs a higher version"):
        decide_peer_add("zw-police", v1, v1_changed, NOW)
    with pytest.raises(TrustError, match="own id"):
        decide_peer_add("zm-police", None, v1, NOW)


def test_replacing_a_known_identity_key_is_refused(registry, nodes):
    zm = nodes["zm-police"]
    impostor = make_node("zm-police")
    known = issue_descriptor(zm.identity, zm.descriptor, registry)
    fake = issue_descriptor(
        impostor.identity,
        dataclasses.replace(impostor.descriptor, descriptor_version=99),
        registry,
    )
    with pytest.raises(TrustError, match="refusing to replace the identity key") as err:
        decide_peer_add("zw-police", known, fake, NOW)
    assert zm.descriptor.fingerprint in str(err.value)
    assert "xnode peers remove zm-police" in str(err.value)
