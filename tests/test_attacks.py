"""Attacks from outside on nodes running as separate processes (docs/threat-model.md).

The federation: zm-police (honest sender) and zw-police (receiver) run as `xnode run`
processes on an `xnode broker` process. mw-police is a member gone bad: its node directory and
its valid keys are all it needs; it never runs a node. It seals envelopes with its own keys
(the library its CLI uses) and writes them straight into zw-police's inbox topics with a raw
Kafka client — which the ACL design allows, since every member may write to every inbox. Junk
comes from a raw client too. The test watches the receiver only from outside: its HTTP API,
its /metrics and its store file, read-only.

What must hold: honest traffic keeps flowing, nothing honest is refused, the store stays
bounded, and a squatter can neither suppress nor silently join another member's case.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from node import control, envelope
from node.codec import default_registry
from node.nodedir import NodeDir
from node.routing.topics import control_topic, inbox_topic
from node.transport.broker import free_port
from tests.process_helpers import (
    EXAMPLES,
    BrokerProcess,
    http,
    init_nodes,
    metric,
    metric_sum,
    node_env,
    read_store,
    spawn,
    stop,
    wait_for,
    xnode,
)

pytestmark = pytest.mark.slow

SPECS = {"zm-police": "law-enforcement", "zw-police": "law-enforcement",
         "mw-police": "law-enforcement"}  # fmt: skip
A, B, S = "zm-police", "zw-police", "mw-police"
PAYLOAD = json.loads((EXAMPLES / "case-update.json").read_text())
UNAUTHENTICATED_MAX = 10
PREFIX = 256
REGISTRY = default_registry()


class Federation:
    """A broker and two running nodes; the hostile member's directory beside them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.broker = BrokerProcess(root)
        self.broker.start()
        self.dirs = init_nodes(root, SPECS)
        self.tokens = {
            node_id: xnode("token", "create", "--dir", self.dirs[node_id], "--name", "case",
                           "--scopes", "send:*,read:*,admin").stdout.strip()
            for node_id in (A, B)
        }  # fmt: skip
        self.ports = {A: free_port(), B: free_port()}
        self.processes: dict[str, Any] = {}
        for node_id in (A, B):
            self.start(node_id)
        wait_for(lambda: all(self.ready(n) for n in (A, B)), 60, "both nodes ready")
        keys = NodeDir(self.dirs[S]).load_keys(REGISTRY, None)
        self.hostile_identity = keys.identity
        self.hostile_peers = NodeDir(self.dirs[S]).peers(REGISTRY)

    def start(self, node_id: str) -> None:
        env = node_env(
            self.broker.bootstrap,
            XNODE_API_PORT=str(self.ports[node_id]),
            XNODE_STORE_QUARANTINE_UNAUTHENTICATED_MAX=str(UNAUTHENTICATED_MAX),
            XNODE_STORE_QUARANTINE_PREFIX_BYTES=str(PREFIX),
            XNODE_STORE_QUARANTINE_SENDER_QUOTA_MB="0",  # every refused record: prefix only
            XNODE_DELIVERY_DUPLICATE_ANSWER_SECONDS="3600",
            XNODE_FOLDER_PATH="exchange",
        )
        self.processes[node_id] = spawn("run", "--dir", self.dirs[node_id], env=env,
                                        log=self.root / f"{node_id}.log")  # fmt: skip

    def api(self, node_id: str) -> str:
        return f"http://127.0.0.1:{self.ports[node_id]}"

    def ready(self, node_id: str) -> bool:
        try:
            return http("GET", f"{self.api(node_id)}/readyz", timeout=5)[0] == 200
        except OSError:
            return False

    def metrics(self, node_id: str) -> str:
        return str(http("GET", f"{self.api(node_id)}/metrics", timeout=10)[1])

    def send(self, note: str, **extra: Any) -> str:
        """An honest message from zm-police to zw-police through zm-police's API."""
        status, body = http("POST", f"{self.api(A)}/v1/messages", self.tokens[A], {
            "kind": "mla", "to": [B], "schema": "CaseUpdate",
            "payload": {**PAYLOAD, "note": note}, **extra,
        }, timeout=30)  # fmt: skip
        assert status == 202, body
        return str(body["id"])

    def state(self, message_id: str) -> str | None:
        rows = read_store(self.dirs[A] / "node.db",
                          "SELECT state FROM outbox_recipients WHERE message_id = ?",
                          (message_id,))  # fmt: skip
        return rows[0][0] if rows else None

    def wait_delivered(self, message_id: str, timeout: float = 60) -> None:
        wait_for(lambda: self.state(message_id) == "delivered", timeout,
                 f"{message_id} delivered to {B}")  # fmt: skip

    def store(self, query: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        return read_store(self.dirs[B] / "node.db", query, args)

    def store_bytes(self) -> int:
        """The receiver's database size as SQLite sees it (pages in use, write-ahead log
        included; the -wal file itself is bounded by checkpoints and reused)."""
        pages = self.store("PRAGMA page_count")[0][0]
        return int(pages) * int(self.store("PRAGMA page_size")[0][0])

    def hostile_seal(self, *, to: tuple[str, ...] = (B,), now: dt.datetime | None = None,
                     **overrides: Any) -> bytes:  # fmt: skip
        """An envelope the bad member signs with its own valid key."""
        now = now or dt.datetime.now(dt.UTC)
        args: dict[str, Any] = {
            "identity": self.hostile_identity, "sender_id": S, "kind": "mla",
            "schema_name": "CaseUpdate",
            "payload": REGISTRY.from_json("xnode.payload.CaseUpdate", {
                **PAYLOAD, "note": "Not what it seems.",
                "recorded_at": now.isoformat().replace("+00:00", "Z"),
            }),
            "recipients": [self.hostile_peers[r].descriptor for r in to],
            "now": now, "expires_at": now + dt.timedelta(days=2),
        }  # fmt: skip
        args.update(overrides)
        return envelope.seal(REGISTRY, **args).data

    def write(self, topic: str, values: list[bytes], key: bytes | None = None,
              partition: int | None = None) -> None:  # fmt: skip
        """Raw records onto a topic, the way any member's Kafka client can."""

        async def produce() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=self.broker.bootstrap,
                                        max_request_size=2 * 1024 * 1024)  # fmt: skip
            await producer.start()
            try:
                for value in values:
                    await producer.send_and_wait(topic, value, key=key, partition=partition)
            finally:
                await producer.stop()

        asyncio.run(produce())

    def close(self) -> None:
        for process in self.processes.values():
            stop(process)
        self.broker.stop()


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    federation = Federation(tmp_path_factory.mktemp("federation"))
    yield federation
    federation.close()


