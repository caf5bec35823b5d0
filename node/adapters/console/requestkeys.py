"""What the middlewares attach to a request, and what is read from it, shared by the server
and the pages."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from node.adapters.console.i18n import Translator, negotiate
from node.adapters.console.sessions import Session
from node.store.base import ConsoleUser

SESSION_KEY = web.RequestKey("session", Session)
USER_KEY = web.RequestKey("user", ConsoleUser)  # the signed-in user, read once per request


def translator(request: web.Request) -> Translator:
    """The user's language: the one chosen for the session, else the browser's."""
    session = request.get(SESSION_KEY)
    chosen = session.language if session else None
    return Translator(chosen or negotiate(request.headers.get("Accept-Language")))


def json_event(data: Any) -> bytes:
    """One Server-Sent Event carrying ``data`` as JSON."""
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
