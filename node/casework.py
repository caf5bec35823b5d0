"""Where a node's cases stand: the overdue requests, read from the procedure steps it kept
(docs/procedures.md). Synchronous, over the store: the running node calls it on the store's
thread, ``xnode overdue`` directly."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from node import procedures
from node.audit import AuditEvent
from node.codec import SchemaRegistry, format_timestamp
from node.store.base import OutboundMessage, ProcedureStep
from node.store.sqlite import SqliteStore
from node.submit import Request


def overdue(
    store: SqliteStore, defaults: Mapping[str, dt.timedelta], node_id: str, now: dt.datetime
) -> list[dict[str, Any]]:
    """Requests (MLA, referral, return proposal) past their deadline without an answer, sent
    (``direction: sent``: this node waits) or received (this node owes the answer), oldest
    deadline first."""
    requests = [procedures.full_request(p) for p in procedures.PROCEDURES.values()]
    found = []
    for thread_id in store.procedure_threads(requests):
        steps = store.procedure_steps(thread_id)
        state = procedures.state_of(steps, defaults)
        if state is None or state.deadline is None or not procedures.is_overdue(state, now):
            continue
        request = next(s for s in steps if s.schema_name in requests)
        if request.direction == "sent":
            # the request's deliveries may be purged before its deadline: then nobody is named
            owing = sorted(s.recipient for s in store.message_status(request.message_id))
        else:
            owing = [node_id]
        found.append({
            "thread_id": thread_id, "procedure": state.procedure,
            "request_id": request.message_id, "direction": request.direction,
            "requested_by": request.party, "owed_by": owing,
            "deadline": format_timestamp(state.deadline),
            "days_overdue": (now - state.deadline).days, "state": procedures.label(state),
        })  # fmt: skip
    return sorted(found, key=lambda item: str(item["deadline"]))


def sent_step(
    store: SqliteStore, registry: SchemaRegistry, request: Request, message: OutboundMessage,
    node_id: str, defaults: Mapping[str, dt.timedelta],
) -> tuple[ProcedureStep | None, list[AuditEvent]]:  # fmt: skip
    """The step a sealed message takes in its thread's procedure (docs/procedures.md), to be
    stored with it, and the audit events of an override. A step out of order raises
    :class:`procedures.OutOfOrder` naming what is missing, unless the request gives
    ``procedure_override``."""
    if not procedures.tracked(message.schema_name):
        return None, []
    steps = store.procedure_steps(message.thread_id)
    if not steps and procedures.procedure_of(message.schema_name) is None:
        return None, []  # a case update on a thread without a procedure: nothing to check
    payload = registry.from_json(message.schema_name, dict(request.payload), "payload")
    before, after = procedures.next_state(
        steps, message.schema_name, payload, sent_at=message.created_at,
        override_reason=request.procedure_override, defaults=defaults,
    )  # fmt: skip
    if before is None or after is None:  # no procedure on this thread (an alert's case update)
        return None, []
    events = [
        AuditEvent("procedure-override", message.created_at, message_id=message.message_id,
                   detail={"step": o.step, "reason": o.reason, "overridden": o.overridden})
        for o in after.overrides[len(before.overrides):] if not o.in_payload
    ]  # fmt: skip
    step = procedures.kept_step(
        message.thread_id, message.message_id, node_id, "sent", message.schema_name, payload,
        message.created_at, request.procedure_override if events else None,
    )  # fmt: skip
    return step, events
