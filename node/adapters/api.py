"""The local HTTP API (aiohttp) for case-management systems (DESIGN §7, README "HTTP API").

Thin on purpose: it authenticates, checks scopes, turns JSON into a
:class:`node.submit.Request` and maps each refusal of the shared submission core to one HTTP
status with ``{"error", "field", "code"}``. Routes and their shapes are documented in
``node/adapters/openapi.json``, which is served at ``/v1/openapi.json``; a test keeps the two in
step.

Status codes: 400 a malformed header, query parameter, path parameter or JSON body (checked here,
at the edge, before anything reaches the store), 401 no or unknown token, 403 scope or policy
refusal, 404 unknown recipient or resource, 413 body or sealed envelope too large, 422 schema or
rule violation (``field`` is the path, e.g. ``payload.victim.prs_Birthdate``) or an
``Idempotency-Key`` reused with a different request, 507 the store cannot write now.

No input may produce a 500: that status, logged at error level with its traceback, is kept for
the node's own faults. A client's mistake is logged as one warning with its reason, no stack.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from importlib import resources
from typing import TYPE_CHECKING, Any, NoReturn

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from node import codes, payloads, statistics, tokens, views
from node.adapters import AdapterError, listen, requests
from node.stats import cases, release
from node.stats.periods import Period, PeriodError, parse_period
from node.store.base import ApiToken, StoreFull, StoreUnavailable

if TYPE_CHECKING:
    from node.service import Node

log = structlog.get_logger("xnode.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOKEN_KEY = web.RequestKey("token", ApiToken)
NODE_ID_KEY = web.AppKey("node_id", str)
# Told when a write fails for lack of disk: the node is not ready until a probe write succeeds.
StoreFailureHook = Callable[[StoreUnavailable], None]
STORE_FAILURE_KEY: web.AppKey[StoreFailureHook] = web.AppKey("store_failure")
HOLD_ID = re.compile(r"[0-9]{1,18}")  # ASCII digits only ("²".isdigit() is True), fits SQLite
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/v1/openapi.json"})
# /metrics and /readyz name the peers and the broker: behind a token with scope ops when
# [api] ops_token_required is set (always, once the API is reachable beyond loopback).
OPS_PATHS = frozenset({"/readyz", "/metrics"})
MAX_LIMIT = 500
MAX_CURSOR = 2**63 - 1  # SQLite integers are 64-bit
SSE_KEEPALIVE_SECONDS = 15.0
# Idempotency-Key: 1 to 255 printable ASCII characters (space to "~"), as Stripe allows; the
# store keeps it prefixed with the token id, so two systems never share a key.
IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,255}")
# ASCII digits only: int() would also take " 7", "7_0" and Arabic-Indic digits
CURSOR = re.compile(r"[0-9]{1,19}")
MAX_PATH_PARAMETER = requests.MAX_ID_LENGTH
MAX_REPORT_PERIODS = 60
REPORT_TYPES = {"html": "text/html", "csv": "text/csv", "pdf": "application/pdf"}
LANGUAGES = ("en", "fr", "pt", "sw", "ar")
# The machine-readable ``code`` of an error body, by status, where no more precise one is given.
STATUS_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    422: "invalid_content",
    500: "internal_error",
    507: "store_unavailable",
}


def openapi_document() -> dict[str, Any]:
    text = resources.files("node.adapters").joinpath("openapi.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def problem(status: int, error: str, field: str | None = None, code: str | None = None) -> NoReturn:
    """Raise an HTTP error whose body is ``{"error", "field", "code"}``."""
    raise _http(status, error, field, code)


def _http(
    status: int, error: str, field: str | None = None, code: str | None = None
) -> web.HTTPException:
    body = {"error": error, "field": field, "code": code or STATUS_CODES.get(status, "error")}
    exc = web.HTTPException(text=json.dumps(body), content_type="application/json")
    exc.set_status(status)
    return exc


def _route(request: web.Request) -> str:
    """The route template (``/v1/messages/{id}``) for logs: bounded, and no ids or junk a
    client put in the path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no route)"


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as JSON. A refusal (4xx) is logged as a warning with its code and
    field, never its text (which may quote a payload value); an unexpected exception is the
    node's fault: logged (without the body) with its traceback, answered 500."""
    node_id = request.app.get(NODE_ID_KEY)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.content_type == "application/json":
            replacement = exc
        else:  # raised by aiohttp itself: unknown route, method not allowed, body too large
            replacement = _http(exc.status, exc.reason)
            for name in ("Allow", "WWW-Authenticate"):
                if name in exc.headers:
                    replacement.headers[name] = exc.headers[name]
        body = json.loads(replacement.text or "{}")
        log.warning("api_request_refused", node=node_id, method=request.method,
                    route=_route(request), status=exc.status, reason=body.get("code"),
                    field=body.get("field"))  # fmt: skip
        if replacement is exc:
            raise
        raise replacement from None
    except StoreUnavailable as exc:  # the node's disk, not the request: the client may retry
        log.error("api_store_unavailable", node=node_id, method=request.method,
                  route=_route(request), error=str(exc))  # fmt: skip
        note_failure = request.app.get(STORE_FAILURE_KEY)
        if note_failure is not None:
            note_failure(exc)
        cause = "no space left" if isinstance(exc, StoreFull) else "the disk fails"
        raise _http(507, f"the node's store cannot write now ({cause}); nothing was accepted,"
                    " retry later") from None  # fmt: skip
    except ConnectionResetError:  # the client went away while sending its request
        log.warning("api_client_disconnected", node=node_id, method=request.method,
                    route=_route(request))  # fmt: skip
        raise _http(400, "the connection was closed before the request was complete") from None
    except Exception:
        log.exception("api_error", node=node_id, method=request.method, route=_route(request))
        raise _http(500, "internal error; see the node's log") from None


