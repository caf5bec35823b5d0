"""Peer trust: signed node descriptors and the directory of known peers (DESIGN §5).

A descriptor is self-signed by the node's identity key. Self-signature proves the descriptor
was not altered after the key holder made it; whether the key belongs to the agency it claims
is established out of band by comparing the fingerprint (``xnode peers add`` shows it). After
that first contact, a descriptor is only accepted as an update if it carries the *same*
identity key and a higher version: an attacker cannot swap a known peer's key by mailing a new
file.

Pure: no files, no clock. Callers pass bytes and times in.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from node.codec import CodecError, SchemaRegistry
from node.crypto.keys import (
    IdentityKey,
    display_fingerprint,
    ed25519_key_problem,
    key_id,
    x25519_key_problem,
)
from node.crypto.primitives import CryptoFailure, sign, verify
from node.routing.ids import InvalidIdentifier, country_of, validate_node_id, validate_roles

DESCRIPTOR_DOMAIN = b"xnode-descriptor-v1\x00"
DESCRIPTOR_SCHEMA = "xnode.trust.NodeDescriptor"
SIGNED_DESCRIPTOR_SCHEMA = "xnode.trust.SignedNodeDescriptor"
MAX_DESCRIPTOR_BYTES = 64 * 1024


class TrustError(Exception):
    """A descriptor is refused; the message says why."""


@dataclass(frozen=True)
class EncryptionKeyInfo:
    key_id: str
    public_key: bytes
    valid_from: dt.datetime
    valid_until: dt.datetime

    def valid_at(self, now: dt.datetime) -> bool:
        return self.valid_from <= now < self.valid_until


@dataclass(frozen=True)
class Descriptor:
    """What a node publishes about itself."""

    node_id: str
    country: str
    roles: tuple[str, ...]
    display_name: str
    identity_key: bytes
    encryption_keys: tuple[EncryptionKeyInfo, ...]
    descriptor_version: int
    created_at: dt.datetime
    neighbours: tuple[str, ...] = ()

    @property
    def identity_key_id(self) -> str:
        return key_id(self.identity_key)

    @property
    def fingerprint(self) -> str:
        return display_fingerprint(self.identity_key)

    def identity_public_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.identity_key)

    def encryption_key_at(self, now: dt.datetime) -> EncryptionKeyInfo | None:
        """The newest encryption key valid at ``now``; senders encrypt to this one."""
        valid = [k for k in self.encryption_keys if k.valid_at(now)]
        return max(valid, key=lambda k: k.valid_from) if valid else None

    def to_record(self) -> dict[str, object]:
        return {
            "node_id": self.node_id,
            "country": self.country,
            "roles": list(self.roles),
            "display_name": self.display_name,
            "identity_key": self.identity_key,
            "encryption_keys": [
                {
                    "key_id": k.key_id,
                    "public_key": k.public_key,
                    "valid_from": k.valid_from,
                    "valid_until": k.valid_until,
                }
                for k in self.encryption_keys
            ],
            "neighbours": list(self.neighbours),
            "descriptor_version": self.descriptor_version,
            "created_at": self.created_at,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Descriptor:
        keys = record["encryption_keys"]
        assert isinstance(keys, list)
        return cls(
            node_id=str(record["node_id"]),
            country=str(record["country"]),
            roles=tuple(record["roles"]),
            display_name=str(record["display_name"]),
            identity_key=bytes(record["identity_key"]),
            encryption_keys=tuple(
                EncryptionKeyInfo(k["key_id"], k["public_key"], k["valid_from"], k["valid_until"])
                for k in keys
            ),
            descriptor_version=int(record["descriptor_version"]),
            created_at=record["created_at"],
            neighbours=tuple(record.get("neighbours") or ()),
        )


@dataclass(frozen=True)
class SignedDescriptor:
    """A descriptor with the exact bytes that were signed, so it can be passed on unchanged."""

    descriptor: Descriptor
    body: bytes
    signature: bytes
    raw: bytes

    @property
    def node_id(self) -> str:
        return self.descriptor.node_id


def issue_descriptor(
    identity: IdentityKey, descriptor: Descriptor, registry: SchemaRegistry
) -> SignedDescriptor:
    """Sign ``descriptor`` with the node's own identity key."""
    if descriptor.identity_key != identity.public_raw:
        raise TrustError("the descriptor's identity key is not the signing key")
    _check_descriptor(descriptor)
    body = registry.encode(DESCRIPTOR_SCHEMA, descriptor.to_record())
    signature = sign(identity, DESCRIPTOR_DOMAIN, body)
    raw = registry.encode(SIGNED_DESCRIPTOR_SCHEMA, {"descriptor": body, "signature": signature})
    return SignedDescriptor(descriptor, body, signature, raw)


