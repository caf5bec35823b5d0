"""Where a consumer must read next, decided without I/O.

A broker can lose what it knew about a node's topics while the node keeps running: the
development broker restarted empty, a Kafka cluster restored from an old snapshot, a topic
deleted and created again, retention moving the log start past a slow reader. The consumer's
position then points at offsets that no longer mean what they meant. Left alone, it waits at its
old position and skips every record written below it until the log grows past it again — the
end-to-end retry only hides that, slowly.

The node reads each partition's log start, log end and the offset the broker holds as committed
for the node's group, and compares them with what the consumer knows. Anything that does not add
up rewinds the partition to its log start: re-reading is safe (the inbox dedupes), skipping is
not. Each rewind is counted by reason (``xnode_consumer_offset_resets_total``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


class Positioned(Protocol):
    """A fetched record, as far as offsets go."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


# Reasons, as they appear in the metric's ``reason`` label.
COMMITTED_LOST = "committed-offset-lost"
COMMITTED_CHANGED = "committed-offset-changed"
BEYOND_END = "position-beyond-end"
BEFORE_START = "log-start-moved"
OUT_OF_RANGE = "offset-out-of-range"
REASONS = (COMMITTED_LOST, COMMITTED_CHANGED, BEYOND_END, BEFORE_START, OUT_OF_RANGE)
# Reasons that mean the broker's state was lost or replaced: the Kafka clients' cached state is
# stale, so the node rebuilds them, and re-publishes what is still waiting for a receipt.
STATE_LOST = frozenset({COMMITTED_LOST, COMMITTED_CHANGED})


@dataclass(frozen=True)
class PartitionView:
    """What is known of one partition at one moment.

    ``position`` is the next offset the consumer will read; ``log_start``/``log_end`` the
    broker's first offset and next offset to be written; ``broker_committed`` what the broker
    holds as the group's committed offset (None: it holds nothing); ``our_committed`` what this
    process last committed there (None: nothing yet).
    """

    position: int
    log_start: int
    log_end: int
    broker_committed: int | None
    our_committed: int | None

    @property
    def lag(self) -> int:
        """Records not yet read. Negative means the position lies beyond the log end — a broker
        that lost its log; reported as it is, never clamped."""
        return self.log_end - self.position


@dataclass(frozen=True)
class Reset:
    """Rewind one partition: read again from ``to_offset``."""

    reason: str
    from_offset: int
    to_offset: int


def committed_reset(our_committed: int | None, broker_committed: int | None) -> str | None:
    """The reason to distrust the position if the broker no longer holds the offset this process
    committed last (its state was lost or replaced); None if it does."""
    if our_committed is None or broker_committed == our_committed:
        return None
    return COMMITTED_LOST if broker_committed is None else COMMITTED_CHANGED


def decide(view: PartitionView) -> Reset | None:
    """The rewind a partition needs, or None.

    The committed offset is checked first: a broker restarted empty whose new log has already
    grown past the old position shows nothing wrong in offsets alone, but it has forgotten the
    group's commit.
    """
    reason = committed_reset(view.our_committed, view.broker_committed)
    if reason is None and view.position > view.log_end:
        reason = BEYOND_END
    if reason is None and view.position < view.log_start:
        reason = BEFORE_START
    if reason is None:
        return None
    return Reset(reason, view.position, view.log_start)


@dataclass(frozen=True)
class CommitPlan:
    """What to do with the offsets of a batch once it is stored: ``positions`` to commit (per
    partition, the offset after the last record stored without a gap) and ``rewind`` (per
    partition, the first record not stored: read again from there)."""

    positions: dict[tuple[str, int], int]
    rewind: dict[tuple[str, int], int]


def commit_plan(records: Sequence[Positioned], stored: Callable[[Positioned], bool]) -> CommitPlan:
    """Commit each partition up to its first record not stored, never past it: a record
    skipped by a commit is lost to this node. Records come in fetch order (ascending offsets
    within a partition)."""
    positions: dict[tuple[str, int], int] = {}
    rewind: dict[tuple[str, int], int] = {}
    for record in records:
        partition = (record.topic, record.partition)
        if partition in rewind:
            continue
        if stored(record):
            positions[partition] = record.offset + 1
        else:
            rewind[partition] = record.offset
    return CommitPlan(positions, rewind)
