"""Folder adapter: exchange JSON files with a node (README "Folder").

For an office with a laptop and no case-management system. Under ``[folder] path``:

* ``outbox/`` — drop a request (the body of ``POST /v1/messages``) as ``<name>.json``. A file is
  read only once its size and mtime have stayed the same for ``folder.settle_ms``, so a writer
  that fills it in place slowly (an editor, a scanner program, a network share) is not caught
  half-way. Writing under another name first (``.<name>.json`` or ``<name>.json.tmp``, both
  ignored) and renaming it when complete is atomic and safe whatever the settle time. A sent
  file moves to ``sent/<message id>.json``; a refused one to ``failed/<name>`` with
  ``failed/<name>.error.txt`` beside it naming the field, the problem and the content hash of
  what was refused.
* ``failed/`` — a file whose content no longer matches that hash (the user fixed it there, or
  a slow writer went on writing into it), or whose ``.error.txt`` was deleted, is tried again
  in place once it has settled. A new ``outbox/<name>`` that is sent clears an untouched
  ``failed/<name>`` it replaces.
* ``inbox/<kind>/<message id>.json`` — each received message (the inbox JSON), written to a
  temporary file, flushed to disk, then renamed into place; ``<message id>.<sender>.json`` if
  another sender's message already has that name (two senders used one id).
* ``status/<message id>.<recipient>.json`` — the final outcome of each message this node sent,
  per recipient (``delivered``, ``rejected`` with its reason — e.g. ``recipient-revoked`` — or
  ``expired``): the status event JSON the webhook posts, written the same atomic way. A
  delivery becomes final once, so each name is written once (again only after a crash, with the
  same content).

Restart-safe without duplicates: a file is submitted with an idempotency key made of its name
and content hash, so a crash between submitting and moving it re-submits the same request and
gets the same message id back; inbound progress is a cursor in the store advanced after each
file is in place, and re-writing a file after a crash replaces it with identical content;
status files the same way, with a cursor of their own (adapter ``folder-status``).

Which files have settled is decided by :class:`SettleTracker`, a pure class fed with directory
listings and the time; :class:`FolderAdapter` does the I/O around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import stat
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from node.adapters import requests
from node.nodedir import fsync_directory, write_atomically
from node.store.base import InboxMessage, StatusEvent
from node.views import status_event_item

if TYPE_CHECKING:
    from node.service import Node

log = structlog.get_logger("xnode.folder")
ADAPTER = "folder"
STATUS_ADAPTER = "folder-status"  # the cursor of status events in ``adapter_cursors``
SUBDIRS = ("outbox", "sent", "failed", "inbox", "status")
ERROR_SUFFIX = ".error.txt"
DIGEST_LINE = "sha256: "

Stat = tuple[int, int]
"""What a listing tells about a file: ``(size, mtime_ns)``; any change means it is being
written."""
Observation = tuple[int, ...]
"""What :class:`SettleTracker` compares between listings: a :data:`Stat`, or for ``failed/``
the file's and its report's (a new or deleted report is a change too)."""


def is_request_file(name: str) -> bool:
    """Complete request files only: ``*.json``, not hidden, not temporary."""
    return name.endswith(".json") and not name.startswith(".")


# -- functional core -----------------------------------------------------------------------------


@dataclass
class _Seen:
    stat: Observation
    since_ns: int  # when this observation was first made
    handled: bool = False


class SettleTracker:
    """Which files of one directory have stopped changing long enough to be read.

    Fed with listings (``name -> (size, mtime_ns)``, or any :data:`Observation`) and a
    monotonic time; it never touches the disk. A file is *ready* once the same observation has
    held for ``settle_ns`` (0: at once). Only changes between listings can be seen, so the
    settle time must exceed the longest pause of a slow writer. The caller marks a file
    :meth:`handled` once it has dealt with its current content, and the file is not reported
    again until its observation changes; a file that vanished from a listing is forgotten
    (coming back, it settles anew).
    """

    def __init__(self, settle_ns: int) -> None:
        self.settle_ns = settle_ns
        self._seen: dict[str, _Seen] = {}

    def observe(self, listing: Mapping[str, Observation], now_ns: int) -> list[str]:
        """Record one listing of the directory; return the ready, unhandled names, sorted."""
        seen: dict[str, _Seen] = {}
        for name, current in listing.items():
            before = self._seen.get(name)
            seen[name] = before if before and before.stat == current else _Seen(current, now_ns)
        self._seen = seen
        return sorted(
            name
            for name, s in seen.items()
            if not s.handled and now_ns - s.since_ns >= self.settle_ns
        )

    def handled(self, name: str) -> None:
        """Do not report ``name`` again until its observation changes (or it leaves and comes
        back)."""
        if name in self._seen:
            self._seen[name].handled = True

    def next_ready_ns(self, now_ns: int) -> int | None:
        """Nanoseconds until the next file still settling becomes ready (None: none is)."""
        waits = [
            s.since_ns + self.settle_ns - now_ns
            for s in self._seen.values()
            if not s.handled and now_ns - s.since_ns < self.settle_ns
        ]
        return max(0, min(waits)) if waits else None


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def error_report(name: str, refusal: requests.Refusal, content_digest: str) -> str:
    """The ``.error.txt`` beside a refused file. The digest line records which content was
    refused: a later different content (the fix) is what makes the node try the file again."""
    lines = [
        f"file: {name}",
        f"field: {refusal.field or '-'}",
        f"problem: {refusal.error}",
        f"status: {refusal.status}",
        f"{DIGEST_LINE}{content_digest}",
        "",
        "Fix the file where it is (in failed/), or delete this .error.txt to try it unchanged:",
        "the node tries it again once it has stopped changing.",
    ]
    return "\n".join(lines) + "\n"


def recorded_digest(report: str) -> str | None:
    """The content digest an :func:`error_report` recorded (None: none, e.g. an older report)."""
    for line in report.splitlines():
        if line.startswith(DIGEST_LINE):
            return line[len(DIGEST_LINE) :].strip() or None
    return None


# -- file system --------------------------------------------------------------------------------


def write_file_atomically(path: Path, data: bytes) -> None:
    """Temp file beside ``path`` -> fsync -> rename -> fsync the directory. Mode 0600."""
    write_atomically(path, data, 0o600)


def move(source: Path, target: Path) -> None:
    os.replace(source, target)
    fsync_directory(target.parent)
    fsync_directory(source.parent)


def listing(directory: Path) -> dict[str, Stat]:
    """Request files in ``directory`` (regular files, see :func:`is_request_file`) by name."""
    found: dict[str, Stat] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            if not is_request_file(entry.name):
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:  # gone since the listing
                continue
            if stat.S_ISREG(st.st_mode):
                found[entry.name] = (st.st_size, st.st_mtime_ns)
    return found


def read_settled(path: Path, expected: Stat) -> bytes | None:
    """The file's bytes if it still has the settled stat before and after reading; None if it
    changed meanwhile (the tracker sees the change at the next listing) or is gone."""
    try:
        with path.open("rb") as handle:
            before = os.fstat(handle.fileno())
            if (before.st_size, before.st_mtime_ns) != expected:
                return None
            data = handle.read()
            after = os.fstat(handle.fileno())
    except FileNotFoundError:
        return None
    if (after.st_size, after.st_mtime_ns) != expected or len(data) != expected[0]:
        return None
    return data


def _stat(path: Path) -> Stat:
    """``(size, mtime_ns)`` of ``path``; ``(-1, -1)`` if there is none."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None


