"""Private key files: permissions, passphrases, corruption, wrong types, no overwrite."""

from __future__ import annotations

import os
import stat

import pytest

from node.crypto.keyfile import (
    KeyFileError,
    is_passphrase_protected,
    load_encryption_key,
    load_identity_key,
    write_private_key,
)
from node.crypto.keys import EncryptionKey, IdentityKey, display_fingerprint, key_id


def test_written_with_mode_0600_and_loads(tmp_path):
    key = IdentityKey.generate()
    path = tmp_path / "identity.key"
    write_private_key(path, key.private, None)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert IdentityKey(load_identity_key(path, None)).public_raw == key.public_raw
    assert not is_passphrase_protected(path)


def test_refuses_to_overwrite(tmp_path):
    path = tmp_path / "identity.key"
    write_private_key(path, IdentityKey.generate().private, None)
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        write_private_key(path, IdentityKey.generate().private, None)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_too_open_permissions_are_refused(tmp_path, mode):
    path = tmp_path / "identity.key"
    write_private_key(path, IdentityKey.generate().private, None)
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match=f"permissions {mode:04o} are too open.*chmod 600"):
        load_identity_key(path, None)


def test_passphrase_protection(tmp_path):
    key = EncryptionKey.generate()
    path = tmp_path / "enc.key"
    write_private_key(path, key.private, b"Lusaka-Sesheke-2026")
    assert is_passphrase_protected(path)
    assert b"PRIVATE KEY" in path.read_bytes()
    loaded = EncryptionKey(load_encryption_key(path, b"Lusaka-Sesheke-2026"))
    assert loaded.key_id == key.key_id
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_encryption_key(path, b"Nakonde")
    with pytest.raises(KeyFileError, match="passphrase-protected; give the passphrase"):
        load_encryption_key(path, None)


def test_corrupt_missing_and_wrong_type(tmp_path):
    path = tmp_path / "identity.key"
    write_private_key(path, IdentityKey.generate().private, None)
    body = bytearray(path.read_bytes())
    body[40:60] = b"!" * 20
    path.write_bytes(bytes(body))
    with pytest.raises(KeyFileError, match="corrupt key file"):
        load_identity_key(path, None)
    with pytest.raises(KeyFileError, match="key file not found"):
        load_identity_key(tmp_path / "nothing.key", None)
    other = tmp_path / "enc.key"
    write_private_key(other, EncryptionKey.generate().private, None)
    with pytest.raises(KeyFileError, match="holds a X25519 key; expected Ed25519"):
        load_identity_key(other, None)


def test_key_id_and_fingerprint_algorithm():
    import hashlib

    raw = bytes(range(32))
    assert key_id(raw) == hashlib.sha256(raw).hexdigest()[:32]
    assert display_fingerprint(raw).replace(" ", "") == hashlib.sha256(raw).hexdigest()
    assert len(display_fingerprint(raw).split()) == 16
