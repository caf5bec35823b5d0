"""Heartbeats a peer is believed on (node/control.py): signed by the key its descriptor names,
and not dated beyond the clock-skew window."""

from __future__ import annotations

import datetime as dt

import pytest

from node import control
from tests.conftest import NOW, make_node, peers_of

SKEW = dt.timedelta(minutes=5)


@pytest.fixture
def zm():
    return make_node("zm-police")


def beat(node, sent_at=NOW, key_id=None) -> control.Heartbeat:
    return control.Heartbeat(node.node_id, sent_at, 1, key_id or node.identity.key_id)


def test_a_heartbeat_within_the_window_is_read(registry, zm):
    raw = control.issue_heartbeat(registry, zm.identity, beat(zm))
    heartbeat = control.read_control(registry, raw, peers_of(zm))
    assert heartbeat == beat(zm)
    control.check_heartbeat_time(beat(zm, NOW + SKEW), NOW, SKEW)  # at the edge: accepted


def test_a_heartbeat_from_beyond_the_window_is_refused(zm):
    with pytest.raises(control.ControlRejected) as err:
        control.check_heartbeat_time(beat(zm, NOW + SKEW + dt.timedelta(milliseconds=1)), NOW,
                                     SKEW)  # fmt: skip
    assert err.value.reason == "clock-skew" and "zm-police" in str(err.value)


def test_a_heartbeat_naming_another_key_is_refused(registry, zm):
    raw = control.issue_heartbeat(registry, zm.identity, beat(zm, key_id="ab" * 8))
    with pytest.raises(control.ControlRejected) as err:
        control.read_control(registry, raw, peers_of(zm))
    assert err.value.reason == "key-mismatch" and zm.identity.key_id in str(err.value)


def test_read_heartbeat_takes_heartbeats_only(registry, zm):
    raw = control.issue_heartbeat(registry, zm.identity, beat(zm))
    assert control.read_heartbeat(registry, raw, peers_of(zm)) == beat(zm)
