"""What the middlewares attach to a request, shared by the server and the pages."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from node.adapters.console.sessions import Session

SESSION_KEY = web.RequestKey("session", Session)


def json_event(data: Any) -> bytes:
    """One Server-Sent Event carrying ``data`` as JSON."""
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