class _HttpServerLog(logging.Logger):
    """The logger aiohttp's HTTP server reports to, for this API.

    A request aiohttp's parser refuses (a control character in a header, a request line or
    header over 8 KB, a broken chunked body...) is answered 400 before it reaches the API, and
    aiohttp logs it as an error with a traceback. It is the client's mistake: here it becomes
    one warning with the parser's reason (its first words only, never the offending bytes,
    which may be a bearer token). Anything else keeps aiohttp's error and traceback. The
    records go to the handlers of the ``aiohttp.server`` logger, as aiohttp's own would."""

    def __init__(self, node_id: str) -> None:
        super().__init__("aiohttp.server")
        self.parent = logging.getLogger("aiohttp.server")
        self.node_id = node_id

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, web.RequestPayloadError):  # met again when the rest is drained
            exc_info = exc_info.__cause__ or exc_info
        if isinstance(exc_info, HttpProcessingError) and 400 <= exc_info.code < 500:
            log.warning("api_bad_http_request", node=self.node_id, status=exc_info.code,
                        reason=_parser_reason(exc_info))  # fmt: skip
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)


def _parser_reason(exc: HttpProcessingError) -> str:
    """``InvalidHeader: Invalid header value char`` from aiohttp's message, which goes on to
    quote the offending line (it may hold a token): only the words before a quote or colon."""
    first = (exc.message or "").strip().splitlines()[:1]
    words = re.split(r"[:'\"]", first[0])[0].strip()[:100] if first else ""
    return f"{type(exc).__name__}: {words}" if words else type(exc).__name__


