"""``xnode send`` keeps the procedures too, and ``xnode overdue`` lists what is late."""

from __future__ import annotations

import json
from pathlib import Path

from tests.process_helpers import init_nodes, read_store, xnode
from tests.runtime_helpers import example


def test_send_refuses_a_step_out_of_order_unless_overridden(tmp_path: Path):
    dirs = init_nodes(tmp_path, {"zm-police": "law-enforcement", "zw-police": "law-enforcement"})
    answer = tmp_path / "answer.json"
    answer.write_text(json.dumps(example("mla-response.json")))
    args = ["send", "--dir", dirs["zm-police"], "--kind", "mla", "--schema", "MlaResponse",
            "--to", "zw-police", "--in", answer]  # fmt: skip
    refused = xnode(*args, check=False)
    assert refused.returncode == 1
    assert "missing: an MLA request" in refused.stderr and "--procedure-override" in refused.stderr
    sent = xnode(*args, "--procedure-override", "Answer to a request made on paper.")
    message_id = sent.stdout.strip()
    events = read_store(dirs["zm-police"] / "node.db",
                        "SELECT event, detail FROM audit WHERE message_id = ?", (message_id,))  # fmt: skip
    overrides = [json.loads(d) for e, d in events if e == "procedure-override"]
    assert [o["reason"] for o in overrides] == ["Answer to a request made on paper."]
    assert xnode("overdue", "--dir", dirs["zm-police"]).stdout.strip() == (
        "No request is past its deadline."
    )
    assert json.loads(xnode("overdue", "--dir", dirs["zm-police"], "--json").stdout) == {
        "threads": []
    }
