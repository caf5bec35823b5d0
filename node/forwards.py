"""Forwarding at work: asking an originator's permission, deciding on such a request, and
forwarding a received message. The asyncio shell around :mod:`node.forwarding` (which decides);
every step is an ordinary signed, encrypted message on the original's thread and topic.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog

from node import forwarding, submit
from node.audit import AuditEvent
from node.codec import SchemaRegistry
from node.forwarding import ForwardRefused
from node.store.base import InboxMessage
from node.store.sqlite import SqliteStore

log = structlog.get_logger("xnode.forwarding")
RunInStore = Callable[..., Awaitable[Any]]
MaySend = Callable[[str], bool]


class ForwardDesk:
    """One node's forwarding. ``run`` runs a store call on the store's thread, ``send`` submits
    a message as the local API does, ``payload_of`` opens a received message (JSON payload)."""

    def __init__(
        self,
        registry: SchemaRegistry,
        store: SqliteStore,
        run: RunInStore,
        send: Callable[[submit.Request], Awaitable[str]],
        payload_of: Callable[[InboxMessage], Mapping[str, Any] | None],
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.registry = registry
        self.store = store
        self._run = run
        self._send = send
        self._payload_of = payload_of
        self._clock = clock

    async def _received(
        self, message_id: str, field: str
    ) -> tuple[InboxMessage, Mapping[str, Any]]:
        """The one received message under this id, opened."""
        found = await self._run(self.store.inbox_messages, message_id)
        if not found:
            raise ForwardRefused(f"no message {message_id} received here", field, 404)
        if len(found) > 1:
            raise ForwardRefused(f"{len(found)} senders used message id {message_id}; this node"
                                 " cannot tell which is meant", field, 409)  # fmt: skip
        message = found[0]
        if message.schema_name == forwarding.FORWARD_SCHEMA:
            raise ForwardRefused(
                f"{message_id} is itself a forward: what it carries belongs to its originator,"
                " whose recipients alone may pass it on", field, 422,
            )  # fmt: skip
        payload = None if message.erased else self._payload_of(message)
        if payload is None:
            raise ForwardRefused(f"message {message_id} was erased or no longer opens", field, 410)
        return message, payload

    def _allowed(self, may_send: MaySend, kind: str) -> None:
        if not may_send(kind):
            raise ForwardRefused(f"no scope to send {kind} messages", "scope")

    async def ask(self, message_id: str, forward_to: Sequence[str], purpose: str,
                  may_send: MaySend = lambda kind: True) -> str:  # fmt: skip
        """Ask the originator of a received message for permission to forward it."""
        message, payload = await self._received(message_id, "message_id")
        self._allowed(may_send, message.kind)
        request = forwarding.permission_request(
            message_id, forward_to, purpose, payload["handling"], self._clock()
        )
        return await self._send(submit.Request(procedural=True,
            kind=message.kind, to=[message.sender], payload=request,
            schema="ForwardPermissionRequest", thread_id=message.thread_id,
            in_reply_to=message_id,
        ))  # fmt: skip

    async def decide(self, request_id: str, *, granted: bool, forward_to: Sequence[str] | None,
                     conditions: str | None, decided_by: str,
                     may_send: MaySend = lambda kind: True) -> str:  # fmt: skip
        """The originator answers a permission request it received, about a message it sent to
        the requester."""
        request, payload = await self._received(request_id, "request_id")
        if request.schema_name != forwarding.REQUEST_SCHEMA:
            raise ForwardRefused(f"{request_id} is not a forwarding permission request",
                                 "request_id", 404)  # fmt: skip
        self._allowed(may_send, request.kind)
        original = str(payload["message_id"])
        statuses = await self._run(self.store.message_status, original)
        if not statuses:
            raise ForwardRefused(f"{original} is not a message this node sent", "request_id", 404)
        if request.sender not in {s.recipient for s in statuses}:
            raise ForwardRefused(f"{request.sender} never received {original} from this node",
                                 "request_id")  # fmt: skip
        now = self._clock()
        answer = forwarding.decision_payload(
            request_id, payload, granted, forward_to, conditions, decided_by, now
        )
        decision_id = await self._send(submit.Request(procedural=True,
            kind=request.kind, to=[request.sender], payload=answer,
            schema="ForwardPermissionDecision", thread_id=request.thread_id,
            in_reply_to=request_id,
        ))  # fmt: skip
        event = AuditEvent("forward-decided", now, message_id=original, peer=request.sender,
                           detail={"decision": answer["decision"], "request_id": request_id,
                                   "decision_id": decision_id, "by": decided_by,
                                   "forward_to": answer["forward_to"]})  # fmt: skip
        await self._run(self.store.append_audit, [event])
        return decision_id

    async def forward(self, message_id: str, to: Sequence[str], note: str | None,
                      may_send: MaySend = lambda kind: True) -> str:  # fmt: skip
        """Forward a received message to ``to`` if its handling allows it; refused (and
        audited) before anything is sealed otherwise."""
        message, payload = await self._received(message_id, "message_id")
        self._allowed(may_send, message.kind)
        original = forwarding.Original(
            message_id=message.message_id, sender=message.sender, kind=message.kind,
            thread_id=message.thread_id, created_at=message.created_at,
            envelope_sha256=message.envelope_sha256, schema_name=message.schema_name,
            payload=self.registry.from_json(message.schema_name, dict(payload)),
        )  # fmt: skip
        grants = await self._grants(message)
        try:
            grant = forwarding.check(original, list(to), grants)
        except ForwardRefused as exc:
            event = AuditEvent("forward-refused", self._clock(), message_id=message_id,
                               peer=message.sender,
                               detail={"to": sorted(to), "why": str(exc)})  # fmt: skip
            await self._run(self.store.append_audit, [event])
            log.warning("forward_refused", message_id=message_id, to=sorted(to), error=str(exc))
            raise
        body = forwarding.forward_payload(self.registry, original, grant, note)
        forward_id = await self._send(submit.Request(procedural=True,
            kind=message.kind, to=sorted(set(to)), payload=body, schema="Forward",
            thread_id=message.thread_id,
        ))  # fmt: skip
        event = AuditEvent("forwarded", self._clock(), message_id=message_id, peer=message.sender,
                           detail={"forward_id": forward_id, "to": sorted(set(to)),
                                   "grant": grant.decision_id if grant else None})  # fmt: skip
        await self._run(self.store.record_forward, forward_id, message.sender, message_id,
                        sorted(set(to)), event)  # fmt: skip
        return forward_id

    async def _grants(self, message: InboxMessage) -> list[forwarding.Grant]:
        """The originator's decisions received in the message's thread."""
        received = (await self._run(self.store.thread, message.thread_id))[1]
        grants = []
        for m in received:
            if m.schema_name != forwarding.DECISION_SCHEMA or m.sender != message.sender:
                continue
            payload = self._payload_of(m)
            if payload is not None:
                value = self.registry.from_json(forwarding.DECISION_SCHEMA, dict(payload))
                grants.append(forwarding.grant_of(m.message_id, m.sender, value))
        return grants
