"""Where a node's cases stand: the overdue requests, read from the procedure steps it kept
(docs/procedures.md). Synchronous, over the store: the running node calls it on the store's
thread, ``xnode overdue`` directly."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from node import procedures
from node.codec import format_timestamp
from node.store.sqlite import SqliteStore


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
