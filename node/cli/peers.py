"""``xnode peers``: exchange descriptors by file, and trust, revoke or forget a peer."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from node import trustlist
from node.cli.support import (
    EXIT_OK,
    CommandFailed,
    Subcommands,
    audit_change,
    confirm,
    descriptor_summary,
    node_dir_arg,
    now,
    print_json,
    read_bytes,
)
from node.codec import SchemaRegistry
from node.nodedir import NodeDir
from node.trust import (
    REVOCATION_REASONS,
    Descriptor,
    PeerChange,
    Revocation,
    check_revocation,
    decide_peer_add,
    verify_descriptor,
)


def cmd_peers_export(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    signed = NodeDir(args.dir).own_descriptor(registry)
    if args.out is None:
        sys.stdout.buffer.write(signed.raw)
        sys.stdout.buffer.flush()
        return EXIT_OK
    args.out.write_bytes(signed.raw)
    print(f"Wrote descriptor of {signed.node_id} to {args.out}")
    print(f"  fingerprint: {signed.descriptor.fingerprint}")
    print("Give the file to the peer and read the fingerprint to them over another channel.")
    return EXIT_OK


def cmd_peers_add(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    incoming = verify_descriptor(read_bytes(args.file), registry)
    d = incoming.descriptor
    print(f"Descriptor of {d.node_id} ({d.display_name}), version {d.descriptor_version}")
    print(f"  roles:       {', '.join(d.roles)}")
    print(f"  fingerprint: {d.fingerprint}")
    known = node_dir.peers(registry).get(d.node_id)
    change = decide_peer_add(config.node.id, known, incoming, now())  # refuse before asking
    if change is PeerChange.UNCHANGED:
        print("Already known with this exact descriptor; nothing changed.")
        return EXIT_OK
    confirm("Does this fingerprint match the one the peer gave you?", args.yes)
    node_dir.add_peer(registry, config.node.id, incoming, now())
    event = "peer-added" if change is PeerChange.NEW else "peer-updated"
    audit_change(node_dir, config, event, d.node_id, {
        "fingerprint": d.fingerprint, "descriptor_version": d.descriptor_version})  # fmt: skip
    verb = "Added" if change is PeerChange.NEW else "Updated"
    print(f"{verb} peer {d.node_id}.")
    return EXIT_OK


def _list_standing(held: trustlist.SignedTrustList | None, d: Descriptor) -> str | None:
    """What the federation trust list says of a stored peer (None in bilateral mode)."""
    if held is None:
        return None
    t = held.trust_list
    problem = trustlist.backs(t, d.node_id, d.identity_key)
    if problem is not None:
        return f"NOT USED: {problem}"
    m = t.member(d.node_id)
    assert m is not None
    if m.status == "active":
        return f"member of {t.federation} v{t.list_version}"
    return f"{m.status.upper()} by {t.federation} v{t.list_version} ({m.reason})"


def cmd_peers_list(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    peers, revoked = node_dir.peers(registry), node_dir.revocations()
    held = node_dir.trust_list(registry)
    if args.json:
        docs = []
        for p in peers.values():
            r = revoked.get(p.node_id)
            docs.append({**descriptor_summary(p), "status": "revoked" if r else "active",
                         "revocation": r.to_json() if r else None,
                         "trust_list": _list_standing(held, p.descriptor)})  # fmt: skip
        print_json(docs)
        return EXIT_OK
    if not peers:
        print("No peers yet. Add one with: xnode peers add --dir DIR FILE"
              + (" (federated mode: members' descriptors arrive on the control topic)"
                 if held else ""))  # fmt: skip
        return EXIT_OK
    for signed in peers.values():
        d = signed.descriptor
        r = revoked.get(d.node_id)
        status = f"REVOKED ({r.reason}, {r.at:%Y-%m-%d %H:%M} UTC)" if r else "active"
        print(
            f"{d.node_id:<32} v{d.descriptor_version:<3} {','.join(d.roles):<28} {d.display_name}"
        )
        print(f"{'':<32} fingerprint {d.fingerprint}")
        print(f"{'':<32} status      {status}{' - ' + r.note if r and r.note else ''}")
        standing = _list_standing(held, d)
        if standing is not None:
            print(f"{'':<32} trust list  {standing}")
    return EXIT_OK


def cmd_peers_revoke(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    """Stop trusting a peer at once: a running node refuses its envelopes as revoked-sender
    from its next peer reload (within seconds) and sends it nothing more."""
    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    revocations = node_dir.revocations()
    if args.node_id not in node_dir.peers(registry) and args.node_id not in revocations:
        raise CommandFailed(f"{args.node_id} is not a known peer")
    revocation = Revocation(args.node_id, args.reason, now(), args.note or "")
    check_revocation(revocation)
    node_dir.save_revocations({**revocations, args.node_id: revocation})
    audit_change(node_dir, config, "peer-revoked", args.node_id,
           {"reason": args.reason, "note": args.note or ""})  # fmt: skip
    print(
        f"Revoked {args.node_id} ({args.reason}). A running node applies this within seconds:"
        " its envelopes are refused as revoked-sender, nothing is sent to it."
    )
    return EXIT_OK


def cmd_peers_unrevoke(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    revocations = node_dir.revocations()
    if args.node_id not in revocations:
        raise CommandFailed(f"{args.node_id} is not revoked")
    confirm(f"Trust {args.node_id} again?", args.yes)
    node_dir.save_revocations({n: r for n, r in revocations.items() if n != args.node_id})
    audit_change(node_dir, node_dir.load_config(), "peer-unrevoked", args.node_id,
           {"was": revocations[args.node_id].reason})  # fmt: skip
    print(f"{args.node_id} is trusted again.")
    return EXIT_OK


def cmd_peers_remove(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    known = node_dir.peers(registry).get(args.node_id)
    if known is None:
        raise CommandFailed(f"{args.node_id} is not a known peer")
    confirm(f"Remove peer {args.node_id} ({known.descriptor.fingerprint})?", args.yes)
    node_dir.remove_peer(args.node_id)
    audit_change(node_dir, node_dir.load_config(), "peer-removed", args.node_id,
           {"fingerprint": known.descriptor.fingerprint})  # fmt: skip
    print(f"Removed peer {args.node_id}.")
    return EXIT_OK


def register(sub: Subcommands) -> None:
    """Add ``xnode peers ...`` to the CLI's subcommands."""
    peers = sub.add_parser("peers", help="exchange and manage peer descriptors").add_subparsers(
        dest="peers_command", required=True, metavar="ACTION"
    )
    p = peers.add_parser("export", help="write this node's signed descriptor")
    node_dir_arg(p)
    p.add_argument("--out", type=Path, help="file to write (default: standard output)")
    p.set_defaults(handler=cmd_peers_export)
    p = peers.add_parser("add", help="verify a peer's descriptor file and trust it")
    node_dir_arg(p)
    p.add_argument("file", type=Path, help="descriptor file from the peer")
    p.add_argument("--yes", action="store_true", help="the fingerprint was checked; do not ask")
    p.set_defaults(handler=cmd_peers_add)
    p = peers.add_parser("list", help="known peers with their fingerprints")
    node_dir_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_peers_list)
    p = peers.add_parser("revoke", help="stop trusting a peer now (stolen keys, misbehaviour)")
    node_dir_arg(p)
    p.add_argument("node_id", help="peer node id")
    p.add_argument("--reason", required=True, choices=list(REVOCATION_REASONS),
                   help="; ".join(f"{k}: {v}" for k, v in REVOCATION_REASONS.items()))  # fmt: skip
    p.add_argument("--note", help="free text kept with the revocation (who decided, ticket)")
    p.set_defaults(handler=cmd_peers_revoke)
    p = peers.add_parser("unrevoke", help="trust a revoked peer again")
    node_dir_arg(p)
    p.add_argument("node_id", help="peer node id")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=cmd_peers_unrevoke)
    p = peers.add_parser("remove", help="forget a peer")
    node_dir_arg(p)
    p.add_argument("node_id", help="peer node id")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=cmd_peers_remove)