MLA = inbox_topic("xchg", B, "mla")


def test_a_squatted_id_neither_suppresses_nor_refuses_the_real_message(fed: Federation) -> None:
    """mw-police learns zm-police's next message id and reaches zw-police first with its own,
    validly signed envelope under that id and thread. The real message must still be accepted
    and positively receipted; the collision is audited and counted; nothing tells zm-police no."""
    stop(fed.processes[A])  # zm-police's message waits in its outbox while the squatter acts
    message_id = xnode(
        "send",
        "--dir",
        fed.dirs[A],
        "--kind",
        "mla",
        "--to",
        B,
        "--schema",
        "CaseUpdate",
        "--in",
        EXAMPLES / "case-update.json",
    ).stdout.strip()
    squat = fed.hostile_seal(message_id=message_id, thread_id=message_id)
    fed.write(MLA, [squat], key=message_id.encode())
    wait_for(lambda: fed.store("SELECT 1 FROM inbox WHERE message_id = ?", (message_id,)), 30,
             "the squatter's envelope accepted first")  # fmt: skip
    fed.start(A)
    fed.wait_delivered(message_id)

    rows = fed.store("SELECT sender, thread_joined FROM inbox WHERE message_id = ? ORDER BY seq",
                     (message_id,))  # fmt: skip
    assert rows == [(S, 1), (A, 1)]  # both kept, each under its own sender
    assert fed.store("SELECT state, reason FROM outbox_recipients WHERE message_id = ?",
                     (message_id,)) == []  # fmt: skip
    receipts = fed.store("SELECT peer, detail FROM audit WHERE event = 'receipt-sent' AND"
                         " message_id = ? ORDER BY seq", (message_id,))  # fmt: skip
    assert [(peer, json.loads(detail)["status"]) for peer, detail in receipts] == [
        (S, "delivered"),
        (A, "delivered"),
    ]  # never a negative receipt to the innocent sender
    collision = fed.store("SELECT peer, detail FROM audit WHERE event = 'id-collision'")
    assert collision == [(A, json.dumps({"also_used_by": [S]}))]
    assert metric(fed.metrics(B), "xnode_message_id_collisions_total", peer=A) == 1
    a_rows = read_store(fed.dirs[A] / "node.db", "SELECT state, reason FROM outbox_recipients"
                        " WHERE message_id = ?", (message_id,))  # fmt: skip
    assert a_rows == [("delivered", None)]
    # the folder adapter writes both, one file per sender
    folder = fed.dirs[B] / "exchange" / "inbox" / "mla"
    wait_for(lambda: len(list(folder.glob(f"{message_id}*"))) == 2, 30, "both inbox files")
    written = {p.name: json.loads(p.read_text())["sender"] for p in folder.glob(f"{message_id}*")}
    assert written == {f"{message_id}.json": S, f"{message_id}.{A}.json": A}
    # the local system must say which of the two it acknowledges
    ack = f"{fed.api(B)}/v1/inbox/{message_id}/ack"
    status, body = http("POST", ack, fed.tokens[B])
    assert (status, body["code"], body["field"]) == (409, "ambiguous_id", "sender")
    status, body = http("POST", f"{ack}?sender={A}", fed.tokens[B])
    assert (status, body["sender"], body["state"]) == (200, A, "acked")


