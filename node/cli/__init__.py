"""``xnode`` command line: node set-up, keys, peers and offline envelopes.

Exit status: 0 success, 1 the operation was refused or failed (one line on stderr says why),
2 the command line itself was wrong.

One module per command group, each with its commands and a ``register(sub)`` that adds them to
the parser; :data:`GROUPS` lists them in the order ``xnode --help`` shows them. A new group is one
module and one entry there. Shared helpers live in :mod:`node.cli.support`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata

from node import member_requests, submit
from node.adapters import AdapterError
from node.cli import (
    audit,
    dev,
    envelope,
    init_keys,
    messages,
    peers,
    processing,
    protection,
    run,
    schemas,
    stats,
    tokens,
    trust,
    users,
)
from node.cli.support import EXIT_FAILED, EXIT_OK, CommandFailed, Handler, Subcommands
from node.codec import CodecError, SchemaError, default_registry
from node.config import ConfigError
from node.crypto.keyfile import KeyFileError
from node.envelope import EnvelopeError, SealError
from node.nodedir import NodeDirError
from node.policy import PolicyRefused
from node.routing.ids import InvalidIdentifier
from node.store.base import StoreError
from node.tokens import TokenError
from node.trust import TrustError
from node.trustlist import TrustListRejected
from node.validation import PayloadInvalid

# The command groups, in the order `xnode --help` lists their commands.
GROUPS: tuple[Callable[[Subcommands], None], ...] = (
    init_keys.register,  # init, keys
    peers.register,
    trust.register,
    envelope.register,
    schemas.register,
    run.register,
    messages.register,  # send, status, inbox, quarantine, webhook
    tokens.register,  # token
    users.register,  # users (the officer console's accounts)
    audit.register,
    processing.register,  # processing-record
    protection.register,  # erasure, hold
    stats.register,  # stats import|compute|send|report|releases
    dev.register,  # broker, demo
)


def _version() -> str:
    try:
        return metadata.version("xnode")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xnode",
        description="Secure information-exchange node: signed, end-to-end encrypted messages.",
    )
    parser.add_argument("--version", action="version", version=f"xnode {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in GROUPS:
        register(sub)
    return parser


_EXPECTED_FAILURES = (
    TrustListRejected,
    member_requests.RequestRefused,
    submit.FederationExpired,
    submit.UnknownRecipient,
    StoreError,
    PayloadInvalid,
    CommandFailed,
    TokenError,
    AdapterError,
    NodeDirError,
    KeyFileError,
    TrustError,
    ConfigError,
    InvalidIdentifier,
    SealError,
    CodecError,
    SchemaError,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args, default_registry())
    except EnvelopeError as exc:
        print(f"xnode: refused: {exc.reason}: {exc.detail}", file=sys.stderr)
    except PolicyRefused as exc:
        print(f"xnode: refused: policy-denied: {exc}", file=sys.stderr)
    except _EXPECTED_FAILURES as exc:
        print(f"xnode: error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("xnode: interrupted", file=sys.stderr)
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: not an error of ours; keep Python quiet at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return EXIT_FAILED