def verify_descriptor(raw: bytes, registry: SchemaRegistry) -> SignedDescriptor:
    """Decode a descriptor file and check it is well formed and signed by the key it names."""
    if len(raw) > MAX_DESCRIPTOR_BYTES:
        raise TrustError(f"descriptor is {len(raw)} bytes; the limit is {MAX_DESCRIPTOR_BYTES}")
    try:
        wrapper = registry.decode(SIGNED_DESCRIPTOR_SCHEMA, raw)
        record = registry.decode(DESCRIPTOR_SCHEMA, wrapper["descriptor"])
    except CodecError as exc:
        raise TrustError(f"not a node descriptor file ({exc.problem})") from exc
    descriptor = Descriptor.from_record(record)
    if len(descriptor.identity_key) != 32:
        raise TrustError("identity key must be a 32-byte Ed25519 public key")
    try:
        verify(
            descriptor.identity_public_key(),
            DESCRIPTOR_DOMAIN,
            wrapper["descriptor"],
            wrapper["signature"],
        )
    except (CryptoFailure, ValueError) as exc:
        raise TrustError(
            f"signature of the descriptor for {descriptor.node_id!r} does not verify; "
            "the file was altered or is not what the peer sent"
        ) from exc
    _check_descriptor(descriptor)
    return SignedDescriptor(descriptor, wrapper["descriptor"], wrapper["signature"], raw)


def _check_descriptor(d: Descriptor) -> None:
    try:
        validate_node_id(d.node_id)
        validate_roles(d.roles)
        for neighbour in d.neighbours:
            validate_node_id(neighbour)
    except InvalidIdentifier as exc:
        raise TrustError(f"descriptor refused: {exc}") from exc
    if d.country != country_of(d.node_id):
        raise TrustError(f"country {d.country!r} does not match node id {d.node_id!r}")
    if not d.display_name.strip():
        raise TrustError("display name is empty")
    if not d.encryption_keys:
        raise TrustError("descriptor has no encryption key")
    for k in d.encryption_keys:
        if len(k.public_key) != 32:
            raise TrustError(f"encryption key {k.key_id}: not a 32-byte X25519 public key")
        if k.key_id != key_id(k.public_key):
            raise TrustError(f"encryption key id {k.key_id} does not match its public key")
        if k.valid_until <= k.valid_from:
            raise TrustError(f"encryption key {k.key_id}: validity window is empty")
    if d.descriptor_version < 1:
        raise TrustError("descriptor version must be 1 or higher")


class PeerChange(enum.Enum):
    NEW = "new"
    UPDATE = "update"
    UNCHANGED = "unchanged"


def check_peer_keys(descriptor: Descriptor, now: dt.datetime) -> None:
    """Refuse a peer's keys that could not be used safely: an identity key of small order or
    non-canonical encoding (signatures under it prove nothing), an encryption key of low order
    (nothing can be encrypted to it), or encryption keys that have all expired (receipts to the
    peer could not be sealed). A member with a valid signature can still send such a file; it
    is refused here, at import, rather than failing later on the receive path."""
    problem = ed25519_key_problem(descriptor.identity_key)
    if problem:
        raise TrustError(f"identity key of {descriptor.node_id!r} refused: {problem}")
    for k in descriptor.encryption_keys:
        problem = x25519_key_problem(k.public_key)
        if problem:
            raise TrustError(
                f"encryption key {k.key_id} of {descriptor.node_id!r} refused: {problem}"
            )
    if all(k.valid_until <= now for k in descriptor.encryption_keys):
        latest = max(k.valid_until for k in descriptor.encryption_keys)
        raise TrustError(
            f"every encryption key of {descriptor.node_id!r} has expired (the last on "
            f"{latest:%Y-%m-%d}); ask the peer for its current descriptor"
        )


def decide_peer_add(
    own_id: str, known: SignedDescriptor | None, incoming: SignedDescriptor, now: dt.datetime
) -> PeerChange:
    """Whether a verified descriptor may enter the directory; raise :class:`TrustError` if not."""
    new = incoming.descriptor
    if new.node_id == own_id:
        raise TrustError(f"{new.node_id!r} is this node's own id; a node is not its own peer")
    check_peer_keys(new, now)
    if known is None:
        return PeerChange.NEW
    old = known.descriptor
    if new.identity_key != old.identity_key:
        raise TrustError(
            f"refusing to replace the identity key of known peer {new.node_id!r}: known "
            f"fingerprint {old.fingerprint}, file has {new.fingerprint}. If the peer really "
            "changed its identity key, confirm it out of band, then run "
            f"'xnode peers remove {new.node_id}' and add the new descriptor"
        )
    if new.descriptor_version < old.descriptor_version:
        raise TrustError(
            f"descriptor version {new.descriptor_version} of {new.node_id!r} is older than the "
            f"known version {old.descriptor_version}"
        )
    if new.descriptor_version == old.descriptor_version:
        if incoming.body != known.body:
            raise TrustError(
                f"{new.node_id!r} version {new.descriptor_version} differs from the known "
                "descriptor of the same version; a changed descriptor needs a higher version"
            )
        return PeerChange.UNCHANGED
    return PeerChange.UPDATE


