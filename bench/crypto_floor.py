"""How close sealing and opening come to the cost of the cryptography they cannot avoid.

Measures, in one run on one machine:

* the bare primitives: Ed25519 sign and verify, HPKE wrap and unwrap of a 32-byte key,
  ChaCha20-Poly1305 encrypt and decrypt of the encoded payload;
* `seal` and `open_envelope` of a ~1 KB payload to 1 and to 3 recipients.

and prints each envelope operation next to its *floor* — the sum of the primitives it must call
(seal: n wraps + 1 AEAD encrypt + 1 sign; open: 1 verify + 1 unwrap + 1 AEAD decrypt) — as a
ratio. The ratio is the overhead of everything else (Avro, checks, copying); the machine's speed
cancels out. Run: ``python bench/crypto_floor.py [--seconds 1.0]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node import envelope
from node.codec import SchemaRegistry, default_registry
from node.crypto import primitives
from node.crypto.keys import EncryptionKey, IdentityKey
from node.trust import Descriptor, EncryptionKeyInfo, PeerDirectory

NOW = dt.datetime(2026, 11, 22, 8, 30, tzinfo=dt.UTC)


def per_second(operation: Callable[[], object], seconds: float, repeats: int = 3) -> float:
    """Best of ``repeats`` runs of about ``seconds`` each: the least disturbed by other load."""
    operation()  # warm up
    rates = []
    for _ in range(repeats):
        count, start = 0, time.perf_counter()
        deadline = start + seconds
        while True:
            for _ in range(50):
                operation()
            count += 50
            now = time.perf_counter()
            if now >= deadline:
                rates.append(count / (now - start))
                break
    return max(rates)


def make_node(node_id: str) -> tuple[IdentityKey, EncryptionKey, Descriptor]:
    identity, encryption = IdentityKey.generate(), EncryptionKey.generate()
    info = EncryptionKeyInfo(
        encryption.key_id, encryption.public_raw, NOW, NOW + dt.timedelta(days=365)
    )
    descriptor = Descriptor(
        node_id, node_id[:2], ("law-enforcement",), node_id, identity.public_raw, (info,), 1, NOW
    )
    return identity, encryption, descriptor


def sample_plaintext(registry: SchemaRegistry) -> tuple[dict[str, Any], bytes]:
    """A ~1 KB case update: the decoded payload and its Avro encoding."""
    payload = registry.from_json(
        "xnode.payload.CaseUpdate",
        {
            "handling": {"code": "H2", "legal_basis": "SADC MLA Protocol", "language": "en",
                         "retention_days": 365},
            "status": "Active",
            "note": ("Two girls seen boarding a minibus at Chirundu towards Harare. " * 17)[:960],
            "recorded_at": "2026-11-22T08:00:00Z",
        },
    )  # fmt: skip
    return payload, registry.encode("xnode.payload.CaseUpdate", payload)


def primitive_costs(seconds: float) -> dict[str, float]:
    """Seconds per operation of each primitive a message needs (best of 3 runs)."""
    plaintext = sample_plaintext(default_registry())[1]
    sender, recipient = make_node("zm-police"), make_node("zw-police")
    key, nonce, aad = primitives.new_content_key(), primitives.new_nonce(), b"h" * 400
    ct = primitives.aead_encrypt(key, nonce, plaintext, aad)
    recipient_pub = recipient[1].private.public_key()
    wrapped = primitives.hpke_wrap(key, recipient_pub, b"info")
    signature = primitives.sign(sender[0], b"d", b"m" * 1200)
    sender_pub = sender[2].identity_public_key()
    s = seconds
    rates = {
        "ed25519 sign": per_second(lambda: primitives.sign(sender[0], b"d", b"m" * 1200), s),
        "ed25519 verify": per_second(
            lambda: primitives.verify(sender_pub, b"d", b"m" * 1200, signature), s
        ),
        "hpke wrap": per_second(lambda: primitives.hpke_wrap(key, recipient_pub, b"info"), s),
        "hpke unwrap": per_second(
            lambda: primitives.hpke_unwrap(wrapped, recipient[1].private, b"info"), s
        ),
        "aead encrypt 1KB": per_second(
            lambda: primitives.aead_encrypt(key, nonce, plaintext, aad), s
        ),
        "aead decrypt 1KB": per_second(lambda: primitives.aead_decrypt(key, nonce, ct, aad), s),
    }
    return {name: 1 / rate for name, rate in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args()
    registry = default_registry()

    sender = make_node("zm-police")
    recipients = [make_node(n) for n in ("zw-police", "mw-police", "za-shelter-johannesburg")]
    payload, plaintext = sample_plaintext(registry)
    peers = PeerDirectory.of([sender[2]])
    s = args.seconds
    print(f"payload: {len(plaintext)} bytes Avro; {s:.1f} s per measurement, best of 3\n")
    cost = primitive_costs(s)
    for name, seconds in cost.items():
        print(f"  {name:<18} {1 / seconds:>10,.0f} /s   {seconds * 1e6:>7.1f} us")

    print()
    print(f"  {'operation':<22} {'ops/s':>9} {'us/op':>8} {'floor us':>9} {'ratio':>6}")
    ratios = []
    for n in (1, 3):
        descriptors = [r[2] for r in recipients[:n]]

        def do_seal(descriptors: list[Descriptor] = descriptors) -> envelope.Sealed:
            return envelope.seal(
                registry, identity=sender[0], sender_id="zm-police", kind="alert",
                schema_name="CaseUpdate", payload=payload, recipients=descriptors, now=NOW,
                expires_at=NOW + dt.timedelta(days=7),
            )  # fmt: skip

        sealed = do_seal()
        me = recipients[n - 1]

        def do_open(data: bytes = sealed.data, me: tuple = me) -> envelope.Opened:
            return envelope.open_envelope(
                registry, data, own_id=me[2].node_id, own_keys={me[1].key_id: me[1]},
                peers=peers, now=NOW,
            )  # fmt: skip

        seal_floor = n * cost["hpke wrap"] + cost["aead encrypt 1KB"] + cost["ed25519 sign"]
        open_floor = cost["ed25519 verify"] + cost["hpke unwrap"] + cost["aead decrypt 1KB"]
        for label, op, floor in (
            (f"seal, {n} recipient(s)", do_seal, seal_floor),
            (f"open, {n} recipient(s)", do_open, open_floor),
        ):
            rate = per_second(op, s)
            ratio = (1 / rate) / floor
            ratios.append(ratio)
            print(
                f"  {label:<22} {rate:>9,.0f} {1e6 / rate:>8.1f} {floor * 1e6:>9.1f} {ratio:>6.2f}"
            )
        if n == 3:
            print(f"\n  envelope size, 3 recipients: {len(sealed.data)} bytes")
    print(f"  median ratio to the cryptographic floor: {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
