"""``xnode init`` and ``xnode keys``: create a node, show and rotate its keys."""

from __future__ import annotations

import argparse
from pathlib import Path

from node import member_requests
from node.cli.support import (
    EXIT_OK,
    CommandFailed,
    Subcommands,
    audit_change,
    descriptor_summary,
    node_dir_arg,
    now,
    print_json,
)
from node.codec import SchemaRegistry
from node.nodedir import NodeDir, read_passphrase, write_atomically
from node.routing.ids import ROLES


def cmd_init(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    roles = tuple(r.strip() for r in args.roles.split(",") if r.strip())
    node_dir = NodeDir(args.dir)
    passphrase = read_passphrase(args.passphrase_file)
    name = args.name or args.id
    signed = node_dir.create(
        registry,
        node_id=args.id,
        roles=roles,
        name=name,
        now=now(),
        passphrase=passphrase,
        key_valid_days=args.key_valid_days,
    )
    d = signed.descriptor
    audit_change(node_dir, node_dir.load_config(), "key-changed", d.node_id, {
        "identity_key_id": d.identity_key_id,
        "encryption_key_ids": [k.key_id for k in d.encryption_keys],
        "reason": "node created"})  # fmt: skip
    print(f"Created node {d.node_id} ({name}) in {args.dir}")
    print(f"  roles:       {', '.join(d.roles)}")
    print(f"  identity:    {d.identity_key_id}")
    print(f"  fingerprint: {d.fingerprint}")
    print(f"  keys:        {'passphrase-protected' if passphrase else 'NOT passphrase-protected'}")
    print(f"Share your descriptor with: xnode peers export --dir {args.dir} --out FILE")
    return EXIT_OK


def cmd_keys_rotate(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    """``--encryption``: a new encryption key in a new descriptor version. A running node picks
    it up within seconds; in federated mode it announces the descriptor and the members switch
    to the new key; in bilateral mode export the descriptor and have each peer add it again.

    ``--identity``: a new identity key, which the governors must put in the trust list. This
    writes a rotation request signed by the current and the new key; once a list naming the new
    key is applied here, the node switches to it by itself (and destroys the old one)."""
    if args.identity:
        return _rotate_identity(args, registry)
    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    old = node_dir.own_descriptor(registry).descriptor
    signed = node_dir.rotate_encryption_key(registry, node_dir.passphrase(config), now(),
                                            config.keys.encryption_valid_days)  # fmt: skip
    new = signed.descriptor.encryption_keys[-1]
    audit_change(node_dir, config, "key-changed", None, {
        "key_id": new.key_id, "descriptor_version": signed.descriptor.descriptor_version,
        "kept": [k.key_id for k in old.encryption_keys]})  # fmt: skip
    print(f"New encryption key {new.key_id}, valid until {new.valid_until:%Y-%m-%d}; descriptor "
          f"version {signed.descriptor.descriptor_version}. Earlier keys stay for "
          f"keys.retired_key_days ({config.keys.retired_key_days}) so messages already sealed "
          "to them still open; then stored messages are re-wrapped and the old key "
          "destroyed.")  # fmt: skip
    if node_dir.trust_list(registry) is None:
        print("Bilateral mode: export the descriptor (xnode peers export) and have each peer"
              " run xnode peers add with it.")  # fmt: skip
    return EXIT_OK


def _rotate_identity(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    held = node_dir.trust_list(registry)
    if held is None:
        raise CommandFailed(
            "identity keys are rotated through the federation's trust list, and this node holds"
            " none (bilateral mode): create a new node (xnode init) and have each peer add it"
        )
    if args.out is None:
        raise CommandFailed("--out FILE is required with --identity: the request to send")
    old, fresh, descriptor = node_dir.prepare_identity_rotation(
        registry, node_dir.passphrase(config), now()
    )
    raw = member_requests.make_request(
        registry, request=member_requests.ROTATE, federation=held.trust_list.federation,
        descriptor=descriptor, roles=descriptor.descriptor.roles, contact=args.contact or "",
        note=args.note or "", now=now(), signers=[old, fresh],
    )  # fmt: skip
    write_atomically(args.out, raw, 0o644)
    audit_change(node_dir, config, "key-rotation-requested", None, {
        "identity_key_id": old.key_id, "new_identity_key_id": fresh.key_id})  # fmt: skip
    print(f"Rotation request written to {args.out}: identity key {old.key_id} -> {fresh.key_id}")
    print(f"  new fingerprint: {descriptor.descriptor.fingerprint}")
    print("Send it to the federation's governors; they propose it (xnode trust propose"
          f" rotate-key {args.out.name}), sign and publish. This node switches to the new key"
          " as soon as it applies that list, and destroys the old one.")  # fmt: skip
    return EXIT_OK


def cmd_keys_show(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    signed = node_dir.own_descriptor(registry)
    summary = descriptor_summary(signed)
    keys_dir = node_dir.keys_path
    summary["key_files"] = sorted(p.name for p in keys_dir.glob("*.key"))
    if args.json:
        print_json(summary)
        return EXIT_OK
    at = now()
    print(f"Node {config.node.id} ({config.node.name})")
    print(f"  identity key (Ed25519) {summary['identity_key_id']}")
    print(f"    fingerprint {summary['fingerprint']}")
    for key in signed.descriptor.encryption_keys:
        state = "valid" if key.valid_at(at) else "not valid now"
        print(
            f"  encryption key (X25519) {key.key_id}  {key.valid_from:%Y-%m-%d} .. "
            f"{key.valid_until:%Y-%m-%d}  ({state})"
        )
    return EXIT_OK


def register(sub: Subcommands) -> None:
    """Add ``xnode init`` and ``xnode keys ...`` to the CLI's subcommands."""
    p = sub.add_parser("init", help="create a node: keys, configuration, signed descriptor")
    p.add_argument("--dir", type=Path, required=True, help="new node directory")
    p.add_argument("--id", required=True, help="node id <country>-<agency>, e.g. zm-police")
    p.add_argument("--roles", required=True, help=f"comma-separated, from: {', '.join(ROLES)}")
    p.add_argument("--name", help="display name shown to peers (default: the node id)")
    p.add_argument(
        "--passphrase-file",
        help="protect private keys with the passphrase in this file "
        "(default: XNODE_KEY_PASSPHRASE if set, else no passphrase)",
    )
    p.add_argument("--key-valid-days", type=int, default=365, help="encryption key validity")
    p.set_defaults(handler=cmd_init)

    keys = sub.add_parser("keys", help="show this node's keys").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION"
    )
    p = keys.add_parser("rotate", help="new encryption key, or ask for a new identity key")
    node_dir_arg(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--encryption", action="store_true", help="rotate the encryption key")
    which.add_argument("--identity", action="store_true",
                       help="ask the governors for a new identity key")  # fmt: skip
    p.add_argument("--out", type=Path, help="--identity: the rotation request file to write")
    p.add_argument("--contact", help="--identity: who the governors call to check the request")
    p.add_argument("--note", help="--identity: why the key is replaced")
    p.set_defaults(handler=cmd_keys_rotate)
    p = keys.add_parser("show", help="key ids, fingerprints and validity of this node's keys")
    node_dir_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_keys_show)
