"""Turning a local system's request into a sealed outbox entry (pure; the shell stores it).

Used identically by the running node, ``xnode send`` (which writes the store directly) and the
HTTP API, so every way in applies the same checks in the same order: recipients known -> policy ->
schema -> business rules -> seal. Each failure raises an exception the caller maps to its own
way of saying no (exit status, HTTP 4xx), always naming the field or the recipient.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from node import envelope, identifiers, payloads, trustlist
from node.audit import AuditEvent
from node.codec import SchemaRegistry
from node.config import Config
from node.crypto.keys import IdentityKey
from node.policy import Policy
from node.stats import facts
from node.store.base import OutboundMessage
from node.trust import Descriptor


class UnknownRecipient(ValueError):
    """A recipient that is not a known peer (or no recipients at all)."""

    def __init__(self, message: str, recipient: str | None = None) -> None:
        super().__init__(message)
        self.recipient = recipient


class RevokedRecipient(UnknownRecipient):
    """A recipient this node has revoked (``xnode peers revoke``): nothing goes to it."""


class NoRecipients(UnknownRecipient):
    """The request names no usable recipient: an empty list, ``"neighbours"`` while the node
    has none configured, or another string. A mistake in the request (HTTP 422), unlike an
    unknown node id (404): there is nothing to look up."""


class FederationExpired(Exception):
    """The federation's trust list expired longer ago than ``federation.grace_days``: nothing is
    sent until a newer list arrives (receiving goes on). A frozen distribution of lists must not
    let a node keep trusting keys the governors may have revoked meanwhile."""


def check_federation(
    held: trustlist.SignedTrustList | None, now: dt.datetime, grace: dt.timedelta
) -> None:
    """Refuse to send once the held trust list is expired beyond the grace period."""
    if held is None:
        return
    t = held.trust_list
    if trustlist.freshness(t, now, grace) is trustlist.Freshness.EXPIRED:
        raise FederationExpired(
            f"the trust list of {t.federation} (version {t.list_version}) expired on "
            f"{t.expires_at:%Y-%m-%d %H:%M} UTC, more than {grace.days} days ago "
            "(federation.grace_days); sending resumes when the governors publish a newer list"
        )


class IdempotencyKeyReused(ValueError):
    """An idempotency key already stored with a *different* request: returning the first
    message's id would tell the caller its second request was sent when it was not."""

    def __init__(self, key: str, message_id: str) -> None:
        super().__init__(
            f"the idempotency key was already used for a different request (message "
            f"{message_id}); a new request needs a new key"
        )
        self.key = key
        self.message_id = message_id


@dataclass(frozen=True)
class Request:
    """What a local system asks to send."""

    kind: str
    to: Sequence[str] | str  # node ids, or "neighbours"
    payload: Mapping[str, Any]  # plain JSON
    schema: str | None = None
    thread_id: str | None = None
    in_reply_to: str | None = None
    priority: str = "normal"
    ttl: dt.timedelta | None = None
    idempotency_key: str | None = None
    procedural: bool = False  # set by the node's erasure and forwarding desks only
    procedure_override: str | None = None  # why a step is sent out of its procedure's order


def resolve_recipients(
    to: Sequence[str] | str,
    config: Config,
    peers: Mapping[str, Descriptor],
    revoked: Collection[str] = (),
) -> list[Descriptor]:
    """Explicit node ids or ``"neighbours"`` -> known peer descriptors; refuse the unknown and
    the revoked."""
    if isinstance(to, str):
        if to != "neighbours":
            raise NoRecipients('"to" must be a list of node ids or "neighbours"')
        ids = list(config.node.neighbours)
        if not ids:
            raise NoRecipients(
                'this node has no neighbours configured (node.neighbours): "to": "neighbours" '
                "names nobody; list the recipients' node ids instead"
            )
    else:
        ids = list(to)
    if not ids:
        raise NoRecipients("at least one recipient is required")
    resolved = []
    for node_id in ids:
        if node_id in revoked:
            raise RevokedRecipient(
                f"{node_id} has been revoked on this node (xnode peers list); nothing is sent to"
                " it until an operator runs xnode peers unrevoke",
                node_id,
            )
        if node_id not in peers:
            known = ", ".join(sorted(peers)) or "none"
            raise UnknownRecipient(f"unknown recipient {node_id}; known peers: {known}", node_id)
        resolved.append(peers[node_id])
    return resolved


