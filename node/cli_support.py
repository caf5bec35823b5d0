"""Small helpers every command module of the CLI shares: the one-line failure, the clock,
JSON output, reading a file, asking for confirmation."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any


class CommandFailed(Exception):
    """A command could not do what was asked; the message is the one line shown to the user."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CommandFailed(f"{path}: cannot read ({exc.strerror})") from exc


def confirm(question: str, assume_yes: bool) -> None:
    if assume_yes:
        return
    if not sys.stdin.isatty():
        raise CommandFailed("not confirmed: compare the fingerprint, then run again with --yes")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise CommandFailed("not confirmed; nothing changed")
