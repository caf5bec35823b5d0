"""Folder adapter: exchange JSON files with a node (README "Folder adapter").

For an office with a laptop and no case-management system. Under ``[folder] path``:

* ``outbox/`` — drop a request (the body of ``POST /v1/messages``) as ``<name>.json``. Write it
  under another name first (``.<name>.json`` or ``<name>.json.tmp``, both ignored) and rename
  it when complete: the rename is atomic, so a half-written file is never read. It is sent and
  moved to ``sent/<message id>.json``; a refused file moves to ``failed/<name>`` with
  ``failed/<name>.error.txt`` beside it naming the field and the problem.
* ``inbox/<kind>/<message id>.json`` — each received message (the inbox JSON), written to a
  temporary file, flushed to disk, then renamed into place.

Restart-safe without duplicates: a file is submitted with an idempotency key made of its name
and content hash, so a crash between submitting and moving it re-submits the same request and
gets the same message id back; inbound progress is a cursor in the store advanced after each
file is in place, and re-writing a file after a crash replaces it with identical content.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from node.adapters import requests

if TYPE_CHECKING:
    from node.service import Node

log = structlog.get_logger("xnode.folder")
ADAPTER = "folder"
SUBDIRS = ("outbox", "sent", "failed", "inbox")


def is_request_file(name: str) -> bool:
    """Complete request files only: ``*.json``, not hidden, not temporary."""
    return name.endswith(".json") and not name.startswith(".")


def write_file_atomically(path: Path, data: bytes) -> None:
    """Temp file beside ``path`` -> fsync -> rename -> fsync the directory. Mode 0600."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move(source: Path, target: Path) -> None:
    os.replace(source, target)
    _fsync_dir(target.parent)
    _fsync_dir(source.parent)


class FolderAdapter:
    def __init__(self, node: Node) -> None:
        self.node = node
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        config = self.node.config.folder
        root = Path(config.path)
        self.root = root if root.is_absolute() else self.node.node_dir.path / root
        for name in SUBDIRS:
            (self.root / name).mkdir(parents=True, exist_ok=True, mode=0o700)
        self.interval = config.poll_interval_ms / 1000
        self._stopping.clear()
        self._tasks = [
            asyncio.create_task(self._outbound_loop(), name=f"{self.node.node_id}-folder-out"),
            asyncio.create_task(self._inbound_loop(), name=f"{self.node.node_id}-folder-in"),
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
            try:
                await self.scan_outbox()
            except Exception:
                log.exception("folder_outbox_failed", node=self.node.node_id)
            await self._sleep(self.interval)

    async def scan_outbox(self) -> None:
        outbox = self.root / "outbox"
        names = sorted(n for n in os.listdir(outbox) if is_request_file(n))
        for name in names:
            if self._stopping.is_set():
                return
            await self._send_file(outbox / name)

    async def _send_file(self, path: Path) -> None:
        data = path.read_bytes()
        key = f"folder:{path.name}:{hashlib.sha256(data).hexdigest()}"
        try:
            try:
                body: Any = json.loads(data)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise requests.Refusal(400, f"invalid JSON: {exc}") from exc
            request = requests.from_json(body, idempotency_key=key)
            message_id = await requests.send(self.node, request)
        except requests.Refusal as exc:
            self._fail(path, exc)
            return
        move(path, self.root / "sent" / f"{message_id}.json")
        log.info("folder_sent", node=self.node.node_id, file=path.name, message_id=message_id)

    def _fail(self, path: Path, refusal: requests.Refusal) -> None:
        failed = self.root / "failed"
        lines = [
            f"file: {path.name}",
            f"field: {refusal.field or '-'}",
            f"problem: {refusal.error}",
            f"status: {refusal.status}",
        ]
        write_file_atomically(failed / f"{path.name}.error.txt", ("\n".join(lines) + "\n").encode())
        move(path, failed / path.name)
        # the error text may quote a payload value: it goes to the .error.txt, not to the log
        log.warning("folder_refused", node=self.node.node_id, file=path.name,
                    field=refusal.field, status=refusal.status)  # fmt: skip

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
            write_file_atomically(directory / f"{item['id']}.json", data)
            await node._run(node.store.set_adapter_cursor, ADAPTER, item["cursor"])
        return len(items)
