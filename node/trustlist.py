"""The federation's trust list: who the members are, signed by a quorum of governors. Pure.

Pairwise descriptor exchange does not scale to a region (n·(n-1) swaps) and cannot revoke a stolen
key. A trust list can: the governors (e.g. the regional secretariat and two member-state
secretariats) sign one list naming every member, its roles, its identity key and its status, and
every node applies the newest list it can verify. Modelled on TUF's root metadata (threshold
signatures, versions that only go up, expiry against freeze attacks, rotation of the governors
only with the old quorum), on X-Road's global configuration (one signed member list every
server downloads) and on ETSI TS 119 612 trusted lists (a status history per entry).

The rules a node applies to a candidate list (:func:`decide`), each refusal a reason code:

* ``malformed`` — not a trust list, or not in canonical encoding;
* ``wrong-federation`` — a list of another federation;
* ``invalid`` — inconsistent content (threshold out of range, duplicate governors or members,
  invalid ids or roles, unusable keys);
* ``insufficient-signatures`` — fewer than k valid signatures of the governors named in the list
  the node already trusts (so governors and threshold change only with the old quorum), or fewer
  than the new list's own k of its own governors (a new governor must accept the role);
* ``rollback`` — a version not above the one held (a replayed old list), unless byte-identical;
* ``expired`` — its expiry has passed (a frozen distribution cannot pass off an old list);
* ``revocation-reversed`` — a member revoked in the held list is missing or not revoked in the
  candidate, or a retired compromised key came back: revocation is final.

The first list a node trusts (genesis, or the current list for a node joining later) is pinned
by an operator comparing its governance fingerprint out of band (:func:`governance_fingerprint`):
the same act as comparing a peer's fingerprint, done once per federation instead of per peer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from node.codec import CodecError, SchemaRegistry
from node.crypto.keys import (
    IdentityKey,
    display_fingerprint,
    ed25519_key_problem,
    key_id,
    load_ed25519_public,
)
from node.crypto.primitives import CryptoFailure, sign, verify
from node.routing.ids import InvalidIdentifier, country_of, validate_node_id, validate_roles
from node.trust import SenderKey

LIST_DOMAIN = b"xnode-trust-list-v1\x00"
LIST_SCHEMA = "xnode.trust.TrustList"
SIGNED_SCHEMA = "xnode.trust.SignedTrustList"
MAX_LIST_BYTES = 8 * 1024 * 1024  # about 20,000 members
STATUSES = ("active", "suspended", "revoked")
REASONS = ("key-compromise", "left-federation", "misbehaviour", "superseded")


class TrustListRejected(Exception):
    """A candidate list is refused; ``reason`` is a stable code for logs, audit and metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Governor:
    name: str
    identity_key: bytes

    @property
    def key_id(self) -> str:
        return key_id(self.identity_key)


@dataclass(frozen=True)
class PastKey:
    identity_key: bytes
    retired_at: dt.datetime
    reason: str


@dataclass(frozen=True)
class Member:
    node_id: str
    country: str
    roles: tuple[str, ...]
    display_name: str
    identity_key: bytes
    status: str
    status_since: dt.datetime
    reason: str | None = None
    past_keys: tuple[PastKey, ...] = ()

    @property
    def fingerprint(self) -> str:
        return display_fingerprint(self.identity_key)


@dataclass(frozen=True)
class ListChange:
    list_version: int
    at: dt.datetime
    summary: str


