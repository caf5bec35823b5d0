"""When a node destroys an encryption key it no longer needs. Pure.

``xnode keys rotate --encryption`` adds a key; senders seal to the newest one as soon as they
hold the new descriptor. The older key still opens what was sealed to it before they did, so it
is kept ``keys.retired_key_days`` after its successor became valid. Then the node re-wraps the
content keys of its stored messages to the current key (the envelopes stay as their senders
signed them) and destroys the old private key: a key that no longer exists cannot be stolen
with a backup or a disk, and what the node keeps stays readable.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from node.trust import EncryptionKeyInfo


def newest(keys: Sequence[EncryptionKeyInfo]) -> EncryptionKeyInfo:
    """The key senders use: the one valid from the latest time (ties: the last listed)."""
    return max(reversed(keys), key=lambda k: k.valid_from)


def retired_keys_due(
    keys: Sequence[EncryptionKeyInfo], now: dt.datetime, keep: dt.timedelta
) -> list[str]:
    """Ids of the keys to destroy now: each superseded by a key valid from a later time, at
    least ``keep`` ago. The newest key is never among them."""
    current = newest(keys)
    due = []
    for key in keys:
        if key.key_id == current.key_id:
            continue
        successors = [k.valid_from for k in keys if k.valid_from > key.valid_from]
        superseded_at = min(successors) if successors else current.valid_from
        if now >= superseded_at + keep:
            due.append(key.key_id)
    return due
