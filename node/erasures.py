"""Erasure at work: sending this node's requests and carrying out those it receives.

The asyncio shell around :mod:`node.erasure` (which decides). Requests and answers are
ordinary signed, encrypted messages (``ErasureRequest``/``ErasureResult``) with the outbox's
retries and receipts, so an erasure asked while a recipient is down reaches it when it is back.

Receiving is crash-safe without a queue of its own: the received requests are read from the
inbox behind a cursor (adapter ``erasure``) advanced after each is carried out; doing one again
after a crash erases nothing new and answers under the same idempotency key, so the requester
gets one answer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

import structlog

from node import erasure, submit
from node.audit import AuditEvent
from node.envelope import EnvelopeTooLarge
from node.payloads import PROCEDURAL, short_name
from node.policy import PolicyRefused
from node.store.base import InboxMessage, StoreUnavailable
from node.store.sqlite import SqliteStore

log = structlog.get_logger("xnode.erasure")
T = TypeVar("T")
CURSOR = "erasure"
ANSWERS_CURSOR = "erasure-answers"

RunInStore = Callable[..., Awaitable[Any]]
ErasedHandler = Callable[[InboxMessage], Awaitable[None]]


class ErasureRefused(ValueError):
    """A request this node will not send; ``field`` names the part of the request at fault."""

    def __init__(self, message: str, field: str, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


class ErasureDesk:
    """One node's erasure work. ``run`` runs a store call on the store's thread, ``send``
    submits a message the way the local API does, ``payload_of`` opens a received message
    (its JSON payload, or None if it no longer opens)."""

    def __init__(
        self,
        node_id: str,
        store: SqliteStore,
        run: RunInStore,
        send: Callable[[submit.Request], Awaitable[str]],
        payload_of: Callable[[InboxMessage], Mapping[str, Any] | None],
        clock: Callable[[], dt.datetime],
        revoked: Callable[[], Collection[str]] = tuple,
    ) -> None:
        self.node_id = node_id
        self._revoked = revoked
        self._sent_handlers: list[Callable[[Sequence[str]], Awaitable[None]]] = []
        self.store = store
        self._run = run
        self._send = send
        self._payload_of = payload_of
        self._clock = clock
        self._handlers: list[ErasedHandler] = []

    def on_erased(self, handler: ErasedHandler) -> None:
        """Call ``handler`` with each received message once erased here (adapters remove the
        copies they made, e.g. the folder adapter's inbox file)."""
        self._handlers.append(handler)

    def on_sent_erased(self, handler: Callable[[Sequence[str]], Awaitable[None]]) -> None:
        """Call ``handler`` with the ids of sent messages whose copies this node erased
        (the folder adapter removes its ``sent/<id>.json``)."""
        self._sent_handlers.append(handler)

    # -- asking -----------------------------------------------------------------------------

    async def request(
        self,
        *,
        message_ids: Sequence[str] = (),
        thread_id: str | None = None,
        reason: str,
        note: str | None = None,
        idempotency_key: str | None = None,
        may_send: Callable[[str], bool] = lambda kind: True,
        relayed_from: tuple[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Ask every recipient of these sent messages (or of every message this node sent in
        ``thread_id``) to erase them, and erase this node's own copies; one request per thread
        and kind, so each travels on the partition of the messages it names, after them.
        ``may_send`` says whether the caller may send messages of a kind (its API scopes)."""
        if not message_ids and thread_id is None:
            raise ErasureRefused("name the messages to erase, or a thread", "message_ids")
        groups = await self._run(self._group, list(message_ids), thread_id)
        for _, kind in groups:
            if not may_send(kind):
                raise ErasureRefused(f"no scope to send {kind} messages", "scope", 403)
        # own copies first: once erased, nothing of them can be published after the request
        every = [m for ids, _ in groups.values() for m in ids]
        detail = {"reason": reason, **({"relayed_from": list(relayed_from)} if relayed_from
                                       else {})}  # fmt: skip
        await self._run(self.store.erase_sent, every, self._clock(), detail)
        for handler in self._sent_handlers:
            await self._quietly(handler, every)
        requests = []
        revoked = set(self._revoked())
        for (thread, kind), (ids, recipients) in sorted(groups.items()):
            to = sorted(recipients - revoked)  # a revoked node gets nothing more, not even this
            key = None if idempotency_key is None else f"{idempotency_key}:{thread}:{kind}"
            existing = key and await self._run(self.store.find_by_idempotency_key, key)
            if existing:  # asked before under this key (a retry): the same request
                request_id = existing
            elif not to:
                continue
            else:
                payload = erasure.request_payload(ids, thread_id, reason, note, self._clock(),
                                                  relayed_from=relayed_from)  # fmt: skip
                request_id = await self._send(submit.Request(
                    kind=kind, to=to, payload=payload, schema="ErasureRequest",
                    thread_id=thread, idempotency_key=key, procedural=True,
                ))  # fmt: skip
            if relayed_from is not None:
                await self._run(self.store.record_relay, request_id, *relayed_from)
            requests.append({"request_id": request_id, "thread_id": thread, "kind": kind,
                             "message_ids": ids, "recipients": to})  # fmt: skip
        await self._checkpoint()
        log.info("erasure_requested", node=self.node_id, messages=len(every),
                 requests=[r["request_id"] for r in requests])  # fmt: skip
        return requests

    async def _checkpoint(self) -> None:
        """Truncate the write-ahead log; a reader (a backup, the CLI) may hold it for a while:
        try a few times, then leave it to the next checkpoint and say so."""
        for attempt in range(5):
            if await self._run(self.store.checkpoint):
                return
            await asyncio.sleep(0.2 * (attempt + 1))
        log.warning("wal_checkpoint_incomplete", node=self.node_id)

    async def _quietly(self, handler: Callable[[Any], Awaitable[None]], arg: Any) -> None:
        try:
            await handler(arg)
        except Exception:  # an adapter's failure must not stop the erasure
            log.exception("erasure_handler_failed", node=self.node_id)

    def _group(
        self, message_ids: list[str], thread_id: str | None
    ) -> dict[tuple[str, str], tuple[list[str], set[str]]]:
        """(thread, kind) -> (sent message ids, their recipients). Runs on the store thread."""
        sent = []
        if thread_id is not None:
            sent = [m for m in self.store.thread(thread_id)[0]
                    if short_name(m.schema_name) not in PROCEDURAL]  # fmt: skip
            if not sent and not message_ids:
                raise ErasureRefused(
                    f"this node sent nothing in thread {thread_id}", "thread_id", 404
                )
        for i, message_id in enumerate(message_ids):
            message = self.store.outbox_message(message_id)
            if message is None or not message.expects_receipt:
                raise ErasureRefused(
                    f"{message_id} is not a message this node sent: only its sender may ask"
                    " for its erasure", f"message_ids[{i}]", 404,
                )  # fmt: skip
            sent.append(message)
        groups: dict[tuple[str, str], tuple[list[str], set[str]]] = {}
        for message in sent:
            ids, recipients = groups.setdefault((message.thread_id, message.kind), ([], set()))
            if message.message_id not in ids:
                ids.append(message.message_id)
            recipients.update(s.recipient for s in self.store.message_status(message.message_id))
        return groups

    async def status(self, request_id: str) -> dict[str, Any] | None:
        """A request this node sent: per recipient, delivered or not and what it answered."""
        message = await self._run(self.store.outbox_message, request_id)
        if message is None or message.schema_name != erasure.REQUEST_SCHEMA:
            return None
        statuses = await self._run(self.store.message_status, request_id)
        received = (await self._run(self.store.thread, message.thread_id))[1]
        results: dict[str, Mapping[str, Any]] = {}
        recipients = {s.recipient: s.state for s in statuses}
        for m in received:
            if m.schema_name != erasure.RESULT_SCHEMA or m.in_reply_to != request_id:
                continue
            payload = self._payload_of(m)
            if payload is None or payload.get("request_id") != request_id:
                continue
            reported = payload.get("reported_for")
            if reported is None:
                results[m.sender] = payload
            elif m.sender in recipients and reported not in recipients:  # told by a forwarder
                results[reported] = payload
                recipients[reported] = f"via {m.sender}"
        return {"request_id": request_id, "thread_id": message.thread_id,
                "recipients": erasure.status_of(recipients, results)}  # fmt: skip

    # -- answering --------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Carry out the erasure requests received since the cursor, and report the answers
        to requests passed on; how many messages were handled."""
        return await self._requests_once() + await self._answers_once()

    async def _answers_once(self) -> int:
        """Answers to erasure requests this node passed on for another node's request go back
        to that node as a report (its own message ids, ``reported_for`` who answered)."""
        cursor = await self._run(self.store.adapter_cursor, ANSWERS_CURSOR)
        pending = await self._run(self.store.inbox_of_schema, erasure.RESULT_SCHEMA, cursor, 20)
        for answer in pending:
            relay = await self._run(self.store.relay_of, answer.in_reply_to or "")
            payload = self._payload_of(answer) if relay is not None else None
            if relay is not None and payload is not None:
                await self._report(answer, payload, *relay)
            await self._run(self.store.set_adapter_cursor, ANSWERS_CURSOR, answer.seq)
        return len(pending)

    async def _report(self, answer: InboxMessage, payload: Mapping[str, Any], origin: str,
                      origin_request: str) -> None:  # fmt: skip
        forwards = [str(i["message_id"]) for i in payload["results"]]
        originals = await self._run(self.store.originals_of, forwards)
        report = erasure.report_payload(origin_request, payload, originals, answer.sender)
        try:
            await self._send(submit.Request(
                kind=answer.kind, to=[origin], payload=report, schema="ErasureResult",
                thread_id=answer.thread_id, in_reply_to=origin_request, procedural=True,
                idempotency_key=erasure.report_idempotency_key(answer.sender, answer.message_id),
            ))  # fmt: skip
        except (PolicyRefused, submit.UnknownRecipient, EnvelopeTooLarge) as exc:
            log.error("erasure_report_unsent", node=self.node_id, peer=origin,
                      message_id=answer.message_id, error=str(exc))  # fmt: skip

    async def _requests_once(self) -> int:
        cursor = await self._run(self.store.adapter_cursor, CURSOR)
        pending = await self._run(self.store.inbox_of_schema, erasure.REQUEST_SCHEMA, cursor, 20)
        for message in pending:
            try:
                await self._carry_out(message)
            except StoreUnavailable:
                raise  # the disk, not the request: tried again once the store writes
            except Exception as exc:  # this request cannot be carried out: not the next ones
                log.exception("erasure_failed", node=self.node_id, peer=message.sender,
                              message_id=message.message_id)  # fmt: skip
                event = AuditEvent("erasure-failed", self._clock(),
                                   message_id=message.message_id, peer=message.sender,
                                   detail={"error": type(exc).__name__})  # fmt: skip
                await self._run(self.store.append_audit, [event])
            await self._run(self.store.set_adapter_cursor, CURSOR, message.seq)
        return len(pending)

    async def _carry_out(self, request: InboxMessage) -> None:
        key = erasure.result_idempotency_key(request.sender, request.message_id)
        if await self._run(self.store.find_by_idempotency_key, key):
            return  # answered before a crash kept the cursor back: erased then, answered once
        payload = self._payload_of(request)
        if payload is None:  # does not open any more (sender removed, key destroyed)
            log.warning("erasure_request_unreadable", node=self.node_id,
                        message_id=request.message_id, peer=request.sender)  # fmt: skip
            return
        now = self._clock()
        decisions = await self._run(self._decide, request.sender, payload)
        detail = {"request_id": request.message_id, "reason": payload["reason"]}
        erased = await self._run(
            self.store.erase_received, request.sender, erasure.to_erase(decisions), now, detail
        )
        events = [
            AuditEvent(f"erasure-{d.outcome.lower()}", now, message_id=d.message_id,
                       peer=request.sender, detail={**detail, "held_by": d.hold.hold_id}
                       if d.hold else {**detail, "senders": list(d.others)})
            for d in decisions if d.outcome in (erasure.HELD, erasure.REFUSED)
        ]  # fmt: skip
        if events:
            await self._run(self.store.append_audit, events)
        passed_on = await self._pass_on(request, payload, [m.message_id for m in erased])
        for message in erased:
            for handler in self._handlers:
                await self._quietly(handler, message)
        await self._checkpoint()
        answer = erasure.result_payload(request.message_id, payload, decisions, now, passed_on)
        try:
            await self._send(submit.Request(
                kind=request.kind, to=[request.sender], payload=answer, schema="ErasureResult",
                thread_id=request.thread_id, in_reply_to=request.message_id,
                idempotency_key=key, procedural=True,
            ))  # fmt: skip
        except (PolicyRefused, submit.UnknownRecipient, EnvelopeTooLarge) as exc:
            # erased all the same; the requester sees no answer (pending), the operator this
            log.error("erasure_result_unsent", node=self.node_id, peer=request.sender,
                      message_id=request.message_id, error=str(exc))  # fmt: skip
        counts = {o: sum(d.outcome == o for d in decisions) for o in
                  (erasure.ERASED, erasure.HELD, erasure.NOT_FOUND, erasure.REFUSED)}  # fmt: skip
        log.info("erasure_carried_out", node=self.node_id, peer=request.sender,
                 request_id=request.message_id,
                 **{k.lower(): v for k, v in counts.items()})  # fmt: skip

    async def _pass_on(
        self, request: InboxMessage, payload: Mapping[str, Any], erased: Sequence[str]
    ) -> list[str]:
        """Ask the nodes this node forwarded the erased messages to for their erasure in turn
        (and erase its own copies of the forwards); the nodes asked."""
        forwards = await self._run(self.store.forwards_of, request.sender, list(erased))
        still_sent = await self._run(self._still_sent, [f for f, _ in forwards])
        forwards = [(f, r) for f, r in forwards if f in still_sent]  # purged ones: nothing kept
        if not forwards:
            return []
        ids = list(dict.fromkeys(f for f, _ in forwards))
        origin = (request.sender, request.message_id)
        asked = await self.request(
            message_ids=ids, reason=str(payload["reason"]), note=payload.get("note"),
            idempotency_key=f"relay:{origin[0]}:{origin[1]}", relayed_from=origin,
        )  # fmt: skip
        return sorted({r for a in asked for r in a["recipients"]})

    def _still_sent(self, forward_ids: Sequence[str]) -> set[str]:
        return {f for f in forward_ids if self.store.outbox_message(f) is not None}

    def _decide(self, requester: str, payload: Mapping[str, Any]) -> list[erasure.Decision]:
        """Runs on the store thread: what the request names and what this node holds."""
        thread_id = payload.get("thread_id")
        in_thread = self.store.thread(str(thread_id))[1] if thread_id else []
        steps = [m for m in in_thread if short_name(m.schema_name) not in PROCEDURAL]
        ids = erasure.named_messages(requester, payload, [_held(m) for m in steps])
        held = {i: [_held(m) for m in self.store.inbox_messages(i)] for i in ids}
        return erasure.decide(requester, ids, held, self.store.holds())


def _held(message: InboxMessage) -> erasure.Held:
    return erasure.Held(message.message_id, message.sender, message.thread_id)
