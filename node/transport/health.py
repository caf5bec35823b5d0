"""Is the broker there? Decided from probe results, without I/O.

Readiness and ``xnode_broker_connected`` must be measurements, not a flag set once at start: the
running node asks the broker for metadata every ``delivery.broker_check_seconds`` and feeds each
answer (or its absence) to :class:`BrokerHealth`. The broker counts as lost once nothing has
answered for ``delivery.broker_timeout_seconds``, and as back at the first answer.

It also decides what to log, so that an outage reads as three lines — lost, still unreachable
(at most once a minute), back — instead of the Kafka client's dozens of lines a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HealthEvent:
    """A line for the log: ``level`` is "info" or "warning"."""

    name: str
    level: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class BrokerHealth:
    """Connectivity from probe outcomes at monotonic times (seconds)."""

    timeout: float
    remind_every: float = 60.0
    connected: bool = False
    last_ok: float | None = None
    down_since: float | None = None
    _last_report: float | None = None
    _reported_down: bool = False

    def observe(self, ok: bool, now: float, error: str | None = None) -> list[HealthEvent]:
        """Record one probe outcome; return the log lines it calls for (often none)."""
        if ok:
            return self._answered(now)
        return self._unanswered(now, error)

    def _answered(self, now: float) -> list[HealthEvent]:
        self.last_ok = now
        events: list[HealthEvent] = []
        if not self.connected:
            if self._reported_down and self.down_since is not None:
                down = round(now - self.down_since)
                events.append(HealthEvent("broker_back", "info", {"down_seconds": down}))
            else:
                events.append(HealthEvent("broker_connected", "info"))
        self.connected = True
        self.down_since = None
        self._reported_down = False
        self._last_report = None
        return events

    def _unanswered(self, now: float, error: str | None) -> list[HealthEvent]:
        if self.down_since is None:
            self.down_since = self.last_ok if self.last_ok is not None else now
        silent_for = now - self.down_since
        detail: dict[str, Any] = {"error": (error or "no answer")[:200]}
        if self.connected and (self.last_ok is None or now - self.last_ok < self.timeout):
            return []  # one missed answer is not an outage yet
        self.connected = False
        if not self._reported_down:
            self._reported_down = True
            self._last_report = now
            return [HealthEvent("broker_lost", "warning", {"silent_seconds": round(silent_for),
                                                            **detail})]  # fmt: skip
        if self._last_report is not None and now - self._last_report >= self.remind_every:
            self._last_report = now
            return [
                HealthEvent("broker_still_unreachable", "warning",
                            {"down_seconds": round(silent_for), **detail})
            ]  # fmt: skip
        return []

    def down_for(self, now: float) -> float:
        """Seconds without an answer (0 while connected)."""
        return 0.0 if self.connected or self.down_since is None else now - self.down_since
