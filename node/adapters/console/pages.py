"""The console's pages: one handler per route, each a thin step between a request, the node
and a template. Decisions live in the pure modules beside this one (accounts, forms,
sessions, threads_view)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
from typing import TYPE_CHECKING, Any

import aiohttp_jinja2
import structlog
from aiohttp import web

from node import audit, checkpoint, codes, envelope, payloads
from node.adapters import requests
from node.adapters.console import drafts, forms, threads_view
from node.adapters.console.accounts import decide_login, handled_kinds, user_kinds
from node.adapters.console.i18n import LANGUAGES, Translator
from node.adapters.console.requestkeys import SESSION_KEY, USER_KEY, json_event, translator
from node.adapters.webhook import ADAPTER as WEBHOOK
from node.policy import Policy
from node.store.base import ConsoleUser, Draft
from node.submit import Request
from node.validation import PayloadInvalid
from node.views import quarantine_item, sent_item

if TYPE_CHECKING:
    from node.adapters.console.server import ConsoleServer
    from node.adapters.console.sessions import Session

log = structlog.get_logger("xnode.console")
PAGE = 200  # rows on a list page
RECENT = 2000  # received messages the inbox filters and counts
MAX_STREAMS = 3  # live views (SSE) open at once per session
SUMMARY_FIELDS = ("title", "subject_matter", "cas_OutgoingReferralDetails", "note", "findings",
                  "results", "reintegration_status", "status")  # fmt: skip


def routes(app: web.Application, console: ConsoleServer) -> None:
    p = Pages(console)
    r = app.router
    r.add_get("/healthz", p.healthz)
    r.add_get("/login", p.login_form)
    r.add_post("/login", p.login)
    r.add_post("/logout", p.logout)
    r.add_post("/language", p.language)
    r.add_get("/", p.home)
    r.add_get("/inbox", p.inbox)
    r.add_get("/messages/{seq:[0-9]{1,18}}", p.message)
    r.add_post("/messages/{seq:[0-9]{1,18}}/ack", p.ack)
    r.add_get("/compose", p.compose_form)
    r.add_post("/compose", p.compose)
    r.add_get("/drafts", p.drafts_page)
    r.add_post("/drafts/{draft_id:[0-9]{1,18}}/delete", p.delete_draft)
    r.add_get("/sent", p.sent)
    r.add_get("/sent/events", p.sent_events)
    r.add_get("/threads/{thread_id}", p.thread)
    r.add_get("/ops", p.ops)
    r.add_get("/ops/peers", p.peers)
    r.add_get("/ops/quarantine", p.quarantine)
    r.add_post("/ops/quarantine/{entry_id:[0-9]{1,18}}/discard", p.discard)
    r.add_get("/ops/webhook", p.webhook)
    r.add_post("/ops/webhook/retry", p.webhook_retry)
    r.add_get("/audit", p.audit)


LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9/_.~=&?:+,-]{0,500}")
ID = re.compile(r"[0-9]{1,18}")


def local_path(text: str) -> str:
    """Where to go after sign-in or a language change: a path of this console only — no
    scheme, no host, no "//", no backslash, no control or white-space character (browsers drop
    tabs and newlines, which would make "/\t/evil" the host "evil"); otherwise "/"."""
    return text if LOCAL_PATH.fullmatch(text) else "/"


def number(text: str | None) -> int | None:
    """An id from a URL or form: ASCII digits only (``"²".isdigit()`` is true), at most 18."""
    return int(text) if text and ID.fullmatch(text) else None


def _session(request: web.Request) -> Session:
    return request[SESSION_KEY]


def _label(t: Translator) -> forms.Label:
    def label(list_name: str, code: str) -> str:
        """A code's label; short codes (H2, B, 3) shown with it, as officers quote them."""
        try:
            text = codes.get(list_name).label(code, t.language)
        except codes.UnknownCode:
            return code
        return text if len(code) > 3 or text.startswith(code) else f"{code}: {text}"

    return label


