"""Who may add a message to a case thread at this node (DESIGN §6, threads). Pure.

Thread ids are chosen by senders, so an id alone proves nothing: a member that learns another
member's thread id could otherwise slip its own messages into that case at every node it
reaches. The rule, applied by each receiving node to what it has seen itself:

* a thread unknown here is opened by the message that names it, and a message whose thread id
  is its own message id opens its thread wherever it arrives (an honest sender's first message
  of a case; if another sender used that id first, the message id collides too, which is
  audited as ``id-collision`` and counted — so claiming someone's thread that way is seen);
* a sender that already takes part in the thread here (it sent in it, was addressed in it,
  or this node sent to it in it) joins it;
* a newcomer joins only **openly**: its message is addressed to every participant the thread
  has here, so each of them sees who joined;
* anything else is *held apart*: delivered, receipted and shown to the local system like any
  message, marked ``thread_joined: false``, and left out of the thread's view; the operator
  sees it in the audit log (``thread-held-apart``) and in a metric. Replying to it in that
  thread makes its sender a participant, the way a person would accept them into the case.

Holding apart, not refusing: an honest agency brought into a case by one participant (which
this node did not see) must not lose its message.
"""

from __future__ import annotations

from collections.abc import Iterable


def joins_thread(
    sender: str,
    recipients: Iterable[str],
    participants: frozenset[str],
    own_id: str,
    opens: bool = False,
) -> bool:
    """Whether a message from ``sender`` addressed to ``recipients`` joins a thread whose
    participants at node ``own_id`` are ``participants`` (empty: the thread is new here);
    ``opens``: the message's thread id is its own message id."""
    if opens or not participants or sender in participants:
        return True
    others = participants - {own_id, sender}
    return others <= set(recipients)
