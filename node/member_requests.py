"""Requests a node sends to the federation's governors: to join, or to replace its identity
key. Pure.

Joining must not mean swapping files with every member: a new agency runs ``xnode init``, then
``xnode trust request-join``, and sends the request file to the governors by any channel (mail,
a member's node once it is in). The request carries the node's self-signed descriptor and is
signed with that descriptor's identity key, so the key in it is one the requester holds. What it
cannot prove is *who* the requester is: the governors compare the fingerprint it shows with the
agency out of band (``contact``) before they propose ``add``.

A rotation request replaces a member's identity key. It is signed by the key the trust list
names now (the member authorises the change) and by the new key (the member holds it); the
governors still approve it with a quorum, as any change of the list. A thief holding only the
old key could ask for a rotation too, which is why the governors call the member before they
sign; a member who lost its key entirely is revoked and joins again under a new id.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from node.codec import CodecError, SchemaRegistry
from node.crypto.keys import IdentityKey, key_id, load_ed25519_public
from node.crypto.primitives import CryptoFailure, sign, verify
from node.routing.ids import InvalidIdentifier, validate_roles
from node.trust import SignedDescriptor, TrustError, verify_descriptor
from node.trustlist import Member, PastKey, TrustList

REQUEST_DOMAIN = b"xnode-member-request-v1\x00"
REQUEST_SCHEMA = "xnode.trust.MemberRequest"
SIGNED_SCHEMA = "xnode.trust.SignedMemberRequest"
MAX_REQUEST_BYTES = 64 * 1024
JOIN = "join"
ROTATE = "rotate_identity"


class RequestRefused(ValueError):
    """A member request that cannot be turned into a proposal, and why."""


@dataclass(frozen=True)
class MemberRequest:
    """A decoded request whose descriptor and new-key signature verified."""

    request: str
    federation: str
    descriptor: SignedDescriptor
    roles: tuple[str, ...]
    contact: str
    note: str
    requested_at: dt.datetime
    body: bytes
    signatures: tuple[tuple[str, bytes], ...]

    @property
    def node_id(self) -> str:
        return self.descriptor.descriptor.node_id

    def signed_by(self, public_key: bytes) -> bool:
        """Whether ``public_key``'s signature over the request is among its signatures."""
        wanted = key_id(public_key)
        for signer, signature in self.signatures:
            if signer != wanted:
                continue
            try:
                verify(load_ed25519_public(public_key), REQUEST_DOMAIN, self.body, signature)
            except (CryptoFailure, ValueError):
                continue
            return True
        return False


def make_request(
    registry: SchemaRegistry,
    *,
    request: str,
    federation: str,
    descriptor: SignedDescriptor,
    roles: Sequence[str],
    contact: str,
    note: str,
    now: dt.datetime,
    signers: Sequence[IdentityKey],
) -> bytes:
    """The signed request file's bytes."""
    body = registry.encode(REQUEST_SCHEMA, {
        "request": request, "federation": federation, "descriptor": descriptor.raw,
        "roles": list(roles), "contact": contact, "note": note, "requested_at": now,
    })  # fmt: skip
    signatures = [{"key_id": k.key_id, "signature": sign(k, REQUEST_DOMAIN, body)} for k in signers]
    return registry.encode(SIGNED_SCHEMA, {"request": body, "signatures": signatures})


def read_request(registry: SchemaRegistry, raw: bytes) -> MemberRequest:
    """Decode strictly and verify what the request can prove by itself: its descriptor, and
    that the descriptor's identity key signed it. The rest is judged against the trust list."""
    if len(raw) > MAX_REQUEST_BYTES:
        raise RequestRefused(f"{len(raw)} bytes; a member request is at most {MAX_REQUEST_BYTES}")
    try:
        wrapper = registry.decode(SIGNED_SCHEMA, raw)
        record = registry.decode(REQUEST_SCHEMA, wrapper["request"])
        if registry.encode(REQUEST_SCHEMA, record) != wrapper["request"]:
            raise RequestRefused("the request is not in canonical Avro encoding")
        descriptor = verify_descriptor(bytes(record["descriptor"]), registry)
    except CodecError as exc:
        raise RequestRefused(f"not a member request ({exc.problem})") from exc
    except TrustError as exc:
        raise RequestRefused(f"its descriptor does not verify: {exc}") from exc
    if record["request"] not in (JOIN, ROTATE):
        raise RequestRefused(f"unknown request {str(record['request'])[:40]!r}")
    request = MemberRequest(
        request=str(record["request"]),
        federation=str(record["federation"]),
        descriptor=descriptor,
        roles=tuple(record["roles"]),
        contact=str(record["contact"]),
        note=str(record["note"]),
        requested_at=record["requested_at"],
        body=bytes(wrapper["request"]),
        signatures=tuple((str(s["key_id"]), bytes(s["signature"])) for s in wrapper["signatures"]),
    )
    d = descriptor.descriptor
    if not request.signed_by(d.identity_key):
        raise RequestRefused(f"not signed by its descriptor's identity key ({d.identity_key_id})")
    return request


def _check_common(t: TrustList, req: MemberRequest, kind: str) -> None:
    if req.request != kind:
        raise RequestRefused(f"a {req.request.replace('_', ' ')} request, not a {kind} request")
    if req.federation != t.federation:
        raise RequestRefused(f"asks to be in {req.federation!r}, this list is {t.federation!r}")


def _check_new_key(t: TrustList, req: MemberRequest) -> None:
    """A key is never shared or reused: not a member's current key, not a retired one."""
    new_key = req.descriptor.descriptor.identity_key
    for m in t.members:
        if m.identity_key == new_key or any(p.identity_key == new_key for p in m.past_keys):
            raise RequestRefused(f"its identity key is, or was, {m.node_id}'s")


def admit(
    t: TrustList, req: MemberRequest, now: dt.datetime, roles: tuple[str, ...] = ()
) -> Member:
    """The list entry a join request asks for, active from ``now`` with ``roles`` (default: the
    roles it asks for). A node id revoked once is never admitted again."""
    _check_common(t, req, JOIN)
    existing = t.member(req.node_id)
    if existing is not None:
        raise RequestRefused(f"{req.node_id} is already a member ({existing.status})")
    _check_new_key(t, req)
    d = req.descriptor.descriptor
    try:
        granted = validate_roles(roles or req.roles or d.roles)
    except InvalidIdentifier as exc:
        raise RequestRefused(str(exc)) from exc
    return Member(d.node_id, d.country, granted, d.display_name, d.identity_key, "active", now)


def rotate(
    t: TrustList,
    req: MemberRequest,
    now: dt.datetime,
    overlap: dt.timedelta,
    *,
    compromised: bool = False,
) -> Member:
    """The member's entry with the requested identity key. The old key is retired ``overlap``
    from ``now`` (envelopes signed with it before the member switches still arrive), or at once
    as ``key-compromise`` when it was stolen."""
    _check_common(t, req, ROTATE)
    m = t.member(req.node_id)
    if m is None:
        raise RequestRefused(f"{req.node_id} is not a member")
    if m.status == "revoked":
        raise RequestRefused(f"{req.node_id} is revoked; revocation is final")
    _check_new_key(t, req)
    if not req.signed_by(m.identity_key):
        raise RequestRefused(
            f"not signed by {req.node_id}'s current identity key ({key_id(m.identity_key)})"
        )
    retired = PastKey(
        m.identity_key,
        now if compromised else now + overlap,
        "key-compromise" if compromised else "superseded",
    )
    return dataclasses.replace(
        m, identity_key=req.descriptor.descriptor.identity_key, past_keys=(*m.past_keys, retired)
    )
