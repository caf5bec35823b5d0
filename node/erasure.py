"""Erasure at the request of the data's originator (docs/data-protection.md). Pure.

A sender that must withdraw what it shared (the person withdrew consent, the data was wrong,
the retention agreed has ended) sends an ``ErasureRequest`` naming its earlier messages, or a
whole thread, to everyone it sent them to. Each recipient decides here, message by message:

* **Erased** — a message this node received *from the requester*; erased even when it was
  erased before (asking twice gets the same answer);
* **Held** — the same, but a supervisor recorded a legal hold on the message or its thread
  (evidence in judicial proceedings, ...): kept, and the answer says why;
* **Refused** — this node holds a message with that id, but from another sender: nobody
  erases data it did not send (audited, so an operator sees who tried);
* **NotFound** — nothing with that id here (never arrived, or already purged).

The recipient then answers with an ``ErasureResult`` listing every decision. The requester
reads the per-recipient status from those answers (:func:`status_of`): nothing about erasure
is kept anywhere else, so the view cannot disagree with what the recipients signed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from node.codec import format_timestamp
from node.store.base import LegalHold

ERASED, HELD, NOT_FOUND, REFUSED = "Erased", "Held", "NotFound", "Refused"
REQUEST_SCHEMA = "xnode.payload.ErasureRequest"
RESULT_SCHEMA = "xnode.payload.ErasureResult"
ERASURE_LEGAL_BASIS = "Right to erasure of the data subject, exercised through the originator"


@dataclass(frozen=True)
class Held:
    """A message this node holds: who sent it and in which thread (what a decision needs)."""

    message_id: str
    sender: str
    thread_id: str


@dataclass(frozen=True)
class Decision:
    message_id: str
    outcome: str  # ERASED | HELD | NOT_FOUND | REFUSED
    hold: LegalHold | None = None
    others: tuple[str, ...] = ()  # for REFUSED: the senders whose message has this id

    def result_item(self) -> dict[str, Any]:
        """The ``ErasureItem`` of the answer (plain JSON)."""
        return {
            "message_id": self.message_id,
            "outcome": self.outcome,
            "hold_reason": self.hold.reason if self.hold else None,
            "note": self.hold.note if self.hold else None,
        }


def named_messages(
    requester: str, request: Mapping[str, Any], in_thread: Iterable[Held]
) -> list[str]:
    """The message ids a request concerns, in order, once each: those it names, then (with
    ``thread_id``) every message the requester sent in that thread here."""
    ids = dict.fromkeys(str(m) for m in request.get("message_ids") or ())
    if request.get("thread_id") is not None:
        thread = str(request["thread_id"])
        ids.update(dict.fromkeys(
            m.message_id for m in in_thread if m.sender == requester and m.thread_id == thread
        ))  # fmt: skip
    return list(ids)


def decide(
    requester: str,
    message_ids: Sequence[str],
    held: Mapping[str, Sequence[Held]],
    holds: Sequence[LegalHold],
) -> list[Decision]:
    """One decision per named id. ``held`` maps a message id to every copy this node holds
    under it (two senders may have used one id); ``holds`` are the legal holds in force."""
    decisions = []
    for message_id in message_ids:
        copies = held.get(message_id, ())
        own = [m for m in copies if m.sender == requester]
        if not copies:
            decisions.append(Decision(message_id, NOT_FOUND))
        elif not own:
            others = tuple(sorted({m.sender for m in copies}))
            decisions.append(Decision(message_id, REFUSED, others=others))
        else:
            hold = next((h for h in holds if h.covers(own[0].message_id, own[0].thread_id)), None)
            decisions.append(Decision(message_id, HELD if hold else ERASED, hold))
    return decisions


def to_erase(decisions: Iterable[Decision]) -> list[str]:
    return [d.message_id for d in decisions if d.outcome == ERASED]


def request_payload(
    message_ids: Sequence[str],
    thread_id: str | None,
    reason: str,
    note: str | None,
    now: dt.datetime,
    *,
    legal_basis: str = ERASURE_LEGAL_BASIS,
    language: str = "en",
    relayed_from: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """An ``ErasureRequest`` payload (plain JSON). The request itself names no person, so it
    travels as H0 and is kept for ten years: it is the record that erasure was asked for."""
    return {
        "handling": {
            "code": "H0",
            "legal_basis": legal_basis,
            "language": language,
            "retention_days": 3650,
        },
        "reason": reason,
        "note": note,
        "message_ids": list(message_ids),
        "thread_id": thread_id,
        "requested_at": format_timestamp(now),
        "relayed_from": None
        if relayed_from is None
        else {"node_id": relayed_from[0], "request_id": relayed_from[1]},
    }


def result_payload(
    request_id: str,
    request: Mapping[str, Any],
    decisions: Sequence[Decision],
    now: dt.datetime,
    passed_on_to: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``ErasureResult`` answering ``request`` (its decoded payload)."""
    handling = request["handling"]
    return {
        "handling": {
            "code": "H0",
            "legal_basis": handling["legal_basis"],
            "language": handling["language"],
            "retention_days": 3650,
        },
        "request_id": request_id,
        "results": [d.result_item() for d in decisions],
        "passed_on_to": sorted(set(passed_on_to)),
        "completed_at": format_timestamp(now),
    }


def report_payload(
    origin_request_id: str,
    answer: Mapping[str, Any],
    originals: Mapping[str, str],
    reported_for: str,
) -> dict[str, Any]:
    """What a node that passed an erasure request on tells the node that asked first, from the
    ``answer`` (JSON) it got from ``reported_for``: the same outcomes, each about the asker's
    own message (``originals`` maps each forward to the message it carried)."""
    results = [
        {**item, "message_id": originals[item["message_id"]]}
        for item in answer["results"] if item["message_id"] in originals
    ]  # fmt: skip
    return {**answer, "request_id": origin_request_id, "results": results,
            "reported_for": reported_for}  # fmt: skip


def report_idempotency_key(reporter: str, answer_id: str) -> str:
    return f"erasure-report:{reporter}:{answer_id}"


def result_idempotency_key(requester: str, request_id: str) -> str:
    """One answer per request however often it is processed (a crash, a copy)."""
    return f"erasure-result:{requester}:{request_id}"


def status_of(
    recipients: Mapping[str, str], results: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """What the requester shows per recipient: ``recipients`` maps each to the delivery state
    of the request (queued, sent, delivered, rejected, expired) — or ``via <node>`` for a node
    the data was forwarded to, whose answer that node reported — and ``results`` the
    ``ErasureResult`` payload (JSON) each answered with, if any. ``status`` is one word:

    * ``erased`` — every named message erased or not there (nothing of it is left);
    * ``held`` — at least one message kept under a legal hold;
    * ``refused`` — the recipient refused for at least one message (and held none);
    * ``pending`` — no answer yet; ``undelivered`` — the request itself could not be delivered.
    """
    rows: list[dict[str, Any]] = []
    for recipient, state in sorted(recipients.items()):
        result = results.get(recipient)
        if result is None:
            word = "undelivered" if state in ("rejected", "expired") else "pending"
            rows.append({"node_id": recipient, "delivery": state, "status": word, "results": []})
            continue
        outcomes = {item["outcome"] for item in result["results"]}
        word = "held" if HELD in outcomes else "refused" if REFUSED in outcomes else "erased"
        rows.append({"node_id": recipient, "delivery": state, "status": word,
                     "results": list(result["results"]),
                     "passed_on_to": list(result.get("passed_on_to") or []),
                     "completed_at": result.get("completed_at")})  # fmt: skip
    return rows