@dataclass(frozen=True)
class TrustList:
    federation: str
    list_version: int
    issued_at: dt.datetime
    expires_at: dt.datetime
    threshold: int
    governors: tuple[Governor, ...]
    members: tuple[Member, ...]
    history: tuple[ListChange, ...] = ()

    @functools.cached_property
    def _by_id(self) -> dict[str, Member]:
        return {m.node_id: m for m in self.members}

    def member(self, node_id: str) -> Member | None:
        return self._by_id.get(node_id)

    def governor_keys(self) -> dict[str, Governor]:
        return {g.key_id: g for g in self.governors}

    def to_record(self) -> dict[str, Any]:
        return {
            "federation": self.federation,
            "list_version": self.list_version,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "threshold": self.threshold,
            "governors": [{"name": g.name, "identity_key": g.identity_key} for g in self.governors],
            "members": [
                {
                    "node_id": m.node_id,
                    "country": m.country,
                    "roles": list(m.roles),
                    "display_name": m.display_name,
                    "identity_key": m.identity_key,
                    "status": m.status,
                    "status_since": m.status_since,
                    "reason": m.reason,
                    "past_keys": [
                        {
                            "identity_key": p.identity_key,
                            "retired_at": p.retired_at,
                            "reason": p.reason,
                        }
                        for p in m.past_keys
                    ],
                }
                for m in self.members
            ],
            "history": [
                {"list_version": h.list_version, "at": h.at, "summary": h.summary}
                for h in self.history
            ],
        }

    @classmethod
    def from_record(cls, r: Mapping[str, Any]) -> TrustList:
        return cls(
            federation=str(r["federation"]),
            list_version=int(r["list_version"]),
            issued_at=r["issued_at"],
            expires_at=r["expires_at"],
            threshold=int(r["threshold"]),
            governors=tuple(
                Governor(str(g["name"]), bytes(g["identity_key"])) for g in r["governors"]
            ),
            members=tuple(
                Member(
                    node_id=str(m["node_id"]),
                    country=str(m["country"]),
                    roles=tuple(m["roles"]),
                    display_name=str(m["display_name"]),
                    identity_key=bytes(m["identity_key"]),
                    # an older reader maps a status it does not know to "unknown": not active
                    status=m["status"] if m["status"] in STATUSES else "suspended",
                    status_since=m["status_since"],
                    reason=m["reason"],
                    past_keys=tuple(
                        PastKey(bytes(p["identity_key"]), p["retired_at"], str(p["reason"]))
                        for p in m["past_keys"]
                    ),
                )
                for m in r["members"]
            ),
            history=tuple(
                ListChange(int(h["list_version"]), h["at"], str(h["summary"])) for h in r["history"]
            ),
        )


@dataclass(frozen=True)
class GovernorSignature:
    key_id: str
    signature: bytes


@dataclass(frozen=True)
class SignedTrustList:
    """A list with the exact bytes that were signed, and the signatures gathered so far."""

    trust_list: TrustList
    body: bytes
    signatures: tuple[GovernorSignature, ...] = field(default=())

    def encode(self, registry: SchemaRegistry) -> bytes:
        return registry.encode(SIGNED_SCHEMA, {
            "list": self.body,
            "signatures": [{"key_id": s.key_id, "signature": s.signature}
                           for s in self.signatures],
        })  # fmt: skip


# -- making and signing --------------------------------------------------------------------------


def prepare(registry: SchemaRegistry, trust_list: TrustList) -> SignedTrustList:
    """A list ready for signatures (checked first: nobody should sign an invalid list)."""
    check_list(trust_list)
    return SignedTrustList(trust_list, registry.encode(LIST_SCHEMA, trust_list.to_record()))


def add_signature(signed: SignedTrustList, governor: IdentityKey) -> SignedTrustList:
    """``signed`` with ``governor``'s signature added (replacing an earlier one of the same key);
    refused if the key is not a governor of the list being signed."""
    if governor.key_id not in signed.trust_list.governor_keys():
        raise TrustListRejected(
            "invalid", f"key {governor.key_id} is not a governor of this list; it cannot sign it"
        )
    signature = GovernorSignature(governor.key_id, sign(governor, LIST_DOMAIN, signed.body))
    others = tuple(s for s in signed.signatures if s.key_id != governor.key_id)
    return SignedTrustList(signed.trust_list, signed.body, (*others, signature))


def decode(registry: SchemaRegistry, raw: bytes) -> SignedTrustList:
    """Strictly decode a signed list without trusting it: canonical bytes only."""
    if len(raw) > MAX_LIST_BYTES:
        raise TrustListRejected("malformed", f"{len(raw)} bytes; the limit is {MAX_LIST_BYTES}")
    try:
        wrapper = registry.decode(SIGNED_SCHEMA, raw)
        record = registry.decode(LIST_SCHEMA, wrapper["list"])
        if registry.encode(LIST_SCHEMA, record) != wrapper["list"]:
            raise TrustListRejected("malformed", "the list is not in canonical Avro encoding")
    except CodecError as exc:
        raise TrustListRejected("malformed", f"not a signed trust list ({exc.problem})") from exc
    signatures = tuple(GovernorSignature(str(s["key_id"]), bytes(s["signature"]))
                       for s in wrapper["signatures"])  # fmt: skip
    return SignedTrustList(TrustList.from_record(record), wrapper["list"], signatures)


# -- checking ------------------------------------------------------------------------------------


