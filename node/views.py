"""How messages look to local systems: the one JSON shape shared by the HTTP API, the
webhook, the folder adapter and ``xnode inbox --json``. Pure.

Received payloads are decrypted on demand from the stored envelope (nothing is stored in
plaintext); sent messages show metadata and per-recipient state only — the sender cannot read
its own envelope, which is sealed for the recipients alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from node import codes, envelope, forwarding
from node.codec import CodecError, SchemaRegistry, format_timestamp
from node.crypto.keys import EncryptionKey
from node.payloads import short_name
from node.store.base import (
    FINAL_STATES,
    InboxMessage,
    LegalHold,
    OutboundMessage,
    QuarantineEntry,
    RecipientStatus,
    StatusEvent,
)
from node.trust import Descriptor, PeerDirectory


def timestamp(value: dt.datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


def inbox_item(
    registry: SchemaRegistry,
    message: InboxMessage,
    *,
    own_id: str,
    own_keys: Mapping[str, EncryptionKey],
    peers: PeerDirectory,
) -> dict[str, Any]:
    """A received message with its decoded payload (``payload_error`` if it no longer opens,
    e.g. after the sender was removed from the peers)."""
    item: dict[str, Any] = {
        "cursor": message.seq,
        "id": message.message_id,
        "sender": message.sender,
        "kind": message.kind,
        "thread_id": message.thread_id,
        "in_reply_to": message.in_reply_to,
        "payload_schema": short_name(message.schema_name),
        "handling_code": message.handling_code,
        "created_at": timestamp(message.created_at),
        "expires_at": timestamp(message.expires_at),
        "received_at": timestamp(message.received_at),
        "state": message.state,
        "addressed_to": list(message.recipients),
        "thread_joined": message.thread_joined,
        "sender_revoked": message.sender in peers.revoked,
    }
    if message.erased:  # at its sender's request: only the metadata is left
        item["payload"] = None
        item["payload_error"] = "erased"
        return item
    try:
        opened = envelope.reopen(
            registry, message.envelope, own_id=own_id, own_keys=own_keys, peers=peers,
            local_wrap=message.local_wrap,
        )  # fmt: skip
    except envelope.EnvelopeError as exc:
        item["payload"] = None
        item["payload_error"] = exc.reason
        return item
    item["payload"] = registry.to_json(opened.payload_schema.name, opened.payload)
    item["handling_notice"] = handling_notice(opened.payload["handling"])
    if opened.payload_schema.name == forwarding.FORWARD_SCHEMA:
        item["forwarded_from"] = item["payload"]["original"]
        try:  # what the forward carries, readable like any payload
            name, inner = forwarding.inner_payload(registry, opened.payload)
            item["payload"]["payload"] = registry.to_json(name, inner)
        except (KeyError, CodecError):
            item["payload_error"] = "forwarded payload unreadable"
    return item


def handling_notice(handling: Mapping[str, Any]) -> str:
    """What the handling code means, in words, shown with every received payload (H1: not for
    judicial proceedings without permission; H3: the sender's conditions verbatim)."""
    code = str(handling["code"])
    label = codes.get("handling_code").label(code, "en")
    conditions = handling.get("conditions")
    return f"{code}: {label}" + (f". Conditions: {conditions}" if conditions else "")


def overall_state(statuses: Sequence[RecipientStatus]) -> str:
    """One word for a message: the least advanced recipient's state, ``delivered`` only when all
    are; ``rejected``/``expired`` as soon as every recipient is final and one of them is."""
    states = {s.state for s in statuses}
    for state in ("queued", "sent"):
        if state in states:
            return state
    if states <= set(FINAL_STATES):
        for state in ("rejected", "expired"):
            if state in states:
                return state
    return "delivered"


def recipient_status(s: RecipientStatus) -> dict[str, Any]:
    return {
        "node_id": s.recipient,
        "state": s.state,
        "attempts": s.attempts,
        "updated_at": timestamp(s.updated_at),
        "last_attempt_at": timestamp(s.last_attempt_at),
        "next_attempt_at": timestamp(s.next_attempt_at) if s.state in ("queued", "sent") else None,
        "reason": s.reason,
        "detail": s.detail,
    }


def sent_item(
    message: OutboundMessage, statuses: Sequence[RecipientStatus], own_id: str
) -> dict[str, Any]:
    return {
        "id": message.message_id,
        "direction": "sent",
        "sender": own_id,
        "kind": message.kind,
        "thread_id": message.thread_id,
        "payload_schema": short_name(message.schema_name),
        "priority": message.priority,
        "created_at": timestamp(message.created_at),
        "expires_at": timestamp(message.expires_at),
        "status": overall_state(statuses),
        "recipients": [recipient_status(s) for s in statuses],
    }


def status_event_item(event: StatusEvent) -> dict[str, Any]:
    """A sent message's final outcome for one recipient, as the webhook posts it, the folder
    writes it and the API lists it: one shape, so a local system may take it from any of them.
    ``seq`` identifies the event (the webhook may post one again: at least once)."""
    return {
        "event": "status",
        "seq": event.seq,
        "message_id": event.message_id,
        "recipient": event.recipient,
        "kind": event.kind,
        "thread_id": event.thread_id,
        "status": event.status,
        "reason": event.reason,
        "detail": event.detail,
        "at": format_timestamp(event.at),
    }


def quarantine_item(q: QuarantineEntry) -> dict[str, Any]:
    """A refused record's metadata; the raw bytes stay in the store (only their size shown)."""
    return {
        "id": q.id,
        "received_at": timestamp(q.received_at),
        "reason": q.reason,
        "detail": q.detail,
        "sender": q.sender,
        "message_id": q.message_id,
        "topic": q.topic,
        "offset": q.offset,
        "size": q.raw_length if q.raw_length is not None else len(q.raw),
        "kept_bytes": len(q.raw),
        "sha256": q.raw_sha256,
        "authenticated": q.authenticated,
    }


def hold_item(hold: LegalHold) -> dict[str, Any]:
    return {
        "hold_id": hold.hold_id,
        "message_id": hold.message_id,
        "thread_id": hold.thread_id,
        "reason": hold.reason,
        "note": hold.note,
        "recorded_by": hold.recorded_by,
        "recorded_at": timestamp(hold.recorded_at),
        "released_at": timestamp(hold.released_at),
        "released_by": hold.released_by,
    }


def peer_item(descriptor: Descriptor) -> dict[str, Any]:
    return {
        "node_id": descriptor.node_id,
        "name": descriptor.display_name,
        "country": descriptor.country,
        "roles": list(descriptor.roles),
        "fingerprint": descriptor.fingerprint,
        "identity_key_id": descriptor.identity_key_id,
        "descriptor_version": descriptor.descriptor_version,
        "encryption_keys": [
            {
                "key_id": k.key_id,
                "valid_from": timestamp(k.valid_from),
                "valid_until": timestamp(k.valid_until),
            }
            for k in descriptor.encryption_keys
        ],
    }


def by_time(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: (item["created_at"] or "", item["id"]))
