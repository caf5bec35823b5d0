"""The officer console: a web interface served by the node (README: Officer console).

The imperative shell around the pure parts of this package: aiohttp routes, the session and
CSRF middlewares, security headers, and calls into the running node. Pages are rendered on the
server (Jinja2) and work without JavaScript; ``static/console.js`` only adds live updates of
the sent list (Server-Sent Events) and a confirmation before discarding.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import secrets
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp_jinja2
import jinja2
import structlog
from aiohttp import web

from node.adapters import AdapterError, listen
from node.adapters.console import pages
from node.adapters.console.accounts import Passwords, Permission, may
from node.adapters.console.i18n import LANGUAGES, NAMES
from node.adapters.console.requestkeys import SESSION_KEY, USER_KEY, translator
from node.adapters.console.sessions import Session, SessionBook, same_token
from node.audit import AuditEvent
from node.store.base import ConsoleUser, StoreUnavailable

if TYPE_CHECKING:
    from node.service import Node

log = structlog.get_logger("xnode.console")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HERE = Path(__file__).parent
COOKIE = "xnode_console"
LOGIN_COOKIE = "xnode_login"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
OPEN_PATHS = ("/login", "/static/", "/healthz")
# what each path prefix needs; anything not listed needs only a signed-in user
NEEDS: tuple[tuple[str, Permission], ...] = (
    ("/inbox", Permission.CASES),
    ("/messages", Permission.CASES),
    ("/compose", Permission.CASES),
    ("/drafts", Permission.CASES),
    ("/sent", Permission.CASES),
    ("/threads", Permission.CASES),
    ("/ops", Permission.OPERATE),
    ("/audit", Permission.AUDIT),
)


def required_permission(path: str) -> Permission | None:
    for prefix, permission in NEEDS:
        if path == prefix or path.startswith(prefix + "/"):
            return permission
    return None


class ConsoleServer:
    """Serves the console for one node on ``[console] host:port``; ``start()``/``stop()``."""

    def __init__(self, node: Node) -> None:
        self.node = node
        settings = node.config.console
        self.settings = settings
        self.sessions = SessionBook(settings.idle_minutes * 60.0, settings.session_hours * 3600.0)
        self.passwords = Passwords()
        self.secure = bool(settings.tls_certfile) or settings.behind_https_proxy
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.closing = asyncio.Event()
        self._housekeeping: asyncio.Task[None] | None = None
        self._login_locks: dict[str, asyncio.Lock] = {}
        # Argon2id costs 64 MiB and tens of ms per attempt: at most two at once, so a flood of
        # sign-ins queues instead of taking every core and the memory with it
        self.argon2_slots = asyncio.Semaphore(2)
        self.streams: dict[str, int] = {}  # open event streams per session

    # -- lifecycle ------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.node.config.api.max_body_bytes,
            middlewares=[self._headers, self._session, self._csrf],
        )
        aiohttp_jinja2.setup(
            app,
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=jinja2.select_autoescape(default=True),
            undefined=jinja2.StrictUndefined,
            context_processors=[self._context],
        )
        app[aiohttp_jinja2.static_root_key] = "/static"
        pages.routes(app, self)
        app.router.add_static("/static/", HERE / "static", append_version=True)
        return app

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.settings.tls_certfile:
            return None
        base = self.node.node_dir.path
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(
                base / self.settings.tls_certfile, base / self.settings.tls_keyfile
            )
        except (OSError, ssl.SSLError) as exc:
            raise AdapterError(
                f"the console cannot load its TLS certificate or key: {exc}"
            ) from exc
        return context

    async def start(self) -> None:
        self.closing.clear()
        context = self._ssl_context()
        self._runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, shutdown_timeout=2
        )
        await self._runner.setup()
        try:
            self.port = await listen(
                self._runner, self.settings.host, self.settings.port, "the console", "console",
                context,
            )  # fmt: skip
        except AdapterError:
            self._runner = None
            raise
        log.info("console_listening", node=self.node.node_id, url=self.url)
        self._housekeeping = asyncio.create_task(self._keep_house())

    async def _keep_house(self) -> None:
        """Forget timed-out sessions; delete drafts past ``draft_retention_days``."""
        keep = dt.timedelta(days=self.settings.draft_retention_days)
        while not self.closing.is_set():
            self.sessions.sweep(time.monotonic())
            try:
                removed = await self.run(self.node.store.purge_drafts, self.now() - keep)
                if removed:
                    log.info("console_drafts_purged", node=self.node.node_id, count=removed)
            except StoreUnavailable as exc:
                self.node.note_store_failure(exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closing.wait(), 3600)

    @property
    def url(self) -> str:
        scheme = "https" if self.settings.tls_certfile else "http"
        return f"{scheme}://{self.settings.host}:{self.port}"

    async def stop(self) -> None:
        self.closing.set()
        if self._housekeeping is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
            self._housekeeping = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- helpers for the pages ------------------------------------------------------------------

    def session_valid(self, session: Session, user: ConsoleUser | None) -> bool:
        """A session stands only while its account is enabled, with the password and the role
        it was opened with."""
        return (
            user is not None
            and user.disabled_at is None
            and user.password_hash == session.credential
            and user.role == session.role
        )

    def login_lock(self, name: str) -> asyncio.Lock:
        """The lock that makes the sign-in attempts for one name take turns."""
        if len(self._login_locks) > 10_000:  # names that do not exist must not grow it forever
            self._login_locks = {n: lk for n, lk in self._login_locks.items() if lk.locked()}
        return self._login_locks.setdefault(name, asyncio.Lock())

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn`` on the node's store thread (the store is not shared across threads)."""
        return await self.node._run(fn, *args, **kwargs)

    def now(self) -> dt.datetime:
        return self.node.clock()

    async def audit(self, request: web.Request, event: str, **detail: Any) -> None:
        """One console action into the audit chain, with the user who did it."""
        session = request.get(SESSION_KEY)
        user = session.user if session else detail.pop("user", None)
        message_id = detail.pop("message_id", None)
        peer = detail.pop("peer", None)
        entry = AuditEvent(event, self.now(), message_id=message_id, peer=peer,
                           detail={"user": user, **detail})  # fmt: skip
        await self.run(self.node.store.append_audit, [entry])

    def set_session_cookie(self, response: web.StreamResponse, session: Session | None) -> None:
        if session is None:
            response.del_cookie(COOKIE, path="/")
            return
        response.set_cookie(COOKIE, session.session_id, httponly=True, samesite="Strict",
                            secure=self.secure, path="/")  # fmt: skip

    def login_token(self, request: web.Request, response: web.StreamResponse) -> str:
        """The pre-session CSRF token of the sign-in form (double-submit cookie)."""
        token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="Strict",
                            secure=self.secure, path="/login", max_age=3600)  # fmt: skip
        return token

    # -- middlewares ----------------------------------------------------------------------------

    @web.middleware
    async def _headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Security headers on every answer; errors as pages in the user's language."""
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:  # a redirect: raised on, with the headers
                self._secure(request, exc)
                raise
            response = await self.error_page(request, exc.status, exc.reason)
        except StoreUnavailable as exc:
            self.node.note_store_failure(exc)
            response = await self.error_page(
                request, 507, "The node cannot write to its store now; try again shortly."
            )
        except Exception:  # a fault of the node: logged with its trace, shown as a page
            log.exception("console_error", node=self.node.node_id, path=request.path)
            response = await self.error_page(
                request, 500, "Something went wrong in the node; the error is in its log."
            )
        self._secure(request, response)
        return response

    def _secure(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if not request.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        if self.secure:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"

    async def error_page(self, request: web.Request, status: int, reason: str) -> web.Response:
        # rendered outside the context-processor middleware (which may not have run): the
        # page context is added here
        context = await self._context(request)
        return aiohttp_jinja2.render_template(
            "error.html", request, {**context, "status": status, "reason": reason}, status=status
        )

    @web.middleware
    async def _session(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        session = self.sessions.get(request.cookies.get(COOKIE), time.monotonic())
        if session is not None:
            request[SESSION_KEY] = session
        if request.path.startswith(OPEN_PATHS):
            return await handler(request)
        if session is None:
            if request.method == "GET" and not request.path.endswith("/events"):
                raise web.HTTPSeeOther(f"/login?next={_safe_next(request.path_qs)}")
            raise web.HTTPUnauthorized(reason="Your session has ended; sign in again.")
        user = await self.run(self.node.store.console_user, session.user)
        if not self.session_valid(session, user):
            self.sessions.close(session.session_id)  # disabled, reset or changed: sign in again
            if request.method == "GET" and not request.path.endswith("/events"):
                raise web.HTTPSeeOther("/login")
            raise web.HTTPUnauthorized(reason="Your session has ended; sign in again.")
        assert user is not None  # session_valid says so
        request[USER_KEY] = user
        permission = required_permission(request.path)
        if permission is not None and not may(session.role, permission):
            log.warning("console_forbidden", node=self.node.node_id, user=session.user,
                        role=session.role, path=request.path)  # fmt: skip
            raise web.HTTPForbidden(reason="Your role does not give access to this page.")
        return await handler(request)

    @web.middleware
    async def _csrf(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every state-changing request carries the form's token (the sign-in form: the one in
        its cookie); SameSite=Strict cookies are the second line, not the only one."""
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return await handler(request)
        form = await request.post()
        given = form.get("csrf")
        given = given if isinstance(given, str) else None
        if request.path == "/login":
            expected = request.cookies.get(LOGIN_COOKIE)
        else:
            session = request.get(SESSION_KEY)
            expected = session.csrf if session else None
        if expected is None or not same_token(expected, given):
            log.warning("console_csrf_refused", node=self.node.node_id, path=request.path)
            raise web.HTTPForbidden(
                reason="This form is out of date or did not come from this console (CSRF check);"
                " reload the page and try again."
            )
        return await handler(request)

    # -- template context -----------------------------------------------------------------------

    async def _context(self, request: web.Request) -> dict[str, Any]:
        session = request.get(SESSION_KEY)
        t = translator(request)
        role = session.role if session else None
        return {
            "t": t,
            "lang": t.language,
            "dir": t.direction,
            "languages": [(code, NAMES[code]) for code in LANGUAGES],
            "session": session,
            "csrf": session.csrf if session else "",
            "node_id": self.node.node_id,
            "node_name": self.node.own_descriptor.display_name,
            "can_cases": role is not None and may(role, Permission.CASES),
            "can_operate": role is not None and may(role, Permission.OPERATE),
            "can_audit": role is not None and may(role, Permission.AUDIT),
            "path": request.path,
        }


def _safe_next(path: str) -> str:
    """Where sign-in should lead back to, as a query value: a path of this console only
    (:func:`pages.local_path`, which the sign-in applies again to what comes back)."""
    return urllib.parse.quote(pages.local_path(path), safe="")
