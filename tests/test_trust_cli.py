"""`xnode trust`: founding a federation, admitting a member with two of three governors, revoking
a stolen key — through the command line, the way governors and operators use it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node import cli
from node.codec import default_registry
from node.nodedir import NodeDir

GOVERNORS = ("zm-secretariat", "zw-secretariat", "bw-secretariat")
MEMBERS = ("zm-police", "zw-police", "mw-police")


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("region")
    for node_id in GOVERNORS + MEMBERS:
        role = "secretariat" if node_id in GOVERNORS else "law-enforcement"
        assert (
            cli.main(["init", "--dir", str(root / node_id), "--id", node_id, "--roles", role]) == 0
        )
        assert cli.main(["peers", "export", "--dir", str(root / node_id), "--out",
                         str(root / f"{node_id}.xnd")]) == 0  # fmt: skip
    return root


def sign(capsys, root: Path, governor: str, proposal: Path) -> str:
    code, out, err = run(capsys, "trust", "sign", "--dir", root / governor, proposal, "--yes")
    assert code == 0, err
    return out


def test_found_admit_revoke(region: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = region
    v1 = root / "v1.xtl"
    code, out, err = run(capsys, "trust", "init", "--federation", "sadc-tip", "--threshold", "2",
                         *[a for g in GOVERNORS for a in ("--governor", root / f"{g}.xnd")],
                         *[a for m in MEMBERS[:2] for a in ("--member", root / f"{m}.xnd")],
                         "--out", v1)  # fmt: skip
    assert code == 0, err
    assert "+ member zm-police (law-enforcement) active" in out and "signed by 0 of 3" in out
    code, shown, _ = run(capsys, "trust", "show", "--dir", root / "zm-police", v1, "--json")
    pin = json.loads(shown)["governance_fingerprint"]

    # one signature is not enough, whoever publishes it
    assert "signed by 1 of 3 governors (" in sign(capsys, root, "zm-secretariat", v1)
    code, _, err = run(capsys, "trust", "publish", "--dir", root / "zm-police", v1, "--pin", pin)
    assert code == 1 and "insufficient-signatures" in err and "2 needed" in err
    assert NodeDir(root / "zm-police").trust_list(default_registry()) is None
    sign(capsys, root, "zw-secretariat", v1)

    # a wrong pin is refused; the right one installs the list
    code, _, err = run(capsys, "trust", "publish", "--dir", root / "zm-police", v1, "--pin", "x")
    assert code == 1 and "was not pinned" in err
    for member in MEMBERS[:2]:
        code, out, err = run(capsys, "trust", "publish", "--dir", root / member, v1, "--pin", pin)
        assert code == 0 and "Applied sadc-tip version 1 (2 members" in out, err

    # a descriptor added by hand (bilateral) is not used while the list does not back it
    assert run(capsys, "peers", "add", "--dir", root / "zm-police", root / "mw-police.xnd",
               "--yes")[0] == 0  # fmt: skip
    out = run(capsys, "peers", "list", "--dir", root / "zm-police")[1]
    assert "trust list  NOT USED: mw-police is not a member of sadc-tip" in out

    # mw-police asks to join; a member drafts the proposal, two of three governors approve
    v2 = root / "v2.xtl"
    code, out, err = run(capsys, "trust", "propose", "--dir", root / "zm-police", "add",
                         root / "mw-police.xnd", "--out", v2)  # fmt: skip
    assert code == 0 and "+ member mw-police (law-enforcement) active" in out, err
    sign(capsys, root, "bw-secretariat", v2)
    code, _, err = run(capsys, "trust", "publish", "--dir", root / "zm-police", v2)
    assert code == 1 and "1 valid signature(s) of the governors of the list this node trusts" in err
    sign(capsys, root, "zm-secretariat", v2)
    code, out, err = run(capsys, "trust", "publish", "--dir", root / "zm-police", v2)
    assert code == 0 and "version 2 (3 members" in out, err
    listed = json.loads(run(capsys, "peers", "list", "--dir", root / "zm-police", "--json")[1])
    assert [(p["node_id"], p["trust_list"]) for p in listed] == [
        ("mw-police", "member of sadc-tip v2")]  # fmt: skip

    # a replayed older list is refused; the same list again changes nothing
    code, _, err = run(capsys, "trust", "publish", "--dir", root / "zm-police", v1)
    assert code == 1 and "rollback" in err
    code, out, _ = run(capsys, "trust", "publish", "--dir", root / "zm-police", v2)
    assert code == 0 and "nothing changed" in out

    # the stolen-key drill: zw-police is revoked; revocation cannot be undone
    v3 = root / "v3.xtl"
    code, out, err = run(capsys, "trust", "propose", "--dir", root / "zm-police", "revoke",
                         "zw-police", "--reason", "key-compromise", "--out", v3)  # fmt: skip
    assert code == 0 and "~ zw-police: active -> revoked (key-compromise)" in out, err
    sign(capsys, root, "zm-secretariat", v3)
    sign(capsys, root, "bw-secretariat", v3)
    assert run(capsys, "trust", "publish", "--dir", root / "zm-police", v3)[0] == 0
    code, _, err = run(capsys, "trust", "propose", "--dir", root / "zm-police", "reinstate",
                       "zw-police", "--out", root / "v4.xtl")  # fmt: skip
    assert code == 1 and "revocation-reversed" in err and "final" in err

    code, out, _ = run(capsys, "trust", "show", "--dir", root / "zm-police")
    assert "sadc-tip version 3" in out and "REVOKED (key-compromise)" in out
    assert run(capsys, "peers", "add", "--dir", root / "zm-police", root / "zw-police.xnd",
               "--yes")[0] == 0  # fmt: skip
    out = run(capsys, "peers", "list", "--dir", root / "zm-police")[1]
    assert "trust list  REVOKED by sadc-tip v3 (key-compromise)" in out
    code, out, _ = run(capsys, "trust", "history", "--dir", root / "zm-police")
    assert [line.split("UTC  ")[1] for line in out.splitlines()] == [
        "federation sadc-tip founded", "add mw-police", "revoke zw-police (key-compromise)",
    ]  # fmt: skip
    audit_lines = run(capsys, "audit", "show", "--dir", root / "zm-police")[1]
    assert audit_lines.count("trust-list-applied") == 3


def test_a_non_governor_cannot_sign(region: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proposal = region / "other.xtl"
    assert run(capsys, "trust", "init", "--federation", "eac-tip", "--threshold", "1",
               "--governor", region / "zm-secretariat.xnd", "--out", proposal)[0] == 0  # fmt: skip
    code, _, err = run(capsys, "trust", "sign", "--dir", region / "mw-police", proposal, "--yes")
    assert code == 1 and "is not a governor of this list" in err


def test_a_genesis_list_that_cannot_work_is_refused(region: Path, capsys) -> None:
    code, _, err = run(capsys, "trust", "init", "--federation", "sadc-tip", "--threshold", "3",
                       "--governor", region / "zm-secretariat.xnd", "--out", region / "x.xtl")  # fmt: skip
    assert code == 1 and "threshold 3 must be from 1 to the number of governors (1)" in err
    assert not (region / "x.xtl").exists()
