"""A local system's request to send, from JSON, and every refusal as (status, error, field).

Shared by the HTTP API and the folder adapter so both accept exactly the same documents and
explain a refusal the same way: the API as an HTTP status with ``{"error", "field"}``, the
folder as an ``.error.txt`` beside the file.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from node import codes, envelope, tokens
from node import submit as core
from node.codec import CodecError
from node.erasures import ErasureRefused
from node.forwarding import ForwardRefused
from node.policy import PolicyRefused
from node.procedures import OutOfOrder
from node.stats.periods import Period
from node.store.base import LegalHold
from node.validation import PayloadInvalid

if TYPE_CHECKING:
    from node.service import Node

T = TypeVar("T")

REQUEST_FIELDS = frozenset(
    {"kind", "to", "payload", "schema", "thread_id", "in_reply_to", "priority", "handling",
     "ttl_seconds", "procedure_override"}
)  # fmt: skip
# Deeper than any payload record nests (about five levels); bounds the recursion of every
# later step (codec, validation, fingerprint) whatever a client sends.
MAX_DEPTH = 32
MAX_ID_LENGTH = 200  # schema, thread_id, in_reply_to, priority
# What an identifier may not hold: control characters (Unicode category Cc) and lone surrogates.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"


class Refusal(Exception):
    """Why a request is not sent: an HTTP-style ``status``, a message, the field at fault and,
    where a client may want to act on it, a stable ``code`` (e.g. ``idempotency_key_reused``)."""

    def __init__(
        self, status: int, error: str, field: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(f"{field}: {error}" if field else error)
        self.status = status
        self.error = error
        self.field = field
        self.code = code


def _refuse(error: str, field: str | None) -> NoReturn:
    raise Refusal(422, error, field)


def _bad_json(error: str, field: str | None = None) -> NoReturn:
    raise Refusal(400, error, field, "invalid_json")


def _no_constant(name: str) -> NoReturn:
    _bad_json(f"invalid JSON: {name} is not a JSON number")


def parse_json(data: bytes) -> Any:
    """A request document's bytes -> a JSON value, or :class:`Refusal` 400 for anything that is
    not JSON text (RFC 8259): invalid UTF-8 or syntax, ``NaN``/``Infinity``, a number too long
    to convert, nesting too deep for the parser. (:func:`from_json` then applies the I-JSON
    limits, RFC 7493: depth ``MAX_DEPTH`` and no lone surrogates.)

    Every such document is the client's mistake, so none of them may escape as an exception
    that the caller would take for the node's own fault (HTTP 500)."""
    try:
        value = json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        _bad_json(f"invalid JSON: nested deeper than {MAX_DEPTH} levels")
    except json.JSONDecodeError as exc:
        _bad_json(f"invalid JSON: {exc}")
    except UnicodeDecodeError as exc:
        _bad_json(f"invalid JSON: not UTF-8 text ({exc.reason} at byte {exc.start})")
    except ValueError:  # what is left: int() refusing a number of more than 4300 digits
        _bad_json("invalid JSON: a number has too many digits")
    return value


