"""The folder adapter's slow writers: the settle rule on its own, then two real `xnode run`
processes on a broker process with a writer that fills a request file in place in chunks, and
a refused file that the user fixes in ``failed/``."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.adapters import requests
from node.adapters.folder import (
    SettleTracker,
    error_report,
    listing,
    read_settled,
    recorded_digest,
)
from tests.process_helpers import (
    EXAMPLES,
    BrokerProcess,
    init_nodes,
    node_env,
    read_store,
    spawn,
    stop,
    wait_for,
)

MS = 1_000_000  # nanoseconds


# -- the settle rule, no I/O ----------------------------------------------------------------------


def test_a_file_is_ready_only_after_its_stat_held_for_the_settle_time() -> None:
    tracker = SettleTracker(2000 * MS)
    assert tracker.observe({"a.json": (10, 1)}, 0) == []
    assert tracker.observe({"a.json": (10, 1)}, 1999 * MS) == []
    assert tracker.next_ready_ns(1999 * MS) == 1 * MS
    assert tracker.observe({"a.json": (10, 1)}, 2000 * MS) == ["a.json"]
    assert tracker.next_ready_ns(2000 * MS) is None  # ready, nothing left settling


def test_every_change_of_size_or_mtime_starts_the_settle_time_again() -> None:
    tracker = SettleTracker(1000 * MS)
    tracker.observe({"a.json": (10, 1)}, 0)
    assert tracker.observe({"a.json": (20, 2)}, 900 * MS) == []  # a chunk was appended
    assert tracker.observe({"a.json": (20, 3)}, 1800 * MS) == []  # rewritten, same size
    assert tracker.observe({"a.json": (20, 3)}, 2700 * MS) == []  # 900 ms since the change
    assert tracker.observe({"a.json": (20, 3)}, 2800 * MS) == ["a.json"]


def test_files_settle_independently_and_come_sorted() -> None:
    tracker = SettleTracker(100 * MS)
    tracker.observe({"b.json": (1, 1)}, 0)
    tracker.observe({"b.json": (1, 1), "a.json": (1, 1), "c.json": (1, 1)}, 50 * MS)
    assert tracker.observe({"b.json": (1, 1), "a.json": (1, 1), "c.json": (1, 1)}, 100 * MS) == [
        "b.json"
    ]
    assert tracker.next_ready_ns(100 * MS) == 50 * MS
    assert tracker.observe({"c.json": (1, 1), "a.json": (1, 1), "b.json": (1, 1)}, 150 * MS) == [
        "a.json",
        "b.json",
        "c.json",
    ]


def test_zero_settle_means_ready_at_the_first_listing() -> None:
    assert SettleTracker(0).observe({"a.json": (3, 7)}, 5) == ["a.json"]


def test_a_handled_file_is_not_reported_again_until_it_changes() -> None:
    tracker = SettleTracker(100 * MS)
    tracker.observe({"a.json": (5, 1)}, 0)
    assert tracker.observe({"a.json": (5, 1)}, 100 * MS) == ["a.json"]
    assert tracker.observe({"a.json": (5, 1)}, 200 * MS) == ["a.json"]  # not handled: again
    tracker.handled("a.json")
    assert tracker.observe({"a.json": (5, 1)}, 300 * MS) == []
    assert tracker.observe({"a.json": (6, 2)}, 400 * MS) == []  # changed: settles anew
    assert tracker.observe({"a.json": (6, 2)}, 500 * MS) == ["a.json"]
    tracker.handled("missing.json")  # no such file: nothing happens


def test_a_file_that_leaves_and_comes_back_settles_anew() -> None:
    tracker = SettleTracker(100 * MS)
    tracker.observe({"a.json": (5, 1)}, 0)
    assert tracker.observe({"a.json": (5, 1)}, 100 * MS) == ["a.json"]
    tracker.handled("a.json")
    assert tracker.observe({}, 150 * MS) == []  # moved away (sent/ or failed/)
    assert tracker.next_ready_ns(150 * MS) is None
    # the same name and stat again (e.g. renamed back): a new file as far as anyone knows
    assert tracker.observe({"a.json": (5, 1)}, 200 * MS) == []
    assert tracker.observe({"a.json": (5, 1)}, 300 * MS) == ["a.json"]


def test_the_error_report_records_which_content_was_refused() -> None:
    refusal = requests.Refusal(422, "expected one of Active, Closed", "payload.status")
    report = error_report("case-0142.json", refusal, "ab" * 32)
    assert "field: payload.status" in report and "problem: expected one of" in report
    assert recorded_digest(report) == "ab" * 32
    assert recorded_digest("file: x.json\nfield: -\nproblem: invalid JSON\n") is None  # older


# -- the file-system edge of the shell, on a real directory ----------------------------------------


def test_listing_keeps_request_files_only(tmp_path: Path) -> None:
    (tmp_path / "case.json").write_text("{}")
    (tmp_path / ".case.json").write_text("{")
    (tmp_path / "case.json.tmp").write_text("{")
    (tmp_path / "case.json.error.txt").write_text("x")
    (tmp_path / "dir.json").mkdir()
    st = (tmp_path / "case.json").stat()
    assert listing(tmp_path) == {"case.json": (2, st.st_mtime_ns)}


def test_read_settled_refuses_a_file_that_changed_since_it_settled(tmp_path: Path) -> None:
    path = tmp_path / "case.json"
    path.write_bytes(b'{"kind":')
    [settled] = listing(tmp_path).values()
    assert read_settled(path, settled) == b'{"kind":'
    with path.open("ab") as handle:  # the writer goes on
        handle.write(b' "mla"}')
    assert read_settled(path, settled) is None
    path.unlink()
    assert read_settled(path, settled) is None


# -- two `xnode run` processes -----------------------------------------------------------------


def _request(note: str, status: str = "Active") -> dict[str, object]:
    payload = json.loads((EXAMPLES / "case-update.json").read_text())
    payload.update(note=note, status=status)
    return {"kind": "mla", "to": ["zw-police"], "schema": "CaseUpdate", "payload": payload}


def _received_notes(zw: Path) -> list[str]:
    """What the recipient's folder inbox holds: the note of each received message."""
    directory = zw / "exchange" / "inbox" / "mla"
    if not directory.exists():
        return []
    return sorted(json.loads(p.read_text())["payload"]["note"] for p in directory.glob("*.json"))


