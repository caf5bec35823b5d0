"""The three cryptographic operations of the envelope, each a thin, named use of `cryptography`.

No primitive is implemented here; this module only fixes the parameters (algorithms, domain
separation labels, sizes) so that every caller uses them identically:

* signatures: Ed25519 over ``domain || message``; domains are fixed ASCII labels ending in NUL;
* payload cipher: ChaCha20-Poly1305, 256-bit key, 96-bit nonce, caller-supplied AAD;
* key wrap: HPKE base mode (RFC 9180), DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
  ChaCha20-Poly1305, single shot; the output is ``enc || ciphertext``.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from node.crypto.keys import IdentityKey

CONTENT_KEY_BYTES = 32
NONCE_BYTES = 12
SIGNATURE_BYTES = 64
HPKE_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
WRAPPED_KEY_BYTES = 32 + CONTENT_KEY_BYTES + 16  # enc || ciphertext || tag


class CryptoFailure(Exception):
    """A cryptographic check failed. Deliberately carries no detail an attacker could use."""


def sign(key: IdentityKey, domain: bytes, message: bytes) -> bytes:
    return key.sign(domain + message)


def verify(public_key: Ed25519PublicKey, domain: bytes, message: bytes, signature: bytes) -> None:
    """Raise :class:`CryptoFailure` unless ``signature`` is valid for ``domain || message``."""
    if len(signature) != SIGNATURE_BYTES:
        raise CryptoFailure("signature has the wrong length")
    try:
        public_key.verify(signature, domain + message)
    except InvalidSignature as exc:
        raise CryptoFailure("signature does not verify") from exc


def new_content_key() -> bytes:
    return ChaCha20Poly1305.generate_key()


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


def aead_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(nonce, plaintext, aad)


def aead_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag as exc:
        raise CryptoFailure("payload does not decrypt") from exc


def hpke_wrap(content_key: bytes, recipient: X25519PublicKey, info: bytes) -> bytes:
    return HPKE_SUITE.encrypt(content_key, recipient, info=info)


def hpke_unwrap(wrapped: bytes, private_key: X25519PrivateKey, info: bytes) -> bytes:
    if len(wrapped) != WRAPPED_KEY_BYTES:
        raise CryptoFailure("wrapped key has the wrong length")
    try:
        key = HPKE_SUITE.decrypt(wrapped, private_key, info=info)
    except Exception as exc:  # the binding raises InvalidTag or ValueError depending on the step
        raise CryptoFailure("content key does not unwrap") from exc
    if len(key) != CONTENT_KEY_BYTES:
        raise CryptoFailure("content key has the wrong length")
    return key