def _summary(payload: Any) -> str:
    if not isinstance(payload, dict):
        return ""
    for name in SUMMARY_FIELDS:
        value = payload.get(name)
        if isinstance(value, str) and value.strip():
            text = " ".join(value.split())
            return text if len(text) <= 120 else text[:117] + "…"
    return ""


class Pages:
    def __init__(self, console: ConsoleServer) -> None:
        self.c = console
        self.node = console.node

    # -- what the user may handle ---------------------------------------------------------------

    def node_kinds(self) -> tuple[str, ...]:
        config = self.node.config
        return handled_kinds(Policy.from_config(config.policy.rules), config.node.roles)

    def kinds(self, request: web.Request) -> tuple[str, ...]:
        """What the signed-in user may handle (the middleware has read the user)."""
        return user_kinds(request[USER_KEY], self.node_kinds())

    def peer_rows(self) -> list[dict[str, Any]]:
        revoked = self.node.peer_directory.revoked
        return [
            {"node_id": d.node_id, "name": d.display_name, "country": d.country,
             "roles": ", ".join(d.roles), "fingerprint": d.fingerprint,
             "revoked": d.node_id in revoked}
            for d in sorted(self.node.peers.values(), key=lambda d: (d.country, d.node_id))
        ]  # fmt: skip

    # -- sign-in --------------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        return self._login_page(request, None, 200)

    def _login_page(
        self, request: web.Request, error: str | None, status: int,
        next_path: str | None = None, name: str = "",
    ) -> web.Response:  # fmt: skip
        """The sign-in form; after a refusal it keeps the name and where the user was going."""
        response = web.Response()  # only carries the cookie
        token = self.c.login_token(request, response)
        page = aiohttp_jinja2.render_template(
            "login.html", request,
            {"login_csrf": token, "error": error, "name": name,
             "next": next_path or local_path(request.query.get("next", "/"))},
            status=status,
        )  # fmt: skip
        for morsel in response.cookies.values():
            page.cookies[morsel.key] = morsel
        return page

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        name, password = str(form.get("name", "")).strip().lower(), str(form.get("password", ""))
        next_path = local_path(str(form.get("next", "/")))
        # One attempt per name at a time: each reads the failure count the previous one wrote,
        # so concurrent guesses cannot share one count (nor a success reset theirs).
        async with self.c.login_lock(name), self.c.argon2_slots:
            return await self._login(request, name, password, next_path)

    async def _login(
        self, request: web.Request, name: str, password: str, next_path: str
    ) -> web.StreamResponse:
        user: ConsoleUser | None = await self.c.run(self.node.store.console_user, name)
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(
            None, self.c.passwords.verify, user.password_hash if user else None, password
        )
        settings, now = self.c.settings, self.c.now()
        decision = decide_login(user, ok, now, settings.max_failed_logins,
                                dt.timedelta(minutes=settings.lockout_minutes))  # fmt: skip
        t = translator(request)
        if user is None:
            await self.c.audit(request, "console-login-failed", reason="unknown-user")
            log.warning("console_login_failed", node=self.node.node_id, reason="unknown-user")
            return self._login_page(
                request, t("The user name or password is wrong."), 401, next_path, name
            )
        events = []
        if decision.ok:
            events.append(audit.AuditEvent("console-login", now, detail={"user": user.name}))
        else:
            events.append(
                audit.AuditEvent(
                    "console-login-failed",
                    now,
                    detail={"user": user.name, "reason": decision.reason},
                )
            )
            if decision.just_locked:
                events.append(audit.AuditEvent("console-locked", now, detail={
                    "user": user.name, "until": decision.locked_until.isoformat()
                    if decision.locked_until else None}))  # fmt: skip
        await self.c.run(self.node.store.update_console_user, user.name, events,
                         **{"failed_logins": decision.failed_logins,
                            "locked_until": decision.locked_until})  # fmt: skip
        if not decision.ok:
            log.warning("console_login_failed", node=self.node.node_id, user=user.name,
                        reason=decision.reason)  # fmt: skip
            if decision.reason == "locked" or decision.just_locked:
                message = t("This account is locked after repeated failed sign-ins. Try again"
                            " in {minutes} minutes, or ask an operator to reset it.",
                            minutes=settings.lockout_minutes)  # fmt: skip
            elif decision.reason == "disabled":
                message = t("This account is disabled. Ask an operator.")
            else:
                message = t("The user name or password is wrong.")
            return self._login_page(request, message, 401, next_path, name)
        session = self.c.sessions.open(
            user.name, user.role, time.monotonic(), user.language, user.password_hash
        )
        log.info("console_login", node=self.node.node_id, user=user.name, role=user.role)
        response = web.HTTPSeeOther(next_path)
        self.c.set_session_cookie(response, session)
        response.del_cookie("xnode_login", path="/login")
        raise response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        session = _session(request)
        await self.c.audit(request, "console-logout")
        self.c.sessions.close(session.session_id)
        response = web.HTTPSeeOther("/login")
        self.c.set_session_cookie(response, None)
        raise response

    async def language(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        language = str(form.get("language", ""))
        if language not in LANGUAGES:
            raise web.HTTPBadRequest(reason=f"language: one of {', '.join(LANGUAGES)}")
        session = _session(request)
        session.language = language
        event = audit.AuditEvent("console-action", self.c.now(),
                                 detail={"user": session.user, "action": "language",
                                         "language": language})  # fmt: skip
        await self.c.run(self.node.store.update_console_user, session.user, [event],
                         language=language)  # fmt: skip
        raise web.HTTPSeeOther(local_path(str(form.get("back", "/"))))

    async def home(self, request: web.Request) -> web.StreamResponse:
        role = _session(request).role
        target = {"officer": "/inbox", "supervisor": "/inbox", "operator": "/ops"}.get(
            role, "/audit"
        )
        raise web.HTTPSeeOther(target)

    # -- inbox and messages ---------------------------------------------------------------------

    async def inbox(self, request: web.Request) -> web.StreamResponse:
        kinds = self.kinds(request)
        q = request.query
        kind = q.get("kind", "") if q.get("kind") in kinds else ""  # one the user handles
        sender, priority, unread_only = (
            q.get("sender", ""),
            q.get("priority", ""),
            bool(q.get("unread")),
        )
        since, until = q.get("since", ""), q.get("until", "")
        # the newest RECENT messages of every kind the user handles are counted (the unread
        # count of each kind, whatever the filter) and filtered; older ones stay reachable
        # through their case pages and the API
        messages = await self.c.run(self.node.store.inbox_recent, list(kinds) or ["-"], RECENT)
        read = await self.c.run(self.node.store.read_seqs, _session(request).user)
        unread_counts = {k: 0 for k in kinds}
        rows: list[dict[str, Any]] = []
        for m in messages:
            unread = m.seq not in read
            if unread and m.kind in unread_counts:
                unread_counts[m.kind] += 1
            day = m.received_at.date().isoformat()
            if (
                (kind and m.kind != kind)
                or (sender and m.sender != sender)
                or (unread_only and not unread)
                or (since and day < since)
                or (until and day > until)
                or len(rows) >= PAGE  # the page is full: the loop goes on only to count
            ):
                continue  # fmt: skip
            msg_priority = self._priority(m.envelope)  # the header, for rows that may be shown
            if priority and msg_priority != priority:
                continue
            item = self.node.inbox_item(m)
            peer = self.node.peers.get(m.sender)
            rows.append({**item, "unread": unread, "priority": msg_priority,
                         "summary": _summary(item.get("payload")),
                         "sender_name": peer.display_name if peer else m.sender,
                         "sender_country": peer.country if peer else ""})  # fmt: skip
        return aiohttp_jinja2.render_template("inbox.html", request, {
            "rows": rows, "kinds": kinds, "unread_counts": unread_counts,
            "filters": {"kind": kind, "sender": sender, "priority": priority,
                        "unread": unread_only, "since": since, "until": until},
            "senders": sorted({m.sender for m in messages}),
            "priorities": envelope.PRIORITIES,
        })  # fmt: skip

    def _priority(self, data: bytes) -> str:
        """A stored envelope's priority (its header; nothing is decrypted)."""
        try:
            return envelope.parse(self.node.registry, data, max(len(data), 1)).header.priority
        except envelope.EnvelopeError:
            return "normal"

    async def _received(self, request: web.Request) -> tuple[Any, dict[str, Any]]:
        seq = int(request.match_info["seq"])
        message = await self.c.run(self.node.store.inbox_at, seq)
        if message is None or message.kind not in self.kinds(request):
            raise web.HTTPNotFound(reason="No such message, or not one your role may read.")
        return message, self.node.inbox_item(message)

    async def message(self, request: web.Request) -> web.StreamResponse:
        message, item = await self._received(request)
        session = _session(request)
        await self.c.run(self.node.store.mark_read, session.user, message.seq)
        await self.c.audit(request, "console-action", action="read", message_id=message.message_id,
                           peer=message.sender)  # fmt: skip
        t = translator(request)
        peer = self.node.peers.get(message.sender)
        tree = None
        if item.get("payload") is not None:
            tree = forms.build(self.node.registry, payloads.full_name(item["payload_schema"]),
                               item["payload"], _label(t))  # fmt: skip
        replies = threads_view.replies(message.kind, item["payload_schema"])
        return aiohttp_jinja2.render_template("message.html", request, {
            "m": item, "tree": tree, "peer": peer, "replies": replies,
            "handling": item["handling_code"],
            "handling_label": _label(t)("handling_code", item["handling_code"]),
            "conditions": (item.get("payload") or {}).get("handling", {}).get("conditions"),
        })  # fmt: skip

    async def ack(self, request: web.Request) -> web.StreamResponse:
        message, _ = await self._received(request)
        await self.c.run(self.node.store.ack, message.seq, self.c.now())
        await self.c.audit(request, "console-action", action="acknowledge",
                           message_id=message.message_id, peer=message.sender)  # fmt: skip
        raise web.HTTPSeeOther(f"/messages/{message.seq}?acked=1")

    # -- compose --------------------------------------------------------------------------------

    def _schemas(self, kinds: tuple[str, ...]) -> list[tuple[str, str, str]]:
        return [(k, payloads.short_name(s), f"{k}:{payloads.short_name(s)}")
                for k in kinds for s in payloads.payloads_of(k)
                if payloads.short_name(s) not in payloads.PROCEDURAL]  # fmt: skip

    async def compose_form(self, request: web.Request) -> web.StreamResponse:
        kinds = self.kinds(request)
        q = request.query
        state: dict[str, Any] = {"kind": q.get("kind", kinds[0] if kinds else ""),
                                 "schema": q.get("schema", ""), "to": [], "thread_id": "",
                                 "in_reply_to": "", "priority": "normal", "draft_id": 0,
                                 "payload": {}}  # fmt: skip
        reply_to, draft_id = number(q.get("reply_to")), number(q.get("draft"))
        if ("reply_to" in q and reply_to is None) or ("draft" in q and draft_id is None):
            raise web.HTTPNotFound(reason="No such message or draft.")
        if reply_to is not None:
            message = await self.c.run(self.node.store.inbox_at, reply_to)
            if message is None or message.kind not in kinds:
                raise web.HTTPNotFound(reason="No such message to reply to.")
            item = self.node.inbox_item(message)
            state.update(threads_view.reply_state(item, q.get("schema")))
        elif draft_id is not None:
            draft = await self.c.run(self.node.store.draft, draft_id, _session(request).user)
            if draft is None:
                raise web.HTTPNotFound(reason="No such draft.")
            try:
                state.update(drafts.open_draft(draft.sealed, draft.owner, self.node._encryption))
            except drafts.DraftLost as exc:
                raise web.HTTPGone(reason=f"This draft can no longer be opened: {exc}") from exc
            state["draft_id"] = draft.draft_id
        if state["kind"] not in kinds:
            raise web.HTTPForbidden(reason="Your role does not let you send this kind.")
        return self._compose_page(request, state, {}, kinds)

    def _compose_page(self, request: web.Request, state: dict[str, Any],
                      errors: dict[str, str], kinds: tuple[str, ...],
                      status: int = 200, notice: str | None = None) -> web.Response:  # fmt: skip
        t = translator(request)
        kind = state["kind"]
        schema = state["schema"] or payloads.DEFAULT_PAYLOAD[kind]
        if payloads.full_name(schema) not in payloads.payloads_of(kind):
            schema = payloads.DEFAULT_PAYLOAD[kind]
        state["schema"] = schema
        payload_errors = {forms.error_name(k) if k.startswith("payload") else k: v
                          for k, v in errors.items()}  # fmt: skip
        tree = forms.build(self.node.registry, payloads.full_name(schema), state["payload"],
                           _label(t), {k: v for k, v in payload_errors.items()})  # fmt: skip
        summary = [{"name": k, "message": v,
                    "anchor": forms.Field(k, "", "", False).input_id if k not in ("", "form")
                    else ""} for k, v in payload_errors.items()]  # fmt: skip
        return aiohttp_jinja2.render_template("compose.html", request, {
            "state": state, "tree": tree, "errors": payload_errors, "summary": summary,
            "kinds": kinds, "schemas": self._schemas(kinds), "peers": self.peer_rows(),
            "priorities": envelope.PRIORITIES, "gates": threads_view.gates(schema),
            "notice": notice,
        }, status=status)  # fmt: skip

    async def compose(self, request: web.Request) -> web.StreamResponse:
        kinds = self.kinds(request)
        posted = await request.post()
        form = forms.Form([(k, v) for k, v in posted.items() if isinstance(v, str)])
        upload = posted.get("_import_file")
        kind = form.get("_kind")
        if kind not in kinds:
            raise web.HTTPForbidden(reason="Your role does not let you send this kind.")
        schema = form.get("_schema")
        if payloads.full_name(schema) not in payloads.payloads_of(kind):
            schema = payloads.DEFAULT_PAYLOAD[kind]
        action = form.get("_action") or "send"
        state: dict[str, Any] = {
            "kind": kind, "schema": schema, "to": form.all("_to"),
            "thread_id": form.get("_thread_id"), "in_reply_to": form.get("_in_reply_to"),
            "priority": form.get("_priority") or "normal",
            "draft_id": number(form.get("_draft_id")) or 0,
            "payload": forms.parse(self.node.registry, payloads.full_name(schema), form,
                                   keep_empty=action != "send"),
        }  # fmt: skip
        if action.startswith(("add:", "remove:")):
            state["payload"] = forms.apply_operation(state["payload"], action)
            return self._compose_page(request, state, {}, kinds)
        if action == "switch":
            chosen = form.get("_choose")
            if ":" in chosen:
                state["kind"], state["schema"] = chosen.split(":", 1)
                if state["kind"] not in kinds:
                    raise web.HTTPForbidden(reason="Your role does not let you send this kind.")
            state["payload"] = {"handling": state["payload"].get("handling", {})}
            return self._compose_page(request, state, {}, kinds)
        if action == "import":
            return self._import(request, state, upload, kinds)
        if action == "save":
            return await self._save_draft(request, state, kinds)
        return await self._send(request, state, kinds)

    def _import(self, request: web.Request, state: dict[str, Any], upload: Any,
                kinds: tuple[str, ...]) -> web.Response:  # fmt: skip
        """Fill the form from a JSON file: a payload, or a request as a local system sends it
        to the API ({kind, to, schema, payload}). Nothing is sent; the person checks it first."""
        t = translator(request)
        is_file = isinstance(upload, web.FileField)
        data = upload.file.read(self.node.config.api.max_body_bytes + 1) if is_file else b""
        try:
            if not data:
                raise requests.Refusal(400, t("Choose a JSON file to load."), "_import_file")
            if len(data) > self.node.config.api.max_body_bytes:
                raise requests.Refusal(413, t("The file is too large."), "_import_file")
            document = requests.parse_json(data)
            if not isinstance(document, dict):
                raise requests.Refusal(422, t("The file must hold a JSON object."), "_import_file")
            requests.check_text(document)  # depth, and no lone surrogates (I-JSON)
        except requests.Refusal as exc:
            return self._compose_page(
                request, state, {"_import_file": exc.error}, kinds, exc.status
            )
        if isinstance(document.get("payload"), dict):
            if document.get("kind") in kinds:
                state["kind"] = document["kind"]
            if isinstance(document.get("schema"), str):
                state["schema"] = document["schema"]
            to = document.get("to")
            if isinstance(to, list):
                state["to"] = [x for x in to if isinstance(x, str)]
            document = document["payload"]
        state["payload"] = document
        return self._compose_page(request, state, {}, kinds, notice=t(
            "Loaded from the file. Check every field, then send."))  # fmt: skip

    async def _save_draft(self, request: web.Request, state: dict[str, Any],
                          kinds: tuple[str, ...]) -> web.StreamResponse:  # fmt: skip
        session = _session(request)
        t = translator(request)
        own_keys = self.node._encryption
        current = self.node.own_descriptor.encryption_key_at(self.c.now())
        if current is not None and current.key_id in own_keys:
            newest = own_keys[current.key_id]
        else:
            newest = next(iter(own_keys.values()))
        sealed = drafts.seal({k: v for k, v in state.items() if k != "draft_id"}, session.user,
                             newest)  # fmt: skip
        # everything, the title shown in the list included, stays inside the sealed draft:
        # case data (a name in an alert's title) must not rest in the store in plain text
        draft = Draft(state["draft_id"], session.user, state["kind"], state["schema"], sealed,
                      self.c.now())  # fmt: skip
        event = audit.AuditEvent("console-action", self.c.now(), detail={
            "user": session.user, "action": "save-draft", "kind": state["kind"]})  # fmt: skip
        state["draft_id"] = await self.c.run(self.node.store.save_draft, draft, event)
        return self._compose_page(request, state, {}, kinds, notice=t("Draft saved."))

    async def _send(self, request: web.Request, state: dict[str, Any],
                    kinds: tuple[str, ...]) -> web.StreamResponse:  # fmt: skip
        t = translator(request)
        full = payloads.full_name(state["schema"])
        tree = forms.build(self.node.registry, full, state["payload"], _label(t))
        errors = {f"payload.{k}": t("This field is required.")
                  for k, v in forms.missing_required(tree, state["payload"]).items()}  # fmt: skip
        if not state["to"]:
            errors["to"] = t("Choose at least one recipient.")
        if errors:
            return self._compose_page(request, state, errors, kinds, status=422)
        submission = Request(
            kind=state["kind"], to=state["to"], payload=state["payload"], schema=state["schema"],
            thread_id=state["thread_id"] or None, in_reply_to=state["in_reply_to"] or None,
            priority=state["priority"] if state["priority"] in envelope.PRIORITIES else "normal",
        )  # fmt: skip
        try:
            message_id = await requests.send(self.node, submission)
        except requests.Refusal as exc:
            cause = exc.__cause__
            if isinstance(cause, PayloadInvalid):
                errors = {p.path: p.message for p in cause.problems}
            else:
                errors = {exc.field or "form": exc.error}
            log.info("console_send_refused", node=self.node.node_id, user=_session(request).user,
                     field=exc.field, status=exc.status)  # fmt: skip
            return self._compose_page(request, state, errors, kinds, status=422)
        await self.c.audit(request, "console-action", action="send", message_id=message_id,
                           kind=state["kind"], schema=state["schema"])  # fmt: skip
        if state["draft_id"]:
            await self.c.run(self.node.store.delete_draft, state["draft_id"],
                             _session(request).user)  # fmt: skip
        raise web.HTTPSeeOther(f"/sent?sent={message_id}")

    async def drafts_page(self, request: web.Request) -> web.StreamResponse:
        kinds = self.kinds(request)
        t = translator(request)
        rows = []
        for d in await self.c.run(self.node.store.drafts, _session(request).user):
            if d.kind not in kinds:
                continue  # a kind the user no longer handles
            try:
                state = drafts.open_draft(d.sealed, d.owner, self.node._encryption)
                title = _summary(state.get("payload")) or t("(untitled)")
            except drafts.DraftLost:
                title = t("(can no longer be opened)")
            rows.append({"draft_id": d.draft_id, "schema_name": d.schema_name,
                         "updated_at": d.updated_at, "title": title})  # fmt: skip
        return aiohttp_jinja2.render_template("drafts.html", request, {"rows": rows})

    async def delete_draft(self, request: web.Request) -> web.StreamResponse:
        session = _session(request)
        event = audit.AuditEvent(
            "console-action", self.c.now(), detail={"user": session.user, "action": "delete-draft"}
        )
        await self.c.run(self.node.store.delete_draft, int(request.match_info["draft_id"]),
                         session.user, event)  # fmt: skip
        raise web.HTTPSeeOther("/drafts")

    # -- sent and threads -----------------------------------------------------------------------

    async def _sent_rows(self, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
        found = await self.c.run(self.node.store.sent_messages, list(kinds) or ["-"], PAGE)
        return [sent_item(m, s, self.node.node_id) for m, s in found]

    async def sent(self, request: web.Request) -> web.StreamResponse:
        rows = await self._sent_rows(self.kinds(request))
        return aiohttp_jinja2.render_template("sent.html", request, {
            "rows": rows, "just_sent": request.query.get("sent", "")})  # fmt: skip

    async def sent_events(self, request: web.Request) -> web.StreamResponse:
        """Per-recipient states of the sent list, each time a delivery ends (SSE). The stream
        ends with the session: signed out, timed out (it does not count as use), or the account
        disabled, its password reset or its role changed. A few per session at most."""
        kinds = self.kinds(request)
        session = _session(request)
        if self.c.streams.get(session.session_id, 0) >= MAX_STREAMS:
            raise web.HTTPTooManyRequests(reason="Too many open live views; close a tab.")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-store"})  # fmt: skip
        await response.prepare(request)
        self.c.streams[session.session_id] = self.c.streams.get(session.session_id, 0) + 1
        try:
            last: Any = None
            while not self.c.closing.is_set():
                if not await self._still_signed_in(session):
                    break
                rows = await self._sent_rows(kinds)
                snapshot = {
                    r["id"]: {"status": r["status"], "recipients": r["recipients"]} for r in rows
                }
                try:
                    await response.write(json_event(snapshot) if snapshot != last else b": -\n\n")
                except (ConnectionResetError, RuntimeError):
                    break  # the browser went away
                last = snapshot
                await self.node.status_changed.wait(2.0)
        finally:
            left = self.c.streams.get(session.session_id, 1) - 1
            if left > 0:
                self.c.streams[session.session_id] = left
            else:
                self.c.streams.pop(session.session_id, None)
        return response

    async def _still_signed_in(self, session: Session) -> bool:
        if self.c.sessions.peek(session.session_id, time.monotonic()) is None:
            return False
        user = await self.c.run(self.node.store.console_user, session.user)
        return self.c.session_valid(session, user)

    async def thread(self, request: web.Request) -> web.StreamResponse:
        kinds = self.kinds(request)
        sent, received = await self.node.thread(request.match_info["thread_id"])
        sent = [s for s in sent if s["kind"] in kinds]
        received = [r for r in received if r["kind"] in kinds]
        if not sent and not received:
            raise web.HTTPNotFound(reason="No such case, or none your role may read.")
        t = translator(request)
        timeline = threads_view.timeline(sent, received)
        progress = threads_view.repatriation_progress(timeline)
        return aiohttp_jinja2.render_template("thread.html", request, {
            "timeline": timeline, "progress": progress,
            "thread_id": request.match_info["thread_id"], "label": _label(t)})  # fmt: skip

    # -- operators and auditors -----------------------------------------------------------------

    async def ops(self, request: web.Request) -> web.StreamResponse:
        checks = await self.node.readiness()
        snapshot = await self.c.run(self.node.store.snapshot)
        return aiohttp_jinja2.render_template("ops.html", request, {
            "checks": checks, "snapshot": snapshot, "api_url": self.node.api_url,
            "own": self.node.own_descriptor})  # fmt: skip

    async def peers(self, request: web.Request) -> web.StreamResponse:
        now = time.time()
        rows = []
        for row in self.peer_rows():
            seen = self.node.last_seen.get(row["node_id"])
            rows.append({**row, "seen_ago": None if seen is None else int(now - seen)})
        return aiohttp_jinja2.render_template("peers.html", request, {"rows": rows})

    async def quarantine(self, request: web.Request) -> web.StreamResponse:
        entries = await self.c.run(self.node.store.quarantined, PAGE)
        return aiohttp_jinja2.render_template("quarantine.html", request, {
            "rows": [quarantine_item(q) for q in entries]})  # fmt: skip

    async def discard(self, request: web.Request) -> web.StreamResponse:
        entry_id = int(request.match_info["entry_id"])
        session = _session(request)
        event = audit.AuditEvent(
            "console-action",
            self.c.now(),
            detail={"user": session.user, "action": "discard-quarantined", "entry": entry_id},
        )
        found = await self.c.run(self.node.store.discard_quarantined, entry_id, event)
        if not found:
            raise web.HTTPNotFound(reason="No such quarantine entry.")
        raise web.HTTPSeeOther("/ops/quarantine?discarded=1")

    async def webhook(self, request: web.Request) -> web.StreamResponse:
        rows = await self.c.run(self.node.store.adapter_failed, WEBHOOK, PAGE)
        return aiohttp_jinja2.render_template("webhook.html", request, {
            "rows": rows, "configured": bool(self.node.config.webhook.url)})  # fmt: skip

    async def webhook_retry(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        message_id = str(form.get("message_id", "")) or None
        count = await self.c.run(self.node.store.retry_adapter, WEBHOOK, message_id, self.c.now())
        await self.c.audit(request, "console-action", action="webhook-retry",
                           message_id=message_id, count=count)  # fmt: skip
        raise web.HTTPSeeOther(f"/ops/webhook?retried={count}")

    async def audit(self, request: web.Request) -> web.StreamResponse:
        entries = await self.c.run(self.node.store.audit_entries)
        report = await self.c.run(audit.verify, entries)  # the chain may be long: off the loop
        own = self.node.audit_checkpoints.own
        verdict = None
        if report.ok:
            verdict = checkpoint.assess(report.length, {e.seq: e.hash for e in entries},
                                        own, [])  # fmt: skip
        recent = [
            {"seq": e.seq, "event": e.event.event, "at": e.event.at, "message_id":
             e.event.message_id, "peer": e.event.peer,
             "detail": json.dumps(dict(e.event.detail), ensure_ascii=False)[:200]}
            for e in reversed(entries[-PAGE:])
        ]  # fmt: skip
        return aiohttp_jinja2.render_template("audit.html", request, {
            "report": report, "verdict": verdict, "recent": recent})  # fmt: skip
