"""Signed audit checkpoints: an anchor for the audit chain outside the database. Pure.

The hash chain (:mod:`node.audit`) shows any entry altered or removed from the middle, but not
entries cut off its end: what remains is still a valid chain. So every N events or T seconds
the node signs ``{node, count, head_hash, time}`` with its identity key, keeps the newest such
checkpoint in a file beside the database and announces it on the control topic, where its peers
keep the newest they saw. A chain shorter than a checkpoint lost entries (``truncated``); a
chain whose entry at the checkpoint's count has another hash was rewritten (``rolled back``).

What this cannot see (docs/audit.md): whoever holds the identity key and the database can
rewrite every entry after the newest checkpoint any peer holds, and sign new checkpoints.

Here: building, signing and verifying checkpoints, their JSON file form, and the decisions —
is a checkpoint due, does a chain agree with a checkpoint, is a peer's new checkpoint newer than
the one held. Files, the store and the control topic are the caller's business.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from node.codec import CodecError, SchemaRegistry, format_timestamp
from node.crypto.keys import IdentityKey, load_ed25519_public
from node.crypto.primitives import CryptoFailure, sign, verify

DOMAIN = b"xnode-audit-checkpoint-v1\x00"
SCHEMA = "xnode.control.AuditCheckpoint"
FILE_FORMAT = "xnode-audit-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted; ``reason`` is short and stable (a metric label)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Checkpoint:
    """What a node states about its own audit chain at one moment."""

    node_id: str
    count: int
    head_hash: str
    created_at: dt.datetime


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint with the exact bytes that were signed, so it can be passed on unchanged."""

    checkpoint: Checkpoint
    record: bytes
    signature: bytes


def issue(
    registry: SchemaRegistry, identity: IdentityKey, checkpoint: Checkpoint
) -> SignedCheckpoint:
    record = registry.encode(SCHEMA, {
        "node_id": checkpoint.node_id, "count": checkpoint.count,
        "head_hash": checkpoint.head_hash, "created_at": checkpoint.created_at,
    })  # fmt: skip
    # Decoded again so the dataclass holds exactly what the bytes say (milliseconds, UTC).
    return SignedCheckpoint(_decode(registry, record), record, sign(identity, DOMAIN, record))


def _decode(registry: SchemaRegistry, record: bytes) -> Checkpoint:
    try:
        value = registry.decode(SCHEMA, record)
    except CodecError as exc:
        raise CheckpointError("malformed", exc.problem) from exc
    if value["count"] < 1:
        raise CheckpointError("malformed", f"count {value['count']} is not positive")
    return Checkpoint(str(value["node_id"]), int(value["count"]), str(value["head_hash"]),
                      value["created_at"])  # fmt: skip


def open_signed(
    registry: SchemaRegistry, record: bytes, signature: bytes, *, node_id: str, identity_key: bytes
) -> SignedCheckpoint:
    """Verify ``record`` as a checkpoint of ``node_id`` signed by ``identity_key`` (raw Ed25519,
    from the node's descriptor); the signature is checked before anything is believed."""
    try:
        verify(load_ed25519_public(identity_key), DOMAIN, record, signature)
    except (CryptoFailure, ValueError) as exc:
        raise CheckpointError(
            "bad-signature", f"not signed by the identity key of {node_id}"
        ) from exc
    checkpoint = _decode(registry, record)
    if checkpoint.node_id != node_id:
        raise CheckpointError("wrong-node", f"a checkpoint of {checkpoint.node_id}, not {node_id}")
    return SignedCheckpoint(checkpoint, bytes(record), bytes(signature))


# -- the JSON file form ------------------------------------------------------------------------


def to_document(signed: SignedCheckpoint) -> dict[str, Any]:
    """The file form: readable fields for people, and the signed bytes that alone count."""
    c = signed.checkpoint
    return {
        "format": FILE_FORMAT,
        "node_id": c.node_id,
        "count": c.count,
        "head_hash": c.head_hash,
        "created_at": format_timestamp(c.created_at),
        "record": base64.b64encode(signed.record).decode("ascii"),
        "signature": base64.b64encode(signed.signature).decode("ascii"),
    }