def check_text(value: Any) -> None:
    """I-JSON limits over a decoded document: nesting at most ``MAX_DEPTH`` and no string with
    a lone surrogate (``"\\ud800"`` is valid JSON syntax but not Unicode text, and no encoder
    downstream can write it). Iterative, so a deep document cannot exhaust the stack here."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            _bad_json(f"invalid JSON: nested deeper than {MAX_DEPTH} levels", path or None)
        if isinstance(item, str):
            _check_string(item, path)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_string(key, path)
                stack.append((child, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))


def _check_string(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        _bad_json("invalid JSON: a string holds a lone surrogate (not Unicode text)", path or None)


def _identifier(name: str, value: object) -> str:
    """schema, thread_id, in_reply_to, priority: short single-line text, or a 422."""
    if not isinstance(value, str):
        _refuse(f"{name} must be a string", name)
    if not 1 <= len(value) <= MAX_ID_LENGTH or CONTROL.search(value):
        _refuse(f"{name} must be 1 to {MAX_ID_LENGTH} characters without control characters", name)
    return value


def from_json(body: Any, idempotency_key: str | None = None) -> core.Request:
    """Check the envelope-level fields; the payload itself is the codec's business.

    ``idempotency_key`` comes from the caller (the API's header, already limited to printable
    ASCII; the folder's file name and content hash) and must be storable text."""
    if not isinstance(body, dict):
        _refuse("the request must be a JSON object", None)
    check_text(body)
    if idempotency_key is not None:
        try:
            idempotency_key.encode("utf-8")
        except UnicodeEncodeError:
            raise Refusal(
                400, "the idempotency key (for a file: its name) is not valid UTF-8 text",
                "idempotency_key",
            ) from None  # fmt: skip
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
        if value is not None:
            optional[name] = _identifier(name, value)
    override = body.get("procedure_override")
    if override is not None:
        if not isinstance(override, str) or not override.strip() or len(override) > MAX_NOTE:
            _refuse(f"procedure_override must be text of 1 to {MAX_NOTE} characters: why this"
                    " step is sent out of its procedure's order", "procedure_override")  # fmt: skip
        check_text(override)
        optional["procedure_override"] = override
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
    return await _submitting(node.submit(request))


async def send_release(
    node: Node, period: Period, to: list[str] | None, epsilon: float | None
) -> dict[str, Any]:
    """A statistics release through the node's desk, refusals mapped as for any message."""
    return await _submitting(node.statistics.send(period, to, epsilon))


ERASURE_FIELDS = frozenset({"message_ids", "thread_id", "reason", "note"})
MAX_NOTE = 2000


def erasure_from_json(body: Any) -> dict[str, Any]:
    """``POST /v1/erasures`` (and ``xnode erase``): which sent messages to erase and why, as
    keyword arguments of :meth:`node.erasures.ErasureDesk.request`."""
    if not isinstance(body, dict):
        _refuse("the request must be a JSON object", None)
    unknown = sorted(set(body) - ERASURE_FIELDS)
    if unknown:
        _refuse(f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(ERASURE_FIELDS))}",
                unknown[0])  # fmt: skip
    ids = body.get("message_ids", [])
    if not isinstance(ids, list) or len(ids) > 1000:
        _refuse("message_ids must be a list of at most 1000 message ids", "message_ids")
    message_ids = [_identifier(f"message_ids[{i}]", v) for i, v in enumerate(ids)]
    thread_id = body.get("thread_id")
    if thread_id is not None:
        thread_id = _identifier("thread_id", thread_id)
    if not message_ids and thread_id is None:
        _refuse("name the messages to erase (message_ids) or a thread (thread_id)", "message_ids")
    reasons = codes.get("erasure_reason").codes
    reason = body.get("reason")
    if reason not in reasons:
        _refuse(f"reason must be one of {', '.join(reasons)}", "reason")
    note = body.get("note")
    if note is not None:
        if not isinstance(note, str) or len(note) > MAX_NOTE:
            _refuse(f"note must be text of at most {MAX_NOTE} characters", "note")
        check_text(note)
    if reason == "Other" and not (note or "").strip():
        _refuse("a note is required when the reason is Other", "note")
    return {"message_ids": message_ids, "thread_id": thread_id, "reason": reason, "note": note}


def hold_from_json(body: dict[str, Any], now: dt.datetime) -> LegalHold:
    """``POST /v1/holds`` (and ``xnode hold add``): a legal hold on a message or a thread."""
    allowed = {"message_id", "thread_id", "reason", "note", "recorded_by"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        _refuse(f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}",
                unknown[0])  # fmt: skip
    ids = {k: _identifier(k, body[k]) for k in ("message_id", "thread_id") if body.get(k)}
    if len(ids) != 1:
        _refuse("give exactly one of message_id and thread_id", "message_id")
    reasons = codes.get("hold_reason").codes
    if body.get("reason") not in reasons:
        _refuse(f"reason must be one of {', '.join(reasons)}", "reason")
    for name in ("note", "recorded_by"):
        value = body.get(name)
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_NOTE:
            _refuse(f"{name} must be text of 1 to {MAX_NOTE} characters", name)
        check_text(value)
    return LegalHold(hold_id=0, reason=body["reason"], note=body["note"],
                     recorded_by=body["recorded_by"], recorded_at=now,
                     message_id=ids.get("message_id"), thread_id=ids.get("thread_id"))  # fmt: skip


