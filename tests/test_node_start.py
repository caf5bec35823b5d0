"""A node directory that cannot be trusted stops `xnode run` at once, with the file and why."""

from __future__ import annotations

from pathlib import Path

from tests.process_helpers import init_nodes, xnode


def test_a_node_whose_key_file_is_missing_or_swapped_does_not_start(tmp_path: Path):
    """Without the key its stored messages are sealed to, a node would serve nothing but
    'cannot open' (and answer nothing): it stops at once with the file and the reason."""
    dirs = init_nodes(tmp_path, {"zm-police": "law-enforcement", "zw-police": "law-enforcement"})
    (own,) = (dirs["zm-police"] / "keys").glob("encryption-*.key")
    (other,) = (dirs["zw-police"] / "keys").glob("encryption-*.key")
    own.write_bytes(other.read_bytes())
    swapped = xnode("run", "--dir", dirs["zm-police"], check=False, timeout=30)
    assert swapped.returncode == 1
    assert swapped.stderr.strip() == f"xnode: error: {own}: does not match the descriptor"
    own.unlink()
    missing = xnode("run", "--dir", dirs["zm-police"], check=False, timeout=30)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"xnode: error: {own}: key file not found"
