"""Control records on ``<prefix>.control`` (DESIGN §3): signed, not encrypted. Pure.

Two kinds: the heartbeat — every node announces itself periodically so its peers (and their
operators, through ``xnode_peer_last_seen_timestamp_seconds``) notice a silent node — and the
node's newest signed audit checkpoint (:mod:`node.checkpoint`), sent beside each heartbeat so its
peers keep a copy outside the node's reach. The checkpoint is its own record kind rather than a
field of the heartbeat: control records are schemaless Avro read with the reader's schema, so a
new heartbeat field would make every older node refuse every heartbeat; an unknown kind is only
counted and ignored by them. A record is accepted only from a known, unrevoked peer whose
identity key signed it; anything else is counted and ignored — the control topic is shared by
the whole region and carries no case data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from node import checkpoint, trustlist
from node.codec import CodecError, SchemaRegistry
from node.crypto.keys import IdentityKey, key_id, load_ed25519_public
from node.crypto.primitives import CryptoFailure, sign, verify
from node.trust import (
    SIGNED_DESCRIPTOR_SCHEMA,
    PeerDirectory,
    SignedDescriptor,
    TrustError,
    verify_descriptor,
)

CONTROL_DOMAIN = b"xnode-control-v1\x00"
HEARTBEAT_SCHEMA = "xnode.control.Heartbeat"
SIGNED_SCHEMA = "xnode.control.SignedControlRecord"
MAX_CONTROL_BYTES = 16 * 1024


class ControlRejected(ValueError):
    """A control record that is not accepted; ``reason`` is a metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Heartbeat:
    node_id: str
    sent_at: dt.datetime
    descriptor_version: int
    identity_key_id: str


def issue_heartbeat(registry: SchemaRegistry, identity: IdentityKey, heartbeat: Heartbeat) -> bytes:
    record = registry.encode(HEARTBEAT_SCHEMA, {
        "node_id": heartbeat.node_id, "sent_at": heartbeat.sent_at,
        "descriptor_version": heartbeat.descriptor_version,
        "identity_key_id": heartbeat.identity_key_id,
    })  # fmt: skip
    signature = sign(identity, CONTROL_DOMAIN, record)
    return registry.encode(
        SIGNED_SCHEMA, {"kind": "heartbeat", "record": record, "signature": signature}
    )


def issue_checkpoint(registry: SchemaRegistry, signed: checkpoint.SignedCheckpoint) -> bytes:
    """The control record carrying a signed checkpoint, with its own signature unchanged."""
    wrapper = {"kind": "audit_checkpoint", "record": signed.record, "signature": signed.signature}
    return registry.encode(SIGNED_SCHEMA, wrapper)


def issue_descriptor(registry: SchemaRegistry, signed: SignedDescriptor) -> bytes:
    """The control record announcing a node's descriptor, with its own self-signature: how the
    members of a federation learn each other's keys without swapping files."""
    wrapper = {"kind": "descriptor", "record": signed.body, "signature": signed.signature}
    return registry.encode(SIGNED_SCHEMA, wrapper)


def issue_trust_list(registry: SchemaRegistry, signed: trustlist.SignedTrustList) -> bytes:
    """The control record carrying a trust list; its governors' signatures are inside."""
    wrapper = {"kind": "trust_list", "record": signed.encode(registry), "signature": b""}
    return registry.encode(SIGNED_SCHEMA, wrapper)


def _sender(peers: PeerDirectory, node_id: str, now: dt.datetime | None) -> list[bytes]:
    """The identity keys a control record of ``node_id`` may be signed with now: its current
    key, and a key the trust list retired while its overlap lasts."""
    if node_id not in peers:
        raise ControlRejected("unknown-sender", node_id)
    if node_id in peers.revoked:
        raise ControlRejected("revoked-sender", node_id)
    return [
        k.public_key for k in peers.sender_keys(node_id).values()
        if k.arrivals_until is None or (now is not None and now < k.arrivals_until)
    ]  # fmt: skip


ControlItem = Heartbeat | checkpoint.SignedCheckpoint | SignedDescriptor | trustlist.SignedTrustList


