"""The local HTTP API (aiohttp) for case-management systems (DESIGN §7, README "HTTP API").

Thin on purpose: it authenticates, checks scopes, turns JSON into a
:class:`node.submit.Request` and maps each refusal of the shared submission core to one HTTP
status with ``{"error", "field"}``. Routes and their shapes are documented in
``node/adapters/openapi.json``, which is served at ``/v1/openapi.json``; a test keeps the two in
step.

Status codes: 400 invalid JSON, 401 no or unknown token, 403 scope or policy refusal, 404
unknown recipient or resource, 413 body or sealed envelope too large, 422 schema or rule
violation (``field`` is the path, e.g. ``payload.victim.prs_Birthdate``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from importlib import resources
from typing import TYPE_CHECKING, Any, NoReturn

import structlog
from aiohttp import web

from node import codes, payloads, tokens, views
from node.adapters import AdapterError, requests
from node.store.base import ApiToken

if TYPE_CHECKING:
    from node.service import Node

log = structlog.get_logger("xnode.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOKEN_KEY = web.RequestKey("token", ApiToken)
NODE_ID_KEY = web.AppKey("node_id", str)
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/v1/openapi.json"})
MAX_LIMIT = 500
MAX_CURSOR = 2**63 - 1  # SQLite integers are 64-bit
SSE_KEEPALIVE_SECONDS = 15.0


def openapi_document() -> dict[str, Any]:
    text = resources.files("node.adapters").joinpath("openapi.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def problem(status: int, error: str, field: str | None = None) -> NoReturn:
    """Raise an HTTP error whose body is ``{"error", "field"}``."""
    body = {"error": error, "field": field}
    raise _http(status, body)


def _http(status: int, body: dict[str, Any]) -> web.HTTPException:
    exc = web.HTTPException(text=json.dumps(body), content_type="application/json")
    exc.set_status(status)
    return exc


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as JSON; an unexpected one is logged (without the body) as a 500."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            raise
        if exc.status < 400:
            raise
        replacement = _http(exc.status, {"error": exc.reason, "field": None})
        for name in ("Allow", "WWW-Authenticate"):
            if name in exc.headers:
                replacement.headers[name] = exc.headers[name]
        raise replacement from None
    except Exception:
        log.exception("api_error", node=request.app.get(NODE_ID_KEY), method=request.method,
                      path=request.path)  # fmt: skip
        raise _http(500, {"error": "internal error; see the node's log", "field": None}) from None


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
        r = app.router
        r.add_post("/v1/messages", self.post_message)
        r.add_get("/v1/messages/{id}", self.get_message)
        r.add_get("/v1/inbox", self.get_inbox)
        r.add_get("/v1/inbox/stream", self.stream_inbox)
        r.add_post("/v1/inbox/{id}/ack", self.ack)
        r.add_get("/v1/threads/{thread_id}", self.get_thread)
        r.add_get("/v1/peers", self.get_peers)
        r.add_get("/v1/schemas", self.get_schemas)
        r.add_get("/v1/codes/{list}", self.get_codes)
        r.add_get("/v1/quarantine", self.get_quarantine)
        r.add_get("/v1/openapi.json", self.get_openapi)
        r.add_get("/healthz", self.healthz)
        r.add_get("/readyz", self.readyz)
        r.add_get("/metrics", self.metrics)
        return app

    async def start(self) -> None:
        config = self.node.config.api
        self._closing.clear()
        self._runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, shutdown_timeout=5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, config.host, config.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise AdapterError(
                f"the API cannot listen on {config.host}:{config.port} ({exc.strerror}); "
                "set [api] port or XNODE_API_PORT"
            ) from exc
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else config.port
        log.info("api_listening", node=self.node.node_id, url=self.url)

    @property
    def url(self) -> str:
        return f"http://{self.node.config.api.host}:{self.port}"

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- auth -----------------------------------------------------------------------------------

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
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
            exc = _http(401, {"error": error, "field": None})
            exc.headers["WWW-Authenticate"] = 'Bearer realm="xnode"'
            raise exc
        request[TOKEN_KEY] = record
        return await handler(request)

    def _require(self, request: web.Request, action: str, kind: str) -> None:
        token = request[TOKEN_KEY]
        if not tokens.allows(token.scopes, action, kind):
            problem(403, f"token {token.name!r} has no scope {action}:{kind}", "scope")

    # -- sending --------------------------------------------------------------------------------

    async def post_message(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        key = request.headers.get("Idempotency-Key")
        if key is not None and not 1 <= len(key) <= 200:
            problem(400, "Idempotency-Key must be 1 to 200 characters", "Idempotency-Key")
        token = request[TOKEN_KEY]
        try:
            submission = requests.from_json(body)
            self._require(request, "send", submission.kind)
            if key is not None:  # scoped to the token: two systems never collide
                submission = replace(submission, idempotency_key=f"{token.token_id}:{key}")
            message_id = await requests.send(self.node, submission)
        except requests.Refusal as exc:
            problem(exc.status, exc.error, exc.field)
        return web.json_response({"id": message_id, "status": "queued"}, status=202)

    async def get_message(self, request: web.Request) -> web.Response:
        item = await self.node.sent_item(request.match_info["id"])
        if item is None:
            problem(404, f"no message {request.match_info['id']} sent by this node", "id")
        token = request[TOKEN_KEY]
        if not (
            tokens.allows(token.scopes, "send", item["kind"])
            or tokens.allows(token.scopes, "read", item["kind"])
        ):
            problem(403, f"token {token.name!r} has no scope for {item['kind']}", "scope")
        return web.json_response(item)

    # -- receiving ------------------------------------------------------------------------------

    def _kinds(self, request: web.Request) -> tuple[str, ...]:
        """Kinds this request may read: the ``kind`` parameter (checked) or all readable."""
        token = request[TOKEN_KEY]
        kind = _query(request, "kind")
        if kind is not None:
            if kind not in tokens.SENDABLE_KINDS:
                allowed = ", ".join(tokens.SENDABLE_KINDS)
                problem(422, f"unknown kind {kind!r}; expected one of {allowed}", "kind")
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
        items = await self.node.inbox_items(after, kinds, limit)
        next_cursor = items[-1]["cursor"] if items else after
        return web.json_response({"messages": items, "next_cursor": next_cursor})

    async def stream_inbox(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: every message after the cursor, then new ones as they arrive."""
        kinds = self._kinds(request)
        after = _int_param(request, "after", 0, 0, MAX_CURSOR)
        last_event = request.headers.get("Last-Event-ID", "")
        if last_event.isdigit():
            after = max(after, int(last_event))
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        try:
            while not self._closing.is_set():
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

    async def ack(self, request: web.Request) -> web.Response:
        message_id = request.match_info["id"]
        message = await self.node._run(self.node.store.inbox_message, message_id)
        if message is None:
            problem(404, f"no received message {message_id}", "id")
        self._require(request, "read", message.kind)
        await self.node._run(self.node.store.ack, message_id, self.node.clock())
        return web.json_response({"id": message_id, "state": "acked"})

    async def get_thread(self, request: web.Request) -> web.Response:
        thread_id = request.match_info["thread_id"]
        token = request[TOKEN_KEY]
        sent, received = await self.node.thread(thread_id)
        visible = [
            item
            for item in sent
            if tokens.allows(token.scopes, "send", item["kind"])
            or tokens.allows(token.scopes, "read", item["kind"])
        ] + [item for item in received if tokens.allows(token.scopes, "read", item["kind"])]
        if not visible:
            problem(404, f"no messages of thread {thread_id} visible to this token", "thread_id")
        return web.json_response({"thread_id": thread_id, "messages": views.by_time(visible)})

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
        name = request.match_info["list"]
        lang = _query(request, "lang") or "en"
        if lang not in codes.LANGUAGES:
            problem(422, f"unknown language {lang!r}; one of {', '.join(codes.LANGUAGES)}", "lang")
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
        problem(400, "the body must be JSON (Content-Type: application/json)", None)
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        problem(400, f"invalid JSON: {exc}", None)
    if not isinstance(body, dict):
        problem(400, "the body must be a JSON object", None)
    return body


def _query(request: web.Request, name: str) -> str | None:
    """A query parameter given at most once and not empty (else 422), or None if absent."""
    values = request.query.getall(name, [])
    if not values:
        return None
    if len(values) > 1:
        problem(422, f"{name} is given more than once", name)
    if values[0] == "":
        problem(422, f"{name} is empty", name)
    return values[0]


def _int_param(request: web.Request, name: str, default: int, low: int, high: int | None) -> int:
    text = _query(request, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        problem(422, f"{name} must be an integer", name)
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        problem(422, f"{name} must be {bound}", name)
    return value
