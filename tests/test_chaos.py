"""The chaos benchmark (bench/chaos.py), short enough for every test run.

Two `xnode run` processes under a steady load through their HTTP APIs, a broker process killed
with SIGKILL and restarted empty twice, a node killed with SIGKILL and restarted once; then every
sent message must be delivered and receipted, handed to the recipient's local side exactly once,
and nothing may be left open after the drain. The account itself (what counts as lost,
duplicated, open) is checked on its own first, so the long test cannot pass by counting wrong.
"""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from bench.chaos import (
    BROKER,
    Observed,
    Options,
    Sent,
    account,
    log_findings,
    percentile,
    plan_faults,
    render,
    run,
    timeline,
)

NODES = ("zm-police", "zw-police")
# Seed 7 over a minute, a fault every 15 s on average: broker, zw-police (the receiver of
# zm-police's messages), broker again — checked below so a change of plan_faults shows here.
SEED, MINUTES, INTERVAL = 7, 1.0, 15.0


def test_fault_plan_is_reproducible_and_within_bounds():
    plan = plan_faults(SEED, MINUTES * 60, INTERVAL, NODES)
    assert plan == plan_faults(SEED, MINUTES * 60, INTERVAL, NODES)
    targets = Counter(BROKER if f.target == BROKER else "node" for f in plan)
    assert targets[BROKER] >= 2 and targets["node"] >= 1, plan
    for fault in plan:
        assert 0 < fault.at < MINUTES * 60
        assert 1 <= fault.down <= (8 if fault.target == BROKER else 5)
    for earlier, later in itertools.pairwise(plan):
        assert later.at >= earlier.at + earlier.down  # faults never overlap


def test_account_tells_lost_duplicated_and_open_apart():
    sent = [
        Sent("m1", "zm-police", ("zw-police", "mw-police"), "api"),
        Sent("m2", "zw-police", ("zm-police",), "cli"),
        Sent("m3", "zm-police", ("zw-police",), "api"),
    ]
    seen = Observed(
        state={("m1", "zw-police"): "delivered", ("m1", "mw-police"): "sent",
               ("m2", "zm-police"): "delivered", ("m3", "zw-police"): "queued"},
        created_at={"m1": 100.0, "m2": 200.0, "m3": 300.0},
        # m1 reached zw-police once; m2 reached zm-police's inbox once but was handed over twice
        inbox_rows={("m1", "zw-police"): 1, ("m2", "zm-police"): 1},
        handed_over={("m1", "zw-police"): 1, ("m2", "zm-police"): 2},
        received_at={("m1", "zw-police"): 100.5, ("m2", "zm-police"): 203.0},
    )  # fmt: skip
    a = account(sent, seen)
    assert (a.messages, a.pairs, a.delivered) == (3, 4, 2)
    assert (a.received_once, a.duplicated, a.extra_copies) == (1, 1, 1)
    assert a.lost_pairs == [("m1", "mw-police"), ("m3", "zw-police")]
    assert a.duplicated_pairs == [("m2", "zm-police")]
    assert a.still_open == 2 and sorted(a.delays) == [0.5, 3.0]
    assert not a.ok
    rows = timeline(sent, seen, load_began=100.0, width=100.0)  # m1 at 0 s, m2 at 100 s, m3 ...
    assert [(w.start, w.pairs, w.received, w.delivered, w.max_delay) for w in rows] == [
        (0.0, 2, 1, 1, 0.5), (100.0, 1, 1, 1, 3.0), (200.0, 1, 0, 0, 0.0),
    ]  # fmt: skip
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0 and percentile([], 0.99) == 0.0


def test_log_findings_count_tracebacks_errors_and_warnings():
    lines = [
        '{"node": "zm-police", "event": "publish_failed", "level": "warning"}',
        '{"node": "zm-police", "event": "publish_failed", "level": "warning"}',
        '{"node": "zm-police", "event": "loop_crashed", "level": "error",'
        ' "exception": "Traceback (most recent call last):\\n  ..."}',
        "Traceback (most recent call last):",
        '{"node": "zm-police", "event": "message_received", "level": "info"}',
    ]
    assert log_findings(lines) == Counter({
        "warning publish_failed": 2, "error loop_crashed": 1,
        "Traceback (loop_crashed)": 1, "Traceback": 1,
    })  # fmt: skip


@pytest.mark.slow
def test_two_nodes_under_broker_and_node_kills_lose_and_duplicate_nothing(tmp_path):
    options = Options(minutes=MINUTES, nodes=2, rate=5.0, seed=SEED, fault_interval=INTERVAL,
                      drain=60.0, out=tmp_path)  # fmt: skip
    report = run(options)
    table = render(report)
    print(table)
    a = report.account
    assert report.broker_kills >= 2 and sum(report.node_kills.values()) >= 1, table
    assert a.messages >= 200, table  # a steady load really ran (5/s from each node)
    assert a.lost == 0, table
    assert a.duplicated == 0, table
    assert a.still_open == 0 and a.delivered == a.received_once == a.pairs, table
    assert report.drained_in is not None, table
    assert not report.not_back, table
    assert all(code == 0 for code in report.exit_codes.values()), table
    tracebacks = {
        log: p for log, p in report.log_problems.items() if any("Traceback" in x for x in p)
    }
    assert tracebacks == {}, table
    assert report.ok