# -- imperative shell ---------------------------------------------------------------------------


def inbox_file(directory: Path, item: dict[str, Any]) -> Path:
    """``<message id>.json``; ``<message id>.<sender>.json`` when another sender's message is
    already there under that id (a collision: a message is its sender and its id, and one
    sender's file must never replace another's)."""
    path = directory / f"{item['id']}.json"
    try:
        existing = json.loads(path.read_bytes()).get("sender")
    except (OSError, ValueError, AttributeError):
        return path
    return path if existing == item["sender"] else directory / f"{item['id']}.{item['sender']}.json"


def shred(path: Path) -> None:
    """Overwrite a file with zeros, flush, unlink and flush the directory. On a journaling or
    copy-on-write file system old blocks may survive; the node's own disk encryption is the
    remedy there (docs/data-protection.md)."""
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.write(b"\0" * size)
        f.flush()
        os.fsync(f.fileno())
    path.unlink()
    fsync_directory(path.parent)


def status_file(directory: Path, event: StatusEvent) -> Path:
    """``<message id>.<recipient>.json``: one file per delivery of a sent message, which becomes
    final only once. Both parts are ids this node checked (its own message id, a peer's node
    id), so the name stays inside ``directory``."""
    if event.status == "overdue":  # a notice, before the outcome: a name of its own
        return directory / f"{event.message_id}.{event.recipient}.overdue.json"
    return directory / f"{event.message_id}.{event.recipient}.json"


