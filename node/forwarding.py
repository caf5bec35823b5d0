"""Forwarding a received message to other nodes, under its handling code. Pure.

A recipient may pass a message on (a police liaison officer to the prosecutor, a shelter to a
second shelter) as a ``Forward``: a new message from the forwarder that carries the original
payload unchanged, its handling, and where it came from. What a handling code allows:

* H0 and H1 travel on (H1 stays marked "not for judicial proceedings without permission"
  wherever it goes, since the handling travels with it);
* **H2** ("no onward dissemination without permission") and **H3** (other restrictions, in
  words the node cannot check — so treated as the most restrictive) go only to nodes the
  originator granted in a ``ForwardPermissionDecision`` answering this forwarder's
  ``ForwardPermissionRequest``;
* the payload's own rules apply to the new recipients: a person's recorded consent naming the
  nodes their data may go to refuses any other (:mod:`node.validation`, ``share_with_nodes``).

Refusals happen before anything is sealed. The recipient checks the same again.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from node.codec import SchemaRegistry, format_timestamp

FORWARD_SCHEMA = "xnode.payload.Forward"
REQUEST_SCHEMA = "xnode.payload.ForwardPermissionRequest"
DECISION_SCHEMA = "xnode.payload.ForwardPermissionDecision"
FREE_CODES = ("H0", "H1")  # every other code, known or not, needs the originator's grant


class ForwardRefused(ValueError):
    """A forward this node will not send; ``field`` names the part of the request at fault."""

    def __init__(self, message: str, field: str, status: int = 403) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


@dataclass(frozen=True)
class Original:
    """The received message to forward, as stored here."""

    message_id: str
    sender: str
    kind: str
    thread_id: str
    created_at: dt.datetime
    envelope_sha256: str
    schema_name: str
    payload: Mapping[str, Any]  # decoded (Avro-ready) payload


@dataclass(frozen=True)
class Grant:
    """An originator's decision as received: who decided, on which message, for which nodes."""

    decision_id: str
    sender: str
    message_id: str
    granted: bool
    forward_to: frozenset[str]
    decided_at: dt.datetime


def needs_permission(handling_code: str) -> bool:
    return handling_code not in FREE_CODES


def covering_grant(
    original: Original, targets: Iterable[str], grants: Iterable[Grant]
) -> Grant | None:
    """The newest grant from the originator for this message that covers every target; a
    later refusal withdraws the grants before it."""
    wanted = set(targets)
    latest: Grant | None = None
    for grant in sorted(grants, key=lambda g: g.decided_at):
        if grant.sender != original.sender or grant.message_id != original.message_id:
            continue
        if not grant.granted:
            latest = None
        elif wanted <= grant.forward_to:
            latest = grant
    return latest


def check(original: Original, targets: Sequence[str], grants: Iterable[Grant]) -> Grant | None:
    """Raise :class:`ForwardRefused` unless ``original`` may go to ``targets``; the grant that
    allows it (None when the code needs none)."""
    if not targets:
        raise ForwardRefused("name at least one node to forward to", "to", 422)
    if original.sender in targets:
        raise ForwardRefused(f"{original.sender} sent this message: it has it", "to", 422)
    code = str(original.payload["handling"]["code"])
    if not needs_permission(code):
        return None
    grant = covering_grant(original, targets, grants)
    if grant is None:
        raise ForwardRefused(
            f"handling code {code}: {original.sender} must grant forwarding to "
            f"{', '.join(sorted(targets))} first (POST /v1/forward-permissions)", "to",
        )  # fmt: skip
    return grant


def forward_payload(
    registry: SchemaRegistry, original: Original, grant: Grant | None, note: str | None
) -> dict[str, Any]:
    """The ``Forward`` payload (plain JSON, as a local system would submit it)."""
    writer = registry.schema(original.schema_name)
    inner = registry.encode(original.schema_name, original.payload)
    handling = registry.to_json("xnode.common.Handling", original.payload["handling"])
    return {
        "handling": handling,
        "original": {
            "message_id": original.message_id, "sender": original.sender,
            "kind": original.kind, "thread_id": original.thread_id,
            "created_at": format_timestamp(original.created_at),
            "envelope_sha256": original.envelope_sha256,
        },
        "payload_schema": original.schema_name,
        "payload_fingerprint": base64.b64encode(writer.fingerprint).decode(),
        "payload": base64.b64encode(inner).decode(),
        "permission": None if grant is None else {
            "decision_id": grant.decision_id, "granted_at": format_timestamp(grant.decided_at)},
        "note": note,
    }  # fmt: skip


def inner_payload(registry: SchemaRegistry, forward: Mapping[str, Any]) -> tuple[str, Any]:
    """(schema name, decoded value) of what a ``Forward`` carries; ``KeyError`` when the schema
    or its version is unknown here, the codec's error when the bytes do not decode."""
    name = str(forward["payload_schema"])
    writer = registry.by_fingerprint(bytes(forward["payload_fingerprint"]))
    if writer is None or writer.name != name:
        raise KeyError(f"unknown schema version of {name}")
    return name, registry.decode(name, bytes(forward["payload"]), writer)


def grant_of(decision_id: str, sender: str, payload: Mapping[str, Any]) -> Grant:
    """A received ``ForwardPermissionDecision`` (decoded, Avro-ready) as a :class:`Grant`."""
    return Grant(
        decision_id=decision_id, sender=sender, message_id=str(payload["message_id"]),
        granted=payload["decision"] == "Granted",
        forward_to=frozenset(payload.get("forward_to") or ()), decided_at=payload["decided_at"],
    )  # fmt: skip


def permission_request(
    message_id: str, forward_to: Sequence[str], purpose: str, handling: Mapping[str, Any],
    now: dt.datetime,
) -> dict[str, Any]:  # fmt: skip
    """A ``ForwardPermissionRequest`` (plain JSON); its handling is the original's."""
    return {"handling": dict(handling), "message_id": message_id,
            "forward_to": sorted(set(forward_to)), "purpose": purpose,
            "requested_at": format_timestamp(now)}  # fmt: skip


def decision_payload(
    request_id: str, request: Mapping[str, Any], granted: bool, forward_to: Sequence[str] | None,
    conditions: str | None, decided_by: str, now: dt.datetime,
) -> dict[str, Any]:  # fmt: skip
    """The originator's ``ForwardPermissionDecision`` (plain JSON) answering ``request`` (its
    JSON payload); a grant covers the requested nodes unless ``forward_to`` narrows them."""
    asked = list(request["forward_to"])
    scope = asked if forward_to is None else [n for n in forward_to if n in asked]
    return {"handling": dict(request["handling"]), "request_id": request_id,
            "message_id": request["message_id"],
            "decision": "Granted" if granted else "Refused",
            "forward_to": sorted(scope) if granted else [], "conditions": conditions,
            "decided_by": decided_by, "decided_at": format_timestamp(now)}  # fmt: skip
