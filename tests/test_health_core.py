"""Broker connectivity from probe outcomes (:class:`node.transport.health.BrokerHealth`).

Readiness, ``xnode_broker_connected`` and the outage log lines rest on it: an outage must read
as lost, still unreachable (at most once per reminder period), back — with honest durations —
and one missed probe must not flip readiness.
"""

from __future__ import annotations

from node.transport.health import BrokerHealth, HealthEvent


def names(events: list[HealthEvent]) -> list[str]:
    return [e.name for e in events]


def test_first_answer_connects_once():
    health = BrokerHealth(timeout=15)
    assert not health.connected
    assert health.down_for(3.0) == 0.0  # never connected, never down: nothing to report
    assert health.observe(True, 1.0) == [HealthEvent("broker_connected", "info", {})]
    assert health.connected and health.last_ok == 1.0
    assert health.observe(True, 2.0) == []
    assert health.connected


def test_no_broker_at_start_is_reported_at_once():
    """Never connected: there is no grace period to wait out."""
    health = BrokerHealth(timeout=15)
    events = health.observe(False, 4.0, "connection refused")
    assert events == [
        HealthEvent("broker_lost", "warning", {"silent_seconds": 0, "error": "connection refused"})
    ]
    assert health.connected is False  # readiness shows false, not null
    assert health.down_for(9.0) == 5.0


def test_one_missed_answer_is_not_an_outage():
    health = BrokerHealth(timeout=15)
    health.observe(True, 0.0)
    assert health.observe(False, 5.0, "timeout") == []
    assert health.observe(False, 14.9, "timeout") == []
    assert health.connected
    assert health.down_for(14.9) == 0.0  # readiness still says ok


def test_an_outage_reads_lost_reminders_back():
    health = BrokerHealth(timeout=15, remind_every=60)
    health.observe(True, 0.0)
    health.observe(False, 5.0)
    lost = health.observe(False, 15.0, "refused")
    assert lost == [
        HealthEvent("broker_lost", "warning", {"silent_seconds": 15, "error": "refused"})
    ]
    assert health.connected is False
    assert health.down_for(20.0) == 20.0  # counted from the last answer, not the first miss

    assert health.observe(False, 30.0) == []
    assert health.observe(False, 74.9) == []
    assert health.observe(False, 75.0) == [
        HealthEvent("broker_still_unreachable", "warning",
                    {"down_seconds": 75, "error": "no answer"})
    ]  # fmt: skip
    assert health.observe(False, 134.0) == []
    assert names(health.observe(False, 135.0)) == ["broker_still_unreachable"]

    assert health.observe(True, 140.4) == [
        HealthEvent("broker_back", "info", {"down_seconds": 140})
    ]
    assert health.connected and health.last_ok == 140.4
    assert health.down_for(150.0) == 0.0
    assert health.observe(True, 141.0) == []


def test_each_outage_is_timed_from_its_own_last_answer():
    health = BrokerHealth(timeout=15)
    health.observe(True, 0.0)
    health.observe(False, 5.0)  # a blip...
    assert health.observe(True, 10.0) == []  # ...that was not an outage: nothing to log
    assert health.observe(False, 20.0) == []
    assert health.observe(False, 24.9) == []
    lost = health.observe(False, 25.6)
    assert lost[0].fields["silent_seconds"] == 16  # since 10.0, rounded
    assert health.down_for(30.0) == 20.0

    assert names(health.observe(True, 40.0)) == ["broker_back"]
    health.observe(False, 50.0)
    assert names(health.observe(False, 55.0)) == ["broker_lost"]
    # The reminder clock restarted with the new outage.
    assert health.observe(False, 114.9) == []
    assert names(health.observe(False, 115.0)) == ["broker_still_unreachable"]
    assert names(health.observe(True, 116.0)) == ["broker_back"]


def test_back_after_an_outage_at_start_says_how_long():
    health = BrokerHealth(timeout=15)
    health.observe(False, 2.0)
    assert health.observe(True, 32.0) == [HealthEvent("broker_back", "info", {"down_seconds": 30})]


def test_long_errors_are_cut():
    """Kafka client errors can carry whole metadata dumps; the log line stays short."""
    health = BrokerHealth(timeout=15)
    events = health.observe(False, 0.0, "x" * 1000)
    assert events[0].fields["error"] == "x" * 200
    assert health.observe(False, 60.0, "")[0].fields["error"] == "no answer"
