"""Node key pairs and their public identifiers.

Each node has one Ed25519 **identity** key (signs envelopes and descriptors) and one or more
X25519 **encryption** keys (receive wrapped content keys; rotated on a validity window).

Key id algorithm (documented in schemas/README.md, stable across versions):
``fingerprint = SHA-256(raw 32-byte public key)``; ``key id = lowercase hex of its first 16 bytes``.
The full fingerprint is what people compare out of band; the key id is what headers carry.
"""

from __future__ import annotations

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

    @property
    def public_raw(self) -> bytes:
        return public_bytes(self.private.public_key())

    @property
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

    @property
    def public_raw(self) -> bytes:
        return public_bytes(self.private.public_key())

    @property
    def key_id(self) -> str:
        return key_id(self.public_raw)


def load_ed25519_public(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


def load_x25519_public(raw: bytes) -> X25519PublicKey:
    return X25519PublicKey.from_public_bytes(raw)
