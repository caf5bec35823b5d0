"""``xnode demo``: a scripted exchange that shows the node working, end to end, in seconds.

Today it plays the *offline* path (no broker): four agencies create their identities, exchange
descriptors as files, and a sealed alert travels as a file from Lusaka to its neighbours —
the same flow a border post without a link uses. Every step uses the same code as the real
commands. The runtime adds the broker-based scenario on top.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from node import envelope
from node.codec import SchemaRegistry, format_timestamp, schemas_directory
from node.nodedir import NodeDir
from node.trust import verify_descriptor

AGENCIES = {
    "zm-secretariat": ("secretariat", "Zambia Anti-Human Trafficking Secretariat, Lusaka"),
    "zm-police": ("law-enforcement", "Zambia Police Service, Chirundu border post"),
    "zw-police": ("law-enforcement", "Zimbabwe Republic Police, Harare"),
    "za-shelter-johannesburg": ("shelter", "Place of Safety, Johannesburg"),
}


def demo_alert(now: dt.datetime) -> dict[str, Any]:
    """The worked alert example (schemas/examples/alert.json), its times moved to ``now``."""
    alert = json.loads((schemas_directory() / "examples" / "alert.json").read_text("utf-8"))
    alert["valid_until"] = format_timestamp(now + dt.timedelta(days=7))
    alert["time_window"] = {
        "start": format_timestamp(now - dt.timedelta(hours=6)),
        "end": format_timestamp(now + dt.timedelta(days=1)),
    }
    alert["subjects"][0]["last_seen_at"] = format_timestamp(now - dt.timedelta(hours=2))
    return dict(alert)


def run_demo(
    registry: SchemaRegistry,
    now: dt.datetime,
    workdir: Path | None = None,
    say: Callable[[str], None] = print,
) -> int:
    """Play the scenario; return 0 if every step behaved as it must."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="xnode-demo-") as tmp:
            return run_demo(registry, now, Path(tmp), say)
    say(f"xnode demo (offline transfer) in {workdir}\n")
    dirs = {node_id: NodeDir(workdir / node_id) for node_id in AGENCIES}
    for node_id, (role, name) in AGENCIES.items():
        signed = dirs[node_id].create(
            registry, node_id=node_id, roles=(role,), name=name, now=now, passphrase=None
        )
        (workdir / f"{node_id}.xnd").write_bytes(signed.raw)
        say(f"  created {node_id:<24} fingerprint {signed.descriptor.fingerprint[:19]}...")

    say("\n  exchanging descriptor files (fingerprints compared out of band)")
    sender = "zm-police"
    for node_id, node_dir in dirs.items():
        for peer in AGENCIES:
            if peer != node_id:
                incoming = verify_descriptor((workdir / f"{peer}.xnd").read_bytes(), registry)
                node_dir.add_peer(registry, node_id, incoming, dt.datetime.now(dt.UTC))

    recipients = ["zw-police", "za-shelter-johannesburg"]
    alert = demo_alert(now)
    config = dirs[sender].load_config({})
    keys = dirs[sender].load_keys(registry, None)
    peers = dirs[sender].peers(registry)
    sealed = envelope.seal(
        registry,
        identity=keys.identity,
        sender_id=sender,
        kind="alert",
        schema_name="Alert",
        payload=registry.from_json("xnode.payload.Alert", alert, "payload"),
        recipients=[peers[r].descriptor for r in recipients],
        now=now,
        expires_at=now + dt.timedelta(days=config.envelope.default_ttl_days),
        priority="urgent",
    )
    carried = workdir / "alert.xenv"
    carried.write_bytes(sealed.data)
    plaintext_visible = any(
        text.encode() in sealed.data for text in (alert["description"], alert["title"], "Chipo")
    )
    say(f"\n  {sender} sealed alert {sealed.message_id}: {alert['title']}")
    say(f"    {len(sealed.data)} bytes to {', '.join(recipients)}; plaintext visible: "
        f"{'YES' if plaintext_visible else 'no'}")  # fmt: skip

    ok = not plaintext_visible
    for node_id in recipients:
        opened = open_as(registry, dirs[node_id], node_id, sealed.data, now)
        same = registry.to_json("xnode.payload.Alert", opened.payload) == registry.to_json(
            "xnode.payload.Alert", registry.from_json("xnode.payload.Alert", alert)
        )
        ok &= same
        say(f"  {node_id:<24} opened: signed by {opened.sender.node_id}, payload intact: {same}")

    tampered = bytearray(sealed.data)
    tampered[len(tampered) // 2] ^= 0x01
    refusals = (
        ("zw-police", bytes(tampered), "a copy with one bit changed"),
        ("zm-secretariat", sealed.data, "the alert, at a node it was not sent to"),
    )
    for node_id, data, what in refusals:
        try:
            open_as(registry, dirs[node_id], node_id, data, now)
        except envelope.EnvelopeError as exc:
            say(f"  {node_id:<24} refused {what}: {exc.reason}")
        else:
            ok = False
            say(f"  {node_id:<24} WRONGLY accepted {what}")
    say(f"\n{'demo finished: every step behaved as required' if ok else 'demo FAILED'}")
    return 0 if ok else 1


def open_as(
    registry: SchemaRegistry, node_dir: NodeDir, node_id: str, data: bytes, now: dt.datetime
) -> envelope.Opened:
    return envelope.open_envelope(
        registry,
        data,
        own_id=node_id,
        own_keys=node_dir.load_keys(registry, None).encryption,
        peers=node_dir.peer_directory(registry),
        now=now,
    )
