"""``xnode trust``: govern the federation's trust list (node/trustlist.py).

The workflow, with no file ever passing between ordinary members:

1. one governor drafts the genesis list: ``xnode trust init --federation sadc-tip --threshold 2
   --governor gov1.xnd --governor gov2.xnd --governor gov3.xnd --member ... --out v1.xtl``;
2. each governor signs the file: ``xnode trust sign --dir DIR v1.xtl``;
3. once k have signed, ``xnode trust publish --dir DIR v1.xtl`` installs it on that node; every
   node that pins the federation (``xnode trust publish --pin FINGERPRINT``, comparing the
   governance fingerprint out of band once) applies each later version it can verify;
4. changes are proposals: ``xnode trust propose add|rotate-key|suspend|revoke|reinstate|
   set-roles|set-governors|renew ... --out v2.xtl`` shows the readable diff; governors sign;
   publish;
5. a new agency asks to join with ``xnode trust request-join`` (a signed request carrying its
   descriptor, sent to the governors by any channel), a member asks for a new identity key with
   ``xnode keys rotate --identity``; the governors propose ``add`` / ``rotate-key`` from the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

from node import audit, member_requests, trustlist
from node.cli.support import (
    CommandFailed,
    Subcommands,
    confirm,
    node_dir_arg,
    now,
    print_json,
    read_bytes,
)
from node.codec import SchemaRegistry, format_timestamp
from node.crypto.keys import key_id
from node.nodedir import NodeDir, write_atomically
from node.routing.ids import validate_roles
from node.service import open_store
from node.trust import SignedDescriptor, TrustError, check_peer_keys, verify_descriptor
from node.trustlist import Governor, Member, SignedTrustList, TrustList

DEFAULT_VALID_DAYS = 90


def _descriptor(path: Path, registry: SchemaRegistry) -> SignedDescriptor:
    signed = verify_descriptor(read_bytes(path), registry)
    check_peer_keys(signed.descriptor, now())
    return signed


def _member(signed: SignedDescriptor, at: dt.datetime, roles: tuple[str, ...] = ()) -> Member:
    d = signed.descriptor
    return Member(d.node_id, d.country, roles or d.roles, d.display_name, d.identity_key,
                  "active", at)  # fmt: skip


def _read_list(path: Path, registry: SchemaRegistry) -> SignedTrustList:
    return trustlist.decode(registry, read_bytes(path))


def _write(path: Path, signed: SignedTrustList, registry: SchemaRegistry) -> None:
    write_atomically(path, signed.encode(registry), 0o644)


def _current(node_dir: NodeDir, registry: SchemaRegistry) -> SignedTrustList:
    current = node_dir.trust_list(registry)
    if current is None:
        raise CommandFailed(
            f"{node_dir.path} has no trust list yet: publish the federation's current list "
            "there first (xnode trust publish --pin FINGERPRINT FILE)"
        )
    return current


def _signers_line(signed: SignedTrustList) -> str:
    t = signed.trust_list
    names = sorted(t.governor_keys()[k].name for k in trustlist.valid_signers(signed, t.governors))
    return (f"signed by {len(names)} of {len(t.governors)} governors "
            f"({', '.join(names) or 'none'}); {t.threshold} needed")  # fmt: skip


def _show_proposal(old: TrustList | None, signed: SignedTrustList, out: Path) -> None:
    for line in trustlist.diff(old, signed.trust_list):
        print(f"  {line}")
    print(f"governance fingerprint {trustlist.governance_fingerprint(signed.trust_list)}")
    print(f"written to {out}: {_signers_line(signed)}. Governors sign it with "
          f"xnode trust sign --dir DIR {out}")  # fmt: skip


# -- commands --------------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    """Draft the genesis list (version 1) from descriptor files."""
    at = now()
    governors = []
    for path in args.governor:
        d = _descriptor(path, registry).descriptor
        governors.append(Governor(d.display_name, d.identity_key))
    members = sorted((_member(_descriptor(p, registry), at) for p in args.member),
                     key=lambda m: m.node_id)  # fmt: skip
    t = TrustList(
        federation=args.federation, list_version=1, issued_at=at,
        expires_at=at + dt.timedelta(days=args.valid_days), threshold=args.threshold,
        governors=tuple(governors), members=tuple(members),
        history=(trustlist.ListChange(1, at, f"federation {args.federation} founded"),),
    )  # fmt: skip
    signed = trustlist.prepare(registry, t)
    _write(args.out, signed, registry)
    _show_proposal(None, signed, args.out)
    return 0


def cmd_sign(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    keys = node_dir.load_keys(registry, node_dir.passphrase(node_dir.load_config()))
    signed = _read_list(args.file, registry)
    current = node_dir.trust_list(registry)
    for line in trustlist.diff(current.trust_list if current else None, signed.trust_list):
        print(f"  {line}")
    confirm(f"Sign version {signed.trust_list.list_version} of {signed.trust_list.federation}?",
            args.yes)  # fmt: skip
    signed = trustlist.add_signature(signed, keys.identity)
    _write(args.file, signed, registry)
    print(f"{args.file}: {_signers_line(signed)}")
    return 0


def cmd_publish(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    """Install a fully signed list on this node (the running node applies it and announces it).
    The first list a node trusts must be pinned: its governance fingerprint, compared out of
    band, given with --pin (or confirmed interactively)."""
    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    signed = _read_list(args.file, registry)
    current = node_dir.trust_list(registry)
    pin = args.pin
    if current is None and pin is None:
        fingerprint = trustlist.governance_fingerprint(signed.trust_list)
        print(f"First trust list for this node. Governance fingerprint:\n  {fingerprint}")
        confirm("Does it match the one the federation's governors gave you?", args.yes)
        pin = fingerprint
    change = trustlist.decide(current, signed, now(), pinned=pin)
    if change is trustlist.Change.UNCHANGED:
        print("This node already applies this exact list; nothing changed.")
        return 0
    node_dir.save_trust_list(registry, signed)
    t = signed.trust_list
    with open_store(node_dir, config) as store:
        store.append_audit([audit.AuditEvent("trust-list-applied", now(), detail={
            "federation": t.federation, "list_version": t.list_version,
            "members": len(t.members), "signers": sorted(
                trustlist.valid_signers(signed, t.governors)),
        })])  # fmt: skip
    print(f"Applied {t.federation} version {t.list_version} ({len(t.members)} members, "
          f"expires {t.expires_at:%Y-%m-%d}).")  # fmt: skip
    return 0


def cmd_show(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    signed = (_read_list(args.file, registry) if args.file
              else _current(NodeDir(args.dir), registry))  # fmt: skip
    t = signed.trust_list
    if args.json:
        print_json(_as_json(signed))
        return 0
    print(f"{t.federation} version {t.list_version}, issued {t.issued_at:%Y-%m-%d %H:%M} UTC, "
          f"expires {t.expires_at:%Y-%m-%d %H:%M} UTC")  # fmt: skip
    print(f"governance fingerprint {trustlist.governance_fingerprint(t)}")
    print(f"governors ({t.threshold} of {len(t.governors)} must sign a new version):")
    for g in t.governors:
        print(f"  {g.name:<40} key {g.key_id}")
    print(_signers_line(signed))
    print(f"members ({len(t.members)}):")
    for m in t.members:
        status = m.status if m.status == "active" else f"{m.status.upper()} ({m.reason}) since " \
            f"{m.status_since:%Y-%m-%d %H:%M} UTC"  # fmt: skip
        print(f"  {m.node_id:<32} {','.join(m.roles):<28} key {key_id(m.identity_key)}  {status}")
    return 0


def cmd_history(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    t = _current(NodeDir(args.dir), registry).trust_list
    for h in t.history:
        print(f"v{h.list_version:<5} {h.at:%Y-%m-%d %H:%M} UTC  {h.summary}")
    return 0


def cmd_diff(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    current = NodeDir(args.dir).trust_list(registry)
    signed = _read_list(args.file, registry)
    for line in trustlist.diff(current.trust_list if current else None, signed.trust_list):
        print(line)
    print(_signers_line(signed))
    return 0


def cmd_request_join(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    """Write a join request: this node's descriptor, signed with its identity key."""
    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    if node_dir.trust_list(registry) is not None:
        raise CommandFailed(f"{node_dir.path} already applies a trust list: it is a member")
    keys = node_dir.load_keys(registry, node_dir.passphrase(config))
    descriptor = node_dir.own_descriptor(registry)
    roles = validate_roles(args.roles.split(",")) if args.roles else descriptor.descriptor.roles
    raw = member_requests.make_request(
        registry, request=member_requests.JOIN, federation=args.federation,
        descriptor=descriptor, roles=roles, contact=args.contact, note=args.note or "",
        now=now(), signers=[keys.identity],
    )  # fmt: skip
    write_atomically(args.out, raw, 0o644)
    d = descriptor.descriptor
    print(f"Join request for {d.node_id} ({', '.join(roles)}) to {args.federation} written to "
          f"{args.out}.")  # fmt: skip
    print(f"  fingerprint: {d.fingerprint}")
    print("Send the file to the federation's governors by any channel. When they call you"
          f" ({args.contact}), read them the fingerprint above; they must hear it from you, not"
          " from the file. Once the list admits you, publish it here with --pin, using the"
          " governance fingerprint they give you.")  # fmt: skip
    return 0


