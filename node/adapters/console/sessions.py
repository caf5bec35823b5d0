"""Console sessions: server-side, in memory, with idle and absolute timeouts.

The cookie holds only a random session id (256 bits); the CSRF token is a second random
value bound to the session and compared in constant time. Sessions do not survive a restart
of the node: people sign in again, which is the safe failure. Pure: time is passed in.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass


@dataclass
class Session:
    session_id: str
    user: str
    role: str
    csrf: str
    created: float
    last_seen: float
    language: str | None = None
    # the password hash the session was opened with: a reset (or another hash) ends it
    credential: str = ""


class SessionBook:
    """Live sessions by id. ``idle`` and ``lifetime`` are in seconds."""

    def __init__(self, idle: float, lifetime: float) -> None:
        self.idle = idle
        self.lifetime = lifetime
        self._sessions: dict[str, Session] = {}

    def open(
        self, user: str, role: str, now: float, language: str | None = None, credential: str = ""
    ) -> Session:
        session = Session(
            session_id=secrets.token_urlsafe(32), user=user, role=role,
            csrf=secrets.token_urlsafe(32), created=now, last_seen=now, language=language,
            credential=credential,
        )  # fmt: skip
        self._sessions[session.session_id] = session
        return session

    def get(self, session_id: str | None, now: float) -> Session | None:
        """The live session with this id, touched; None (and forgotten) once it timed out."""
        session = self.peek(session_id, now) if session_id else None
        if session is not None:
            session.last_seen = now
        return session

    def peek(self, session_id: str, now: float) -> Session | None:
        """The session if it is still live, without counting this as use (a live stream is not
        a person at the keyboard, and must not keep an idle session open)."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if now - session.last_seen > self.idle or now - session.created > self.lifetime:
            del self._sessions[session_id]
            return None
        return session

    def close(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def sweep(self, now: float) -> None:
        for session_id in list(self._sessions):
            self.get(session_id, now)

    def __len__(self) -> int:
        return len(self._sessions)


def same_token(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a CSRF token; a missing one never matches."""
    if not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
