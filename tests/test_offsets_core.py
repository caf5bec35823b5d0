"""Where a consumer reads next (:mod:`node.transport.offsets`), decided from numbers alone.

The process tests (test_broker_outage.py) show a node surviving a broker restarted empty; these
pin the decisions underneath, one rule at a time, including the boundaries: a rewind that comes
one offset too early re-reads a little (harmless, the inbox dedupes), one that never comes
leaves a partition unread for ever.
"""

from __future__ import annotations

from node.transport import offsets
from node.transport.offsets import PartitionView, Reset


def view(
    position: int = 40,
    log_start: int = 0,
    log_end: int = 50,
    broker_committed: int | None = 40,
    our_committed: int | None = 40,
) -> PartitionView:
    """A healthy partition by default: read up to 40 of 50, the broker holds our commit."""
    return PartitionView(position, log_start, log_end, broker_committed, our_committed)


def test_a_healthy_partition_is_left_alone():
    assert offsets.decide(view()) is None
    # At the log end (all read) and at the log start (nothing read yet) are both in range.
    assert offsets.decide(view(position=50, broker_committed=50, our_committed=50)) is None
    assert (
        offsets.decide(view(position=7, log_start=7, broker_committed=7, our_committed=7)) is None
    )


def test_nothing_committed_yet_is_not_a_lost_commit():
    """A process that has not committed yet has nothing the broker could have forgotten."""
    assert offsets.committed_reset(None, None) is None
    assert offsets.committed_reset(None, 12) is None
    assert offsets.decide(view(broker_committed=None, our_committed=None)) is None


def test_a_forgotten_commit_rewinds_even_when_the_offsets_add_up():
    """A broker restarted empty whose new log already grew past the old position: the offsets
    look fine, only the missing commit tells."""
    assert offsets.committed_reset(40, None) == offsets.COMMITTED_LOST
    assert offsets.decide(view(broker_committed=None)) == Reset(offsets.COMMITTED_LOST, 40, 0)


def test_a_replaced_commit_rewinds():
    """Another commit where ours was: a broker restored from a snapshot, a group reused."""
    assert offsets.committed_reset(40, 12) == offsets.COMMITTED_CHANGED
    reset = offsets.decide(view(log_start=3, broker_committed=12))
    assert reset == Reset(offsets.COMMITTED_CHANGED, 40, 3)


def test_the_commit_is_judged_before_the_offsets():
    """Both wrong at once: the reason names the lost state, which makes the node rebuild its
    Kafka clients and re-publish (``STATE_LOST``); an offset reason alone would not."""
    reset = offsets.decide(view(position=90, broker_committed=None))
    assert reset == Reset(offsets.COMMITTED_LOST, 90, 0)
    assert reset.reason in offsets.STATE_LOST


def test_a_position_beyond_the_log_end_rewinds_to_the_log_start():
    reset = offsets.decide(
        view(position=51, log_start=2, broker_committed=None, our_committed=None)
    )
    assert reset == Reset(offsets.BEYOND_END, 51, 2)
    assert reset.reason not in offsets.STATE_LOST


def test_a_position_below_the_log_start_rewinds_to_it():
    """Retention moved the log start past a slow reader: read from the first record left."""
    reset = offsets.decide(
        view(position=9, log_start=10, log_end=60, broker_committed=None, our_committed=None)
    )
    assert reset == Reset(offsets.BEFORE_START, 9, 10)


def test_lag_is_reported_as_it_is():
    assert view(position=40, log_end=50).lag == 10
    assert view(position=50, log_end=50).lag == 0
    # A broker that lost its log: negative, not clamped to zero, so dashboards show it.
    assert view(position=70, log_end=50).lag == -20


def test_reasons_are_the_metric_labels():
    assert offsets.REASONS == (
        "committed-offset-lost",
        "committed-offset-changed",
        "position-beyond-end",
        "log-start-moved",
        "offset-out-of-range",
    )
    assert offsets.STATE_LOST == {"committed-offset-lost", "committed-offset-changed"}


class Rec:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset


def test_a_batch_is_committed_up_to_the_first_record_not_stored_in_each_partition():
    records = [Rec("a", 0, 10), Rec("a", 1, 5), Rec("a", 0, 11), Rec("a", 0, 12), Rec("a", 1, 6)]
    failed = {("a", 0, 11)}
    plan = offsets.commit_plan(records, lambda r: (r.topic, r.partition, r.offset) not in failed)
    # partition 0 stops before 11 even though 12 was stored: committing 13 would skip 11
    assert plan.positions == {("a", 0): 11, ("a", 1): 7}
    assert plan.rewind == {("a", 0): 11}


def test_a_partition_whose_first_record_failed_commits_nothing():
    plan = offsets.commit_plan([Rec("a", 0, 3), Rec("a", 0, 4)], lambda r: False)
    assert plan.positions == {} and plan.rewind == {("a", 0): 3}
