"""UUID version 7 (RFC 9562 §5.7): time-ordered ids, so message ids sort by creation time.

Python 3.11 has no ``uuid.uuid7``; this is the RFC layout, with the time passed in so callers
stay free of clock reads.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid

from node.codec import timestamp_millis


def uuid7(now: dt.datetime, random_bytes: bytes | None = None) -> uuid.UUID:
    """48-bit Unix milliseconds | version 7 | 12 random bits | variant 10 | 62 random bits."""
    rand = random_bytes if random_bytes is not None else os.urandom(10)
    if len(rand) != 10:
        raise ValueError("uuid7 needs exactly 10 random bytes")
    millis = timestamp_millis(now)
    if not 0 <= millis < 2**48:
        raise ValueError("time out of range for UUIDv7")
    rand_int = int.from_bytes(rand, "big")
    rand_a = rand_int >> 68 & 0xFFF
    rand_b = rand_int & (2**62 - 1)
    value = millis << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return uuid.UUID(int=value)


def uuid7_time(value: uuid.UUID) -> dt.datetime:
    """The creation time embedded in a UUIDv7."""
    millis = value.int >> 80
    return dt.datetime.fromtimestamp(millis / 1000, tz=dt.UTC)
