"""``xnode erasure`` and ``xnode hold`` on stopped nodes' directories (the running node
publishes what they queue; tests/test_erasure_processes.py covers that part)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.process_helpers import EXAMPLES, init_nodes, read_store, xnode

ORIGIN, RECIPIENT = "zm-police", "zw-police"


def test_a_request_is_queued_the_undelivered_copy_withdrawn_and_holds_are_kept(tmp_path: Path):
    dirs = init_nodes(tmp_path, {ORIGIN: "law-enforcement", RECIPIENT: "law-enforcement"})
    message_id = xnode("send", "--dir", dirs[ORIGIN], "--kind", "mla", "--schema", "CaseUpdate",
                       "--to", RECIPIENT, "--in", EXAMPLES / "case-update.json").stdout.strip()  # fmt: skip

    refused = xnode("erasure", "request", "--dir", dirs[RECIPIENT], "--message", message_id,
                    "--reason", "ConsentWithdrawn", check=False)  # fmt: skip
    assert refused.returncode == 1 and "not a message this node sent" in refused.stderr
    other = xnode("erasure", "request", "--dir", dirs[ORIGIN], "--message", message_id,
                  "--reason", "Other", check=False)  # fmt: skip
    assert other.returncode == 1 and "note" in other.stderr

    out = xnode("erasure", "request", "--dir", dirs[ORIGIN], "--message", message_id,
                "--reason", "DataInaccurate", "--json").stdout  # fmt: skip
    (request,) = json.loads(out)["requests"]
    assert request["message_ids"] == [message_id] and request["recipients"] == [RECIPIENT]
    status = json.loads(xnode("status", "--dir", dirs[ORIGIN], message_id, "--json").stdout)
    assert [(r["state"], r["reason"]) for r in status["recipients"]] == [("expired", "withdrawn")]
    (envelope,) = read_store(dirs[ORIGIN] / "node.db",
                             "SELECT envelope FROM outbox WHERE message_id = ?", (message_id,))  # fmt: skip
    assert envelope == (b"",)
    queued = json.loads(xnode("status", "--dir", dirs[ORIGIN], request["request_id"],
                              "--json").stdout)  # fmt: skip
    assert [r["state"] for r in queued["recipients"]] == ["queued"]
    view = json.loads(xnode("erasure", "status", "--dir", dirs[ORIGIN], request["request_id"],
                            "--json").stdout)  # fmt: skip
    assert [(r["node_id"], r["status"]) for r in view["recipients"]] == [(RECIPIENT, "pending")]

    held = xnode("hold", "add", "--dir", dirs[RECIPIENT], "--thread", request["thread_id"],
                 "--reason", "CriminalInvestigation", "--note", "Case LSK/2026/41",
                 "--by", "Inspector Banda").stdout.strip()  # fmt: skip
    listed = json.loads(xnode("hold", "list", "--dir", dirs[RECIPIENT], "--json").stdout)
    assert [(h["hold_id"], h["reason"]) for h in listed["holds"]] == [(int(held),
                                                                       "CriminalInvestigation")]  # fmt: skip
    xnode("hold", "release", "--dir", dirs[RECIPIENT], held, "--by", "Inspector Banda")
    assert json.loads(xnode("hold", "list", "--dir", dirs[RECIPIENT], "--json").stdout) == {
        "holds": []
    }
    again = xnode("hold", "release", "--dir", dirs[RECIPIENT], held, "--by", "x", check=False)
    assert again.returncode == 1 and "no hold" in again.stderr
    assert xnode("audit", "verify", "--dir", dirs[RECIPIENT]).returncode == 0