REVOCATION_REASONS: dict[str, str] = {
    "key-compromise": "the peer's keys were stolen or exposed",
    "left-federation": "the agency no longer takes part",
    "misbehaviour": "the member sends hostile or abusive traffic",
    "superseded": "replaced by another node id",
}


@dataclass(frozen=True)
class Revocation:
    """This node's decision to stop trusting a peer: everything it signs is refused as
    ``revoked-sender`` from then on, and nothing is sent to it. (The federation trust list will
    feed the same set; this is the local, operator-made entry.)"""

    node_id: str
    reason: str
    at: dt.datetime
    note: str = ""

    def to_json(self) -> dict[str, str]:
        return {"node_id": self.node_id, "reason": self.reason, "at": self.at.isoformat(),
                "note": self.note}  # fmt: skip

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Revocation:
        at = dt.datetime.fromisoformat(str(doc["at"]))
        revocation = cls(str(doc["node_id"]), str(doc["reason"]), at, str(doc.get("note", "")))
        check_revocation(revocation)
        return revocation


def check_revocation(revocation: Revocation) -> None:
    """Refuse a revocation that names no valid node or an unknown reason code."""
    try:
        validate_node_id(revocation.node_id)
    except InvalidIdentifier as exc:
        raise TrustError(f"revocation refused: {exc}") from exc
    if revocation.reason not in REVOCATION_REASONS:
        raise TrustError(
            f"unknown revocation reason {revocation.reason!r}; one of "
            f"{', '.join(REVOCATION_REASONS)}"
        )
    if revocation.at.tzinfo is None:
        raise TrustError("revocation time must carry a time zone")


@dataclass(frozen=True)
class SenderKey:
    """An identity key a peer may sign envelopes and control records with, and its limits.

    A peer's current key has none. A key the federation's trust list retired has both set to
    its retirement time: a new arrival signed with it is accepted only before then (the overlap
    a routine rotation grants; none for a compromised key), and a stored envelope only if it
    was created before then. ``created_at`` alone is never trusted for arrivals: a thief who
    holds the key chooses it."""

    public_key: bytes
    arrivals_until: dt.datetime | None = None
    signed_before: dt.datetime | None = None

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)

    def refusal(self, created_at: dt.datetime, now: dt.datetime | None) -> str | None:
        """Why an envelope created at ``created_at`` and signed with this key is not accepted
        (``now`` None: re-opening a stored envelope, judged by its creation time)."""
        if now is not None and self.arrivals_until is not None and now >= self.arrivals_until:
            return f"key {self.key_id} was retired at {self.arrivals_until.isoformat()}"
        if self.signed_before is not None and created_at >= self.signed_before:
            return f"key {self.key_id} was retired before this envelope was created"
        return None


@dataclass(frozen=True)
class PeerDirectory:
    """Known peers by node id, the ids whose revocation has been received, and in federated
    mode every identity key the trust list lets each peer sign with (its current one and those
    it retired); in bilateral mode a peer signs with its descriptor's key only."""

    peers: Mapping[str, Descriptor] = field(default_factory=dict)
    revoked: frozenset[str] = frozenset()
    keys: Mapping[str, Mapping[str, SenderKey]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        descriptors: Iterable[Descriptor],
        revoked: Iterable[str] = (),
        keys: Mapping[str, Mapping[str, SenderKey]] | None = None,
    ) -> PeerDirectory:
        return cls({d.node_id: d for d in descriptors}, frozenset(revoked), dict(keys or {}))

    def get(self, node_id: str) -> Descriptor | None:
        return self.peers.get(node_id)

    def sender_keys(self, node_id: str) -> Mapping[str, SenderKey]:
        """The keys ``node_id`` may sign with, by key id (none for an unknown peer)."""
        listed = self.keys.get(node_id)
        if listed is not None:
            return listed
        descriptor = self.peers.get(node_id)
        if descriptor is None:
            return {}
        return {descriptor.identity_key_id: SenderKey(descriptor.identity_key)}

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.peers

    def __len__(self) -> int:
        return len(self.peers)
