"""Node key pairs and their public identifiers.

Each node has one Ed25519 **identity** key (signs envelopes and descriptors) and one or more
X25519 **encryption** keys (receive wrapped content keys; rotated on a validity window).

Key id algorithm (documented in schemas/README.md, stable across versions):
``fingerprint = SHA-256(raw 32-byte public key)``; ``key id = lowercase hex of its first 16 bytes``.
The full fingerprint is what people compare out of band; the key id is what headers carry.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

KEY_ID_BYTES = 16
RAW = serialization.Encoding.Raw
RAW_PUBLIC = serialization.PublicFormat.Raw


def public_bytes(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(RAW, RAW_PUBLIC)


def fingerprint(raw_public_key: bytes) -> bytes:
    return hashlib.sha256(raw_public_key).digest()


def key_id(raw_public_key: bytes) -> str:
    return fingerprint(raw_public_key)[:KEY_ID_BYTES].hex()


def display_fingerprint(raw_public_key: bytes) -> str:
    """SHA-256 in groups of four hex digits, easy to read aloud over a telephone line."""
    digest = fingerprint(raw_public_key).hex()
    return " ".join(digest[i : i + 4] for i in range(0, len(digest), 4))


@dataclass(frozen=True)
class IdentityKey:
    """An Ed25519 signing key with its derived public identifiers."""

    private: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> IdentityKey:
        return cls(Ed25519PrivateKey.generate())

    @functools.cached_property  # derived once: asked for by every seal and open
    def public_raw(self) -> bytes:
        return public_bytes(self.private.public_key())

    @functools.cached_property
    def key_id(self) -> str:
        return key_id(self.public_raw)

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)


@dataclass(frozen=True)
class EncryptionKey:
    """An X25519 key agreement key with its derived key id."""

    private: X25519PrivateKey

    @classmethod
    def generate(cls) -> EncryptionKey:
        return cls(X25519PrivateKey.generate())

    @functools.cached_property  # derived once: asked for by every seal and open
    def public_raw(self) -> bytes:
        return public_bytes(self.private.public_key())

    @functools.cached_property
    def key_id(self) -> str:
        return key_id(self.public_raw)


def load_ed25519_public(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


def load_x25519_public(raw: bytes) -> X25519PublicKey:
    return X25519PublicKey.from_public_bytes(raw)


# The y-coordinates (sign bit cleared) of the Ed25519 points of small order, canonical and
# non-canonical encodings: libsodium's blocklist. A signature under such a "public key" can
# verify for messages its holder never signed, so no such key is ever accepted as an identity.
_SMALL_ORDER_ED25519 = frozenset(
    bytes.fromhex(h)
    for h in (
        "00" * 32,
        "01" + "00" * 31,
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "ec" + "ff" * 30 + "7f",
        "ed" + "ff" * 30 + "7f",
        "ee" + "ff" * 30 + "7f",
    )
)
_ED25519_P = 2**255 - 19


def ed25519_key_problem(raw: bytes) -> str | None:
    """Why ``raw`` cannot be an identity key (None if it can): wrong length, a non-canonical
    encoding, or a point of small order."""
    if len(raw) != 32:
        return "not a 32-byte Ed25519 public key"
    y = bytes(raw[:31]) + bytes([raw[31] & 0x7F])
    if y in _SMALL_ORDER_ED25519:
        return "a point of small order (signatures under it prove nothing)"
    if int.from_bytes(y, "little") >= _ED25519_P:
        return "a non-canonical encoding"
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return "not a point on the curve"
    return None


def x25519_key_problem(raw: bytes) -> str | None:
    """Why ``raw`` cannot be an encryption key (None if it can): wrong length, or a point of
    low order — an agreement with it yields the all-zero secret (RFC 7748 §6.1), so nothing
    could be encrypted to it and receipts to its owner could never be sealed."""
    if len(raw) != 32:
        return "not a 32-byte X25519 public key"
    try:
        X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(raw))
    except ValueError:
        return "a point of low order (key agreement with it gives the all-zero secret)"
    return None