class FolderAdapter:
    def __init__(self, node: Node) -> None:
        self.node = node
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        config = self.node.config.folder
        root = Path(config.path)
        self.root = root if root.is_absolute() else self.node.node_dir.path / root
        for name in SUBDIRS:  # 0700 also when they existed before (mkdir's mode obeys umask)
            (self.root / name).mkdir(parents=True, exist_ok=True, mode=0o700)
            (self.root / name).chmod(0o700)
        self.node.erasures.on_erased(self.erase_inbox_file)
        self.node.erasures.on_sent_erased(self.erase_sent_files)
        self.interval = config.poll_interval_ms / 1000
        settle_ns = config.settle_ms * 1_000_000
        self._outbox = SettleTracker(settle_ns)
        self._failed = SettleTracker(settle_ns)
        self._stopping.clear()
        self._tasks = [
            asyncio.create_task(self._outbound_loop(), name=f"{self.node.node_id}-folder-out"),
            *(
                [asyncio.create_task(self._inbound_loop(), name=f"{self.node.node_id}-folder-in")]
                if config.inbox_files
                else []
            ),
            asyncio.create_task(self._status_loop(), name=f"{self.node.node_id}-folder-status"),
        ]
        log.info("folder_started", node=self.node.node_id, path=str(self.root))

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 30)
        self._tasks = []

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # -- outbound -------------------------------------------------------------------------------

    async def _outbound_loop(self) -> None:
        while not self._stopping.is_set():
            for scan in (self.scan_outbox, self.scan_failed):
                try:
                    await scan()
                except Exception:  # e.g. the store failed: the file stays, tried next time
                    log.exception("folder_outbox_failed", node=self.node.node_id)
            await self._sleep(self._next_wait())

    def _next_wait(self) -> float:
        """The poll interval, or less when a settling file becomes ready sooner."""
        now = time.monotonic_ns()
        waits = [w for t in (self._outbox, self._failed) if (w := t.next_ready_ns(now)) is not None]
        return min([self.interval, *(w / 1e9 for w in waits)])

    async def scan_outbox(self) -> None:
        outbox = self.root / "outbox"
        files = listing(outbox)
        for name in self._outbox.observe(files, time.monotonic_ns()):
            if self._stopping.is_set():
                return
            data = read_settled(outbox / name, files[name])
            if data is not None:
                await self._send_file(outbox / name, data)

    async def scan_failed(self) -> None:
        """Try again each refused file that changed since it was refused, or whose report the
        user deleted."""
        failed = self.root / "failed"
        files = listing(failed)
        observed = {n: (*s, *_stat(failed / f"{n}{ERROR_SUFFIX}")) for n, s in files.items()}
        for name in self._failed.observe(observed, time.monotonic_ns()):
            if self._stopping.is_set():
                return
            data = read_settled(failed / name, files[name])
            if data is None:
                continue
            report = _read_text(failed / f"{name}{ERROR_SUFFIX}")
            if report is not None and recorded_digest(report) == digest(data):
                self._failed.handled(name)  # as refused: wait for the user to change it
                continue
            log.info("folder_retry", node=self.node.node_id, file=name)
            await self._send_file(failed / name, data)

    async def _send_file(self, path: Path, data: bytes) -> None:
        content_digest = digest(data)
        key = f"folder:{path.name}:{content_digest}"
        try:
            body: Any = requests.parse_json(data)
            request = requests.from_json(body, idempotency_key=key)
            message_id = await requests.send(self.node, request)
        except requests.Refusal as exc:
            self._fail(path, content_digest, exc)
            return
        move(path, self.root / "sent" / f"{message_id}.json")
        self._clear_failed(path.name)
        log.info("folder_sent", node=self.node.node_id, file=path.name, message_id=message_id)

    def _fail(self, path: Path, content_digest: str, refusal: requests.Refusal) -> None:
        failed = self.root / "failed"
        report = error_report(path.name, refusal, content_digest)
        write_file_atomically(failed / f"{path.name}{ERROR_SUFFIX}", report.encode())
        if path.parent != failed:  # else tried again in place: stays, with the new report
            move(path, failed / path.name)
        # the error text may quote a payload value: it goes to the .error.txt, not to the log
        log.warning("folder_refused", node=self.node.node_id, file=path.name,
                    field=refusal.field, status=refusal.status)  # fmt: skip

    def _clear_failed(self, name: str) -> None:
        """After ``name`` was sent: its ``.error.txt`` no longer applies, and a refused
        ``failed/<name>`` it replaced is removed unless the user changed it since (then that
        change is a request of its own, tried by :meth:`scan_failed`)."""
        failed = self.root / "failed"
        error, stale = failed / f"{name}{ERROR_SUFFIX}", failed / name
        report = _read_text(error)
        if report is None:
            return
        try:
            current: str | None = digest(stale.read_bytes())
        except FileNotFoundError:  # it was the file just sent (tried again from failed/)
            current = None
        if current is not None:
            if current != recorded_digest(report):
                return
            stale.unlink()
            log.info("folder_replaced", node=self.node.node_id, file=name)
        error.unlink(missing_ok=True)
        fsync_directory(failed)

    # -- inbound --------------------------------------------------------------------------------

    async def _inbound_loop(self) -> None:
        node = self.node
        while not self._stopping.is_set():
            try:
                written = await self.write_inbox()
            except Exception:
                log.exception("folder_inbox_failed", node=node.node_id)
                written = 0
            if not written:
                await node.inbox_changed.wait(self.interval)

    async def write_inbox(self) -> int:
        node = self.node
        cursor = await node._run(node.store.adapter_cursor, ADAPTER)
        items = await node.inbox_items(cursor, None, 100)
        for item in items:
            directory = self.root / "inbox" / item["kind"]
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            data = json.dumps(item, indent=2, ensure_ascii=False).encode("utf-8")
            write_file_atomically(inbox_file(directory, item), data)
            await node._run(node.store.set_adapter_cursor, ADAPTER, item["cursor"])
        return len(items)

    async def erase_inbox_file(self, message: InboxMessage) -> None:
        """A received message was erased at its sender's request: its file goes too (overwritten
        with zeros first, then unlinked). A file the local system already moved elsewhere is
        out of reach: the erasure request itself is handed over too, so it can follow."""
        directory = self.root / "inbox" / message.kind
        for path in (directory / f"{message.message_id}.json",
                     directory / f"{message.message_id}.{message.sender}.json"):  # fmt: skip
            with contextlib.suppress(FileNotFoundError):
                if json.loads(path.read_bytes()).get("sender") == message.sender:
                    await asyncio.to_thread(shred, path)
                    log.info("folder_file_erased", node=self.node.node_id,
                             message_id=message.message_id)  # fmt: skip

    async def erase_sent_files(self, message_ids: Sequence[str]) -> None:
        """This node erased messages it sent: the request files kept in ``sent/`` (the
        plaintext the local system dropped) go too."""
        for message_id in message_ids:
            path = self.root / "sent" / f"{message_id}.json"
            if path.exists():
                await asyncio.to_thread(shred, path)
                log.info("folder_file_erased", node=self.node.node_id, message_id=message_id)

    # -- status events --------------------------------------------------------------------------

    async def _status_loop(self) -> None:
        """Apart from the inbox loop: a status file that cannot be written (the disk) must not
        hold back received messages, nor they it."""
        node = self.node
        while not self._stopping.is_set():
            try:
                written = await self.write_status()
            except Exception:  # the disk or the store failed: the cursor stays, tried again
                log.exception("folder_status_failed", node=node.node_id)
                written = 0
            if not written:
                await node.status_changed.wait(self.interval)

    async def write_status(self) -> int:
        """Write the status events after the cursor to ``status/``; the cursor moves past each
        only once its file is in place."""
        node = self.node
        cursor = await node._run(node.store.adapter_cursor, STATUS_ADAPTER)
        events = await node._run(node.store.status_events, cursor, 100)
        for event in events:
            data = json.dumps(status_event_item(event), indent=2, ensure_ascii=False)
            write_file_atomically(status_file(self.root / "status", event), data.encode("utf-8"))
            await node._run(node.store.set_adapter_cursor, STATUS_ADAPTER, event.seq)
        return len(events)