class ApiServer:
    """Serves the API for one node on ``[api] host:port``. Lifecycle: ``start()``/``stop()``."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self._closing = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------------

    def app(self) -> web.Application:
        config = self.node.config.api
        app = web.Application(
            client_max_size=config.max_body_bytes,
            middlewares=[errors_as_json, self._authenticate],
        )
        app[NODE_ID_KEY] = self.node.config.node.id
        app[STORE_FAILURE_KEY] = self.node.note_store_failure
        r = app.router
        r.add_post("/v1/messages", self.post_message)
        r.add_get("/v1/messages/{id}", self.get_message)
        r.add_get("/v1/status-events", self.get_status_events)
        r.add_get("/v1/inbox", self.get_inbox)
        r.add_get("/v1/inbox/stream", self.stream_inbox)
        r.add_post("/v1/inbox/{id}/ack", self.ack)
        r.add_get("/v1/threads", self.get_threads)
        r.add_get("/v1/threads/{thread_id}", self.get_thread)
        r.add_get("/v1/peers", self.get_peers)
        r.add_get("/v1/schemas", self.get_schemas)
        r.add_get("/v1/codes/{list}", self.get_codes)
        r.add_get("/v1/quarantine", self.get_quarantine)
        r.add_post("/v1/erasures", self.post_erasure)
        r.add_get("/v1/erasures/{id}", self.get_erasure)
        r.add_get("/v1/holds", self.get_holds)
        r.add_post("/v1/holds", self.post_hold)
        r.add_post("/v1/holds/{id}/release", self.release_hold)
        r.add_post("/v1/forwards", self.post_forward)
        r.add_post("/v1/forward-permissions", self.post_permission_request)
        r.add_post("/v1/forward-permissions/{id}/decision", self.post_permission_decision)
        r.add_post("/v1/cases", self.post_cases)
        r.add_get("/v1/statistics/{period}", self.get_statistics)
        r.add_post("/v1/statistics-releases", self.post_release)
        r.add_get("/v1/statistics-report", self.get_statistics_report)
        r.add_get("/v1/openapi.json", self.get_openapi)
        r.add_get("/healthz", self.healthz)
        r.add_get("/readyz", self.readyz)
        r.add_get("/metrics", self.metrics)
        return app

    async def start(self) -> None:
        config = self.node.config.api
        self._closing.clear()
        self._runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, shutdown_timeout=5,
            logger=_HttpServerLog(self.node.node_id),
        )  # fmt: skip
        await self._runner.setup()
        try:
            self.port = await listen(self._runner, config.host, config.port, "the API", "api")
        except AdapterError:
            self._runner = None
            raise
        self.node.api_url = self.url  # the node tells its users where its API is
        log.info("api_listening", node=self.node.node_id, url=self.url)

    @property
    def url(self) -> str:
        return f"http://{self.node.config.api.host}:{self.port}"

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.node.api_url = None

    # -- auth -----------------------------------------------------------------------------------

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        ops = request.path in OPS_PATHS and self.node.config.api.ops_token_required
        if request.path in OPEN_PATHS and not ops:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, text = header.partition(" ")
        parts = tokens.split(text.strip()) if scheme.lower() == "bearer" else None
        record = None
        if parts is not None:
            record = await self.node._run(self.node.store.token, parts[0])
        # compare even when the id is unknown, so timing does not tell which ids exist
        reference = record or _DUMMY_TOKEN
        matches = tokens.secret_matches(reference, parts[1] if parts else "")
        if record is None or not matches or record.revoked_at is not None:
            error = "a bearer token is required" if not header else "invalid or revoked token"
            exc = _http(401, error, "Authorization")
            exc.headers["WWW-Authenticate"] = 'Bearer realm="xnode"'
            raise exc
        if ops and not tokens.allows_ops(record.scopes):
            problem(403, f"token {record.name!r} has no scope ops", "scope")
        request[TOKEN_KEY] = record
        return await handler(request)

    def _require(self, request: web.Request, action: str, kind: str) -> None:
        token = request[TOKEN_KEY]
        if not tokens.allows(token.scopes, action, kind):
            problem(403, f"token {token.name!r} has no scope {action}:{kind}", "scope")

    # -- sending --------------------------------------------------------------------------------

    async def post_message(self, request: web.Request) -> web.Response:
        key = _idempotency_key(request)
        body = await _json_body(request)
        token = request[TOKEN_KEY]
        try:
            submission = requests.from_json(body)
            self._require(request, "send", submission.kind)
            if key is not None:  # scoped to the token: two systems never collide
                submission = replace(submission, idempotency_key=f"{token.token_id}:{key}")
            message_id = await requests.send(self.node, submission)
        except requests.Refusal as exc:
            if exc.code == requests.IDEMPOTENCY_KEY_REUSED:
                problem(422, f"Idempotency-Key {key!r}: {exc.error}", "Idempotency-Key", exc.code)
            problem(exc.status, exc.error, exc.field, exc.code)
        return web.json_response({"id": message_id, "status": "queued"}, status=202)

    async def get_message(self, request: web.Request) -> web.Response:
        message_id = _path(request, "id")
        item = await self.node.sent_item(message_id)
        if item is None:
            problem(404, f"no message {message_id} sent by this node", "id")
        token = request[TOKEN_KEY]
        if not tokens.may_see(token.scopes, item["kind"]):
            problem(403, f"token {token.name!r} has no scope for {item['kind']}", "scope")
        return web.json_response(item)

    async def get_status_events(self, request: web.Request) -> web.Response:
        """Final outcomes of sent messages (what the webhook and folder pass on), a page after
        cursor ``after``. Visible as a message's status is: only events of kinds the token may
        send or read; ``next`` is the cursor of the next page."""
        token = request[TOKEN_KEY]
        kinds = tuple(k for k in tokens.SENDABLE_KINDS if tokens.may_see(token.scopes, k))
        if not kinds:
            problem(403, f"token {token.name!r} may not send or read any kind", "scope")
        after = _int_param(request, "after", 0, 0, MAX_CURSOR)
        limit = _int_param(request, "limit", 100, 1, MAX_LIMIT)
        events = await self.node._run(self.node.store.status_events, after, limit, kinds)
        return web.json_response(
            {
                "events": [views.status_event_item(e) for e in events],
                "next": events[-1].seq if events else after,
            }
        )

    # -- receiving ------------------------------------------------------------------------------

    def _kinds(self, request: web.Request) -> tuple[str, ...]:
        """Kinds this request may read: the ``kind`` parameter (checked) or all readable."""
        token = request[TOKEN_KEY]
        kind = _query(request, "kind")
        if kind is not None:
            if kind not in tokens.SENDABLE_KINDS:
                allowed = ", ".join(tokens.SENDABLE_KINDS)
                problem(400, f"unknown kind {kind!r}; expected one of {allowed}", "kind",
                        "invalid_query")  # fmt: skip
            self._require(request, "read", kind)
            return (kind,)
        readable = tokens.readable_kinds(token.scopes)
        if not readable:
            problem(403, f"token {token.name!r} may not read any kind", "scope")
        return readable

    async def get_inbox(self, request: web.Request) -> web.Response:
        kinds = self._kinds(request)
        after = _int_param(request, "after", 0, 0, MAX_CURSOR)
        limit = _int_param(request, "limit", 100, 1, MAX_LIMIT)
        match = _query(request, "match")
        if match is not None and len(match) > MAX_MATCH:
            problem(400, f"match is longer than {MAX_MATCH} characters", "match", "invalid_query")
        items = await self.node.inbox_items(after, kinds, limit, match)
        next_cursor = items[-1]["cursor"] if items else after
        return web.json_response({"messages": items, "next_cursor": next_cursor})

    async def stream_inbox(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: every message after the cursor, then new ones as they arrive."""
        kinds = self._kinds(request)
        after = _int_param(request, "after", 0, 0, MAX_CURSOR)
        last_event = _last_event_id(request)
        if last_event is not None:  # a reconnecting EventSource resumes after its last event
            after = max(after, last_event)
        token = request[TOKEN_KEY]
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        try:
            while not self._closing.is_set():
                # a stream outlives its first check: a token revoked meanwhile gets nothing more
                if not await self._still_valid(token):
                    log.warning("api_stream_closed", node=self.node.node_id,
                                reason="token_revoked", token=token.name)  # fmt: skip
                    break
                items = await self.node.inbox_items(after, kinds, 100)
                for item in items:
                    data = json.dumps(item, separators=(",", ":"))
                    await response.write(
                        f"id: {item['cursor']}\nevent: message\ndata: {data}\n\n".encode()
                    )
                    after = item["cursor"]
                if len(items) == 100:
                    continue
                if not await self.node.inbox_changed.wait(SSE_KEEPALIVE_SECONDS):
                    await response.write(b": keep-alive\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    async def _still_valid(self, token: ApiToken) -> bool:
        record = await self.node._run(self.node.store.token, token.token_id)
        return record is not None and record.revoked_at is None

    async def ack(self, request: web.Request) -> web.Response:
        """Acknowledge a received message. A message is (sender, id): when two senders used one
        id (see docs/threat-model.md) ``?sender=`` says which; without it such an id is 409."""
        message_id = _path(request, "id")
        sender = _query(request, "sender")
        token = request[TOKEN_KEY]
        # before the lookup, so a token that may read nothing cannot tell ids apart (404/403)
        if not tokens.readable_kinds(token.scopes):
            problem(403, f"token {token.name!r} may not read any kind", "scope")
        found = await self.node._run(self.node.store.inbox_messages, message_id)
        if sender is not None:
            found = [m for m in found if m.sender == sender]
        if not found:
            problem(404, f"no received message {message_id}", "id")
        if len(found) > 1:
            senders = ", ".join(m.sender for m in found)
            problem(409, f"message id {message_id} was used by several senders ({senders}); "
                    "say which with ?sender=", "sender", "ambiguous_id")  # fmt: skip
        message = found[0]
        self._require(request, "read", message.kind)
        await self.node._run(self.node.store.ack, message.seq, self.node.clock())
        return web.json_response({"id": message_id, "sender": message.sender, "state": "acked"})

    async def get_thread(self, request: web.Request) -> web.Response:
        thread_id = _path(request, "thread_id")
        token = request[TOKEN_KEY]
        sent, received = await self.node.thread(thread_id)
        visible = [item for item in sent if tokens.may_see(token.scopes, item["kind"])] + [
            item for item in received if tokens.allows(token.scopes, "read", item["kind"])
        ]
        if not visible:
            problem(404, f"no messages of thread {thread_id} visible to this token", "thread_id")
        joined = [item for item in visible if item.get("thread_joined", True)]
        apart = [item for item in visible if not item.get("thread_joined", True)]
        procedure = await self.node.procedure(thread_id)
        return web.json_response({"thread_id": thread_id, "messages": views.by_time(joined),
                                  "held_apart": apart, "procedure": procedure})  # fmt: skip

    async def get_threads(self, request: web.Request) -> web.Response:
        """``?overdue=true``: requests past their deadline without an answer, of the kinds the
        token may send or read (docs/procedures.md). Listing every thread is not offered."""
        token = request[TOKEN_KEY]
        if _query(request, "overdue") != "true":
            problem(400, "only overdue=true is supported: GET /v1/threads?overdue=true",
                    "overdue", "invalid_query")  # fmt: skip
        items = [item for item in await self.node.overdue()
                 if tokens.may_see(token.scopes, item["procedure"])]  # fmt: skip
        return web.json_response({"threads": items})

    # -- reference ------------------------------------------------------------------------------

    async def get_peers(self, request: web.Request) -> web.Response:
        peers = [views.peer_item(d) for _, d in sorted(self.node.peers.items())]
        return web.json_response({"peers": peers})

    async def get_schemas(self, request: web.Request) -> web.Response:
        kinds = {
            kind: [payloads.short_name(n) for n in payloads.payloads_of(kind)]
            for kind in tokens.SENDABLE_KINDS
        }
        return web.json_response({"kinds": kinds})

    async def get_codes(self, request: web.Request) -> web.Response:
        name = _path(request, "list")
        lang = _query(request, "lang") or "en"
        if lang not in codes.LANGUAGES:
            problem(400, f"unknown language {lang!r}; one of {', '.join(codes.LANGUAGES)}", "lang",
                    "invalid_query")  # fmt: skip
        try:
            code_list = codes.get(name)
        except codes.UnknownCode:
            problem(404, f"unknown code list {name!r}", "list")
        return web.json_response(
            {
                "list": code_list.name,
                "language": lang,
                "default": code_list.default,
                "codes": [{"code": c, "label": code_list.label(c, lang)} for c in code_list.codes],
            }
        )

    async def get_quarantine(self, request: web.Request) -> web.Response:
        token = request[TOKEN_KEY]
        if "admin" not in token.scopes:
            problem(403, f"token {token.name!r} has no scope admin", "scope")
        limit = _int_param(request, "limit", 100, 1, MAX_LIMIT)
        entries = await self.node._run(self.node.store.quarantined, limit)
        return web.json_response({"entries": [views.quarantine_item(q) for q in entries]})

    # -- data protection ------------------------------------------------------------------------

    async def post_erasure(self, request: web.Request) -> web.Response:
        """Ask the recipients of messages this node sent to erase them (docs/data-protection.md);
        the token needs ``send`` for their kinds."""
        key = _idempotency_key(request)
        body = await _json_body(request)
        token = request[TOKEN_KEY]
        try:
            fields = requests.erasure_from_json(body)
            found = await requests.request_erasure(
                self.node, {**fields, "may_send": self._may_send(request)},
                None if key is None else f"{token.token_id}:{key}",
            )  # fmt: skip
        except requests.Refusal as exc:
            problem(exc.status, exc.error, exc.field, exc.code)
        return web.json_response({"requests": found}, status=202)

    async def get_erasure(self, request: web.Request) -> web.Response:
        request_id = _path(request, "id")
        status = await self.node.erasures.status(request_id)
        if status is None:
            problem(404, f"no erasure request {request_id} sent by this node", "id")
        sent = await self.node.sent_item(request_id)
        token = request[TOKEN_KEY]
        kind = sent["kind"] if sent else ""
        if not tokens.may_see(token.scopes, kind):
            problem(403, f"token {token.name!r} has no scope for {kind}", "scope")
        return web.json_response(status)

    # -- statistics (docs/statistics.md) -------------------------------------------------------

    async def post_cases(self, request: web.Request) -> web.Response:
        """Import local case records (CSV or JSON, HTCDS column names): every row is checked
        and nothing is stored unless all are valid (422 lists each row's errors). Scope admin:
        these are the agency's own case files."""
        self._admin(request)
        media = request.content_type
        if media not in ("text/csv", "application/json"):
            problem(415 if media else 400, "the body must be text/csv or application/json",
                    "Content-Type", "unsupported_media_type")  # fmt: skip
        try:
            text = (await request.read()).decode("utf-8-sig")
        except UnicodeDecodeError:
            problem(400, "the body is not UTF-8 text", None, "invalid_body")
        replace_all = _bool_param(request, "replace")
        try:
            counts = await self.node.statistics.import_cases(
                text, media, replace_all=replace_all, source="api"
            )
        except cases.ImportRefused as exc:
            first = exc.errors[0]
            body = {"error": str(exc), "field": f"{first.where}.{first.field}",
                    "code": "invalid_content",
                    "errors": [{"where": e.where, "field": e.field, "message": e.message}
                               for e in exc.errors[:MAX_LIMIT]]}  # fmt: skip
            raise web.HTTPUnprocessableEntity(
                text=json.dumps(body), content_type="application/json"
            ) from None
        return web.json_response(counts)

    def _period(self, text: str, field: str) -> Period:
        try:
            return parse_period(text)
        except PeriodError as exc:
            problem(400, str(exc), field, "invalid_period")

    async def get_statistics(self, request: web.Request) -> web.Response:
        """One period's tables, protected as a release would carry them (``raw=true``: the
        unprotected counts, scope admin). Scope read:statistics."""
        self._require(request, "read", "statistics")
        period = self._period(_path(request, "period"), "period")
        raw = _bool_param(request, "raw")
        if raw:
            self._admin(request)
        tables = await self.node.statistics.tables(period, raw)
        return web.json_response({
            "period": period.code, "protected": not raw,
            "tables": [{"indicator": t.indicator, "dimensions": [d.name for d in t.dimensions],
                        "cells": [{"codes": list(c), "value": v} for c, v in t.cells.items()]}
                       for t in tables],
        })  # fmt: skip

    async def post_release(self, request: web.Request) -> web.Response:
        """Send one period's release up the chain: ``{"period", "to"?, "epsilon"?}``. Scope
        send:statistics. 202: durably in the outbox, like any message."""
        self._require(request, "send", "statistics")
        body = await _json_body(request)
        unknown = sorted(set(body) - {"period", "to", "epsilon"})
        if unknown:
            problem(422, f"unknown field {unknown[0]!r}", unknown[0])
        if not isinstance(body.get("period"), str):
            problem(422, "period is required: 2026, 2026-Q3 or 2026-07", "period")
        period = self._period(body["period"], "period")
        to = body.get("to")
        if to is not None and (not isinstance(to, list) or not all(isinstance(i, str) for i in to)):
            problem(422, "to must be a list of node ids", "to")
        epsilon = body.get("epsilon")
        if epsilon is not None and (
            isinstance(epsilon, bool) or not isinstance(epsilon, int | float)
        ):
            problem(422, "epsilon must be a number", "epsilon")
        try:
            sent = await requests.send_release(self.node, period, to, epsilon)
        except release.ReleaseError as exc:
            problem(422, str(exc), "period")
        except requests.Refusal as exc:
            problem(exc.status, exc.error, exc.field, exc.code)
        return web.json_response(sent, status=202)

    async def get_statistics_report(self, request: web.Request) -> web.StreamResponse:
        """The report of the releases received (``periods=2026-Q1..2026-Q4``,
        ``format=html|csv|pdf``, ``language``). Scope read:statistics."""
        from node.stats import report  # matplotlib: loaded only for reports

        self._require(request, "read", "statistics")
        text = _query(request, "periods")
        if text is None:
            problem(400, "periods is required, e.g. 2026-Q1..2026-Q4", "periods")
        try:
            periods = statistics.periods_of(text)
        except PeriodError as exc:
            problem(400, str(exc), "periods", "invalid_period")
        if len(periods) > MAX_REPORT_PERIODS:
            problem(400, f"at most {MAX_REPORT_PERIODS} periods in one report", "periods")
        fmt = _query(request, "format") or "html"
        if fmt not in REPORT_TYPES:
            problem(400, f"format must be one of {', '.join(REPORT_TYPES)}", "format")
        language = _query(request, "language") or "en"
        if language not in LANGUAGES:
            problem(400, f"language must be one of {', '.join(LANGUAGES)}", "language")
        data = await self.node.statistics.roll_up(periods)
        title = f"Statistics received by {self.node.config.node.name} ({self.node.node_id})"
        body = await asyncio.to_thread(
            report.render_bytes, data, fmt, title=title, language=language,
            generated_at=self.node.clock(), threshold=self.node.config.statistics.threshold,
        )  # fmt: skip
        return web.Response(body=body, content_type=REPORT_TYPES[fmt])

    async def post_forward(self, request: web.Request) -> web.Response:
        """Forward a received message to other nodes, as its handling code allows (H2 and H3:
        with the originator's grant); scope ``send`` for its kind."""
        return await self._forwarding(request, requests.forward_from_json,
                                      self.node.forwards.forward)  # fmt: skip

    async def post_permission_request(self, request: web.Request) -> web.Response:
        """Ask the originator of a received message for permission to forward it."""
        return await self._forwarding(request, requests.permission_request_from_json,
                                      self.node.forwards.ask)  # fmt: skip

    async def post_permission_decision(self, request: web.Request) -> web.Response:
        """The originator grants or refuses a forwarding permission request it received."""
        decide = functools.partial(self.node.forwards.decide, _path(request, "id"))
        return await self._forwarding(request, requests.decision_from_json, decide)

    async def _forwarding(
        self,
        request: web.Request,
        parse: Callable[[Any], dict[str, Any]],
        step: Callable[..., Awaitable[str]],
    ) -> web.Response:
        """One forwarding step: the body read, checked and passed on with the token's scope;
        every refusal as its HTTP status."""
        body = await _json_body(request)
        may_send = self._may_send(request)
        try:
            message_id = await requests.forwarding_call(step(**parse(body), may_send=may_send))
        except requests.Refusal as exc:
            problem(exc.status, exc.error, exc.field, exc.code)
        return web.json_response({"id": message_id, "status": "queued"}, status=202)

    def _may_send(self, request: web.Request) -> Callable[[str], bool]:
        token = request[TOKEN_KEY]
        return lambda kind: tokens.allows(token.scopes, "send", kind)

    def _admin(self, request: web.Request) -> ApiToken:
        token: ApiToken = request[TOKEN_KEY]
        if "admin" not in token.scopes:
            problem(403, f"token {token.name!r} has no scope admin", "scope")
        return token

    async def get_holds(self, request: web.Request) -> web.Response:
        self._admin(request)
        released = _query(request, "released")
        if released not in (None, "true", "false"):
            problem(400, "released must be true or false", "released", "invalid_query")
        every = released == "true"
        holds = await self.node._run(self.node.store.holds, every)
        return web.json_response({"holds": [views.hold_item(h) for h in holds]})

    async def post_hold(self, request: web.Request) -> web.Response:
        """Record a legal hold (admin: a supervisor's decision, audited with their name)."""
        self._admin(request)
        body = await _json_body(request)
        try:
            hold = requests.hold_from_json(body, self.node.clock())
        except requests.Refusal as exc:
            problem(exc.status, exc.error, exc.field, exc.code)
        hold_id = await self.node._run(self.node.store.add_hold, hold)
        return web.json_response({"hold_id": hold_id}, status=201)

    async def release_hold(self, request: web.Request) -> web.Response:
        self._admin(request)
        text = _path(request, "id")
        body = await _json_body(request)
        by = body.get("released_by")
        extra = sorted(set(body) - {"released_by"})
        if extra:
            problem(422, f"unknown field {extra[0]!r}; allowed: released_by", extra[0])
        if not isinstance(by, str) or not by.strip() or len(by) > 200:
            problem(422, "released_by must name who releases the hold", "released_by")
        if HOLD_ID.fullmatch(text) is None or not await self.node._run(
            self.node.store.release_hold, int(text), by, self.node.clock()
        ):
            problem(404, f"no hold {text} in force", "id")
        return web.json_response({"hold_id": int(text), "released": True})

    async def get_openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    # -- operations -----------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "node": self.node.node_id})

    async def readyz(self, request: web.Request) -> web.Response:
        checks = await self.node.readiness()
        ready = all(c["ok"] for c in checks.values())
        return web.json_response(
            {"ready": ready, "node": self.node.node_id, "checks": checks},
            status=200 if ready else 503,
        )

    async def metrics(self, request: web.Request) -> web.Response:
        body = await self.node.render_metrics()
        response = web.Response(body=body)
        response.content_type = "text/plain"
        response.charset = "utf-8"
        response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
        return response


_DUMMY_TOKEN = ApiToken("0" * 12, "-", (), "0" * 64, dt.datetime(2000, 1, 1, tzinfo=dt.UTC))


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        problem(400, "the body must be JSON (Content-Type: application/json)", "Content-Type")
    try:
        raw = await request.read()
    except web.RequestPayloadError as exc:  # a body aiohttp cannot decode (chunks, compression)
        cause = exc.__cause__
        reason = _parser_reason(cause) if isinstance(cause, HttpProcessingError) else "unreadable"
        problem(400, f"malformed body: {reason}", None, "invalid_json")
    try:
        body = requests.parse_json(raw)
    except requests.Refusal as exc:
        problem(400, exc.error, exc.field, "invalid_json")
    if not isinstance(body, dict):
        problem(400, "the body must be a JSON object", None, "invalid_json")
    return body


def _header(request: web.Request, name: str) -> str | None:
    """A request header given at most once (else 400), or None if absent."""
    values = request.headers.getall(name, [])
    if len(values) > 1:
        problem(400, f"the {name} header is given more than once", name, "invalid_header")
    return values[0] if values else None


def _idempotency_key(request: web.Request) -> str | None:
    """The ``Idempotency-Key`` header: 1 to 255 printable ASCII characters, or a 400. HTTP
    carries any bytes there; anything else (non-UTF-8, non-ASCII, control characters) is
    refused before it reaches the store."""
    key = _header(request, "Idempotency-Key")
    if key is not None and IDEMPOTENCY_KEY.fullmatch(key) is None:
        problem(400, "Idempotency-Key must be 1 to 255 printable ASCII characters (space to ~)",
                "Idempotency-Key", "invalid_header")  # fmt: skip
    return key


def _last_event_id(request: web.Request) -> int | None:
    """``Last-Event-ID``: a cursor this stream sent as ``id:`` (1 to 19 ASCII digits; one past
    the largest cursor only means "after everything"), or a 400."""
    text = _header(request, "Last-Event-ID")
    if text is None:
        return None
    if CURSOR.fullmatch(text) is None:
        problem(400, "Last-Event-ID must be an event id of this stream (an integer)",
                "Last-Event-ID", "invalid_header")  # fmt: skip
    return min(int(text), MAX_CURSOR)


def _path(request: web.Request, name: str) -> str:
    """A path parameter (already percent-decoded by the router): an id, at most
    ``MAX_PATH_PARAMETER`` characters without control characters, as a request may set a
    thread id, or a 400."""
    value = request.match_info[name]
    if len(value) > MAX_PATH_PARAMETER or requests.CONTROL.search(value):
        problem(400, f"{name} must be at most {MAX_PATH_PARAMETER} characters without control "
                "characters", name, "invalid_path")  # fmt: skip
    return value


MAX_MATCH = 200  # an identifier, not a document


def _query(request: web.Request, name: str) -> str | None:
    """A query parameter given at most once and not empty (else 400), or None if absent."""
    values = request.query.getall(name, [])
    if not values:
        return None
    if len(values) > 1:
        problem(400, f"{name} is given more than once", name, "invalid_query")
    if values[0] == "":
        problem(400, f"{name} is empty", name, "invalid_query")
    return values[0]


def _bool_param(request: web.Request, name: str) -> bool:
    text = _query(request, name)
    if text is None or text == "false":
        return False
    if text == "true":
        return True
    problem(400, f"{name} must be true or false", name)


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = _query(request, name)
    if text is None:
        return default
    if CURSOR.fullmatch(text) is None or not low <= int(text) <= high:
        problem(400, f"{name} must be an integer from {low} to {high}", name, "invalid_query")
    return int(text)
