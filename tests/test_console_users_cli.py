"""`xnode users`: console accounts from the command line, as an operator manages them."""

from __future__ import annotations

import json
import subprocess

from tests.process_helpers import XNODE, read_store, xnode

PASSWORD = "correct horse battery staple"


def users(*args: object, password: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*XNODE, "users", *map(str, args)], input=password, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def test_users_add_list_disable_enable_reset(tmp_path):
    node = tmp_path / "zm"
    xnode("init", "--dir", node, "--id", "zm-police", "--roles", "law-enforcement")
    added = users("add", "--dir", node, "mwila", "--role", "officer", "--kinds", "alert,mla",
                  "--name", "Insp. Mwila Banda", "--password-stdin", password=PASSWORD + "\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "Added console user mwila (officer; alert, mla)" in added.stdout
    listed = json.loads(users("list", "--dir", node, "--json").stdout)
    assert listed == [{"name": "mwila", "role": "officer", "display_name": "Insp. Mwila Banda",
                       "kinds": ["alert", "mla"], "language": None, "state": "active",
                       "created_at": listed[0]["created_at"]}]  # fmt: skip
    [(stored,)] = read_store(node / "node.db", "SELECT password_hash FROM console_users")
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert users("disable", "--dir", node, "mwila").returncode == 0
    assert "disabled" in users("list", "--dir", node).stdout
    assert users("enable", "--dir", node, "mwila").returncode == 0
    assert "active" in users("list", "--dir", node).stdout
    reset = users("reset", "--dir", node, "mwila", "--password-stdin",
                  password="a different long password\n")  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    [(changed,)] = read_store(node / "node.db", "SELECT password_hash FROM console_users")
    assert changed != stored
    events = [r[0] for r in read_store(node / "node.db", "SELECT event FROM audit")]
    assert events.count("user-added") == 1 and events.count("user-changed") == 3


def test_users_refusals_are_one_clear_line(tmp_path):
    node = tmp_path / "zm"
    xnode("init", "--dir", node, "--id", "zm-police", "--roles", "law-enforcement")
    cases = [
        (("add", "--dir", node, "mwila", "--role", "officer", "--password-stdin"), "short\n",
         "at least 12 characters"),
        (("add", "--dir", node, "Mwila!", "--role", "officer", "--password-stdin"),
         PASSWORD + "\n", "user name 'Mwila!'"),
        (("add", "--dir", node, "mwila", "--role", "officer", "--kinds", "receipt",
          "--password-stdin"), PASSWORD + "\n", "unknown kind 'receipt'"),
        (("add", "--dir", node, "mwila", "--role", "officer"), None,
         "no terminal to ask for the password; use --password-stdin"),
        (("reset", "--dir", node, "nobody", "--password-stdin"), PASSWORD + "\n",
         "no console user named 'nobody'"),
        (("disable", "--dir", node, "nobody"), None, "no console user named 'nobody'"),
    ]  # fmt: skip
    for args, password, message in cases:
        result = users(*args, password=password)
        assert result.returncode == 1, args
        assert result.stderr.startswith("xnode: error: ") and message in result.stderr, (
            args, result.stderr)  # fmt: skip
        assert len(result.stderr.strip().splitlines()) == 1
    ok = users("add", "--dir", node, "mwila", "--role", "officer", "--password-stdin",
               password=PASSWORD + "\n")  # fmt: skip
    assert ok.returncode == 0
    again = users("add", "--dir", node, "mwila", "--role", "auditor", "--password-stdin",
                  password=PASSWORD + "\n")  # fmt: skip
    assert again.returncode == 1 and "a console user named 'mwila' exists" in again.stderr
    wrong_role = users("add", "--dir", node, "x1", "--role", "admin", "--password-stdin")
    assert wrong_role.returncode == 2  # the command line itself was wrong
    assert "No console users" not in users("list", "--dir", node).stdout
