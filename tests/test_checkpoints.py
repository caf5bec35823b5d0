"""Signed audit checkpoints: a chain with its newest entries cut off (or cut off and rewritten)
is caught by a checkpoint kept outside the database — in the node's file, or at a peer.

Pure verdicts first; then the running node's side (signing, refusing to sign over a cut chain,
keeping peers' checkpoints that only go forward); then the command line on real store files
edited with sqlite3; then two `xnode run` processes where the peer's copy catches a truncation
after the node's own checkpoint file was deleted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import sqlite3
from pathlib import Path

import fastavro
import pytest
import structlog

from node import audit, checkpoint, cli, control
from node.audit import AuditEvent
from node.checkpoint import Checkpoint, CheckpointBook, CheckpointError, PeerDecision
from node.codec import SchemaRegistry
from node.compose import build_node
from node.crypto.primitives import sign
from node.nodedir import NodeDir
from node.service import Node
from node.store.sqlite import SqliteStore
from node.transport.broker import free_port
from node.transport.kafka import InboundRecord
from tests import process_helpers as ph
from tests.conftest import NOW, MemNode, peers_of
from tests.runtime_helpers import create_nodes
from tests.runtime_helpers import node_env as runtime_env

H = [f"{n:064x}" for n in range(40)]  # stand-in entry hashes


def cp(count: int, head: str = H[0], at: dt.datetime = NOW, node: str = "zm-police") -> Checkpoint:
    return Checkpoint(node, count, head, at)


def signed(registry: SchemaRegistry, node: MemNode, count: int, head: str = H[0],
           at: dt.datetime = NOW) -> checkpoint.SignedCheckpoint:  # fmt: skip
    return checkpoint.issue(registry, node.identity, cp(count, head, at, node.node_id))


# -- verdicts ------------------------------------------------------------------------------------


def test_a_chain_that_contains_the_checkpoint_is_intact():
    assert checkpoint.compare(cp(5, H[5]), 5, H[5]).intact
    assert checkpoint.compare(cp(5, H[5]), 9, H[5]).intact  # grown since: fine


def test_a_chain_shorter_than_the_checkpoint_is_truncated_with_the_missing_range():
    verdict = checkpoint.compare(cp(10, H[10]), 7, None, "checkpoint file")
    assert verdict.status == "truncated" and verdict.missing == (8, 10)
    assert verdict.line.startswith(
        "truncated: entries 8..10 are missing: the chain ends at entry 7"
    )
    assert "(checkpoint file)" in verdict.line
    one = checkpoint.compare(cp(10, H[10]), 9, None)
    assert one.missing == (10, 10) and "entry 10 is missing" in one.detail


def test_another_entry_at_the_checkpoint_count_is_a_rollback():
    verdict = checkpoint.compare(cp(10, H[10]), 12, H[30])
    assert verdict.status == "rolled back" and verdict.missing == (1, 10)
    assert verdict.line.startswith("rolled back: entry 10 is not the one the checkpoint")


def test_assess_without_checkpoints_says_what_it_cannot_see():
    verdict = checkpoint.assess(3, {1: H[1], 2: H[2], 3: H[3]}, None, [])
    assert verdict.intact and "no checkpoint to compare with" in verdict.detail


def test_assess_takes_the_newest_checkpoint_a_peer_kept_when_the_file_is_gone(registry, nodes):
    zm = nodes["zm-police"]
    chain = {n: H[n] for n in range(1, 8)}  # entries 8..10 were deleted
    peer = [("kept by zw-police", signed(registry, zm, 10, H[10]))]
    verdict = checkpoint.assess(7, chain, None, peer)
    assert verdict.status == "truncated" and verdict.missing == (8, 10)
    assert "kept by zw-police" in verdict.detail
    older_file = signed(registry, zm, 6, H[6])
    assert checkpoint.assess(7, chain, older_file, peer).missing == (8, 10)  # newest first


def test_a_checkpoint_file_older_than_a_peers_copy_was_put_back(registry, nodes):
    zm = nodes["zm-police"]
    chain = {n: H[n] for n in range(1, 11)}
    verdict = checkpoint.assess(
        10, chain, signed(registry, zm, 6, H[6]), [("peer", signed(registry, zm, 9, H[9]))]
    )
    assert (
        verdict.status == "rolled back"
        and "the checkpoint file (entry 6) is older" in verdict.detail
    )
    same = checkpoint.assess(
        10, chain, signed(registry, zm, 9, H[9]), [("peer", signed(registry, zm, 9, H[9]))]
    )
    assert same.intact


def test_an_older_checkpoint_still_matched_bounds_where_the_rewrite_began(registry, nodes):
    zm = nodes["zm-police"]
    chain = {**{n: H[n] for n in range(1, 5)}, 5: H[35], 6: H[36], 7: H[37]}  # forged from 5
    verdict = checkpoint.assess(
        7, chain, signed(registry, zm, 6, H[6]), [("peer", signed(registry, zm, 4, H[4]))]
    )
    assert verdict.status == "rolled back" and verdict.missing == (5, 6)
    assert "rewritten from an entry in 5..6" in verdict.detail


def test_a_checkpoint_is_due_after_n_events_or_t_seconds_with_new_events():
    rule = {"every_events": 100, "every_seconds": 60}
    later = NOW + dt.timedelta(seconds=61)
    assert not checkpoint.due(None, 0, NOW, **rule)  # an empty log: nothing to sign
    assert checkpoint.due(None, 1, NOW, **rule)
    assert not checkpoint.due(cp(10), 109, NOW, **rule)
    assert checkpoint.due(cp(10), 110, NOW, **rule)
    assert checkpoint.due(cp(10), 11, later, **rule)
    assert not checkpoint.due(cp(10), 10, later, **rule)  # idle: nothing new to sign
    assert not checkpoint.due(cp(10), 8, later, **rule)  # never over a shorter chain


def test_a_peers_checkpoints_only_go_forward():
    assert checkpoint.judge(None, cp(3)) is PeerDecision.NEWER
    assert checkpoint.judge(cp(3), cp(4, H[4])) is PeerDecision.NEWER
    assert checkpoint.judge(cp(4, H[4]), cp(4, H[4])) is PeerDecision.SAME
    assert checkpoint.judge(cp(4, H[4]), cp(3)) is PeerDecision.OLDER
    assert checkpoint.judge(cp(4, H[4]), cp(4, H[5])) is PeerDecision.CONFLICT


def test_the_book_keeps_the_newest_and_reports_a_step_back_once(registry, nodes):
    zm = nodes["zm-police"]
    book = CheckpointBook()
    assert book.offer(signed(registry, zm, 5, H[5])) is PeerDecision.NEWER
    assert book.unsaved == {"zm-police"}
    back = signed(registry, zm, 3, H[3])
    assert book.offer(back) is PeerDecision.OLDER
    assert book.offer(back) is PeerDecision.OLDER
    assert book.offer(signed(registry, zm, 5, H[6])) is PeerDecision.CONFLICT
    assert book.offer(signed(registry, zm, 5, H[5])) is PeerDecision.SAME
    assert book.peers["zm-police"].checkpoint.count == 5
    reports = book.take_went_back()
    assert [(r.held.count, r.got.count, r.decision) for r in reports] == [
        (5, 3, PeerDecision.OLDER), (5, 5, PeerDecision.CONFLICT)]  # fmt: skip
    assert book.take_went_back() == []


# -- signatures and files ------------------------------------------------------------------------


def test_a_checkpoint_verifies_only_with_its_nodes_key_and_domain(registry, nodes):
    zm, zw = nodes["zm-police"], nodes["zw-police"]
    good = signed(registry, zm, 7, H[7])
    key = zm.descriptor.identity_key
    opened = checkpoint.open_signed(registry, good.record, good.signature, node_id="zm-police",
                                    identity_key=key)  # fmt: skip
    assert opened.checkpoint == good.checkpoint and opened.checkpoint.count == 7
    with pytest.raises(CheckpointError) as other_key:
        checkpoint.open_signed(registry, good.record, good.signature, node_id="zm-police",
                               identity_key=zw.descriptor.identity_key)  # fmt: skip
    assert other_key.value.reason == "bad-signature"
    with pytest.raises(CheckpointError) as wrong_node:  # signed by the key given, naming zm
        checkpoint.open_signed(registry, good.record, good.signature, node_id="zw-police",
                               identity_key=key)  # fmt: skip
    assert wrong_node.value.reason == "wrong-node"
    control_signed = sign(zm.identity, control.CONTROL_DOMAIN, good.record)
    with pytest.raises(CheckpointError) as domain:
        checkpoint.open_signed(registry, good.record, control_signed, node_id="zm-police",
                               identity_key=key)  # fmt: skip
    assert domain.value.reason == "bad-signature"


def test_a_checkpoint_file_edited_by_hand_is_refused(registry, nodes):
    zm = nodes["zm-police"]
    key = zm.descriptor.identity_key
    document = checkpoint.to_document(signed(registry, zm, 7, H[7]))
    again = checkpoint.from_document(registry, json.loads(json.dumps(document)),
                                     node_id="zm-police", identity_key=key)  # fmt: skip
    assert again.checkpoint.count == 7 and again.checkpoint.head_hash == H[7]
    for change, reason in (({"count": 9}, "edited"), ({"format": "x"}, "malformed"),
                           ({"record": "%%%"}, "malformed")):  # fmt: skip
        with pytest.raises(CheckpointError) as refused:
            checkpoint.from_document(registry, {**document, **change}, node_id="zm-police",
                                     identity_key=key)  # fmt: skip
        assert refused.value.reason == reason


# -- on the control topic ------------------------------------------------------------------------


def test_checkpoints_travel_as_their_own_control_record(registry, nodes):
    zm, zw = nodes["zm-police"], nodes["zw-police"]
    good = signed(registry, zm, 7, H[7])
    got = control.read_control(registry, control.issue_checkpoint(registry, good), peers_of(zm, zw))
    assert isinstance(got, checkpoint.SignedCheckpoint) and got.checkpoint == good.checkpoint
    with pytest.raises(control.ControlRejected) as unknown:
        control.read_control(registry, control.issue_checkpoint(registry, good), peers_of(zw))
    assert unknown.value.reason == "unknown-sender"
    with pytest.raises(control.ControlRejected) as heartbeat_only:
        control.read_heartbeat(registry, control.issue_checkpoint(registry, good), peers_of(zm))
    assert heartbeat_only.value.reason == "unsupported"
    # A signed heartbeat relabelled as a checkpoint: its control-domain signature does not count.
    beat = control.Heartbeat("zm-police", NOW, 1, zm.identity.key_id)
    wrapper = registry.decode(control.SIGNED_SCHEMA, control.issue_heartbeat(registry, zm.identity,
                                                                             beat))  # fmt: skip
    relabelled = registry.encode(control.SIGNED_SCHEMA, {**wrapper, "kind": "audit_checkpoint"})
    with pytest.raises(control.ControlRejected) as forged:
        control.read_control(registry, relabelled, peers_of(zm))
    assert forged.value.reason in ("malformed", "bad-signature")


def test_older_nodes_still_read_heartbeats_and_ignore_checkpoints(registry, nodes):
    """The wrapper as released (two kinds): a new node's heartbeat reads the same; a checkpoint
    record fails to decode, which an older node counts as ignored, not as a heartbeat."""
    zm = nodes["zm-police"]
    old = registry.schema(control.SIGNED_SCHEMA).standalone
    old = {**old, "fields": [{**old["fields"][0], "type": {**old["fields"][0]["type"],
           "symbols": ["heartbeat", "unknown"]}}, *old["fields"][1:]]}  # fmt: skip
    parsed = fastavro.parse_schema(old)
    beat = control.issue_heartbeat(registry, zm.identity,
                                   control.Heartbeat("zm-police", NOW, 1, zm.identity.key_id))  # fmt: skip
    import io

    assert fastavro.schemaless_reader(io.BytesIO(beat), parsed)["kind"] == "heartbeat"
    record = control.issue_checkpoint(registry, signed(registry, zm, 7, H[7]))
    with pytest.raises(IndexError):  # the enum has no symbol number 2
        fastavro.schemaless_reader(io.BytesIO(record), parsed)


# -- the store -----------------------------------------------------------------------------------


def test_audit_head_reads_the_newest_entry_or_a_given_one(tmp_path):
    with SqliteStore.open(tmp_path / "node.db") as store:
        assert store.audit_head() == (0, None)
        store.append_audit([AuditEvent("acked", NOW, message_id=f"m{i}") for i in range(3)])
        hashes = [e.hash for e in store.audit_entries()]
        assert store.audit_head() == (3, hashes[2])
        assert store.audit_head(2) == (3, hashes[1])
        assert store.audit_head(9) == (3, None)


# -- the running node ----------------------------------------------------------------------------


def no_broker_env(**extra: str) -> dict[str, str]:
    """A broker address nobody listens on: checkpoints do not need one."""
    return runtime_env(f"127.0.0.1:{free_port()}", **extra)


def delete_newest(db: Path, keep: int) -> None:
    """What someone with the database file does to roll the log back: delete the newest rows."""
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM audit WHERE seq > ?", (keep,))


async def test_the_node_signs_every_n_events_and_never_over_a_cut_chain(tmp_path):
    dirs = create_nodes(tmp_path, {"zm-police": "law-enforcement", "zw-police": "law-enforcement"})
    env = no_broker_env(XNODE_AUDIT_CHECKPOINT_EVENTS="3", XNODE_AUDIT_CHECKPOINT_SECONDS="3600")
    file = dirs["zm-police"].path / "audit-checkpoint.json"

    def on_file() -> int:
        return int(json.loads(file.read_text())["count"])

    async def append(node: Node, n: int) -> None:
        events = [AuditEvent("acked", node.clock(), message_id=f"m{i}") for i in range(n)]
        await node._run(node.store.append_audit, events)

    a = build_node(dirs["zm-police"], env=env)
    await a.start()
    try:
        await a.checkpoint_tick()
        assert not file.exists()  # an empty log: nothing to sign
        await append(a, 1)
        await a.checkpoint_tick()
        start = on_file()  # the first checkpoint signs what is there
        assert start == 1 and (file.stat().st_mode & 0o777) == 0o600
        await append(a, 2)
        await a.checkpoint_tick()
        assert on_file() == start  # two new events: not yet
        await append(a, 1)
        await a.checkpoint_tick()
        assert on_file() == start + 3
    finally:
        await a.stop()

    delete_newest(dirs["zm-police"].path / "node.db", start + 1)
    a = build_node(dirs["zm-police"], env=env)
    await a.start()
    try:
        with structlog.testing.capture_logs() as logs:
            await a.checkpoint_tick()
            await append(a, 5)  # the chain grows past the checkpoint again...
            await a.checkpoint_tick()
        assert on_file() == start + 3  # ...but nothing is signed over the cut
        assert a.audit_checkpoints.problem is not None
        assert a.audit_checkpoints.problem.startswith(
            f"truncated: entries {start + 2}..{start + 3} are missing"
        )
        assert [e["verdict"] for e in logs if e["event"] == "audit_chain_behind_checkpoint"] == [
            "truncated"
        ]
    finally:
        await a.stop()


async def test_a_full_disk_delays_a_checkpoint_without_failing_the_round(tmp_path, monkeypatch):
    dirs = create_nodes(tmp_path, {"zm-police": "law-enforcement", "zw-police": "law-enforcement"})
    a = build_node(dirs["zm-police"], env=no_broker_env(XNODE_AUDIT_CHECKPOINT_EVENTS="1"))
    await a.start()
    try:
        await a._run(a.store.append_audit, [AuditEvent("acked", a.clock(), message_id="m1")])

        def full(*_: object) -> None:
            raise OSError(28, "No space left on device")

        with monkeypatch.context() as patch, structlog.testing.capture_logs() as logs:
            patch.setattr(NodeDir, "save_own_checkpoint", full)
            await a.checkpoint_tick()
            await a.checkpoint_tick()
        assert [e["event"] for e in logs] == ["audit_checkpoint_not_saved"]  # once, no raise
        assert a.audit_checkpoints.own is None
        await a.checkpoint_tick()  # room again: signed now
        assert a.audit_checkpoints.own is not None
        assert (dirs["zm-police"].path / "audit-checkpoint.json").exists()
    finally:
        await a.stop()


def control_record(raw: bytes, sender: str = "zm-police") -> InboundRecord:
    return InboundRecord("xchg.control", 0, 0, sender.encode(), raw)


async def test_a_node_keeps_its_peers_newest_checkpoint_and_never_a_step_back(tmp_path, registry):
    dirs = create_nodes(tmp_path, {"zm-police": "law-enforcement", "zw-police": "law-enforcement"})
    zm_keys = dirs["zm-police"].load_keys(registry, None)
    zm = MemNode("zm-police", zm_keys.identity, next(iter(zm_keys.encryption.values())),
                 dirs["zm-police"].own_descriptor(registry).descriptor)  # fmt: skip
    stranger = dataclasses.replace(zm, identity=type(zm.identity).generate())
    kept = dirs["zw-police"].path / "audit-peers" / "zm-police.json"

    def held() -> int:
        return int(json.loads(kept.read_text())["count"])

    def offer(node: Node, who: MemNode, count: int) -> None:
        raw = control.issue_checkpoint(registry, signed(registry, who, count, H[count]))
        node._control(control_record(raw))

    b = build_node(dirs["zw-police"], env=no_broker_env())
    await b.start()
    try:
        offer(b, zm, 5)
        await b.checkpoint_tick()
        assert held() == 5 and (kept.stat().st_mode & 0o777) == 0o600
        with structlog.testing.capture_logs() as logs:
            offer(b, zm, 3)
            offer(b, zm, 3)
            await b.checkpoint_tick()
        assert held() == 5
        went_back = [e for e in logs if e["event"] == "peer_audit_checkpoint_went_back"]
        assert [(e["held_count"], e["got_count"]) for e in went_back] == [(5, 3)]  # once
        offer(b, stranger, 9)  # not signed by zm-police's identity key: ignored
        await b.checkpoint_tick()
        assert held() == 5
        assert b.metrics.control_ignored.labels("bad-signature")._value.get() == 1
        offer(b, zm, 8)
        await b.checkpoint_tick()
        assert held() == 8
    finally:
        await b.stop()

    b = build_node(dirs["zw-police"], env=no_broker_env())  # restarted: nothing held in memory
    await b.start()
    try:
        with structlog.testing.capture_logs() as logs:
            offer(b, zm, 6)
            await b.checkpoint_tick()
        assert held() == 8  # the file on disk is the judge
        assert any(e["event"] == "peer_audit_checkpoint_went_back" for e in logs)
    finally:
        await b.stop()


# -- the command line ----------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def zm(tmp_path, capsys) -> Path:
    """A node whose audit log has eight entries: key-changed and seven token-created."""
    node = tmp_path / "zm"
    assert (
        run(capsys, "init", "--dir", node, "--id", "zm-police", "--roles", "law-enforcement")[0]
        == 0
    )
    for i in range(7):
        assert run(capsys, "token", "create", "--dir", node, "--name", f"case-system-{i}",
                   "--scopes", "read:*")[0] == 0  # fmt: skip
    return node


def forge_tail(db: Path, keep: int, count: int) -> None:
    """Roll the log back to entry ``keep`` and append ``count`` invented entries that chain
    correctly: what someone with the database (but no old checkpoint) can do."""
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM audit WHERE seq > ?", (keep,))
        (prev,) = conn.execute("SELECT hash FROM audit WHERE seq = ?", (keep,)).fetchone()
        for seq in range(keep + 1, keep + count + 1):
            event = AuditEvent("acked", NOW, message_id=f"forged-{seq}")
            entry = audit.link(seq, event, prev)
            conn.execute(
                "INSERT INTO audit (seq, at, at_text, event, message_id, peer, detail, prev_hash,"
                " hash) VALUES (?, ?, ?, ?, ?, NULL, '{}', ?, ?)",
                (seq, NOW.timestamp(), NOW.isoformat(timespec="microseconds"), event.event,
                 event.message_id, prev, entry.hash),
            )  # fmt: skip
            prev = entry.hash


def test_cli_finds_the_newest_entries_deleted(zm, capsys):
    code, out, _ = run(capsys, "audit", "checkpoint", "--dir", zm)
    assert code == 0 and "Signed checkpoint at entry 8" in out
    code, out, _ = run(capsys, "audit", "verify", "--dir", zm)
    assert (
        code == 0 and "Audit chain intact: 8 entries; it contains the checkpoint at entry 8" in out
    )

    delete_newest(zm / "node.db", 5)
    code, out, err = run(capsys, "audit", "verify", "--dir", zm)
    assert code == 1 and out == ""
    assert err.startswith("xnode: error: truncated: entries 6..8 are missing: the chain ends at "
                          "entry 5")  # fmt: skip
    assert err.count("\n") == 1
    code, _, err = run(capsys, "audit", "checkpoint", "--dir", zm)  # no signing over the cut
    assert (
        code == 1 and "truncated: entries 6..8 are missing" in err and "no checkpoint signed" in err
    )


def test_cli_finds_a_forged_tail(zm, tmp_path, capsys):
    assert run(capsys, "audit", "checkpoint", "--dir", zm)[0] == 0
    shutil_copy(zm / "audit-checkpoint.json", tmp_path / "at-8.json")
    forge_tail(zm / "node.db", keep=6, count=4)  # entries 7..10 invented, the chain is valid
    with SqliteStore.open(zm / "node.db") as store:
        assert audit.verify(store.audit_entries()).ok

    code, _, err = run(capsys, "audit", "verify", "--dir", zm)
    assert code == 1
    assert err.startswith("xnode: error: rolled back: entry 8 is not the one the checkpoint at "
                          "entry 8")  # fmt: skip
    assert "rewritten from an entry in 1..8" in err


def test_cli_bounds_the_rewrite_with_an_older_checkpoint_a_peer_kept(zm, tmp_path, capsys):
    delete_newest(zm / "node.db", 5)  # (a smaller log to start with: five entries)
    assert run(capsys, "audit", "checkpoint", "--dir", zm)[0] == 0
    shutil_copy(zm / "audit-checkpoint.json", tmp_path / "at-5.json")
    for i in range(3):
        assert run(capsys, "token", "create", "--dir", zm, "--name", f"late-{i}",
                   "--scopes", "read:*")[0] == 0  # fmt: skip
    assert run(capsys, "audit", "checkpoint", "--dir", zm)[0] == 0
    forge_tail(zm / "node.db", keep=6, count=3)
    code, _, err = run(capsys, "audit", "verify", "--dir", zm, "--peer-checkpoints",
                       tmp_path / "at-5.json")  # fmt: skip
    assert code == 1 and "rolled back" in err and "rewritten from an entry in 6..8" in err


def test_cli_refuses_a_checkpoint_file_put_back_or_edited(zm, tmp_path, capsys):
    assert run(capsys, "audit", "checkpoint", "--dir", zm)[0] == 0
    shutil_copy(zm / "audit-checkpoint.json", tmp_path / "old.json")
    assert (
        run(capsys, "token", "create", "--dir", zm, "--name", "late", "--scopes", "read:*")[0] == 0
    )
    assert run(capsys, "audit", "checkpoint", "--dir", zm)[0] == 0
    shutil_copy(zm / "audit-checkpoint.json", tmp_path / "peer.json")  # what a peer kept
    shutil_copy(tmp_path / "old.json", zm / "audit-checkpoint.json")  # an older file put back
    code, out, _ = run(capsys, "audit", "verify", "--dir", zm)
    assert code == 0 and "entry 8" in out  # alone, the old file still fits the chain
    code, _, err = run(capsys, "audit", "verify", "--dir", zm, "--peer-checkpoints",
                       tmp_path / "peer.json")  # fmt: skip
    assert code == 1
    assert (
        "rolled back: the checkpoint file (entry 8) is older than the checkpoint at entry 9" in err
    )

    edited = json.loads((tmp_path / "peer.json").read_text()) | {"count": 99}
    (zm / "audit-checkpoint.json").write_text(json.dumps(edited))
    code, _, err = run(capsys, "audit", "verify", "--dir", zm)
    assert code == 1 and "audit checkpoint refused: edited: count differ" in err


def test_cli_refuses_a_peer_checkpoint_of_another_node(zm, tmp_path, capsys):
    other = tmp_path / "zw"
    assert (
        run(capsys, "init", "--dir", other, "--id", "zw-police", "--roles", "law-enforcement")[0]
        == 0
    )
    assert run(capsys, "audit", "checkpoint", "--dir", other)[0] == 0
    code, _, err = run(capsys, "audit", "verify", "--dir", zm, "--peer-checkpoints",
                       other / "audit-checkpoint.json")  # fmt: skip
    assert code == 1 and "bad-signature: not signed by the identity key of zm-police" in err
    code, _, err = run(capsys, "audit", "verify", "--dir", zm, "--peer-checkpoints",
                       tmp_path / "missing.json")  # fmt: skip
    assert code == 1 and "missing.json: cannot read" in err


def shutil_copy(source: Path, target: Path) -> None:
    target.write_bytes(source.read_bytes())


# -- two processes -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_peers_copy_catches_truncation_after_the_checkpoint_file_is_gone(tmp_path):
    broker = ph.BrokerProcess(tmp_path)
    broker.start()
    try:
        dirs = ph.init_nodes(tmp_path, {"zm-police": "law-enforcement",
                                        "zw-police": "law-enforcement"})  # fmt: skip
        zm, zw = dirs["zm-police"], dirs["zw-police"]
        env = ph.node_env(broker.bootstrap, XNODE_DELIVERY_HEARTBEAT_SECONDS="1",
                          XNODE_AUDIT_CHECKPOINT_SECONDS="1")  # fmt: skip
        nodes = [ph.spawn("run", "--dir", d, env=env, log=tmp_path / f"{d.name}.log")
                 for d in (zm, zw)]  # fmt: skip
        stopped: list[int] = []
        try:
            message_id = ph.xnode("send", "--dir", zm, "--kind", "mla", "--schema", "CaseUpdate",
                                  "--to", "zw-police",
                                  "--in", ph.EXAMPLES / "case-update.json").stdout.strip()  # fmt: skip

            def delivered() -> bool:
                status = json.loads(ph.xnode("status", "--dir", zm, message_id, "--json").stdout)
                return status["recipients"][0]["state"] == "delivered"

            ph.wait_for(delivered, 30, "delivery to zw-police")
            kept = zw / "audit-peers" / "zm-police.json"

            def zw_holds_zm_head() -> bool:
                (length,) = ph.read_store(zm / "node.db", "SELECT MAX(seq) FROM audit")[0]
                return kept.exists() and json.loads(kept.read_text())["count"] == length

            ph.wait_for(zw_holds_zm_head, 30, "zw-police to keep zm-police's newest checkpoint")
        finally:
            stopped = [ph.stop(process) for process in nodes]
    finally:
        broker.stop()
    assert stopped == [0, 0]

    exported = tmp_path / "zm-police-at-zw.json"
    ph.xnode("audit", "peer-checkpoints", "--dir", zw, "--node", "zm-police", "--out", exported)
    count = json.loads(exported.read_text())["count"]
    assert count >= 5  # key-changed, peer-added, submitted, published, receipted...
    assert "contains the checkpoint" in ph.xnode("audit", "verify", "--dir", zm).stdout

    delete_newest(zm / "node.db", count - 2)
    os.remove(zm / "audit-checkpoint.json")
    alone = ph.xnode("audit", "verify", "--dir", zm)  # nothing left at zm-police to see it
    assert "no checkpoint to compare with" in alone.stdout
    caught = ph.xnode("audit", "verify", "--dir", zm, "--peer-checkpoints", exported, check=False)
    assert caught.returncode == 1
    assert f"truncated: entries {count - 1}..{count} are missing" in caught.stderr
