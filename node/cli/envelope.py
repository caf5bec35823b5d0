"""``xnode envelope``: seal, inspect and open envelope files offline, with no broker."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from node import envelope
from node.cli.sealing import message_args, submission
from node.cli.support import (
    EXIT_FAILED,
    EXIT_OK,
    Subcommands,
    node_dir_arg,
    now,
    print_json,
    read_bytes,
)
from node.codec import SchemaRegistry, format_timestamp
from node.nodedir import NodeDir
from node.routing.ids import parse_id_list
from node.trust import PeerDirectory


def cmd_envelope_seal(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    _, _, _, (message, _event) = submission(args, registry, parse_id_list(args.to))
    args.out.write_bytes(message.envelope)
    print(f"Sealed {message.message_id} ({len(message.envelope)} bytes) to {args.out}")
    print(f"  kind {message.kind}, to {', '.join(message.recipients)}")
    print(f"  sha256 {message.envelope_sha256}")
    return EXIT_OK


def cmd_envelope_inspect(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    data = read_bytes(args.file)
    parsed = envelope.parse(registry, data, max_bytes=max(len(data), 1))
    result: dict[str, Any] = {
        "header": envelope.header_json(registry, parsed.header),
        "size": len(data),
        "sha256": parsed.sha256.hex(),
    }
    status = EXIT_OK
    if args.dir is None:
        result["signature"] = {"status": "not checked", "detail": "give --dir to verify"}
    else:
        node_dir = NodeDir(args.dir)
        known = [s.descriptor for s in node_dir.peers(registry).values()]
        known.append(node_dir.own_descriptor(registry).descriptor)
        try:
            sender = envelope.verify_sender(parsed, PeerDirectory.of(known), now=None)
        except envelope.EnvelopeError as exc:
            result["signature"] = {"status": exc.reason, "detail": exc.detail}
            status = EXIT_FAILED
        else:
            result["signature"] = {
                "status": "valid",
                "signer": sender.node_id,
                "fingerprint": sender.fingerprint,
            }
    print_json(result)
    return status


def cmd_envelope_open(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    data = read_bytes(args.file)
    peers = node_dir.peer_directory(registry)
    keys = node_dir.load_keys(registry, node_dir.passphrase(config))
    opened = envelope.open_envelope(
        registry,
        data,
        own_id=config.node.id,
        own_keys=keys.encryption,
        peers=peers,
        now=now(),
        max_skew=dt.timedelta(seconds=config.envelope.clock_skew_seconds),
        max_bytes=config.envelope.max_bytes,
    )
    header = opened.header
    print_json(
        {
            "verified_sender": opened.sender.node_id,
            "sender_fingerprint": opened.sender.fingerprint,
            "message_id": header.message_id,
            "kind": header.kind,
            "thread_id": header.thread_id,
            "in_reply_to": header.in_reply_to,
            "priority": header.priority,
            "created_at": format_timestamp(header.created_at),
            "expires_at": format_timestamp(header.expires_at),
            "payload_schema": opened.payload_schema.name,
            "payload": registry.to_json(opened.payload_schema.name, opened.payload),
        }
    )
    return EXIT_OK


def register(sub: Subcommands) -> None:
    """Add ``xnode envelope ...`` to the CLI's subcommands."""
    env = sub.add_parser("envelope", help="seal, inspect and open envelope files offline")
    env_sub = env.add_subparsers(dest="envelope_command", required=True, metavar="ACTION")
    p = env_sub.add_parser("seal", help="sign and encrypt a JSON payload into an envelope file")
    node_dir_arg(p)
    p.add_argument("--to", required=True, help="recipient node ids, comma-separated")
    p.add_argument("--out", type=Path, required=True, help="envelope file to write")
    message_args(p)
    p.set_defaults(handler=cmd_envelope_seal)
    p = env_sub.add_parser(
        "inspect", help="print the header and check the signature; no decryption"
    )
    p.add_argument("file", type=Path)
    p.add_argument("--dir", type=Path, help="node directory whose peers verify the signature")
    p.set_defaults(handler=cmd_envelope_inspect)
    p = env_sub.add_parser(
        "open", help="verify, decrypt and print an envelope addressed to this node"
    )
    node_dir_arg(p)
    p.add_argument("file", type=Path)
    p.set_defaults(handler=cmd_envelope_open)