def fingerprint(request: Request) -> str:
    """SHA-256 (hex) of the request's canonical form, stored beside its idempotency key.

    Canonical: every field that decides what is sent, as JSON with sorted keys, no spaces and
    ASCII escapes, so two documents that ask for the same message (key order, white space,
    ``handling`` beside or inside the payload, ``ttl_seconds`` 600 or 600.0) have the same
    fingerprint and a retry is recognised, while any change of content is not. The key itself
    is not part of it: the store compares fingerprints of requests under the same key.
    """
    canonical = {
        "kind": request.kind,
        "to": request.to if isinstance(request.to, str) else list(request.to),
        "payload": request.payload,
        "schema": request.schema,
        "thread_id": request.thread_id,
        "in_reply_to": request.in_reply_to,
        "priority": request.priority,
        "ttl_seconds": None if request.ttl is None else request.ttl.total_seconds(),
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def same_request(key: str, stored_id: str, stored_sha256: str | None, sha256: str | None) -> str:
    """The stored message id if a request under ``key`` repeats the stored one; else raise
    :class:`IdempotencyKeyReused`. Either fingerprint unknown (a row written before
    fingerprints were kept, or a caller that gives none) counts as the same request: the old
    behaviour, as nothing proves the requests differ."""
    if stored_sha256 is not None and sha256 is not None and stored_sha256 != sha256:
        raise IdempotencyKeyReused(key, stored_id)
    return stored_id


def prepare(
    registry: SchemaRegistry,
    request: Request,
    *,
    config: Config,
    identity: IdentityKey,
    peers: Mapping[str, Descriptor],
    now: dt.datetime,
    revoked: Collection[str] = (),
) -> tuple[OutboundMessage, AuditEvent]:
    """Validate, seal and describe one submission; nothing is stored here."""
    if request.kind not in payloads.KINDS or request.kind == "receipt":
        allowed = ", ".join(k for k in payloads.KINDS if k != "receipt")
        raise envelope.SealError(
            f"unknown kind {request.kind!r}; expected one of {allowed}", "kind"
        )
    recipients = resolve_recipients(request.to, config, peers, revoked)
    Policy.from_config(config.policy.rules).check_send(
        request.kind, config.node.roles, {r.node_id: r.roles for r in recipients}
    )
    schema_name = envelope.payload_schema_name(
        registry, request.schema or payloads.DEFAULT_PAYLOAD[request.kind], request.kind
    )
    if payloads.short_name(schema_name) in payloads.PROCEDURAL and not request.procedural:
        raise envelope.SealError(
            f"{payloads.short_name(schema_name)} is sent by the node itself: use the erasure"
            " or forwarding routes (docs/data-protection.md)", "schema",
        )  # fmt: skip
    payload = registry.from_json(schema_name, request.payload, "payload")
    payload = identifiers.normalise(registry, schema_name, payload)
    ttl = request.ttl or dt.timedelta(days=config.envelope.default_ttl_days)
    max_lifetime = dt.timedelta(days=config.envelope.max_lifetime_days)
    if ttl > max_lifetime:
        raise envelope.SealError(
            f"ttl of {ttl.days} days exceeds envelope.max_lifetime_days"
            f" ({config.envelope.max_lifetime_days}); receivers refuse longer lifetimes",
            "ttl_seconds",
        )
    sealed = envelope.seal(
        registry,
        identity=identity,
        sender_id=config.node.id,
        kind=request.kind,
        schema_name=schema_name,
        payload=payload,
        recipients=recipients,
        now=now,
        expires_at=now + ttl,
        thread_id=request.thread_id,
        in_reply_to=request.in_reply_to,
        priority=request.priority,
        max_bytes=config.envelope.max_bytes,
        max_lifetime=max_lifetime,
    )
    key = request.idempotency_key
    request_sha256 = None if key is None else fingerprint(request)
    return outbound(sealed, schema_name, key, request_sha256=request_sha256), AuditEvent(
        "submitted",
        now,
        message_id=sealed.message_id,
        detail={
            "kind": request.kind,
            "schema": schema_name,
            "recipients": [r.node_id for r in recipients],
            "envelope_sha256": sealed.sha256.hex(),
        },
    )


def outbound(
    sealed: envelope.Sealed,
    schema_name: str,
    idempotency_key: str | None = None,
    expects_receipt: bool = True,
    request_sha256: str | None = None,
) -> OutboundMessage:
    header = sealed.header
    return OutboundMessage(
        message_id=header.message_id,
        kind=header.kind,
        thread_id=header.thread_id,
        schema_name=schema_name,
        priority=header.priority,
        envelope=sealed.data,
        envelope_sha256=sealed.sha256.hex(),
        created_at=header.created_at,
        expires_at=header.expires_at,
        recipients=header.recipient_ids,
        expects_receipt=expects_receipt,
        idempotency_key=idempotency_key,
        request_sha256=request_sha256,
    )


def sent_fact(request: Request, message: OutboundMessage) -> facts.Fact | None:
    """What statistics keep of a message this node sends (docs/statistics.md), stored with it:
    the node cannot read back what it sealed."""
    return facts.fact_of(
        message.schema_name,
        request.payload,
        message_id=message.message_id,
        direction="sent",
        thread_id=message.thread_id,
        at=message.created_at,
    )