def _read_request(path: Path, registry: SchemaRegistry) -> member_requests.MemberRequest:
    return member_requests.read_request(registry, read_bytes(path))


def _show_request(req: member_requests.MemberRequest) -> None:
    d = req.descriptor.descriptor
    kind = "join" if req.request == member_requests.JOIN else "identity key rotation"
    print(f"{kind} request from {d.node_id} ({d.display_name}), made "
          f"{req.requested_at:%Y-%m-%d %H:%M} UTC")  # fmt: skip
    print(f"  contact: {req.contact or '-'}")
    if req.note:
        print(f"  note:    {req.note}")
    print(f"  key fingerprint: {d.fingerprint}")
    print("  Compare that fingerprint with the requester by telephone or in person before"
          " signing: the file proves only that whoever made it holds the key.")  # fmt: skip


def _admitted(path: Path, registry: SchemaRegistry, old: TrustList, at: dt.datetime,
              roles: tuple[str, ...]) -> Member:  # fmt: skip
    """The new member's entry from a join request, or from a plain descriptor file."""
    try:
        req = _read_request(path, registry)
    except member_requests.RequestRefused as refused:
        return _admitted_descriptor(path, registry, old, at, roles, refused)
    check_peer_keys(req.descriptor.descriptor, at)
    _show_request(req)
    return member_requests.admit(old, req, at, roles)