def check_list(t: TrustList) -> None:
    """Refuse a list whose content is inconsistent, whoever signed it."""

    def invalid(detail: str) -> TrustListRejected:
        return TrustListRejected("invalid", detail)

    if not t.federation.strip():
        raise invalid("the federation has no name")
    if t.list_version < 1:
        raise invalid("list version must be 1 or higher")
    if t.expires_at <= t.issued_at:
        raise invalid("the list expires before it is issued")
    if not 1 <= t.threshold <= len(t.governors):
        raise invalid(f"threshold {t.threshold} must be from 1 to the number of governors "
                      f"({len(t.governors)})")  # fmt: skip
    keys = [g.key_id for g in t.governors]
    if len(set(keys)) != len(keys):
        raise invalid("a governor key is listed twice")
    for g in t.governors:
        problem = ed25519_key_problem(g.identity_key)
        if problem or not g.name.strip():
            raise invalid(f"governor {g.name!r}: {problem or 'no name'}")
    ids = [m.node_id for m in t.members]
    if len(set(ids)) != len(ids):
        raise invalid("a member is listed twice")
    current_keys: dict[bytes, str] = {}
    for m in t.members:
        _check_member(m)
        other = current_keys.setdefault(m.identity_key, m.node_id)
        if other != m.node_id:
            raise invalid(f"{m.node_id} and {other} have the same identity key")
    versions = [h.list_version for h in t.history]
    if versions != sorted(set(versions)) or any(v > t.list_version for v in versions):
        raise invalid("the history must list increasing versions up to this one")


def _check_member(m: Member) -> None:
    try:
        validate_node_id(m.node_id)
        validate_roles(m.roles)
    except InvalidIdentifier as exc:
        raise TrustListRejected("invalid", f"member {m.node_id!r}: {exc}") from exc
    if m.country != country_of(m.node_id):
        raise TrustListRejected("invalid", f"member {m.node_id}: country {m.country!r} does not "
                                "match its id")  # fmt: skip
    problem = ed25519_key_problem(m.identity_key)
    if problem:
        raise TrustListRejected("invalid", f"member {m.node_id}: identity key is {problem}")
    if m.status not in STATUSES:
        raise TrustListRejected("invalid", f"member {m.node_id}: unknown status {m.status!r}")
    if (m.status == "active") != (m.reason is None) or (m.reason and m.reason not in REASONS):
        raise TrustListRejected(
            "invalid", f"member {m.node_id}: a suspension or revocation needs a reason code "
            f"({', '.join(REASONS)}), an active member none",
        )  # fmt: skip
    if any(p.identity_key == m.identity_key for p in m.past_keys):
        raise TrustListRejected("invalid", f"member {m.node_id}: its current key is also retired")


def valid_signers(signed: SignedTrustList, governors: Iterable[Governor]) -> set[str]:
    """Key ids of the given governors whose signature over the list verifies."""
    by_id = {g.key_id: g for g in governors}
    signers: set[str] = set()
    for s in signed.signatures:
        governor = by_id.get(s.key_id)
        if governor is None or s.key_id in signers:
            continue
        try:
            verify(load_ed25519_public(governor.identity_key), LIST_DOMAIN, signed.body,
                   s.signature)  # fmt: skip
        except (CryptoFailure, ValueError):
            continue
        signers.add(s.key_id)
    return signers


def governance_fingerprint(t: TrustList) -> str:
    """What an operator compares out of band before pinning a federation's first list: the
    federation name, the threshold and the governors' keys, hashed (display form)."""
    material = t.federation.encode() + b"\x00" + str(t.threshold).encode() + b"\x00"
    material += b"".join(sorted(g.identity_key for g in t.governors))
    return display_fingerprint(hashlib.sha256(material).digest())


class Change(enum.Enum):
    APPLY = "apply"
    UNCHANGED = "unchanged"


def decide(
    current: SignedTrustList | None,
    candidate: SignedTrustList,
    now: dt.datetime,
    pinned: str | None = None,
) -> Change:
    """Whether ``candidate`` replaces ``current``; raise :class:`TrustListRejected` if not.

    Without a current list, ``pinned`` must be the candidate's governance fingerprint, as
    compared out of band (``xnode trust init`` / ``xnode trust pin``)."""
    new = candidate.trust_list
    check_list(new)
    if current is not None and current.body == candidate.body:
        return Change.UNCHANGED
    if current is None:
        if pinned is None or pinned != governance_fingerprint(new):
            raise TrustListRejected(
                "insufficient-signatures",
                "no list is trusted yet and this one's governance fingerprint "
                f"{governance_fingerprint(new)} was not pinned",
            )
    else:
        old = current.trust_list
        if new.federation != old.federation:
            raise TrustListRejected("wrong-federation", f"a list of {new.federation!r}, this "
                                    f"node belongs to {old.federation!r}")  # fmt: skip
        if new.list_version <= old.list_version:
            raise TrustListRejected("rollback", f"version {new.list_version} is not above the "
                                    f"held version {old.list_version}")  # fmt: skip
        _require_quorum(candidate, old, "the governors of the list this node trusts")
        _check_revocations_kept(old, new)
    _require_quorum(candidate, new, "its own governors")
    if new.expires_at <= now:
        raise TrustListRejected("expired", f"the list expired at {new.expires_at.isoformat()}")
    return Change.APPLY