def from_document(
    registry: SchemaRegistry, document: Any, *, node_id: str, identity_key: bytes
) -> SignedCheckpoint:
    """Verify a checkpoint file's content; its readable fields must say what the signed record
    says, so an edited file is refused rather than half believed."""
    if not isinstance(document, dict) or document.get("format") != FILE_FORMAT:
        raise CheckpointError("malformed", f"not an audit checkpoint (format {FILE_FORMAT})")
    try:
        record = base64.b64decode(str(document["record"]), validate=True)
        signature = base64.b64decode(str(document["signature"]), validate=True)
    except (KeyError, binascii.Error) as exc:
        raise CheckpointError("malformed", "record and signature must be base64") from exc
    signed = open_signed(registry, record, signature, node_id=node_id, identity_key=identity_key)
    readable = to_document(signed)
    edited = [
        k for k in ("node_id", "count", "head_hash", "created_at") if document.get(k) != readable[k]
    ]
    if edited:
        raise CheckpointError("edited", f"{', '.join(edited)} differ from the signed record")
    return signed


# -- decisions ---------------------------------------------------------------------------------


def due(
    latest: Checkpoint | None,
    count: int,
    now: dt.datetime,
    *,
    every_events: int,
    every_seconds: float,
) -> bool:
    """A new checkpoint is due after ``every_events`` new entries, or ``every_seconds`` after
    the latest one if the chain grew at all (an idle node signs nothing new)."""
    if count < 1:
        return False
    if latest is None:
        return True
    new = count - latest.count
    if new <= 0:
        return False
    return new >= every_events or (now - latest.created_at).total_seconds() >= every_seconds


Status = Literal["intact", "truncated", "rolled back"]


@dataclass(frozen=True)
class Verdict:
    """How a chain compares with a checkpoint. ``missing`` (first, last): for ``truncated`` the
    entry numbers the checkpoint proves existed and the chain no longer has; for ``rolled back``
    the range in which the replaced entries begin (the original entries from there up to
    ``last`` are gone, others now stand in their place)."""

    status: Status
    detail: str
    missing: tuple[int, int] | None = None

    @property
    def intact(self) -> bool:
        return self.status == "intact"

    @property
    def line(self) -> str:
        return f"{self.status}: {self.detail}"


def _describe(checkpoint: Checkpoint, source: str) -> str:
    signed_at = format_timestamp(checkpoint.created_at)
    return f"checkpoint at entry {checkpoint.count} signed {signed_at} ({source})"


def compare(
    checkpoint: Checkpoint,
    length: int,
    hash_at_count: str | None,
    source: str = "checkpoint",
    good_until: int = 0,
) -> Verdict:
    """Compare a chain — its ``length`` and the hash of its entry number ``checkpoint.count``
    (None if it has no such entry) — with a checkpoint. The chain itself is assumed to verify
    (:func:`node.audit.verify`); this only sees what a valid chain can hide: its end.
    ``good_until`` is the count of an older checkpoint the chain still contains, if any: a
    rewrite started after it (the hash chain fixes every entry up to a matching head)."""
    where = _describe(checkpoint, source)
    if length < checkpoint.count:
        first, last = length + 1, checkpoint.count
        span = f"entry {first} is" if first == last else f"entries {first}..{last} are"
        detail = f"{span} missing: the chain ends at entry {length}; the {where} shows {last}"
        return Verdict("truncated", detail, (first, last))
    if hash_at_count != checkpoint.head_hash:
        first, last = good_until + 1, checkpoint.count
        detail = (
            f"entry {last} is not the one the {where} signed: the log was cut back and "
            f"rewritten from an entry in {first}..{last} on (entries up to {last} replaced)"
        )
        return Verdict("rolled back", detail, (first, last))
    return Verdict("intact", f"it contains the {where}")


