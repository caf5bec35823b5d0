"""Peer keys that could not be used safely are refused at import, not met later on the receive
path: a member with a valid identity key signs a descriptor whose encryption key is a point of
low order (receipts to it could never be sealed; used to stall the receiver's partition), whose
keys have all expired, or whose identity key is a point of small order."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import pytest

from node import cli
from node.crypto.keys import (
    EncryptionKey,
    IdentityKey,
    ed25519_key_problem,
    key_id,
    x25519_key_problem,
)
from node.trust import (
    REVOCATION_REASONS,
    EncryptionKeyInfo,
    PeerChange,
    Revocation,
    TrustError,
    check_peer_keys,
    check_revocation,
    decide_peer_add,
    issue_descriptor,
)
from tests.conftest import NOW, make_node

# X25519 public keys of low order (RFC 7748 §6.1; the list checked by libsodium and others)
LOW_ORDER_X25519 = [
    bytes(32),
    bytes([1]) + bytes(31),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
]
SMALL_ORDER_ED25519 = [
    bytes(32),
    bytes([1]) + bytes(31),
    bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
    bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
]


def with_encryption_key(public: bytes, valid_until: dt.datetime = NOW + dt.timedelta(days=30)):
    node = make_node("mw-police")
    info = EncryptionKeyInfo(key_id(public), public, NOW - dt.timedelta(days=1), valid_until)
    return node, dataclasses.replace(node.descriptor, encryption_keys=(info,))


@pytest.mark.parametrize("public", LOW_ORDER_X25519)
def test_a_low_order_encryption_key_is_refused(registry, public):
    node, descriptor = with_encryption_key(public)
    signed = issue_descriptor(node.identity, descriptor, registry)  # a valid self-signature
    with pytest.raises(TrustError, match=rf"encryption key {key_id(public)} .* low order"):
        decide_peer_add("zw-police", None, signed, NOW)


@pytest.mark.parametrize("public", SMALL_ORDER_ED25519)
def test_a_small_order_identity_key_is_refused(public):
    descriptor = dataclasses.replace(make_node("mw-police").descriptor, identity_key=public)
    with pytest.raises(TrustError, match=r"identity key .* small order"):
        check_peer_keys(descriptor, NOW)


def test_a_non_canonical_identity_key_is_refused():
    p_plus_2 = (2**255 - 19 + 2).to_bytes(32, "little")  # y = 2 written the long way
    assert ed25519_key_problem(p_plus_2) == "a non-canonical encoding"
    assert ed25519_key_problem(b"\x01" * 31) == "not a 32-byte Ed25519 public key"


def test_real_keys_pass():
    assert ed25519_key_problem(IdentityKey.generate().public_raw) is None
    assert x25519_key_problem(EncryptionKey.generate().public_raw) is None
    assert x25519_key_problem(bytes(31)) == "not a 32-byte X25519 public key"


def test_a_descriptor_whose_keys_all_expired_is_refused_and_one_valid_key_suffices(registry):
    public = EncryptionKey.generate().public_raw
    node, expired = with_encryption_key(public, valid_until=NOW)
    signed = issue_descriptor(node.identity, expired, registry)
    with pytest.raises(TrustError, match=r"every encryption key of .mw-police. has expired"):
        decide_peer_add("zw-police", None, signed, NOW)
    later = EncryptionKeyInfo(
        key_id(public), public, NOW + dt.timedelta(days=1), NOW + dt.timedelta(days=60)
    )  # fmt: skip  (valid from tomorrow)
    renewed = dataclasses.replace(expired, encryption_keys=(*expired.encryption_keys, later))
    signed = issue_descriptor(node.identity, renewed, registry)
    assert decide_peer_add("zw-police", None, signed, NOW) is PeerChange.NEW


def test_the_cli_refuses_the_file_and_keeps_the_directory(registry, tmp_path: Path, capsys):
    assert cli.main(["init", "--dir", str(tmp_path / "zw"), "--id", "zw-police",
                     "--roles", "law-enforcement"]) == 0  # fmt: skip
    node, descriptor = with_encryption_key(bytes(32))
    hostile = tmp_path / "mw-police.xnd"
    hostile.write_bytes(issue_descriptor(node.identity, descriptor, registry).raw)
    capsys.readouterr()
    code = cli.main(["peers", "add", "--dir", str(tmp_path / "zw"), str(hostile), "--yes"])
    _, err = capsys.readouterr()
    assert code != 0 and "low order" in err and "Traceback" not in err
    assert not list((tmp_path / "zw" / "peers").glob("*.xnd"))


# -- revocation records (peers/revoked.json) ----------------------------------------------------


def test_a_revocation_survives_its_file_form():
    revocation = Revocation("mw-police", "key-compromise", NOW, "laptop stolen at Beitbridge")
    doc = revocation.to_json()
    assert doc == {"node_id": "mw-police", "reason": "key-compromise", "at": NOW.isoformat(),
                   "note": "laptop stolen at Beitbridge"}  # fmt: skip
    assert Revocation.from_json(doc) == revocation
    assert Revocation.from_json({k: v for k, v in doc.items() if k != "note"}).note == ""


@pytest.mark.parametrize(
    ("change", "message"),
    [({"node_id": "MW_police"}, "invalid node id"),
     ({"reason": "bored"}, "unknown revocation reason 'bored'; one of key-compromise, left-federation, "
      "misbehaviour, superseded"),
     ({"at": NOW.replace(tzinfo=None)}, "revocation time must carry a time zone")],
)  # fmt: skip
def test_a_revocation_that_cannot_be_applied_is_refused(change, message):
    revocation = dataclasses.replace(Revocation("mw-police", "misbehaviour", NOW), **change)
    with pytest.raises(TrustError, match=re.escape(message)):
        check_revocation(revocation)
    with pytest.raises(TrustError, match=re.escape(message)):
        Revocation.from_json({**revocation.to_json(), "at": revocation.at.isoformat()})


def test_every_reason_code_is_explained():
    assert set(REVOCATION_REASONS) == {"key-compromise", "left-federation", "misbehaviour",
                                       "superseded"}  # fmt: skip
    assert all(text for text in REVOCATION_REASONS.values())
    for reason in REVOCATION_REASONS:
        check_revocation(Revocation("mw-police", reason, NOW))