def _require_quorum(candidate: SignedTrustList, by: TrustList, whose: str) -> None:
    signers = valid_signers(candidate, by.governors)
    if len(signers) < by.threshold:
        names = sorted(by.governor_keys()[k].name for k in signers)
        raise TrustListRejected(
            "insufficient-signatures",
            f"{len(signers)} valid signature(s) of {whose} ({', '.join(names) or 'none'}); "
            f"{by.threshold} needed",
        )


def _check_revocations_kept(old: TrustList, new: TrustList) -> None:
    compromised = {p.identity_key for m in old.members for p in m.past_keys
                   if p.reason == "key-compromise"}  # fmt: skip
    compromised |= {m.identity_key for m in old.members if m.status == "revoked"}
    for m in old.members:
        if m.status != "revoked":
            continue
        kept = new.member(m.node_id)
        if kept is None or kept.status != "revoked":
            raise TrustListRejected("revocation-reversed", f"{m.node_id} is revoked in the held "
                                    "list; revocation is final")  # fmt: skip
    for m in new.members:
        if m.identity_key in compromised and m.status != "revoked":
            raise TrustListRejected("revocation-reversed", f"{m.node_id} uses a key retired as "
                                    "compromised or revoked")  # fmt: skip


# -- what a list means for the receive and send paths --------------------------------------------


class Freshness(enum.Enum):
    VALID = "valid"
    DEGRADED = "degraded"  # expired, within the grace period: receive, and still send
    EXPIRED = "expired"  # beyond the grace period: receive only


def freshness(t: TrustList, now: dt.datetime, grace: dt.timedelta) -> Freshness:
    if now < t.expires_at:
        return Freshness.VALID
    return Freshness.DEGRADED if now < t.expires_at + grace else Freshness.EXPIRED


def sender_keys(m: Member) -> dict[str, SenderKey]:
    """The identity keys member ``m`` may sign with, by key id: its current key without limit,
    and each retired key until its retirement time (for new arrivals, and for stored envelopes
    created before it). A key retired as compromised gets its retirement time too, which the
    governors set to the moment they retired it: nothing signed with it arrives after that."""
    keys = {key_id(m.identity_key): SenderKey(m.identity_key)}
    for p in m.past_keys:
        keys[key_id(p.identity_key)] = SenderKey(p.identity_key, p.retired_at, p.retired_at)
    return keys


def members_by_status(t: TrustList) -> dict[str, Sequence[str]]:
    """Node ids per status, for metrics and ``xnode trust show``."""
    out: dict[str, list[str]] = {s: [] for s in STATUSES}
    for m in t.members:
        out[m.status].append(m.node_id)
    return {s: tuple(ids) for s, ids in out.items()}


# -- proposals: the next version of a list -------------------------------------------------------


def next_version(
    t: TrustList,
    summary: str,
    now: dt.datetime,
    valid_for: dt.timedelta,
    *,
    members: Sequence[Member] | None = None,
    governors: Sequence[Governor] | None = None,
    threshold: int | None = None,
) -> TrustList:
    """``t`` changed as given, one version up, issued now, with the change in its history."""
    version = t.list_version + 1
    return TrustList(
        federation=t.federation,
        list_version=version,
        issued_at=now,
        expires_at=now + valid_for,
        threshold=t.threshold if threshold is None else threshold,
        governors=tuple(t.governors if governors is None else governors),
        members=tuple(t.members if members is None else members),
        history=(*t.history, ListChange(version, now, summary)),
    )


def with_member(t: TrustList, updated: Member) -> list[Member]:
    """The members of ``t`` with ``updated`` replacing the entry of the same id, or added."""
    others = [m for m in t.members if m.node_id != updated.node_id]
    return sorted([*others, updated], key=lambda m: m.node_id)


