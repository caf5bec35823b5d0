"""How much of a refused record the quarantine keeps (DESIGN §6, quarantine). Pure.

Quarantine exists so an operator can see what was refused and why. It must not become a way to
fill a node's disk: anyone who can write to an inbox topic can send junk, and a member with a
valid key can send valid-looking junk. So:

* a record whose sender is **not authenticated** keeps a bounded prefix (enough to recognise
  the kind of junk) with the SHA-256 and length of the whole; the number of such records is
  bounded too (the oldest go first);
* a record from an **authenticated** sender is kept whole while that sender's kept bytes stay
  within its quota, then like the unauthenticated ones — the sender can be held to account
  for it, and the operator may need the exact bytes to show it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuarantineLimits:
    prefix_bytes: int = 4096
    sender_quota_bytes: int = 64 * 1024 * 1024
    unauthenticated_max: int = 10_000


def kept_bytes(
    raw: bytes, authenticated: bool, sender_used: int, limits: QuarantineLimits
) -> bytes:
    """The part of ``raw`` to keep, given what this sender already has kept whole."""
    if authenticated and sender_used + len(raw) <= limits.sender_quota_bytes:
        return raw
    return raw[: limits.prefix_bytes]