def test_a_member_cannot_slip_into_another_members_case_unseen(fed: Federation) -> None:
    """mw-police names zm-police's thread in a message addressed to zw-police alone: delivered,
    but held apart from the case. Addressed openly to every participant, it joins."""
    opening = fed.send("Case opened at Nakonde.")
    fed.wait_delivered(opening)
    sneaky = fed.hostile_seal(thread_id=opening, in_reply_to=opening)
    open_join = fed.hostile_seal(to=(B, A), thread_id=opening, in_reply_to=opening)
    fed.write(MLA, [sneaky, open_join], key=opening.encode())
    ids = [envelope.parse(REGISTRY, raw).header.message_id for raw in (sneaky, open_join)]
    wait_for(lambda: len(fed.store("SELECT 1 FROM inbox WHERE sender = ?", (S,))) >= 3, 30,
             "both hostile replies received")  # fmt: skip
    status, thread = http("GET", f"{fed.api(B)}/v1/threads/{opening}", fed.tokens[B])
    assert status == 200
    assert [(m["id"], m["sender"]) for m in thread["messages"]] == [(opening, A), (ids[1], S)]
    assert [(m["id"], m["thread_joined"]) for m in thread["held_apart"]] == [(ids[0], False)]
    assert metric(fed.metrics(B), "xnode_thread_joins_held_apart_total", peer=S) == 1
    held = fed.store("SELECT message_id FROM audit WHERE event = 'thread-held-apart'")
    assert held == [(ids[0],)]
    # held apart is not refused: the message is in the inbox and was receipted positively
    status, inbox = http("GET", f"{fed.api(B)}/v1/inbox?limit=100", fed.tokens[B])
    item = next(m for m in inbox["messages"] if m["id"] == ids[0])
    assert item["payload"]["note"] == "Not what it seems." and item["thread_joined"] is False


def test_a_flood_of_junk_keeps_the_store_bounded_and_honest_traffic_flowing(
    fed: Federation,
) -> None:
    """40 random records of 900 KB (36 MB) on zw-police's inbox topic: quarantine keeps at most
    UNAUTHENTICATED_MAX prefixes of PREFIX bytes, the store grows by well under a megabyte, and
    the next honest message arrives."""
    before = fed.store_bytes()
    fed.write(MLA, [os.urandom(900_000) for _ in range(40)])
    after_flood = fed.send("After the flood: minibus seen at Chirundu.")
    fed.wait_delivered(after_flood, 120)
    rows = fed.store("SELECT LENGTH(raw), raw_length, raw_sha256 FROM quarantine"
                     " WHERE authenticated = 0")  # fmt: skip
    assert len(rows) == UNAUTHENTICATED_MAX
    assert all(kept == PREFIX and whole == 900_000 and len(sha) == 64 for kept, whole, sha in rows)
    grown = fed.store_bytes() - before
    assert grown < 200_000, f"the store grew by {grown} bytes for 36 MB of junk"
    text = fed.metrics(B)
    assert metric(text, "xnode_quarantine_evicted_total") == 40 - UNAUTHENTICATED_MAX
    assert metric(text, "xnode_quarantine_entries", sender="unauthenticated") == (
        UNAUTHENTICATED_MAX
    )
    assert metric(text, "xnode_quarantine_bytes", sender="unauthenticated") == (
        UNAUTHENTICATED_MAX * PREFIX
    )
    audited = fed.store("SELECT COUNT(*) FROM audit WHERE event = 'quarantined' AND peer IS NULL")
    assert audited[0][0] <= UNAUTHENTICATED_MAX  # no audit row per junk record beyond the bound


