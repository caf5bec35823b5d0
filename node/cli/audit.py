"""``xnode audit``: verify, sign checkpoints of and read the hash-chained audit log."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from node import audit, checkpoint
from node.cli.support import (
    EXIT_OK,
    CommandFailed,
    Subcommands,
    node_dir_arg,
    now,
    open_node_store,
    print_json,
    print_listing,
)
from node.codec import SchemaRegistry, format_timestamp
from node.nodedir import NodeDir, read_checkpoint
from node.service import open_store
from node.trust import SignedDescriptor


def _peer_checkpoint_file(
    registry: SchemaRegistry, path: Path, own: SignedDescriptor
) -> checkpoint.SignedCheckpoint:
    """A checkpoint of this node that a peer kept (``audit peer-checkpoints --out``)."""
    found = read_checkpoint(registry, path, own.node_id, own.descriptor.identity_key)
    if found is None:
        raise CommandFailed(f"{path}: cannot read (No such file or directory)")
    return found


def cmd_audit_verify(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    own = node_dir.own_descriptor(registry)
    local = node_dir.own_checkpoint(registry, config, own.descriptor)
    peers = [(f"kept by a peer, {path.name}", _peer_checkpoint_file(registry, path, own))
             for path in args.peer_checkpoints or ()]  # fmt: skip
    with open_store(node_dir, config) as store:
        entries = store.audit_entries()
    report = audit.verify(entries)
    if not report.ok:
        raise CommandFailed(
            f"audit chain broken at entry {report.broken_at}: {report.problem} "
            f"({report.length} entries read)"
        )
    verdict = checkpoint.assess(report.length, {e.seq: e.hash for e in entries}, local, peers)
    if not verdict.intact:
        raise CommandFailed(verdict.line)
    print(f"Audit chain intact: {report.length} entries; {verdict.detail}.")
    return EXIT_OK


def cmd_audit_checkpoint(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    """Sign a checkpoint now (the running node does this by itself every N events or T s)."""
    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    own = node_dir.own_descriptor(registry)
    local = node_dir.own_checkpoint(registry, config, own.descriptor)
    with open_store(node_dir, config) as store:
        entries = store.audit_entries()
    report = audit.verify(entries)
    if not report.ok:
        raise CommandFailed(f"audit chain broken at entry {report.broken_at}: {report.problem}; "
                            "no checkpoint signed")  # fmt: skip
    if report.length == 0:
        raise CommandFailed("the audit log is empty; nothing to sign")
    verdict = checkpoint.assess(report.length, {e.seq: e.hash for e in entries}, local, [])
    if not verdict.intact:
        raise CommandFailed(f"{verdict.line}; no checkpoint signed over it")
    keys = node_dir.load_keys(registry, node_dir.passphrase(config))
    head = checkpoint.Checkpoint(own.node_id, report.length, entries[-1].hash, now())
    signed = checkpoint.issue(registry, keys.identity, head)
    node_dir.save_own_checkpoint(config, signed)
    print(f"Signed checkpoint at entry {report.length} ({entries[-1].hash[:16]}...) in "
          f"{node_dir.checkpoint_path(config)}")  # fmt: skip
    return EXIT_OK


def cmd_audit_peer_checkpoints(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    """What this node keeps of its peers' checkpoints: a list, or one exported for its owner."""
    node_dir = NodeDir(args.dir)
    peers = {n: s.descriptor for n, s in node_dir.peers(registry).items()}
    if args.node is None:
        rows = []
        for node_id in node_dir.peer_checkpoint_ids():
            if node_id in peers:
                signed = node_dir.peer_checkpoint(registry, peers[node_id])
                if signed is not None:
                    rows.append(checkpoint.to_document(signed))
        return print_listing(
            rows, args.json,
            "No checkpoints from peers yet (the running node keeps those it receives).",
            lambda r: f"{r['node_id']:<32} entry {r['count']:<8} signed {r['created_at']}  "
                      f"{r['head_hash'][:16]}...",
        )  # fmt: skip
    if args.node not in peers:
        raise CommandFailed(f"{args.node} is not a known peer")
    signed = node_dir.peer_checkpoint(registry, peers[args.node])
    if signed is None:
        raise CommandFailed(f"no checkpoint of {args.node} kept yet")
    text = json.dumps(checkpoint.to_document(signed), indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return EXIT_OK
    args.out.write_text(text, "utf-8")
    print(f"Wrote the checkpoint of {args.node} at entry {signed.checkpoint.count} to {args.out}")
    print(f"  give it to {args.node}: xnode audit verify --dir DIR --peer-checkpoints FILE")
    return EXIT_OK


def cmd_audit_show(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    with open_node_store(args) as store:
        entries = store.audit_entries(args.message)
    rows: list[dict[str, Any]] = [
        {
            "seq": e.seq,
            "at": format_timestamp(e.event.at),
            "event": e.event.event,
            "message_id": e.event.message_id,
            "peer": e.event.peer,
            "detail": dict(e.event.detail),
            "hash": e.hash,
        }
        for e in entries
    ]
    if args.json:
        print_json(rows)
        return EXIT_OK
    for r in rows:
        detail = " ".join(f"{k}={v}" for k, v in r["detail"].items())
        print(f"{r['seq']:>6} {r['at']} {r['event']:<15} {r['message_id'] or '-':<36} "
              f"{r['peer'] or '-':<24} {detail}")  # fmt: skip
    return EXIT_OK


def register(sub: Subcommands) -> None:
    """Add ``xnode audit ...`` to the CLI's subcommands."""
    audit_parser = sub.add_parser("audit", help="the hash-chained audit log")
    audit_sub = audit_parser.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    p = audit_sub.add_parser(
        "verify", help="check every link of the chain, and that no checkpoint is missing from it"
    )
    node_dir_arg(p)
    p.add_argument(
        "--peer-checkpoints",
        type=Path,
        action="append",
        metavar="FILE",
        help="a checkpoint of this node kept by a peer (audit peer-checkpoints --out); repeatable",
    )
    p.set_defaults(handler=cmd_audit_verify)
    p = audit_sub.add_parser("checkpoint", help="sign a checkpoint of the chain now")
    node_dir_arg(p)
    p.set_defaults(handler=cmd_audit_checkpoint)
    p = audit_sub.add_parser(
        "peer-checkpoints", help="the newest checkpoints kept of peers; export one with --node"
    )
    node_dir_arg(p)
    p.add_argument("--node", help="the peer whose checkpoint to export")
    p.add_argument("--out", type=Path, help="file to write (default: standard output)")
    p.add_argument("--json", action="store_true", help="machine-readable list")
    p.set_defaults(handler=cmd_audit_peer_checkpoints)
    p = audit_sub.add_parser("show", help="print audit events")
    node_dir_arg(p)
    p.add_argument("--message", help="only events of this message id")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_audit_show)