def assess(
    length: int,
    hashes: Mapping[int, str],
    local: SignedCheckpoint | None,
    peers: Iterable[tuple[str, SignedCheckpoint]],
) -> Verdict:
    """The verdict of ``xnode audit verify`` on a valid chain (entry hashes by number) given
    the node's own checkpoint file and checkpoints its peers kept: the chain must contain every
    one of them, newest first; and the file must not be older than one a peer holds, for the
    node writes its file before it announces a checkpoint — an older file was put back."""
    known = [(source, s.checkpoint) for source, s in peers]
    if local is not None:
        known.append(("checkpoint file", local.checkpoint))
    if not known:
        detail = "no checkpoint to compare with, so entries cut off its end would not show"
        return Verdict("intact", detail)
    known.sort(key=lambda item: (item[1].count, item[1].created_at), reverse=True)
    verdicts = [compare(c, length, hashes.get(c.count), source) for source, c in known]
    for index, verdict in enumerate(verdicts):
        if verdict.status == "rolled back":
            good = next((c.count for (_, c), v in zip(known[index + 1 :], verdicts[index + 1 :],
                                                       strict=True) if v.intact), 0)  # fmt: skip
            source, checkpoint = known[index]
            return compare(checkpoint, length, hashes.get(checkpoint.count), source, good)
        if not verdict.intact:
            return verdict
    newest_source, newest = known[0]
    if local is not None and local.checkpoint.count < newest.count:
        return Verdict("rolled back", f"the checkpoint file (entry {local.checkpoint.count}) is "
                       f"older than the {_describe(newest, newest_source)}: the file was put "
                       "back")  # fmt: skip
    return compare(newest, length, hashes.get(newest.count), newest_source)


class PeerDecision(enum.Enum):
    NEWER = "newer"  # keep the incoming one
    SAME = "same"
    OLDER = "older"  # the peer went back: keep the held one, say so
    CONFLICT = "conflict"  # same count, another hash: two histories; keep the held one, say so


def judge(held: Checkpoint | None, incoming: Checkpoint) -> PeerDecision:
    """Whether a peer's incoming checkpoint replaces the one held. A peer's checkpoints only go
    forward; one that goes back is evidence of a rollback and never replaces the held one."""
    if held is None or incoming.count > held.count:
        return PeerDecision.NEWER
    if incoming.count < held.count:
        return PeerDecision.OLDER
    return PeerDecision.SAME if incoming.head_hash == held.head_hash else PeerDecision.CONFLICT


@dataclass(frozen=True)
class WentBack:
    """A peer's checkpoint that is not newer than the one held though it differs from it."""

    held: Checkpoint
    got: Checkpoint
    decision: PeerDecision


@dataclass
class CheckpointBook:
    """The running node's checkpoint state, in memory: its own newest checkpoint, why it stopped
    signing (a chain behind its checkpoint), the peers' newest, which of them still need saving,
    and the went-back checkpoints to report (each one once)."""

    own: SignedCheckpoint | None = None
    own_loaded: bool = False
    problem: str | None = None
    peers: dict[str, SignedCheckpoint] = field(default_factory=dict)
    unsaved: set[str] = field(default_factory=set)
    went_back: list[WentBack] = field(default_factory=list)
    _reported: set[tuple[str, int, str]] = field(default_factory=set)
    _save_error: str | None = None

    def offer(self, incoming: SignedCheckpoint) -> PeerDecision:
        """Take a verified peer checkpoint if it is newer than the one held; note it for a
        report if it goes back."""
        held = self.peers.get(incoming.checkpoint.node_id)
        decision = self.settle(held, incoming)
        if decision is PeerDecision.NEWER:
            self.peers[incoming.checkpoint.node_id] = incoming
            self.unsaved.add(incoming.checkpoint.node_id)
        return decision

    def settle(self, held: SignedCheckpoint | None, incoming: SignedCheckpoint) -> PeerDecision:
        """:func:`judge`, noting a went-back checkpoint (the first time it is seen)."""
        decision = judge(held.checkpoint if held else None, incoming.checkpoint)
        if held is not None and decision in (PeerDecision.OLDER, PeerDecision.CONFLICT):
            got = incoming.checkpoint
            key = (got.node_id, got.count, got.head_hash)
            if key not in self._reported:
                self._reported.add(key)
                self.went_back.append(WentBack(held.checkpoint, got, decision))
        return decision

    def take_went_back(self) -> list[WentBack]:
        taken, self.went_back = self.went_back, []
        return taken

    def note_save_error(self, error: str) -> bool:
        """True when a file could not be written for a new reason (log it; not every tick)."""
        new, self._save_error = error != self._save_error, error
        return new