@pytest.fixture
def folder_nodes(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """zm-police (sender, folder with the default settle time) and zw-police (folder inbox), as
    `xnode run` processes on an `xnode broker` process; yields the two node directories."""
    broker = BrokerProcess(tmp_path)
    processes = []
    try:
        broker.start()
        dirs = init_nodes(tmp_path, {"zm-police": "law-enforcement",
                                     "zw-police": "law-enforcement"})  # fmt: skip
        env = node_env(broker.bootstrap, XNODE_FOLDER_PATH="exchange",
                       XNODE_FOLDER_POLL_INTERVAL_MS="100")  # fmt: skip
        for n in dirs:
            processes.append(spawn("run", "--dir", dirs[n], env=env, log=tmp_path / f"{n}.log"))
        wait_for((dirs["zm-police"] / "exchange" / "outbox").exists, 30, "the sender's folder")
        yield dirs["zm-police"], dirs["zw-police"]
    finally:
        for process in processes:
            stop(process)
        broker.stop()
    for n in dirs:
        assert "Traceback" not in (tmp_path / f"{n}.log").read_text()


def test_a_request_written_in_place_in_chunks_is_sent_once_and_never_failed(
    folder_nodes: tuple[Path, Path],
) -> None:
    zm, zw = folder_nodes
    exchange = zm / "exchange"
    data = json.dumps(_request("Written slowly at Nakonde."), indent=2).encode()
    chunks = [data[i : i + len(data) // 4 + 1] for i in range(0, len(data), len(data) // 4 + 1)]
    assert len(chunks) == 4
    # a scanner program writes straight into outbox/, pausing well under the 2 s settle time
    with (exchange / "outbox" / "scan-0001.json").open("wb", buffering=0) as handle:
        for chunk in chunks:
            handle.write(chunk)
            time.sleep(0.3)

    wait_for(lambda: any((exchange / "sent").glob("*.json")), 30, "the file in sent/")
    [sent] = (exchange / "sent").glob("*.json")
    assert sent.read_bytes() == data
    assert sorted(os.listdir(exchange / "failed")) == []  # never taken for a broken file
    assert "folder_refused" not in (zm.parent / "zm-police.log").read_text()
    wait_for(lambda: _received_notes(zw) == ["Written slowly at Nakonde."], 60, "it on zw")
    rows = read_store(zw / "node.db", "SELECT message_id FROM inbox")
    assert rows == [(sent.stem,)]  # sent once


def _refusals(zm: Path, name: str) -> int:
    """How often the sender's log says it refused ``name``."""
    log = (zm.parent / "zm-police.log").read_text().splitlines()
    return len([line for line in log if "folder_refused" in line and name in line])


def test_a_refused_file_changed_in_failed_is_tried_again_and_an_untouched_one_is_not(
    folder_nodes: tuple[Path, Path],
) -> None:
    zm, zw = folder_nodes
    exchange = zm / "exchange"
    outbox, failed, sent = exchange / "outbox", exchange / "failed", exchange / "sent"
    names = {"case-0149.json": "Asked again, Harare.", "case-0150.json": "Fixed later, Sesheke.",
             "case-0151.json": "Left alone, Chirundu.", "case-0152.json": "Replaced, Beitbridge."}  # fmt: skip
    for name, note in names.items():
        staging = outbox / f".{name}"  # the rename convention
        staging.write_text(json.dumps(_request(note, status="Dancing")))
        os.replace(staging, outbox / name)
    for name in names:
        wait_for((failed / f"{name}.error.txt").exists, 30, f"{name} refused")
        wait_for((failed / name).exists, 30, f"{name} in failed/")
    refusal_0151 = (failed / "case-0151.json.error.txt").read_text()
    assert "field: payload.status" in refusal_0151 and "sha256: " in refusal_0151

    # the user fixes case-0150 where it lies (in place, as an editor saving it does) ...
    (failed / "case-0150.json").write_text(json.dumps(_request(names["case-0150.json"])))
    # ... and writes a corrected case-0152 into outbox/ under the same name
    (outbox / ".case-0152.json").write_text(json.dumps(_request(names["case-0152.json"])))
    os.replace(outbox / ".case-0152.json", outbox / "case-0152.json")
    # Once case-0150 has left failed/, the node has looked at case-0149 too and found it as it
    # was refused (it settled no later and sorts first); the user now asks for it to be tried
    # unchanged by deleting its report.
    wait_for(lambda: not (failed / "case-0150.json").exists(), 30, "case-0150 tried again")
    (failed / "case-0149.json.error.txt").unlink()

    expected = ["Fixed later, Sesheke.", "Replaced, Beitbridge."]
    wait_for(lambda: _received_notes(zw) == expected, 60, "both corrected requests on zw")
    left = ["case-0149.json", "case-0149.json.error.txt", "case-0151.json",
            "case-0151.json.error.txt"]  # fmt: skip
    wait_for(lambda: sorted(os.listdir(failed)) == left, 30, "failed/ to keep the others")
    assert len(list(sent.glob("*.json"))) == 2 and os.listdir(outbox) == []
    # tried again, refused again with a new report
    wait_for(lambda: _refusals(zm, "case-0149") == 2, 10, "case-0149 refused a second time")
    # the untouched refused file was not tried again: refused once, its report unchanged
    assert (failed / "case-0151.json.error.txt").read_text() == refusal_0151
    assert _refusals(zm, "case-0151") == 1
    assert len(read_store(zw / "node.db", "SELECT message_id FROM inbox")) == 2
