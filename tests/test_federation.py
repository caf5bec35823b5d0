"""A federation run by a trust list, with node processes and no file swapped between members.

Three governing bodies sign lists offline (their node directories never run). zm-police and
zw-police only pin the federation's list; they learn each other's keys from the control topic and
exchange a message. mw-police joins later with two of three governors approving: the running
nodes apply the new list from the control topic and mw-police exchanges messages with members it
never swapped files with. Then the stolen-key drill: the governors revoke mw-police and its next
message is refused. A replayed old list is refused and counted.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from node import control, envelope, trustlist
from node.codec import default_registry
from node.nodedir import NodeDir
from node.routing.topics import control_topic
from node.transport.broker import free_port
from tests.process_helpers import (
    EXAMPLES,
    BrokerProcess,
    http,
    metric,
    node_env,
    read_store,
    spawn,
    stop,
    wait_for,
    xnode,
)

pytestmark = pytest.mark.slow

GOVERNORS = ("zm-secretariat", "zw-secretariat", "bw-secretariat")
PAYLOAD = json.loads((EXAMPLES / "case-update.json").read_text())


class Region:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.broker = BrokerProcess(root)
        self.broker.start()
        self.dirs: dict[str, Path] = {}
        for node_id in (*GOVERNORS, "zm-police", "zw-police", "mw-police"):
            role = "secretariat" if node_id in GOVERNORS else "law-enforcement"
            self.dirs[node_id] = root / node_id
            xnode("init", "--dir", self.dirs[node_id], "--id", node_id, "--roles", role)
            xnode("peers", "export", "--dir", self.dirs[node_id], "--out", self.xnd(node_id))
        self.ports: dict[str, int] = {}
        self.processes: dict[str, object] = {}
        self.tokens: dict[str, str] = {}

    def xnd(self, node_id: str) -> Path:
        return self.root / f"{node_id}.xnd"

    def found(self, *approvers: str) -> tuple[Path, str]:
        """Version 1 with zm-police and zw-police as members, signed by ``approvers``, and
        its governance fingerprint (what each member pins)."""
        v1 = self.root / "v1.xtl"
        xnode("trust", "init", "--federation", "sadc-tip", "--threshold", "2",
              *[a for g in GOVERNORS for a in ("--governor", self.xnd(g))],
              "--member", self.xnd("zm-police"), "--member", self.xnd("zw-police"),
              "--out", v1)  # fmt: skip
        self.approve(v1, *approvers)
        shown = xnode("trust", "show", "--dir", self.dirs["zm-police"], v1, "--json").stdout
        return v1, json.loads(shown)["governance_fingerprint"]

    def approve(self, proposal: Path, *governors: str) -> None:
        for governor in governors:
            xnode("trust", "sign", "--dir", self.dirs[governor], proposal, "--yes")

    def start(self, node_id: str, **settings: str) -> None:
        self.ports[node_id] = free_port()
        self.tokens[node_id] = xnode("token", "create", "--dir", self.dirs[node_id], "--name",
                                     "case", "--scopes", "send:*,read:*").stdout.strip()  # fmt: skip
        env = node_env(self.broker.bootstrap, XNODE_API_PORT=str(self.ports[node_id]),
                       XNODE_DELIVERY_HEARTBEAT_SECONDS="1", **settings)  # fmt: skip
        self.processes[node_id] = spawn("run", "--dir", self.dirs[node_id], env=env,
                                        log=self.root / f"{node_id}.log")  # fmt: skip

    def api(self, node_id: str) -> str:
        return f"http://127.0.0.1:{self.ports[node_id]}"

    def peers(self, node_id: str) -> set[str]:
        try:
            status, body = http("GET", f"{self.api(node_id)}/v1/peers", self.tokens[node_id])
        except OSError:
            return set()
        return {p["node_id"] for p in body["peers"]} if status == 200 else set()

    def send(self, sender: str, recipient: str, note: str) -> tuple[int, dict]:
        return http("POST", f"{self.api(sender)}/v1/messages", self.tokens[sender], {
            "kind": "mla", "to": [recipient], "schema": "CaseUpdate",
            "payload": {**PAYLOAD, "note": note},
        }, timeout=30)  # fmt: skip

    def delivered(self, sender: str, message_id: str) -> bool:
        rows = read_store(self.dirs[sender] / "node.db", "SELECT state FROM outbox_recipients"
                          " WHERE message_id = ?", (message_id,))  # fmt: skip
        return bool(rows) and all(r[0] == "delivered" for r in rows)

    def list_version(self, node_id: str) -> int | None:
        held = NodeDir(self.dirs[node_id]).trust_list(default_registry())
        return None if held is None else held.trust_list.list_version

    def close(self) -> None:
        for process in self.processes.values():
            stop(process)  # type: ignore[arg-type]
        self.broker.stop()


@pytest.fixture
def region(tmp_path: Path):
    r = Region(tmp_path)
    yield r
    r.close()


def test_members_that_never_swapped_files_exchange_and_a_stolen_key_is_refused(region: Region):
    r = region
    v1, pin = r.found("zm-secretariat", "bw-secretariat")
    for member in ("zm-police", "zw-police"):
        xnode("trust", "publish", "--dir", r.dirs[member], v1, "--pin", pin)
        assert not list((r.dirs[member] / "peers").glob("*.xnd"))  # no file swapped
    r.start("zm-police")
    r.start("zw-police", XNODE_KEYS_RETIRED_KEY_DAYS="0")  # a replaced key is destroyed at once

    wait_for(lambda: r.peers("zm-police") == {"zw-police"} and r.peers("zw-police") ==
             {"zm-police"}, 60, "the members to learn each other's keys")  # fmt: skip
    status, body = r.send("zm-police", "zw-police", "First message of the federation.")
    assert status == 202, body
    wait_for(lambda: r.delivered("zm-police", body["id"]), 60, "delivered without a file swap")

    # zw-police rotates its encryption key while running: zm-police learns the new descriptor
    # from the control topic and seals the next message to the new key; zw-police re-wraps the
    # first message to the new key and destroys the old one (retired_key_days = 0)
    registry = default_registry()
    old_key = NodeDir(r.dirs["zw-police"]).own_descriptor(registry).descriptor.encryption_keys[0]
    xnode("keys", "rotate", "--dir", r.dirs["zw-police"], "--encryption")
    rotated = NodeDir(r.dirs["zw-police"]).own_descriptor(registry).descriptor
    new_key = rotated.encryption_keys[-1].key_id
    old_file = r.dirs["zw-police"] / "keys" / f"encryption-{old_key.key_id}.key"
    wait_for(lambda: not old_file.exists(), 60, "zw-police to destroy its replaced key")
    destroyed = read_store(r.dirs["zw-police"] / "node.db", "SELECT event, detail FROM audit"
                           " WHERE event IN ('messages-rewrapped', 'key-destroyed')")  # fmt: skip
    assert [e for e, _ in destroyed] == ["messages-rewrapped", "key-destroyed"]
    assert json.loads(destroyed[0][1])["messages"] == 1
    status, inbox = http("GET", f"{r.api('zw-police')}/v1/inbox", r.tokens["zw-police"])
    assert [m["payload"]["note"] for m in inbox["messages"]] == [
        "First message of the federation."
    ]  # fmt: skip  still readable, old key gone
    current = NodeDir(r.dirs["zw-police"]).own_descriptor(registry).descriptor
    assert [k.key_id for k in current.encryption_keys] == [new_key]

    def uses_new_descriptor() -> bool:  # what the running node itself reports
        status, body = http("GET", f"{r.api('zm-police')}/v1/peers", r.tokens["zm-police"])
        return status == 200 and any(p["node_id"] == "zw-police" and p["descriptor_version"] >= 2
                                     for p in body["peers"])  # fmt: skip

    wait_for(uses_new_descriptor, 60, "zm-police to use zw-police's new descriptor")
    status, body = r.send("zm-police", "zw-police", "Sealed to the new key.")
    assert status == 202, body
    wait_for(lambda: r.delivered("zm-police", body["id"]), 60, "delivered to the new key")
    raw = read_store(r.dirs["zm-police"] / "node.db", "SELECT envelope FROM outbox WHERE"
                     " message_id = ?", (body["id"],))[0][0]  # fmt: skip
    assert [e["key_id"] for e in envelope.parse(registry, raw).header.recipients] == [new_key]

    # mw-police asks to join with a signed request; two of three governors approve; it pins
    # the federation itself
    request, v2 = r.root / "mw-police.xjr", r.root / "v2.xtl"
    xnode("trust", "request-join", "--dir", r.dirs["mw-police"], "--federation", "sadc-tip",
          "--contact", "Lilongwe liaison office", "--out", request)  # fmt: skip
    shown = xnode("trust", "propose", "--dir", r.dirs["zm-police"], "add", request,
                  "--out", v2).stdout  # fmt: skip
    assert "contact: Lilongwe liaison office" in shown
    r.approve(v2, "zw-secretariat", "bw-secretariat")
    xnode("trust", "publish", "--dir", r.dirs["mw-police"], v2, "--pin", pin)
    r.start("mw-police")
    wait_for(lambda: r.list_version("zm-police") == 2 and r.list_version("zw-police") == 2, 60,
             "the running members to apply version 2 from the control topic")  # fmt: skip
    wait_for(lambda: "mw-police" in r.peers("zw-police") and "zw-police" in r.peers("mw-police"),
             60, "mw-police and zw-police to learn each other's keys")  # fmt: skip
    status, body = r.send("mw-police", "zw-police", "Hello from Lilongwe.")
    assert status == 202, body
    wait_for(lambda: r.delivered("mw-police", body["id"]), 60, "the newcomer's message delivered")

    rotate_identity(r, registry)

    # the stolen-key drill: mw-police's key is reported stolen; the governors revoke it
    v4 = r.root / "v4.xtl"
    xnode("trust", "propose", "--dir", r.dirs["zw-police"], "revoke", "mw-police", "--reason",
          "key-compromise", "--out", v4)  # fmt: skip
    r.approve(v4, "zm-secretariat", "zw-secretariat")
    xnode("trust", "publish", "--dir", r.dirs["zw-police"], v4)
    wait_for(lambda: r.list_version("zm-police") == 4, 60, "zm-police to apply the revocation")

    def refused(node_id: str) -> bool:
        rows = read_store(r.dirs[node_id] / "node.db",
                          "SELECT 1 FROM quarantine WHERE reason = 'revoked-sender'")  # fmt: skip
        return bool(rows)

    status, body = r.send("mw-police", "zm-police", "Sent by whoever holds the stolen key.")
    wait_for(lambda: refused("zm-police"), 60, "the thief's message refused")
    assert not read_store(r.dirs["zm-police"] / "node.db",
                          "SELECT 1 FROM inbox WHERE sender = 'mw-police'")  # fmt: skip
    status, body = r.send("zw-police", "mw-police", "Nothing new is encrypted to it.")
    assert status == 403 and body["field"] == "to"

    # a replayed old list is refused and counted, and changes nothing
    replay(r.broker.bootstrap, v1)
    wait_for(lambda: (metric(http("GET", f"{r.api('zm-police')}/metrics")[1],
                             "xnode_trust_list_refused_total", reason="rollback") or 0) >= 1,
             30, "the replayed list refused")  # fmt: skip
    assert r.list_version("zm-police") == 4

    rotate_governor(r)
    applied = read_store(r.dirs["zm-police"] / "node.db",
                         "SELECT detail FROM audit WHERE event = 'trust-list-applied'")  # fmt: skip
    assert [json.loads(d)["list_version"] for (d,) in applied] == [1, 2, 3, 4, 5, 6]


def rotate_identity(r: Region, registry) -> None:
    """zw-police replaces its identity key while running: it asks with a request signed by the
    old and the new key, two governors approve, and once zw-police applies the list it switches
    by itself, destroys the old key, and its members verify it under the new key."""
    old = NodeDir(r.dirs["zw-police"]).own_descriptor(registry).descriptor.identity_key_id
    request, v3 = r.root / "zw-rotate.xjr", r.root / "v3.xtl"
    xnode("keys", "rotate", "--dir", r.dirs["zw-police"], "--identity", "--out", request,
          "--contact", "Harare duty office", "--note", "scheduled rotation")  # fmt: skip
    shown = xnode("trust", "propose", "--dir", r.dirs["zm-police"], "rotate-key", request,
                  "--out", v3).stdout  # fmt: skip
    assert f"~ zw-police: identity key {old} ->" in shown
    r.approve(v3, "zm-secretariat", "bw-secretariat")
    xnode("trust", "publish", "--dir", r.dirs["zm-police"], v3)

    def switched() -> str | None:
        new = NodeDir(r.dirs["zw-police"]).own_descriptor(registry).descriptor.identity_key_id
        return new if new != old else None

    wait_for(switched, 60, "zw-police to switch to its new identity key")
    new = switched()

    def zm_knows_new_key() -> bool:
        status, body = http("GET", f"{r.api('zm-police')}/v1/peers", r.tokens["zm-police"])
        return status == 200 and any(p["node_id"] == "zw-police" and p["identity_key_id"] == new
                                     for p in body["peers"])  # fmt: skip

    wait_for(zm_knows_new_key, 60, "zm-police to hold zw-police's new descriptor")
    for sender, recipient in (("zw-police", "zm-police"), ("zm-police", "zw-police")):
        status, body = r.send(sender, recipient, "After the identity rotation.")
        assert status == 202, body
        wait_for(lambda body=body, sender=sender: r.delivered(sender, body["id"]), 60,
                 f"{sender}'s message delivered after the rotation")  # fmt: skip
    events = read_store(r.dirs["zw-police"] / "node.db",
                        "SELECT event, detail FROM audit WHERE event IN "
                        "('key-rotation-requested', 'key-changed', 'key-destroyed')")  # fmt: skip
    assert ("key-destroyed", json.dumps({"key": "identity", "key_id": old})) in [
        (e, json.dumps(json.loads(d), sort_keys=True)) for e, d in events]  # fmt: skip
    assert not (r.dirs["zw-police"] / "keys" / "identity-next.key").exists()
    received = read_store(r.dirs["zm-police"] / "node.db",
                          "SELECT envelope FROM inbox WHERE sender = 'zw-police'")  # fmt: skip
    signers = {envelope.parse(registry, raw).header.sender_key_id for (raw,) in received}
    assert new in signers


def rotate_governor(r: Region) -> None:
    """bw-secretariat's governor key is replaced (old quorum and new governors sign); a list
    signed with the new key then applies on running nodes, one signed with the old is refused."""
    xnode("init", "--dir", r.root / "bw-secretariat-2", "--id", "bw-secretariat-two",
          "--roles", "secretariat", "--name", "bw-secretariat")  # fmt: skip
    r.dirs["bw-secretariat-two"] = r.root / "bw-secretariat-2"
    xnode("peers", "export", "--dir", r.dirs["bw-secretariat-two"], "--out",
          r.xnd("bw-secretariat-two"))  # fmt: skip
    v5, v6, bad = r.root / "v5.xtl", r.root / "v6.xtl", r.root / "v6-old-key.xtl"
    xnode("trust", "propose", "--dir", r.dirs["zm-police"], "set-governors",
          "--governor", r.xnd("zm-secretariat"), "--governor", r.xnd("zw-secretariat"),
          "--governor", r.xnd("bw-secretariat-two"), "--threshold", "2", "--out", v5)  # fmt: skip
    r.approve(v5, "zm-secretariat", "zw-secretariat", "bw-secretariat-two")
    xnode("trust", "publish", "--dir", r.dirs["zm-police"], v5)
    wait_for(lambda: r.list_version("zw-police") == 5, 60, "the governor rotation applied")
    for path in (v6, bad):
        xnode("trust", "propose", "--dir", r.dirs["zm-police"], "renew", "--out", path)
    r.approve(bad, "zw-secretariat")
    # the old bw key signs too: not a governor any more, refused as such
    result = xnode("trust", "sign", "--dir", r.dirs["bw-secretariat"], bad, "--yes", check=False)
    assert result.returncode == 1 and "is not a governor of this list" in result.stderr
    r.approve(v6, "bw-secretariat-two", "zw-secretariat")
    xnode("trust", "publish", "--dir", r.dirs["zm-police"], v6)
    wait_for(lambda: r.list_version("zw-police") == 6, 60, "a list signed with the new key")


def replay(bootstrap: str, path: Path) -> None:
    """Anyone on the control topic re-publishes an old, validly signed list."""
    registry = default_registry()
    record = control.issue_trust_list(registry, trustlist.decode(registry, path.read_bytes()))

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(control_topic("xchg"), record, key=b"replay")
        finally:
            await producer.stop()

    asyncio.run(produce())