def test_a_members_hostile_envelopes_are_refused_without_stalling_the_partition(
    fed: Federation,
) -> None:
    """Validly signed but refused: an expiry in year 9999 (used to overflow and stall the
    partition), and envelopes not addressed to zw-police. The member is answered, its records
    kept within its quota (0 here: prefixes only), and the honest message behind them arrives."""
    now = dt.datetime.now(dt.UTC)
    far = fed.hostile_seal(expires_at=dt.datetime(9999, 12, 30, tzinfo=dt.UTC),
                           max_lifetime=dt.timedelta(days=3_000_000))  # fmt: skip
    elsewhere = [fed.hostile_seal(to=(A,), now=now) for _ in range(3)]
    for partition in range(3):  # ahead of whatever partition the honest message lands on
        fed.write(MLA, [far, *elsewhere], partition=partition)
    behind = fed.send("Behind the hostile records.")
    fed.wait_delivered(behind)
    reasons = fed.store("SELECT reason, authenticated, LENGTH(raw), raw_length FROM quarantine"
                        " WHERE sender = ? ORDER BY reason", (S,))  # fmt: skip
    # each envelope once: its copies on the other partitions repeat a remembered refusal
    assert [r[0] for r in reasons] == ["lifetime-exceeded"] + ["not-a-recipient"] * 3
    assert all(auth == 1 and kept <= PREFIX < whole for _, auth, kept, whole in reasons)
    answered = fed.store("SELECT detail FROM audit WHERE event = 'receipt-sent' AND peer = ?"
                         " AND detail LIKE '%rejected%'", (S,))  # fmt: skip
    assert {json.loads(d)["reason"] for (d,) in answered} >= {"lifetime-exceeded",
                                                              "not-a-recipient"}  # fmt: skip
    assert metric_sum(fed.metrics(B), "xnode_record_processing_failures_total") == 0


def test_replaying_a_valid_envelope_costs_one_answer(fed: Federation) -> None:
    """500 copies of zm-police's delivered envelope: counted, answered once, audited once."""
    message_id = fed.send("Replayed many times.")
    fed.wait_delivered(message_id)
    raw = read_store(fed.dirs[A] / "node.db", "SELECT envelope FROM outbox WHERE message_id = ?",
                     (message_id,))[0][0]  # fmt: skip
    before = fed.store_bytes()
    fed.write(MLA, [raw] * 500, key=message_id.encode())
    wait_for(lambda: (metric(fed.metrics(B), "xnode_messages_duplicate_total", peer=A) or 0)
             >= 500, 60, "every copy read")  # fmt: skip
    answers = fed.store("SELECT COUNT(*) FROM audit WHERE event = 'receipt-sent' AND"
                        " message_id = ?", (message_id,))[0][0]  # fmt: skip
    assert answers == 2  # the decision, and the first copy (a sender whose receipt was lost)
    suppressed = metric(fed.metrics(B), "xnode_duplicate_answers_suppressed_total", peer=A)
    assert suppressed is not None and suppressed >= 499
    assert fed.store("SELECT COUNT(*) FROM audit WHERE event = 'duplicate' AND message_id = ?",
                     (message_id,))[0][0] == 1  # fmt: skip
    assert fed.store_bytes() - before < 200_000


