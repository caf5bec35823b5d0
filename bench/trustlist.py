"""How long a node takes to verify and apply a federation trust list, and how big the list is.

For lists of 10, 100, 1,000 (and 5,000) members, signed by 2 of 3 governors, measures on this
machine: the encoded size; `decode` (strict Avro decoding); `decide` (content checks of every
member, two quorum checks, revocation rules) against the previous version; building the
federated peer directory. Prints each next to the cost of the signature verifications it cannot
avoid (4 Ed25519 verifies: 2 governors for the held list's quorum, 2 for the new list's own) as a
ratio, so the machine's speed cancels out. Target (issue 13): a 1,000-member list verifies and
applies in under 100 ms. Run: ``python bench/trustlist.py``.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node import trustlist
from node.codec import default_registry
from node.crypto import primitives
from node.crypto.keys import EncryptionKey, IdentityKey
from node.trust import Descriptor, EncryptionKeyInfo
from node.trustlist import Governor, Member, TrustList

NOW = dt.datetime(2026, 11, 22, 8, 30, tzinfo=dt.UTC)
COUNTRIES = ["zm", "zw", "mw", "bw", "na", "za", "mz", "ao", "tz", "ls", "sz", "cd", "mg", "sc"]


def best_ms(operation: Callable[[], object], repeats: int = 5) -> float:
    operation()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        operation()
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def members(n: int) -> tuple[list[Member], dict[str, Descriptor]]:
    out, descriptors = [], {}
    for i in range(n):
        node_id = f"{COUNTRIES[i % len(COUNTRIES)]}-agency-{i:05d}"
        key = IdentityKey.generate()
        out.append(Member(node_id, node_id[:2], ("law-enforcement",), f"Agency {i}",
                          key.public_raw, "active", NOW))  # fmt: skip
        enc = EncryptionKey.generate()
        descriptors[node_id] = Descriptor(
            node_id, node_id[:2], ("law-enforcement",), f"Agency {i}", key.public_raw,
            (EncryptionKeyInfo(enc.key_id, enc.public_raw, NOW, NOW + dt.timedelta(days=365)),),
            1, NOW,
        )  # fmt: skip
    return sorted(out, key=lambda m: m.node_id), descriptors


def main() -> None:
    registry = default_registry()
    governors = [IdentityKey.generate() for _ in range(3)]
    gov = tuple(Governor(f"governor {i}", g.public_raw) for i, g in enumerate(governors))
    identity = governors[0]
    signature = primitives.sign(identity, b"x", b"y" * 64)
    public = identity.private.public_key()
    verify_ms = best_ms(lambda: primitives.verify(public, b"x", b"y" * 64, signature), 50)
    floor = 4 * verify_ms
    print(f"Ed25519 verify {verify_ms:.3f} ms; floor of a list update (4 verifies) "
          f"{floor:.3f} ms\n")  # fmt: skip
    print(f"{'members':>8} {'size':>10} {'decode':>10} {'decide':>10} {'directory':>10} "
          f"{'total':>10} {'x floor':>8}")  # fmt: skip
    for n in (10, 100, 1000, 5000):
        listed, descriptors = members(n)
        v1 = TrustList("sadc-tip", 1, NOW, NOW + dt.timedelta(days=90), 2, gov, tuple(listed))
        v2 = TrustList("sadc-tip", 2, NOW, NOW + dt.timedelta(days=90), 2, gov, tuple(listed))
        held = trustlist.prepare(registry, v1)
        candidate = trustlist.prepare(registry, v2)
        for g in governors[:2]:
            held = trustlist.add_signature(held, g)
            candidate = trustlist.add_signature(candidate, g)
        raw = candidate.encode(registry)
        decoded = trustlist.decode(registry, raw)
        decode_ms = best_ms(lambda raw=raw: trustlist.decode(registry, raw))
        decide_ms = best_ms(lambda held=held, decoded=decoded: trustlist.decide(held, decoded, NOW))
        directory_ms = best_ms(
            lambda decoded=decoded, d=descriptors: trustlist.federated_directory(
                decoded.trust_list, d, NOW
            )
        )
        total = decode_ms + decide_ms + directory_ms
        print(f"{n:>8} {len(raw) / 1024:>8.1f} KB {decode_ms:>8.2f} ms {decide_ms:>7.2f} ms "
              f"{directory_ms:>7.2f} ms {total:>7.2f} ms {total / floor:>8.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
