"""A local system's request to send, from JSON, and every refusal as (status, error, field).

Shared by the HTTP API and the folder adapter so both accept exactly the same documents and
explain a refusal the same way: the API as an HTTP status with ``{"error", "field"}``, the
folder as an ``.error.txt`` beside the file.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, NoReturn

from node import envelope, tokens
from node import submit as core
from node.codec import CodecError
from node.policy import PolicyRefused
from node.validation import PayloadInvalid

if TYPE_CHECKING:
    from node.service import Node

REQUEST_FIELDS = frozenset(
    {"kind", "to", "payload", "schema", "thread_id", "in_reply_to", "priority", "handling",
     "ttl_seconds"}
)  # fmt: skip


class Refusal(Exception):
    """Why a request is not sent: an HTTP-style ``status``, a message and the field at fault."""

    def __init__(self, status: int, error: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {error}" if field else error)
        self.status = status
        self.error = error
        self.field = field


def _refuse(error: str, field: str | None) -> NoReturn:
    raise Refusal(422, error, field)


def from_json(body: Any, idempotency_key: str | None = None) -> core.Request:
    """Check the envelope-level fields; the payload itself is the codec's business."""
    if not isinstance(body, dict):
        _refuse("the request must be a JSON object", None)
    unknown = sorted(set(body) - REQUEST_FIELDS)
    if unknown:
        _refuse(f"unknown field {unknown[0]!r}", unknown[0])
    for name in ("kind", "to", "payload"):
        if name not in body:
            _refuse(f"missing field {name!r}", name)
    kind = body["kind"]
    if not isinstance(kind, str) or kind not in tokens.SENDABLE_KINDS:
        _refuse(f"kind must be one of {', '.join(tokens.SENDABLE_KINDS)}", "kind")
    to = body["to"]
    if not (to == "neighbours" or (isinstance(to, list) and all(isinstance(t, str) for t in to))):
        _refuse('to must be a list of node ids or "neighbours"', "to")
    if to == []:
        _refuse("at least one recipient is required", "to")
    payload = body["payload"]
    if not isinstance(payload, dict):
        _refuse("payload must be an object", "payload")
    if "handling" in body:
        handling = body["handling"]
        if "handling" in payload and payload["handling"] != handling:
            _refuse("handling is given twice, with different values", "handling")
        payload = {**payload, "handling": handling}
    optional: dict[str, Any] = {}
    for name in ("schema", "thread_id", "in_reply_to", "priority"):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            _refuse(f"{name} must be a string", name)
        if value is not None:
            optional[name] = value
    ttl = body.get("ttl_seconds")
    if ttl is not None:
        if isinstance(ttl, float) and ttl.is_integer():
            ttl = int(ttl)  # JSON has one number type: 274.0 is the integer 274
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 60 <= ttl <= 366 * 86400:
            _refuse("ttl_seconds must be an integer from 60 to 31622400", "ttl_seconds")
        optional["ttl"] = dt.timedelta(seconds=ttl)
    return core.Request(
        kind=kind, to=to, payload=payload, idempotency_key=idempotency_key, **optional
    )


async def send(node: Node, request: core.Request) -> str:
    """Submit through the node; map each refusal of the submission core to a :class:`Refusal`."""
    try:
        return await node.submit(request)
    except core.UnknownRecipient as exc:  # no such node, or no neighbours configured
        raise Refusal(404, str(exc), "to") from exc
    except PolicyRefused as exc:
        raise Refusal(403, str(exc), "to") from exc
    except envelope.EnvelopeTooLarge as exc:
        raise Refusal(413, str(exc), "payload") from exc
    except (CodecError, PayloadInvalid) as exc:
        raise Refusal(422, exc.problem, exc.path) from exc
    except envelope.SealError as exc:
        raise Refusal(422, str(exc), exc.field) from exc
