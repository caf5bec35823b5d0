"""When a replaced encryption key is destroyed (node/keylife.py), and re-wrapping what was
sealed to it so that stored messages stay readable (node/envelope.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from node import envelope, keylife
from node.crypto.keys import EncryptionKey
from node.envelope import EnvelopeError
from node.nodedir import NodeDir, NodeDirError, shred, write_atomically
from node.trust import EncryptionKeyInfo
from tests.conftest import NOW, peers_of
from tests.test_envelope import seal_to

DAY = dt.timedelta(days=1)


def info(key_id: str, valid_from: dt.datetime) -> EncryptionKeyInfo:
    return EncryptionKeyInfo(key_id, bytes(32), valid_from, valid_from + 365 * DAY)


def test_a_replaced_key_is_due_once_its_successor_is_older_than_the_window():
    a, b = info("a", NOW - 40 * DAY), info("b", NOW - 10 * DAY)
    assert keylife.newest([a, b]) == b
    assert keylife.retired_keys_due([a, b], NOW, 30 * DAY) == []
    assert keylife.retired_keys_due([a, b], NOW + 20 * DAY, 30 * DAY) == ["a"]
    assert keylife.retired_keys_due([a, b], NOW - 10 * DAY, dt.timedelta(0)) == ["a"]
    assert keylife.retired_keys_due([a, b], NOW - 10 * DAY - dt.timedelta(seconds=1),
                                    dt.timedelta(0)) == []  # fmt: skip


def test_each_key_counts_from_its_own_successor_and_the_newest_is_never_due():
    a, b, c = info("a", NOW - 90 * DAY), info("b", NOW - 40 * DAY), info("c", NOW - 5 * DAY)
    assert keylife.retired_keys_due([c, a, b], NOW, 30 * DAY) == ["a"]  # b replaced 5 days ago
    assert keylife.retired_keys_due([a, b, c], NOW + 400 * DAY, 30 * DAY) == ["a", "b"]
    assert keylife.retired_keys_due([c], NOW + 400 * DAY, dt.timedelta(0)) == []
    twin = info("d", c.valid_from)  # same start: the one listed last is the newest
    assert keylife.newest([c, twin]) == twin
    assert keylife.retired_keys_due([c, twin], NOW, dt.timedelta(0)) == ["c"]


def test_a_rewrapped_message_opens_without_the_key_it_was_sealed_to(registry, nodes, payload):
    zm, zw = nodes["zm-police"], nodes["zw-police"]
    sealed = seal_to(registry, zm, [zw], payload)
    parsed = envelope.parse(registry, sealed.data, len(sealed.data))
    current = EncryptionKey.generate()
    wrap = envelope.rewrap(parsed, zw.node_id, zw.keys, current)
    assert wrap[0] == current.key_id
    assert envelope.sealed_to(parsed, zw.node_id) == zw.encryption.key_id
    assert envelope.sealed_to(parsed, zw.node_id, wrap) == current.key_id
    only_current = {current.key_id: current}  # the old key destroyed
    with pytest.raises(EnvelopeError, match="does not hold"):
        envelope.reopen(registry, sealed.data, own_id=zw.node_id, own_keys=only_current,
                        peers=peers_of(zm))  # fmt: skip
    opened = envelope.reopen(registry, sealed.data, own_id=zw.node_id, own_keys=only_current,
                             peers=peers_of(zm), local_wrap=wrap)  # fmt: skip
    assert opened.payload == envelope.reopen(registry, sealed.data, own_id=zw.node_id,
                                             own_keys=zw.keys, peers=peers_of(zm)).payload  # fmt: skip
    # and again, from the re-wrap, to a later key
    later = EncryptionKey.generate()
    again = envelope.rewrap(parsed, zw.node_id, only_current, later, wrap)
    assert envelope.reopen(registry, sealed.data, own_id=zw.node_id,
                           own_keys={later.key_id: later}, peers=peers_of(zm),
                           local_wrap=again).payload == opened.payload  # fmt: skip


def test_a_rewrap_is_bound_to_its_message(registry, nodes, payload):
    """A re-wrap copied onto another stored message (by someone who can write the store) does
    not open it: the wrap is bound to the sender and message id."""
    zm, zw = nodes["zm-police"], nodes["zw-police"]
    first, second = (seal_to(registry, zm, [zw], payload) for _ in range(2))
    current = EncryptionKey.generate()
    wrap = envelope.rewrap(envelope.parse(registry, first.data, len(first.data)), zw.node_id,
                           zw.keys, current)  # fmt: skip
    with pytest.raises(EnvelopeError) as refused:
        envelope.reopen(registry, second.data, own_id=zw.node_id,
                        own_keys={current.key_id: current}, peers=peers_of(zm), local_wrap=wrap)  # fmt: skip
    assert refused.value.reason == "invalid-payload"
    tampered = (wrap[0], bytes([wrap[1][0] ^ 1]) + wrap[1][1:])
    with pytest.raises(EnvelopeError):
        envelope.reopen(registry, first.data, own_id=zw.node_id,
                        own_keys={current.key_id: current}, peers=peers_of(zm),
                        local_wrap=tampered)  # fmt: skip


def test_what_did_not_open_is_not_rewrapped(registry, nodes, payload):
    zm, zw = nodes["zm-police"], nodes["zw-police"]
    sealed = seal_to(registry, zm, [zw], payload)
    parsed = envelope.parse(registry, sealed.data, len(sealed.data))
    stranger = dataclasses.replace(zw, encryption=EncryptionKey.generate())
    with pytest.raises(EnvelopeError):
        envelope.rewrap(parsed, zw.node_id, stranger.keys, EncryptionKey.generate())
    with pytest.raises(EnvelopeError, match="not among the recipients"):
        envelope.sealed_to(parsed, "mw-police")


def test_the_node_directory_destroys_only_a_replaced_key(registry, tmp_path):
    node_dir = NodeDir(tmp_path / "zw")
    node_dir.create(registry, node_id="zw-police", roles=("law-enforcement",), name="ZW",
                    now=NOW, passphrase=None)  # fmt: skip
    first = node_dir.own_descriptor(registry).descriptor.encryption_keys[0].key_id
    rotated = node_dir.rotate_encryption_key(registry, None, NOW + DAY, 365)
    second = rotated.descriptor.encryption_keys[-1].key_id
    with pytest.raises(NodeDirError, match="is the current one"):
        node_dir.destroy_encryption_key(registry, None, second, NOW + DAY)
    with pytest.raises(NodeDirError, match="not one of this node's keys"):
        node_dir.destroy_encryption_key(registry, None, "nope", NOW + DAY)
    signed = node_dir.destroy_encryption_key(registry, None, first, NOW + 2 * DAY)
    assert [k.key_id for k in signed.descriptor.encryption_keys] == [second]
    assert signed.descriptor.descriptor_version == 3
    assert not (node_dir.keys_path / f"encryption-{first}.key").exists()
    assert set(node_dir.load_keys(registry, None).encryption) == {second}


def test_an_identity_switch_cut_short_by_a_crash_is_finished_at_the_next_load(registry, tmp_path):
    """The descriptor naming the new key was written and the old key overwritten, then the
    process died before the pending key took its place: loading the keys finishes the switch."""
    node_dir = NodeDir(tmp_path / "zm")
    node_dir.create(registry, node_id="zm-police", roles=("law-enforcement",), name="ZM",
                    now=NOW, passphrase=None)  # fmt: skip
    old, fresh, descriptor = node_dir.prepare_identity_rotation(registry, None, NOW)
    assert (node_dir.keys_path / "identity-next.key").stat().st_mode & 0o777 == 0o600
    assert node_dir.adopt_next_identity(registry, None, old.public_raw, NOW) is None  # not listed
    write_atomically(node_dir.path / "descriptor.xnd", descriptor.raw)
    shred(node_dir.keys_path / "identity.key")
    keys = node_dir.load_keys(registry, None)
    assert keys.identity.public_raw == fresh.public_raw
    assert not (node_dir.keys_path / "identity-next.key").exists()
    assert node_dir.load_keys(registry, None).identity.public_raw == fresh.public_raw