def set_status(
    t: TrustList, node_id: str, status: str, reason: str | None, now: dt.datetime
) -> Member:
    """The member ``node_id`` with a new status from ``now``; refuses what the rules forbid
    before anyone signs it (reinstating a revoked member, an unknown member)."""
    m = t.member(node_id)
    if m is None:
        raise TrustListRejected("invalid", f"{node_id} is not a member of the list")
    if m.status == "revoked":
        raise TrustListRejected("revocation-reversed", f"{node_id} is revoked; revocation is final")
    if m.status == status:
        raise TrustListRejected("invalid", f"{node_id} is already {status}")
    return dataclasses.replace(m, status=status, status_since=now, reason=reason)


def diff(old: TrustList | None, new: TrustList) -> list[str]:
    """What ``new`` changes, one line per change, for the people who sign it."""
    if old is None:
        lines = [f"new federation {new.federation!r}, version {new.list_version}"]
        old_members: dict[str, Member] = {}
        old_governors: dict[str, Governor] = {}
        old_threshold = None
    else:
        lines = [f"{new.federation}: version {old.list_version} -> {new.list_version}"]
        old_members = {m.node_id: m for m in old.members}
        old_governors = old.governor_keys()
        old_threshold = old.threshold
    if new.threshold != old_threshold:
        lines.append(f"threshold: {old_threshold or '-'} -> {new.threshold} of "
                     f"{len(new.governors)} governors")  # fmt: skip
    new_governors = new.governor_keys()
    for k, g in new_governors.items():
        if k not in old_governors:
            lines.append(f"+ governor {g.name} (key {k})")
    for k, g in old_governors.items():
        if k not in new_governors:
            lines.append(f"- governor {g.name} (key {k})")
    new_members = {m.node_id: m for m in new.members}
    for node_id, m in sorted(new_members.items()):
        before = old_members.get(node_id)
        if before is None:
            lines.append(f"+ member {node_id} ({', '.join(m.roles)}) {m.status}, key "
                         f"{key_id(m.identity_key)}")  # fmt: skip
            continue
        if before.status != m.status:
            why = f" ({m.reason})" if m.reason else ""
            lines.append(f"~ {node_id}: {before.status} -> {m.status}{why} from "
                         f"{m.status_since:%Y-%m-%d %H:%M} UTC")  # fmt: skip
        if before.roles != m.roles:
            lines.append(f"~ {node_id}: roles {', '.join(before.roles)} -> {', '.join(m.roles)}")
        if before.identity_key != m.identity_key:
            lines.append(f"~ {node_id}: identity key {key_id(before.identity_key)} -> "
                         f"{key_id(m.identity_key)}")  # fmt: skip
    for node_id in sorted(set(old_members) - set(new_members)):
        lines.append(f"- member {node_id}")
    lines.append(f"expires {new.expires_at:%Y-%m-%d %H:%M} UTC")
    return lines


# -- what a node does with the list it holds -----------------------------------------------------


def backs(t: TrustList, node_id: str, identity_key: bytes) -> str | None:
    """Why the list does not back a descriptor of ``node_id`` with ``identity_key`` (None if it
    does): not a member, or another key than the member's current one."""
    m = t.member(node_id)
    if m is None:
        return f"{node_id} is not a member of {t.federation}"
    if m.identity_key != identity_key:
        return f"{node_id}'s identity key {key_id(identity_key)} is not the one the list names"
    return None


@dataclass(frozen=True)
class FederatedPeers:
    """What a node in federated mode works with (see :func:`federated_directory`)."""

    peers: dict[str, Any]
    barred: set[str]
    keys: dict[str, dict[str, SenderKey]]


def federated_directory(
    t: TrustList, descriptors: Mapping[str, Any], now: dt.datetime
) -> FederatedPeers:
    """The peers a node in federated mode uses — the descriptors the list backs, with the roles
    the governors granted (not those a descriptor claims) — the ids to refuse as revoked
    (members suspended or revoked from a time already reached) and the identity keys each
    member may sign with.

    A descriptor signed with a key the list retired in a routine rotation stays in use until
    the member's new descriptor arrives (its encryption keys are still the member's), so a
    rotation does not interrupt sending to it; one with a compromised key does not."""
    peers: dict[str, Any] = {}
    barred: set[str] = set()
    keys: dict[str, dict[str, SenderKey]] = {}
    for node_id, d in descriptors.items():
        m = t.member(node_id)
        if m is None:
            continue
        if d.identity_key != m.identity_key and not any(
            p.identity_key == d.identity_key and p.reason != "key-compromise" for p in m.past_keys
        ):
            continue
        peers[node_id] = dataclasses.replace(d, roles=m.roles)
        keys[node_id] = sender_keys(m)
        if m.status != "active" and m.status_since <= now:
            barred.add(node_id)
    return FederatedPeers(peers, barred, keys)