def test_a_heartbeat_from_the_future_or_with_another_key_is_ignored(fed: Federation) -> None:
    """One beat dated next month would hide mw-police's silence until then; a beat naming a
    key other than the descriptor's is not the member's. Both counted, neither believed."""
    now = dt.datetime.now(dt.UTC)
    identity = fed.hostile_identity
    future = control.issue_heartbeat(REGISTRY, identity, control.Heartbeat(
        S, now + dt.timedelta(days=30), 1, identity.key_id))  # fmt: skip
    wrong_key = control.issue_heartbeat(REGISTRY, identity, control.Heartbeat(
        S, now, 1, "0" * len(identity.key_id)))  # fmt: skip
    fed.write(control_topic("xchg"), [future, wrong_key], key=S.encode())

    def counted() -> bool:
        text = fed.metrics(B)
        return all(metric(text, "xnode_control_records_ignored_total", reason=r) == 1
                   for r in ("clock-skew", "key-mismatch"))  # fmt: skip

    wait_for(counted, 30, "both heartbeats refused")
    assert metric(fed.metrics(B), "xnode_peer_last_seen_timestamp_seconds", peer=S) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("thread_id", "../../etc/passwd"), ("in_reply_to", "not-a-message-id"),
     ("thread_id", "0192F3A4-5B6C-7D8E-9F00-112233445566"), ("ttl_seconds", 200 * 86400)],
)  # fmt: skip
def test_hostile_ids_in_the_api_are_refused_at_the_edge(fed: Federation, field: str,
                                                        value: object) -> None:  # fmt: skip
    """Ids every receiver would refuse (without a receipt, so the sender would retry until
    expiry) are a 422 naming the field, and nothing is stored."""
    outbox = read_store(fed.dirs[A] / "node.db", "SELECT COUNT(*) FROM outbox")[0][0]
    status, body = http("POST", f"{fed.api(A)}/v1/messages", fed.tokens[A], {
        "kind": "mla", "to": [B], "schema": "CaseUpdate", "payload": PAYLOAD, field: value,
    })  # fmt: skip
    assert (status, body["field"]) == (422, field), body
    assert read_store(fed.dirs[A] / "node.db", "SELECT COUNT(*) FROM outbox")[0][0] == outbox


def test_a_revoked_member_is_refused_at_once_and_trusted_again_when_unrevoked(
    fed: Federation,
) -> None:
    """zw-police's operator revokes zm-police (say its keys were stolen) while both nodes run:
    within seconds its envelopes are refused as revoked-sender and nothing is sent to it;
    unrevoked, its waiting message is delivered by the next re-publication."""
    xnode("peers", "revoke", "--dir", fed.dirs[B], A, "--reason", "key-compromise",
          "--note", "laptop stolen at Beitbridge")  # fmt: skip
    listing = xnode("peers", "list", "--dir", fed.dirs[B]).stdout
    assert "REVOKED (key-compromise" in listing and "laptop stolen at Beitbridge" in listing

    def refused_to_send() -> bool:
        status, body = http("POST", f"{fed.api(B)}/v1/messages", fed.tokens[B], {
            "kind": "mla", "to": [A], "schema": "CaseUpdate", "payload": PAYLOAD,
        })  # fmt: skip
        return status == 403 and body["field"] == "to" and "revoked" in body["error"]

    wait_for(refused_to_send, 30, "the running node to apply the revocation")
    message_id = fed.send("Sent after the revocation.")
    wait_for(lambda: fed.store("SELECT 1 FROM quarantine WHERE reason = 'revoked-sender'"), 30,
             "the revoked sender's envelope refused")  # fmt: skip
    assert not fed.store("SELECT 1 FROM inbox WHERE message_id = ?", (message_id,))
    # no receipt: an unauthenticated refusal is silent (the sender may not even have recorded
    # its publication yet: the receiver can be faster than the sender's own store)
    assert fed.state(message_id) in ("queued", "sent")

    xnode("peers", "unrevoke", "--dir", fed.dirs[B], A, "--yes")
    fed.wait_delivered(message_id)
    assert fed.store("SELECT sender FROM inbox WHERE message_id = ?", (message_id,)) == [(A,)]
    events = [r[0] for r in fed.store("SELECT event FROM audit WHERE peer = ? AND event LIKE"
                                      " 'peer-%'", (A,))]  # fmt: skip
    assert events[-2:] == ["peer-revoked", "peer-unrevoked"]
