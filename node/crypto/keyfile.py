"""Private key files: PKCS#8 PEM, mode 0600, optionally encrypted with a passphrase.

PKCS#8 is what OpenSSL and every other toolkit read, so an operator can inspect or back up a
key with standard tools (``openssl pkey -in identity.key -noout -text``). With a passphrase the
file uses cryptography's best available PKCS#8 encryption (scrypt/PBKDF2 + AES-256).

Loading refuses files readable by anyone but the owner, as ssh does, because a key that others
could have read must be treated as compromised, not silently used.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

PRIVATE_MODE = 0o600
_ENCRYPTED_MARKER = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"


class KeyFileError(Exception):
    """A key file cannot be used; the message says which file and what to do."""


def write_private_key(
    path: Path, key: Ed25519PrivateKey | X25519PrivateKey, passphrase: bytes | None
) -> None:
    """Create ``path`` with mode 0600 from the start (never world-readable, not even briefly).

    Refuses to overwrite: losing a private key loses every message encrypted to it.
    """
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except FileExistsError as exc:
        raise KeyFileError(f"{path}: already exists; refusing to overwrite a private key") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, PRIVATE_MODE)  # in case the umask or file system changed the mode


def is_passphrase_protected(path: Path) -> bool:
    return path.read_bytes().lstrip().startswith(_ENCRYPTED_MARKER)


def load_identity_key(path: Path, passphrase: bytes | None) -> Ed25519PrivateKey:
    key = _load_private_key(path, passphrase)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: holds a {_algorithm(key)} key; expected Ed25519")
    return key


def load_encryption_key(path: Path, passphrase: bytes | None) -> X25519PrivateKey:
    key = _load_private_key(path, passphrase)
    if not isinstance(key, X25519PrivateKey):
        raise KeyFileError(f"{path}: holds a {_algorithm(key)} key; expected X25519")
    return key


def _algorithm(key: object) -> str:
    return type(key).__name__.removesuffix("PrivateKey").lstrip("_")


def _load_private_key(path: Path, passphrase: bytes | None) -> object:
    """Load any private key or raise :class:`KeyFileError` saying why not."""
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise KeyFileError(f"{path}: key file not found") from exc
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(f"{path}: not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"{path}: permissions {mode:04o} are too open; a private key must be readable by "
            f"its owner only (run: chmod 600 {path})"
        )
    data = path.read_bytes()
    encrypted = data.lstrip().startswith(_ENCRYPTED_MARKER)
    if encrypted and not passphrase:
        raise KeyFileError(
            f"{path}: key is passphrase-protected; give the passphrase "
            "(XNODE_KEY_PASSPHRASE or --passphrase-file)"
        )
    try:
        key = serialization.load_pem_private_key(data, passphrase if encrypted else None)
    except ValueError as exc:
        if encrypted:
            raise KeyFileError(f"{path}: wrong passphrase, or the key file is damaged") from exc
        raise KeyFileError(f"{path}: corrupt key file (not a PEM PKCS#8 private key)") from exc
    except Exception as exc:  # unsupported algorithms and malformed DER raise other types
        raise KeyFileError(f"{path}: corrupt key file ({type(exc).__name__})") from exc
    return key
