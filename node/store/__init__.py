"""Durable local state: outbox, inbox, dedupe, quarantine and the audit chain (DESIGN §6).

`base` defines the records and the interface; `sqlite` implements it (default: one file in the
node directory, WAL). A PostgreSQL implementation follows the same interface.
"""

from node.store.base import (
    DedupeEntry,
    Delivery,
    InboxMessage,
    OutboundMessage,
    QuarantineEntry,
    RecipientStatus,
    StatusEvent,
    Store,
    StoreError,
)

__all__ = [
    "DedupeEntry",
    "Delivery",
    "InboxMessage",
    "OutboundMessage",
    "QuarantineEntry",
    "RecipientStatus",
    "StatusEvent",
    "Store",
    "StoreError",
]