def _admitted_descriptor(path: Path, registry: SchemaRegistry, old: TrustList, at: dt.datetime,
                         roles: tuple[str, ...], refused: Exception) -> Member:  # fmt: skip
    try:
        incoming = _descriptor(path, registry)
    except TrustError:
        raise CommandFailed(
            f"{path}: neither a join request nor a descriptor ({refused})"
        ) from None
    if old.member(incoming.node_id) is not None:
        raise CommandFailed(f"{incoming.node_id} is already a member")
    return _member(incoming, at, roles)


def cmd_propose(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    old = _current(node_dir, registry).trust_list
    at = now()
    valid = dt.timedelta(days=args.valid_days)
    action = args.action
    if action == "add":
        roles = validate_roles(args.roles.split(",")) if args.roles else ()
        admitted = _admitted(args.descriptor, registry, old, at, roles)
        new = trustlist.next_version(old, f"add {admitted.node_id}", at, valid,
                                     members=trustlist.with_member(old, admitted))  # fmt: skip
    elif action == "rotate-key":
        req = _read_request(args.request, registry)
        check_peer_keys(req.descriptor.descriptor, at)
        _show_request(req)
        rotated = member_requests.rotate(
            old, req, at, dt.timedelta(hours=args.overlap_hours), compromised=args.compromised
        )
        why = "compromised" if args.compromised else f"{args.overlap_hours} h overlap"
        new = trustlist.next_version(
            old, f"new identity key for {req.node_id} ({why})", at, valid,
            members=trustlist.with_member(old, rotated),
        )  # fmt: skip
    elif action in ("suspend", "revoke", "reinstate"):
        status = {"suspend": "suspended", "revoke": "revoked", "reinstate": "active"}[action]
        reason = None if action == "reinstate" else args.reason
        if reason is None and action != "reinstate":
            raise CommandFailed(f"--reason is required to {action}")
        m = trustlist.set_status(old, args.node_id, status, reason, at)
        summary = f"{action} {args.node_id}" + (f" ({reason})" if reason else "")
        new = trustlist.next_version(old, summary, at, valid,
                                     members=trustlist.with_member(old, m))  # fmt: skip
    elif action == "set-roles":
        found = old.member(args.node_id)
        if found is None:
            raise CommandFailed(f"{args.node_id} is not a member")
        roles = validate_roles(args.roles.split(","))
        new = trustlist.next_version(
            old, f"roles of {args.node_id}: {', '.join(roles)}", at, valid,
            members=trustlist.with_member(old, dataclasses.replace(found, roles=roles)),
        )  # fmt: skip
    elif action == "set-governors":
        governors = []
        for path in args.governor:
            d = _descriptor(path, registry).descriptor
            governors.append(Governor(d.display_name, d.identity_key))
        new = trustlist.next_version(
            old, f"governors: {', '.join(g.name for g in governors)}; threshold {args.threshold}",
            at, valid, governors=governors, threshold=args.threshold,
        )  # fmt: skip
    else:  # renew
        new = trustlist.next_version(old, "renewed", at, valid)
    signed = trustlist.prepare(registry, new)
    _write(args.out, signed, registry)
    _show_proposal(old, signed, args.out)
    return 0


def _as_json(signed: SignedTrustList) -> dict[str, Any]:
    t = signed.trust_list
    return {
        "federation": t.federation, "list_version": t.list_version,
        "issued_at": format_timestamp(t.issued_at), "expires_at": format_timestamp(t.expires_at),
        "threshold": t.threshold,
        "governance_fingerprint": trustlist.governance_fingerprint(t),
        "governors": [{"name": g.name, "key_id": g.key_id} for g in t.governors],
        "signed_by": sorted(trustlist.valid_signers(signed, t.governors)),
        "members": [{
            "node_id": m.node_id, "roles": list(m.roles), "display_name": m.display_name,
            "key_id": key_id(m.identity_key), "status": m.status,
            "status_since": format_timestamp(m.status_since), "reason": m.reason,
        } for m in t.members],
        "history": [{"list_version": h.list_version, "at": format_timestamp(h.at),
                     "summary": h.summary} for h in t.history],
    }  # fmt: skip


# -- parser ----------------------------------------------------------------------------------------


def register(sub: Subcommands) -> None:
    """Add ``xnode trust ...`` to the CLI's subcommands."""
    trust = sub.add_parser(
        "trust", help="govern the federation trust list (threshold-signed membership)"
    ).add_subparsers(dest="trust_command", required=True, metavar="ACTION")

    def days(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--valid-days", type=int, default=DEFAULT_VALID_DAYS,
            help=f"the list expires after this many days (default {DEFAULT_VALID_DAYS})",
        )  # fmt: skip

    p = trust.add_parser("init", help="draft the genesis list (version 1) for governors to sign")
    p.add_argument("--federation", required=True, help="federation name, e.g. sadc-tip")
    p.add_argument("--threshold", type=int, required=True, help="k: signatures needed")
    p.add_argument("--governor", type=Path, action="append", required=True,
                   help="descriptor file of a governing body (repeat)")  # fmt: skip
    p.add_argument("--member", type=Path, action="append", default=[],
                   help="descriptor file of a member node (repeat)")  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="proposal file to write (.xtl)")
    days(p)
    p.set_defaults(handler=cmd_init)

    p = trust.add_parser("sign", help="add this node's governor signature to a proposal")
    node_dir_arg(p)
    p.add_argument("file", type=Path, help="proposal file (.xtl), rewritten with the signature")
    p.add_argument("--yes", action="store_true", help="the diff was read; do not ask")
    p.set_defaults(handler=cmd_sign)

    p = trust.add_parser("publish", help="apply a list signed by k governors on this node")
    node_dir_arg(p)
    p.add_argument("file", type=Path, help="signed list (.xtl)")
    p.add_argument("--pin", help="governance fingerprint, compared out of band (first list only)")
    p.add_argument("--yes", action="store_true", help="the fingerprint was compared; do not ask")
    p.set_defaults(handler=cmd_publish)

    p = trust.add_parser("show", help="the list this node applies (or a file)")
    node_dir_arg(p)
    p.add_argument("file", type=Path, nargs="?", help="show this file instead")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_show)

    p = trust.add_parser("diff", help="what a proposal changes against the applied list")
    node_dir_arg(p)
    p.add_argument("file", type=Path)
    p.set_defaults(handler=cmd_diff)

    p = trust.add_parser("history", help="the changes of every version")
    node_dir_arg(p)
    p.set_defaults(handler=cmd_history)

    p = trust.add_parser("request-join", help="ask the governors to admit this node (a file)")
    node_dir_arg(p)
    p.add_argument("--federation", required=True, help="federation name, e.g. sadc-tip")
    p.add_argument("--contact", required=True,
                   help="office the governors call to compare the fingerprint")  # fmt: skip
    p.add_argument("--roles", help="roles asked for (default: this node's)")
    p.add_argument("--note", help="mandate or other words for the governors")
    p.add_argument("--out", type=Path, required=True, help="request file to write (.xjr)")
    p.set_defaults(handler=cmd_request_join)

    p = trust.add_parser("propose", help="draft the next version: add, suspend, revoke, ...")
    node_dir_arg(p)
    actions = p.add_subparsers(dest="action", required=True, metavar="CHANGE")
    a = actions.add_parser("add", help="admit a new member from its join request (or descriptor)")
    a.add_argument("descriptor", type=Path, metavar="REQUEST",
                   help="join request (xnode trust request-join) or descriptor file")  # fmt: skip
    a.add_argument("--roles", help="roles granted (default: those the request asks for)")
    a = actions.add_parser("rotate-key", help="give a member the identity key it requested")
    a.add_argument("request", type=Path, help="rotation request (xnode keys rotate --identity)")
    a.add_argument(
        "--overlap-hours",
        type=int,
        default=24,
        help="the old key still signs for this long (default 24; none if compromised)",
    )
    a.add_argument(
        "--compromised",
        action="store_true",
        help="the old key was stolen: retire it at once as key-compromise",
    )
    for name, text in (("suspend", "suspend a member (reversible)"),
                       ("revoke", "revoke a member (final)")):  # fmt: skip
        a = actions.add_parser(name, help=text)
        a.add_argument("node_id")
        a.add_argument("--reason", required=True, choices=list(trustlist.REASONS))
    a = actions.add_parser("reinstate", help="make a suspended member active again")
    a.add_argument("node_id")
    a = actions.add_parser("set-roles", help="change a member's roles")
    a.add_argument("node_id")
    a.add_argument("roles", help="comma-separated")
    a = actions.add_parser("set-governors", help="replace the governors and the threshold")
    a.add_argument("--governor", type=Path, action="append", required=True)
    a.add_argument("--threshold", type=int, required=True)
    actions.add_parser("renew", help="the same list with a new expiry")
    for a in actions.choices.values():
        a.add_argument("--out", type=Path, required=True, help="proposal file to write (.xtl)")
        days(a)
    p.set_defaults(handler=cmd_propose)
