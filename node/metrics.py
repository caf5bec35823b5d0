"""Prometheus metrics of one node, served on ``/metrics`` by the API (README "Operations").

Each node has its own registry, so several nodes in one process (the demo, tests) never mix
their series. Labels come from bounded sets only — kinds, peers, reason codes, topics, key ids
of configured keys — never message or thread ids. Counters are incremented by the shell as
things happen; gauges that describe stored state (backlog, audit length) are read from the
store just before each scrape, so they are right even after a restart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from node.store.base import Snapshot
from node.trust import Descriptor

CONTENT_TYPE = CONTENT_TYPE_LATEST
# End-to-end receipt latency spans milliseconds (same broker) to hours (a node offline).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
                   14400, 86400)  # fmt: skip
CRYPTO_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


def xnode_version() -> str:
    try:
        return metadata.version("xnode")
    except metadata.PackageNotFoundError:
        return "unknown"


class Metrics:
    """The node's instruments; the shell updates them, :meth:`render` exposes them."""

    def __init__(self, node_id: str, version: str | None = None) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.node_id = node_id
        Info("xnode_build", "Version of the running xnode.", registry=r).info(
            {"version": version or xnode_version(), "node": node_id}
        )
        self.submitted = Counter(
            "xnode_messages_submitted", "Messages accepted into the outbox.", ["kind"], registry=r
        )
        self.published = Counter(
            "xnode_messages_published",
            "Envelopes written to a recipient's topic (first publications and re-publications).",
            ["kind", "peer"],
            registry=r,
        )
        self.retries = Counter(
            "xnode_publish_retries",
            "Re-publications of a message still waiting for its receipt.",
            ["kind", "peer"],
            registry=r,
        )
        self.publish_failures = Counter(
            "xnode_publish_failures",
            "Publication attempts the broker did not accept (the message stays in the outbox).",
            ["peer"],
            registry=r,
        )
        self.received = Counter(
            "xnode_messages_received",
            "New messages verified, stored and receipted.",
            ["kind", "peer"],
            registry=r,
        )
        self.delivered = Counter(
            "xnode_messages_delivered",
            "Positive receipts received for messages this node sent.",
            ["kind", "peer"],
            registry=r,
        )
        self.rejected = Counter(
            "xnode_messages_rejected",
            "Negative receipts received for messages this node sent, by reason code.",
            ["kind", "peer", "reason"],
            registry=r,
        )
        self.expired = Counter(
            "xnode_messages_expired",
            "Messages that expired before a recipient receipted them.",
            ["peer"],
            registry=r,
        )
        self.quarantined = Counter(
            "xnode_messages_quarantined",
            "Inbound records refused and kept in quarantine, by reason code.",
            ["reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "xnode_messages_duplicate",
            "Inbound copies of messages already handled (answered again, not handed over).",
            ["peer"],
            registry=r,
        )
        self.duplicates_unanswered = Counter(
            "xnode_duplicate_answers_suppressed",
            "Copies not answered because the same message was answered less than"
            " delivery.duplicate_answer_seconds ago (a replay flood costs one receipt a minute).",
            ["peer"],
            registry=r,
        )
        self.receipts_not_sealed = Counter(
            "xnode_receipts_not_sealed",
            "Receipts owed to a sender that could not be sealed (its encryption key expired or is"
            " unusable); the message was kept, the receipt skipped and audited.",
            ["peer"],
            registry=r,
        )
        self.id_collisions = Counter(
            "xnode_message_id_collisions",
            "Messages whose id another sender had already used here (both kept; a sign that a"
            " member reuses ids it saw, see docs/threat-model.md).",
            ["peer"],
            registry=r,
        )
        self.thread_held_apart = Counter(
            "xnode_thread_joins_held_apart",
            "Messages naming a thread their sender does not take part in here, not addressed to"
            " its participants: delivered but kept out of that thread (docs/threat-model.md).",
            ["peer"],
            registry=r,
        )
        self.quarantine_evicted = Counter(
            "xnode_quarantine_evicted",
            "Refused records of unauthenticated senders dropped from quarantine, oldest first,"
            " to keep it within store.quarantine_unauthenticated_max.",
            registry=r,
        )
        self.quarantine_entries = Gauge(
            "xnode_quarantine_entries",
            "Records kept in quarantine, by whether their sender was authenticated.",
            ["sender"],
            registry=r,
        )
        self.quarantine_bytes = Gauge(
            "xnode_quarantine_bytes",
            "Bytes of refused records kept in quarantine, by whether their sender was"
            " authenticated.",
            ["sender"],
            registry=r,
        )
        self.receipt_latency = Histogram(
            "xnode_receipt_latency_seconds",
            "From submission to the recipient's receipt arriving back (end to end).",
            ["kind", "peer"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.seal_seconds = Histogram(
            "xnode_seal_duration_seconds",
            "Time to validate, encrypt and sign one submission.",
            buckets=CRYPTO_BUCKETS,
            registry=r,
        )
        self.open_seconds = Histogram(
            "xnode_open_duration_seconds",
            "Time to verify, decrypt, decode and validate one inbound record.",
            buckets=CRYPTO_BUCKETS,
            registry=r,
        )
        self.webhook_failures = Counter(
            "xnode_webhook_failures",
            "Received messages the webhook gave up on after its last attempt (webhook-failed).",
            registry=r,
        )
        self.webhook_status_failures = Counter(
            "xnode_webhook_status_failures",
            "Status events (final outcomes of sent messages) the webhook gave up on after its"
            " last attempt (audited webhook-failed, then passed over).",
            registry=r,
        )
        self.control_ignored = Counter(
            "xnode_control_records_ignored",
            "Control records (heartbeats) not accepted, by reason.",
            ["reason"],
            registry=r,
        )
        self.trust_list_refused = Counter(
            "xnode_trust_list_refused",
            "Trust lists received on the control topic and refused, by reason (rollback,"
            " insufficient-signatures, expired, wrong-federation, revocation-reversed, invalid).",
            ["reason"],
            registry=r,
        )
        self.trust_list_version = Gauge(
            "xnode_trust_list_version",
            "Version of the federation trust list this node applies (absent: bilateral mode).",
            ["federation"],
            registry=r,
        )
        self.trust_list_expiry = Gauge(
            "xnode_trust_list_expiry_timestamp_seconds",
            "Unix time the applied trust list expires; after it the node is degraded, and after"
            " federation.grace_days more it refuses to send.",
            ["federation"],
            registry=r,
        )
        self.trust_list_members = Gauge(
            "xnode_trust_list_members",
            "Members of the applied trust list by status.",
            ["federation", "status"],
            registry=r,
        )
        self.out_of_order = Counter(
            "xnode_procedure_steps_out_of_order_total",
            "Received procedure steps that came before the steps they need (a handover before"
            " the approval): kept and handed over, audited as procedure-out-of-order. A member"
            " that keeps sending them may be skipping its own checks.",
            ["peer"],
            registry=r,
        )
        self.overdue = Gauge(
            "xnode_overdue_requests",
            "Requests (MLA, referral, return proposal) past their response deadline without an"
            " answer, by procedure and direction: sent (this node waits) or received (this node"
            " owes the answer). Checked every procedures.overdue_check_seconds.",
            ["procedure", "direction"],
            registry=r,
        )
        self.outbox_depth = Gauge(
            "xnode_outbox_depth",
            "Deliveries waiting for a receipt, per recipient.",
            ["peer"],
            registry=r,
        )
        self.oldest_unreceipted = Gauge(
            "xnode_outbox_oldest_unreceipted_age_seconds",
            "Age of the oldest message still waiting for this recipient's receipt (0: none).",
            ["peer"],
            registry=r,
        )
        self.audit_length = Gauge(
            "xnode_audit_chain_length", "Entries in the hash-chained audit log.", registry=r
        )
        self.webhook_failed = Gauge(
            "xnode_webhook_failed_messages",
            "Received messages currently in state webhook-failed.",
            registry=r,
        )
        self.key_expiry = Gauge(
            "xnode_key_expiry_seconds",
            "Seconds until an encryption key's validity ends (negative: expired), own and peers'.",
            ["owner", "node", "key_id"],
            registry=r,
        )
        self.peer_last_seen = Gauge(
            "xnode_peer_last_seen_timestamp_seconds",
            "Unix time of the last verified heartbeat from each peer (0: never).",
            ["peer"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "xnode_consumer_lag",
            "Records in this node's topics not yet read, per topic.",
            ["topic"],
            registry=r,
        )
        self.broker_connected = Gauge(
            "xnode_broker_connected",
            "1 while the broker answers the node's metadata probe (delivery.broker_check_seconds),"
            " 0 once it has not answered for delivery.broker_timeout_seconds.",
            registry=r,
        )
        self.offset_resets = Counter(
            "xnode_consumer_offset_resets",
            "Partitions rewound to their log start because the broker's offsets no longer added"
            " up (broker restarted empty, topic recreated, log start moved, out of range).",
            ["topic", "reason"],
            registry=r,
        )
        self.record_failures = Counter(
            "xnode_record_processing_failures",
            "Inbound records whose processing failed (retried; quarantined after a few attempts).",
            ["topic"],
            registry=r,
        )
        self.loop_failures = Counter(
            "xnode_loop_failures",
            "Unexpected failures of a background loop (it resumes by itself after a pause).",
            ["loop"],
            registry=r,
        )
        self.store_writable = Gauge(
            "xnode_store_writable",
            "1 while the store accepts writes; 0 after a write failed for lack of space or a"
            " failing disk, until a probe write succeeds.",
            registry=r,
        )
        self.store_write_failures = Counter(
            "xnode_store_write_failures",
            "Store transactions refused by the disk (full: no space left; io: failing or"
            " read-only disk).",
            ["cause"],
            registry=r,
        )
        self.store_free_bytes = Gauge(
            "xnode_store_free_bytes",
            "Free space on the file system holding the store, for unprivileged writers.",
            registry=r,
        )
        self.up_since = Gauge(
            "xnode_start_time_seconds", "Unix time this node process started.", registry=r
        )

    def observe_store(self, snapshot: Snapshot, peers: Iterable[str], now: dt.datetime) -> None:
        """Refresh the gauges that describe stored state (called before each scrape)."""
        for peer in peers:
            self.outbox_depth.labels(peer).set(snapshot.outbox_depth.get(peer, 0))
            oldest = snapshot.oldest_open.get(peer)
            age = (now - oldest).total_seconds() if oldest else 0.0
            self.oldest_unreceipted.labels(peer).set(max(age, 0.0))
        self.audit_length.set(snapshot.audit_length)
        self.webhook_failed.set(snapshot.webhook_failed)
        if snapshot.quarantine is not None:
            for authenticated, label in ((True, "authenticated"), (False, "unauthenticated")):
                self.quarantine_entries.labels(label).set(
                    snapshot.quarantine.entries.get(authenticated, 0)
                )
                self.quarantine_bytes.labels(label).set(
                    snapshot.quarantine.raw_bytes.get(authenticated, 0)
                )

    def observe_keys(
        self, own: Descriptor, peers: Mapping[str, Descriptor], now: dt.datetime
    ) -> None:
        self.key_expiry.clear()  # keys come and go with rotations: keep only current ones
        for owner, descriptor in [("own", own), *(("peer", d) for d in peers.values())]:
            for key in descriptor.encryption_keys:
                seconds = (key.valid_until - now).total_seconds()
                self.key_expiry.labels(owner, descriptor.node_id, key.key_id).set(seconds)

    def observe_trust_list(self, t: Any) -> None:
        """The applied list's version, expiry and members per status (``node.trustlist``)."""
        self.trust_list_version.labels(t.federation).set(t.list_version)
        self.trust_list_expiry.labels(t.federation).set(t.expires_at.timestamp())
        counts: dict[str, int] = {"active": 0, "suspended": 0, "revoked": 0}
        for m in t.members:
            counts[m.status] = counts.get(m.status, 0) + 1
        for status, n in counts.items():
            self.trust_list_members.labels(t.federation, status).set(n)

    def known_peers(self, peers: Iterable[str]) -> None:
        """Give every peer a series from the start, so 'never seen' is visible as 0."""
        for peer in peers:
            self.peer_last_seen.labels(peer)

    def render(self) -> bytes:
        return generate_latest(self.registry)
