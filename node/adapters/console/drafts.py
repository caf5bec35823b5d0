"""Drafts sealed to the node's own encryption key, so no case data rests in the store in
plain text (README: no plaintext at rest). The content key is wrapped with HPKE to the node's
newest key, as an envelope's is to a recipient's; a draft sealed to a key the node has since
destroyed (``keys.retired_key_days`` after a rotation) no longer opens and is reported lost.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from node.crypto import primitives
from node.crypto.keys import EncryptionKey

INFO = b"xnode console draft v1"


class DraftLost(Exception):
    """The draft was sealed to a key this node no longer holds, or was altered."""


def _aad(owner: str) -> bytes:
    return INFO + b"|" + owner.encode()


def seal(data: Mapping[str, Any], owner: str, key: EncryptionKey) -> bytes:
    content_key, nonce = primitives.new_content_key(), primitives.new_nonce()
    plaintext = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    wrapped = primitives.hpke_wrap(content_key, key.private.public_key(), INFO)
    ciphertext = primitives.aead_encrypt(content_key, nonce, plaintext, _aad(owner))
    box = {
        "k": key.key_id,
        "w": base64.b64encode(wrapped).decode(),
        "n": base64.b64encode(nonce).decode(),
        "c": base64.b64encode(ciphertext).decode(),
    }
    return json.dumps(box).encode()


def open_draft(sealed: bytes, owner: str, keys: Mapping[str, EncryptionKey]) -> dict[str, Any]:
    try:
        box = json.loads(sealed)
        key = keys.get(box["k"])
        if key is None:
            raise DraftLost("sealed to a key this node no longer holds")
        content_key = primitives.hpke_unwrap(base64.b64decode(box["w"]), key.private, INFO)
        plaintext = primitives.aead_decrypt(
            content_key, base64.b64decode(box["n"]), base64.b64decode(box["c"]), _aad(owner)
        )
        data: dict[str, Any] = json.loads(plaintext)
        return data
    except DraftLost:
        raise
    except (ValueError, KeyError, TypeError, primitives.CryptoFailure) as exc:
        raise DraftLost(f"does not open ({type(exc).__name__})") from exc
