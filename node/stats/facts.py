"""What a statistic needs to remember of an exchanged message: its record, direction, thread,
date and a few codes — never a name, a number or a text. Pure.

A node cannot read back what it sealed, and retention purges what it received, so the codes are
taken when a message is stored (sent or received) and kept as a :class:`Fact` after the message
itself is gone (docs/statistics.md). An erased message takes its fact with it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from node.payloads import JUDICIAL_REQUESTS, short_name

# subject types an alert can name, and the payload arrays that hold them
ALERT_SUBJECTS: Mapping[str, str] = {
    "person": "subjects",
    "vehicle": "vehicles",
    "document": "documents",
    "organisation": "organisations",
    "phone": "phone_numbers",
    "online_account": "online_accounts",
    "financial_account": "financial_accounts",
}
MLA_REQUESTS: tuple[str, ...] = ("MlaRequest", *JUDICIAL_REQUESTS)
COUNTED: frozenset[str] = frozenset({
    "Alert", "Referral", "ReferralResponse", "RepatriationProposal", "RepatriationHandover",
    "RepatriationArrivalConfirmed", *MLA_REQUESTS, "MlaResponse", "StatisticsRelease",
})  # fmt: skip


@dataclass(frozen=True)
class Fact:
    """One exchanged message as statistics see it."""

    message_id: str
    direction: str  # sent | received
    schema: str  # the payload record's short name
    thread_id: str
    at: dt.datetime
    codes: Mapping[str, Any] = field(default_factory=dict)


def codes_of(schema_name: str, payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """The codes kept of a payload, or None when statistics do not count this record.

    Works on the JSON form (a request) and the decoded Avro form (a received message) alike:
    only strings and array lengths are read."""
    schema = short_name(schema_name)
    if schema not in COUNTED or schema == "StatisticsRelease":
        return None
    if schema == "Alert":
        if payload.get("action") != "New":
            return None  # an update or cancellation is the same alert again
        return {
            "alert_type": str(payload.get("alert_type")),
            "subjects": {name: len(payload.get(key) or ()) for name, key in ALERT_SUBJECTS.items()},
        }
    if schema in ("ReferralResponse", "MlaResponse"):
        return {"status": str(payload.get("status"))}
    return {}


def fact_of(
    schema_name: str, payload: Mapping[str, Any], *, message_id: str, direction: str,
    thread_id: str, at: dt.datetime,
) -> Fact | None:  # fmt: skip
    """The fact to store beside a sent or received message (None: nothing to count)."""
    codes = codes_of(schema_name, payload)
    if codes is None:
        return None
    return Fact(message_id, direction, short_name(schema_name), thread_id, at, codes)