def _fields(body: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        _refuse("the request must be a JSON object", None)
    unknown = sorted(set(body) - allowed)
    if unknown:
        _refuse(f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}",
                unknown[0])  # fmt: skip
    return body


def _text(body: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NOTE:
        _refuse(f"{name} must be text of 1 to {MAX_NOTE} characters", name)
    check_text(value)
    return value


def _node_list(body: dict[str, Any], name: str, required: bool = True) -> list[str] | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, list) or not value or len(value) > 100:
        _refuse(f"{name} must be a list of 1 to 100 node ids", name)
    return [_identifier(f"{name}[{i}]", v) for i, v in enumerate(value)]


def forward_from_json(body: Any) -> dict[str, Any]:
    """``POST /v1/forwards``: ``{message_id, to: [node ids], note?}``."""
    body = _fields(body, {"message_id", "to", "note"})
    return {"message_id": _identifier("message_id", body.get("message_id")),
            "to": _node_list(body, "to"), "note": _text(body, "note", False)}  # fmt: skip


def permission_request_from_json(body: Any) -> dict[str, Any]:
    """``POST /v1/forward-permissions``: ``{message_id, forward_to: [node ids], purpose}``."""
    body = _fields(body, {"message_id", "forward_to", "purpose"})
    return {"message_id": _identifier("message_id", body.get("message_id")),
            "forward_to": _node_list(body, "forward_to"),
            "purpose": _text(body, "purpose")}  # fmt: skip


def decision_from_json(body: Any) -> dict[str, Any]:
    """``POST /v1/forward-permissions/{id}/decision``:
    ``{decision: Granted|Refused, forward_to?, conditions?, decided_by}``."""
    body = _fields(body, {"decision", "forward_to", "conditions", "decided_by"})
    if body.get("decision") not in ("Granted", "Refused"):
        _refuse("decision must be Granted or Refused", "decision")
    return {"granted": body["decision"] == "Granted",
            "forward_to": _node_list(body, "forward_to", False),
            "conditions": _text(body, "conditions", False),
            "decided_by": _text(body, "decided_by")}  # fmt: skip


async def forwarding_call(call: Awaitable[T]) -> T:
    """A forwarding step through the node, with the refusals of :func:`send`."""
    try:
        return await _submitting(call)
    except ForwardRefused as exc:
        raise Refusal(exc.status, str(exc), exc.field) from exc


async def request_erasure(
    node: Node, fields: dict[str, Any], idempotency_key: str | None = None
) -> list[dict[str, Any]]:
    """Ask for erasure through the node, with the refusals of :func:`send`."""
    try:
        return await _submitting(node.erasures.request(**fields, idempotency_key=idempotency_key))
    except ErasureRefused as exc:
        raise Refusal(exc.status, str(exc), exc.field) from exc


async def _submitting(call: Awaitable[T]) -> T:
    try:
        return await call
    except OutOfOrder as exc:  # the thread's procedure does not allow this step yet
        raise Refusal(422, str(exc), "schema", "out_of_order") from exc
    except core.FederationExpired as exc:  # the trust list expired beyond the grace period
        raise Refusal(503, str(exc), None, "trust_list_expired") from exc
    except core.NoRecipients as exc:  # an empty list, or "neighbours" with none configured
        raise Refusal(422, str(exc), "to") from exc
    except core.RevokedRecipient as exc:  # known, but revoked by this node's operator
        raise Refusal(403, str(exc), "to") from exc
    except core.UnknownRecipient as exc:  # a node id that is not a known peer
        raise Refusal(404, str(exc), "to") from exc
    except core.IdempotencyKeyReused as exc:
        raise Refusal(422, str(exc), "idempotency_key", IDEMPOTENCY_KEY_REUSED) from exc
    except PolicyRefused as exc:
        raise Refusal(403, str(exc), "to") from exc
    except envelope.EnvelopeTooLarge as exc:
        raise Refusal(413, str(exc), "payload") from exc
    except (CodecError, PayloadInvalid) as exc:
        raise Refusal(422, exc.problem, exc.path) from exc
    except envelope.SealError as exc:
        raise Refusal(422, str(exc), exc.field) from exc
