"""Who joins a case thread at a receiving node (node/threads.py): the rule that keeps a member
from slipping messages into another member's case by naming its thread id."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from node.threads import joins_thread

OWN = "zw-police"
NODES = st.sampled_from(["zm-police", "mw-police", "bw-police", "na-police", "ao-police", OWN])


def test_a_new_thread_is_opened_by_whoever_names_it():
    assert joins_thread("mw-police", [OWN], frozenset(), OWN)


def test_a_participant_joins():
    assert joins_thread("zm-police", [OWN], frozenset({"zm-police", OWN}), OWN)
    # addressed in the thread before counts as taking part
    assert joins_thread("bw-police", [OWN], frozenset({"zm-police", "bw-police"}), OWN)


def test_a_newcomer_addressing_only_this_node_is_held_apart():
    assert not joins_thread("mw-police", [OWN], frozenset({"zm-police", OWN}), OWN)


def test_a_newcomer_joins_openly_by_addressing_every_participant():
    participants = frozenset({"zm-police", "bw-police", OWN})
    assert joins_thread("mw-police", [OWN, "zm-police", "bw-police"], participants, OWN)
    assert not joins_thread("mw-police", [OWN, "zm-police"], participants, OWN)


def test_an_opening_message_opens_its_thread_even_if_the_id_is_known():
    assert joins_thread("zm-police", [OWN], frozenset({"mw-police"}), OWN, opens=True)


@given(sender=NODES, recipients=st.lists(NODES), participants=st.frozensets(NODES))
def test_the_rule(sender, recipients, participants):
    joined = joins_thread(sender, recipients, participants, OWN)
    expected = (
        not participants
        or sender in participants
        or all(p in recipients for p in participants if p not in (OWN, sender))
    )
    assert joined == expected
    assert joins_thread(sender, recipients, participants, OWN, opens=True)