def read_control(
    registry: SchemaRegistry, raw: bytes, peers: PeerDirectory, now: dt.datetime | None = None
) -> ControlItem:
    """Decode, check the sender is a known unrevoked peer, verify the signature. Descriptors and
    trust lists are only decoded and self-verified here: whether they are believed is decided
    against the trust list the node holds (a descriptor of a new member comes from a node that
    is not a peer yet)."""
    limit = trustlist.MAX_LIST_BYTES if len(raw) > MAX_CONTROL_BYTES else MAX_CONTROL_BYTES
    if len(raw) > limit:
        raise ControlRejected("too-large", f"{len(raw)} bytes")
    try:
        wrapper = registry.decode(SIGNED_SCHEMA, raw)
        if wrapper["kind"] == "trust_list":
            return trustlist.decode(registry, wrapper["record"])
        if len(raw) > MAX_CONTROL_BYTES:
            raise ControlRejected("too-large", f"{len(raw)} bytes")
        if wrapper["kind"] == "descriptor":
            signed = registry.encode(SIGNED_DESCRIPTOR_SCHEMA, {
                "descriptor": wrapper["record"], "signature": wrapper["signature"]})  # fmt: skip
            return verify_descriptor(signed, registry)
        if wrapper["kind"] == "audit_checkpoint":
            node_id = str(registry.decode(checkpoint.SCHEMA, wrapper["record"])["node_id"])
        elif wrapper["kind"] == "heartbeat":
            record = registry.decode(HEARTBEAT_SCHEMA, wrapper["record"])
            node_id = str(record["node_id"])
        else:
            raise ControlRejected("unsupported", f"control record kind {wrapper['kind']}")
    except CodecError as exc:
        raise ControlRejected("malformed", exc.problem) from exc
    except trustlist.TrustListRejected as exc:
        raise ControlRejected("malformed", exc.detail) from exc
    except TrustError as exc:
        raise ControlRejected("bad-descriptor", str(exc)[:200]) from exc
    keys = _sender(peers, node_id, now)
    if wrapper["kind"] == "audit_checkpoint":
        problem: checkpoint.CheckpointError | None = None
        for key in keys:
            try:
                return checkpoint.open_signed(
                    registry, wrapper["record"], wrapper["signature"],
                    node_id=node_id, identity_key=key,
                )  # fmt: skip
            except checkpoint.CheckpointError as exc:
                problem = exc
        if problem is None:
            raise ControlRejected("bad-signature", node_id)
        raise ControlRejected(problem.reason, problem.detail)
    signer = next((key for key in keys if _verifies(key, wrapper["record"],
                                                    wrapper["signature"])), None)  # fmt: skip
    if signer is None:
        raise ControlRejected("bad-signature", node_id)
    heartbeat = Heartbeat(node_id, record["sent_at"], int(record["descriptor_version"]),
                          str(record["identity_key_id"]))  # fmt: skip
    if heartbeat.identity_key_id != key_id(signer):
        raise ControlRejected(
            "key-mismatch",
            f"{node_id} names identity key {heartbeat.identity_key_id}, its record is signed "
            f"with {key_id(signer)}",
        )
    return heartbeat


def _verifies(public_key: bytes, record: bytes, signature: bytes) -> bool:
    try:
        verify(load_ed25519_public(public_key), CONTROL_DOMAIN, record, signature)
    except (CryptoFailure, ValueError):
        return False
    return True


def check_heartbeat_time(heartbeat: Heartbeat, now: dt.datetime, max_skew: dt.timedelta) -> None:
    """Refuse a heartbeat dated beyond the clock-skew window: last-seen keeps the latest time it
    was told, so a single beat from the future would hide that node's outage until that date."""
    if heartbeat.sent_at > now + max_skew:
        raise ControlRejected(
            "clock-skew",
            f"{heartbeat.node_id} heartbeat dated {heartbeat.sent_at.isoformat()}, beyond now plus"
            f" {int(max_skew.total_seconds())} s",
        )


def read_heartbeat(
    registry: SchemaRegistry, raw: bytes, peers: PeerDirectory, now: dt.datetime | None = None
) -> Heartbeat:
    """:func:`read_control` for a caller that takes heartbeats only."""
    item = read_control(registry, raw, peers, now)
    if not isinstance(item, Heartbeat):
        raise ControlRejected("unsupported", "control record kind audit_checkpoint")
    return item


def list_announcement_due(
    held_version: int, announced: tuple[int, float] | None, now: float, interval: float
) -> bool:
    """Whether a member announces the trust list it holds with this heartbeat: a version it has
    not announced yet at once (a new list spreads within one heartbeat), otherwise once per
    ``interval`` seconds (a member back from an outage catches up). Every member announcing a
    list of 1,000 members (~90 KB) with every heartbeat would cost each node n x 90 KB per
    heartbeat to read. ``announced`` is (version, monotonic time) of the last announcement."""
    if announced is None or announced[0] != held_version:
        return True
    return now - announced[1] >= interval
