"""``xnode`` command line: node set-up, keys, peers and offline envelopes.

Exit status: 0 success, 1 the operation was refused or failed (one line on stderr says why),
2 the command line itself was wrong.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from node import (
    audit,
    checkpoint,
    cli_trust,
    codes,
    envelope,
    member_requests,
    schema_docs,
    submit,
    tokens,
    trustlist,
    views,
)
from node.adapters import AdapterError
from node.cli_support import CommandFailed
from node.cli_support import confirm as _confirm
from node.cli_support import now as _now
from node.cli_support import print_json as _print_json
from node.cli_support import read_bytes as _read_bytes
from node.codec import (
    CodecError,
    SchemaError,
    SchemaRegistry,
    default_registry,
    format_timestamp,
)
from node.config import Config, ConfigError
from node.crypto.keyfile import KeyFileError
from node.logging import bind_node
from node.logging import configure as configure_logging
from node.nodedir import NodeDir, NodeDirError, read_checkpoint, read_passphrase, write_atomically
from node.payloads import KINDS, kinds_of, short_name
from node.policy import PolicyRefused
from node.routing.ids import ROLES, InvalidIdentifier, parse_id_list
from node.service import open_store
from node.store.base import StoreError
from node.store.sqlite import SqliteStore
from node.trust import (
    REVOCATION_REASONS,
    Descriptor,
    PeerChange,
    PeerDirectory,
    Revocation,
    SignedDescriptor,
    TrustError,
    check_revocation,
    decide_peer_add,
    verify_descriptor,
)
from node.trustlist import TrustListRejected
from node.validation import PayloadInvalid

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _read_json_file(path: Path) -> Any:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise CommandFailed(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandFailed(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc


def _descriptor_summary(signed: SignedDescriptor) -> dict[str, Any]:
    d = signed.descriptor
    return {
        "node_id": d.node_id,
        "display_name": d.display_name,
        "country": d.country,
        "roles": list(d.roles),
        "descriptor_version": d.descriptor_version,
        "identity_key_id": d.identity_key_id,
        "fingerprint": d.fingerprint,
        "encryption_keys": [
            {
                "key_id": k.key_id,
                "valid_from": format_timestamp(k.valid_from),
                "valid_until": format_timestamp(k.valid_until),
            }
            for k in d.encryption_keys
        ],
    }


# -- init / keys ---------------------------------------------------------------------------


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
        now=_now(),
        passphrase=passphrase,
        key_valid_days=args.key_valid_days,
    )
    d = signed.descriptor
    _audit(node_dir, node_dir.load_config(), "key-changed", d.node_id, {
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
    signed = node_dir.rotate_encryption_key(registry, node_dir.passphrase(config), _now(),
                                            config.keys.encryption_valid_days)  # fmt: skip
    new = signed.descriptor.encryption_keys[-1]
    _audit(node_dir, config, "key-changed", None, {
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
        registry, node_dir.passphrase(config), _now()
    )
    raw = member_requests.make_request(
        registry, request=member_requests.ROTATE, federation=held.trust_list.federation,
        descriptor=descriptor, roles=descriptor.descriptor.roles, contact=args.contact or "",
        note=args.note or "", now=_now(), signers=[old, fresh],
    )  # fmt: skip
    write_atomically(args.out, raw, 0o644)
    _audit(node_dir, config, "key-rotation-requested", None, {
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
    summary = _descriptor_summary(signed)
    keys_dir = node_dir.keys_path
    summary["key_files"] = sorted(p.name for p in keys_dir.glob("*.key"))
    if args.json:
        _print_json(summary)
        return EXIT_OK
    now = _now()
    print(f"Node {config.node.id} ({config.node.name})")
    print(f"  identity key (Ed25519) {summary['identity_key_id']}")
    print(f"    fingerprint {summary['fingerprint']}")
    for key in signed.descriptor.encryption_keys:
        state = "valid" if key.valid_at(now) else "not valid now"
        print(
            f"  encryption key (X25519) {key.key_id}  {key.valid_from:%Y-%m-%d} .. "
            f"{key.valid_until:%Y-%m-%d}  ({state})"
        )
    return EXIT_OK


# -- peers -----------------------------------------------------------------------------------


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
    incoming = verify_descriptor(_read_bytes(args.file), registry)
    d = incoming.descriptor
    print(f"Descriptor of {d.node_id} ({d.display_name}), version {d.descriptor_version}")
    print(f"  roles:       {', '.join(d.roles)}")
    print(f"  fingerprint: {d.fingerprint}")
    known = node_dir.peers(registry).get(d.node_id)
    change = decide_peer_add(config.node.id, known, incoming, _now())  # refuse before asking
    if change is PeerChange.UNCHANGED:
        print("Already known with this exact descriptor; nothing changed.")
        return EXIT_OK
    _confirm("Does this fingerprint match the one the peer gave you?", args.yes)
    node_dir.add_peer(registry, config.node.id, incoming, _now())
    event = "peer-added" if change is PeerChange.NEW else "peer-updated"
    _audit(node_dir, config, event, d.node_id, {
        "fingerprint": d.fingerprint, "descriptor_version": d.descriptor_version})  # fmt: skip
    verb = "Added" if change is PeerChange.NEW else "Updated"
    print(f"{verb} peer {d.node_id}.")
    return EXIT_OK


def _audit(
    node_dir: NodeDir, config: Config, event: str, peer: str | None, detail: dict[str, Any]
) -> None:
    """Record a trust or key change in the node's audit log."""
    with open_store(node_dir, config) as store:
        store.append_audit([audit.AuditEvent(event, _now(), peer=peer, detail=detail)])


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
            docs.append({**_descriptor_summary(p), "status": "revoked" if r else "active",
                         "revocation": r.to_json() if r else None,
                         "trust_list": _list_standing(held, p.descriptor)})  # fmt: skip
        _print_json(docs)
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
    revocation = Revocation(args.node_id, args.reason, _now(), args.note or "")
    check_revocation(revocation)
    node_dir.save_revocations({**revocations, args.node_id: revocation})
    _audit(node_dir, config, "peer-revoked", args.node_id,
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
    _confirm(f"Trust {args.node_id} again?", args.yes)
    node_dir.save_revocations({n: r for n, r in revocations.items() if n != args.node_id})
    _audit(node_dir, node_dir.load_config(), "peer-unrevoked", args.node_id,
           {"was": revocations[args.node_id].reason})  # fmt: skip
    print(f"{args.node_id} is trusted again.")
    return EXIT_OK


def cmd_peers_remove(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    known = node_dir.peers(registry).get(args.node_id)
    if known is None:
        raise CommandFailed(f"{args.node_id} is not a known peer")
    _confirm(f"Remove peer {args.node_id} ({known.descriptor.fingerprint})?", args.yes)
    node_dir.remove_peer(args.node_id)
    _audit(node_dir, node_dir.load_config(), "peer-removed", args.node_id,
           {"fingerprint": known.descriptor.fingerprint})  # fmt: skip
    print(f"Removed peer {args.node_id}.")
    return EXIT_OK


# -- envelopes -------------------------------------------------------------------------------


def _submission(args: argparse.Namespace, registry: SchemaRegistry, to: list[str] | str) -> Any:
    """Validate and seal ``args.input`` for ``to`` with the node in ``args.dir``."""
    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    peers = {n: s.descriptor for n, s in node_dir.peers(registry).items()}
    request = submit.Request(
        kind=args.kind,
        to=to,
        payload=_read_json_file(args.input),
        schema=args.schema,
        thread_id=args.thread,
        in_reply_to=args.reply_to,
        priority=args.priority,
        ttl=dt.timedelta(days=args.ttl_days) if args.ttl_days is not None else None,
    )
    revoked = node_dir.revocations()
    submit.check_federation(node_dir.trust_list(registry), _now(),
                            dt.timedelta(days=config.federation.grace_days))  # fmt: skip
    submit.resolve_recipients(request.to, config, peers, revoked)  # before the passphrase
    keys = node_dir.load_keys(registry, node_dir.passphrase(config))
    return (
        node_dir,
        config,
        submit.prepare(
            registry,
            request,
            config=config,
            identity=keys.identity,
            peers=peers,
            now=_now(),
            revoked=revoked,
        ),
    )


def _recipients_arg(text: str) -> list[str] | str:
    return "neighbours" if text == "neighbours" else parse_id_list(text)


def cmd_envelope_seal(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    _, _, (message, _event) = _submission(args, registry, parse_id_list(args.to))
    args.out.write_bytes(message.envelope)
    print(f"Sealed {message.message_id} ({len(message.envelope)} bytes) to {args.out}")
    print(f"  kind {message.kind}, to {', '.join(message.recipients)}")
    print(f"  sha256 {message.envelope_sha256}")
    return EXIT_OK


def cmd_send(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir, config, (message, event) = _submission(args, registry, _recipients_arg(args.to))
    with open_store(node_dir, config) as store:
        message_id = store.submit(message, event)
    print(message_id)
    return EXIT_OK


def _open_store(args: argparse.Namespace) -> SqliteStore:
    """The store of the node in ``args.dir``; use as a context manager, which closes it."""
    node_dir = NodeDir(args.dir)
    return open_store(node_dir, node_dir.load_config())


def cmd_status(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    with _open_store(args) as store:
        statuses = store.message_status(args.message_id)
    if not statuses:
        raise CommandFailed(f"no message {args.message_id} in this node's outbox")
    rows = [
        {
            "recipient": s.recipient,
            "state": s.state,
            "attempts": s.attempts,
            "updated_at": format_timestamp(s.updated_at),
            "reason": s.reason,
            "detail": s.detail,
        }
        for s in statuses
    ]
    if args.json:
        _print_json({"message_id": args.message_id, "recipients": rows})
        return EXIT_OK
    for row in rows:
        reason = f"  {row['reason']}: {row['detail'] or ''}" if row["reason"] else ""
        print(f"{row['recipient']:<32} {row['state']:<10} attempts {row['attempts']:<3} "
              f"{row['updated_at']}{reason}")  # fmt: skip
    return EXIT_OK


def cmd_inbox(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    with open_store(node_dir, config) as store:
        messages = store.inbox(args.after, args.kind, args.limit)
    keys = node_dir.load_keys(registry, node_dir.passphrase(config)) if messages else None
    peers = node_dir.peer_directory(registry)
    items = [
        views.inbox_item(registry, m, own_id=config.node.id, own_keys=keys.encryption, peers=peers)
        for m in messages
        if keys is not None
    ]
    if args.json:
        _print_json(items)
        return EXIT_OK
    if not items:
        print("Inbox empty." if args.after == 0 else "No messages after that cursor.")
    for item in items:
        print(
            f"[{item['cursor']}] {item['received_at']}  {item['kind']:<12} "
            f"from {item['sender']:<26} {item['payload_schema']:<28} {item['handling_code']}  "
            f"{item['id']}"
        )
    return EXIT_OK


def cmd_webhook_retry(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    if not args.all_failed and not args.message_id:
        raise CommandFailed("name a message id, or --all-failed")
    with _open_store(args) as store:
        count = store.retry_adapter("webhook", None if args.all_failed else args.message_id, _now())
    if count == 0 and args.all_failed:
        print("Nothing to retry: no message is webhook-failed.")
        return EXIT_OK
    if count == 0:
        raise CommandFailed(f"message {args.message_id} is not webhook-failed; nothing to retry")
    print(f"Queued {count} message(s) for the webhook again; the running node posts them.")
    return EXIT_OK


def cmd_token_create(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    with _open_store(args) as store:
        record, secret = tokens.new_token(args.name, tokens.parse_scopes(args.scopes), _now())
        store.add_token(record)
        detail = {"token_id": record.token_id, "name": record.name, "scopes": list(record.scopes)}
        store.append_audit([audit.AuditEvent("token-created", _now(), detail=detail)])
    print(secret)
    print(
        f"Token {record.name} ({record.token_id}) with scopes {' '.join(record.scopes)}. "
        "This is the only time it is shown; only its hash is kept.",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_token_list(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    with _open_store(args) as store:
        records = store.tokens()
    rows: list[dict[str, Any]] = [
        {
            "id": t.token_id,
            "name": t.name,
            "scopes": list(t.scopes),
            "created_at": format_timestamp(t.created_at),
            "revoked_at": format_timestamp(t.revoked_at) if t.revoked_at else None,
        }
        for t in records
    ]
    if args.json:
        _print_json(rows)
        return EXIT_OK
    if not rows:
        print("No tokens. Create one with: xnode token create --dir DIR --name NAME --scopes S")
    for r in rows:
        state = f"revoked {r['revoked_at']}" if r["revoked_at"] else "active"
        print(f"{r['id']}  {r['name']:<24} {' '.join(r['scopes']):<40} {state}")
    return EXIT_OK


def cmd_token_revoke(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    with _open_store(args) as store:
        record = store.revoke_token(args.token, _now())
        if record is not None:
            store.append_audit([audit.AuditEvent("token-revoked", _now(), detail={
                "token_id": record.token_id, "name": record.name})])  # fmt: skip
    if record is None:
        raise CommandFailed(f"no token named or with id {args.token!r}")
    print(f"Revoked token {record.name} ({record.token_id}).")
    return EXIT_OK


def cmd_quarantine(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    with _open_store(args) as store:
        entries = store.quarantined(args.limit)
    rows = [views.quarantine_item(q) for q in entries]
    if args.json:
        _print_json(rows)
        return EXIT_OK
    if not rows:
        print("Quarantine empty.")
    for r in rows:
        print(f"#{r['id']} {r['received_at']}  {r['reason']:<18} {r['size']:>8} B  "
              f"{r['sender'] or '-':<24} {r['detail']}")  # fmt: skip
    return EXIT_OK


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
    head = checkpoint.Checkpoint(own.node_id, report.length, entries[-1].hash, _now())
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
        if args.json:
            _print_json(rows)
            return EXIT_OK
        if not rows:
            print("No checkpoints from peers yet (the running node keeps those it receives).")
        for r in rows:
            print(f"{r['node_id']:<32} entry {r['count']:<8} signed {r['created_at']}  "
                  f"{r['head_hash'][:16]}...")  # fmt: skip
        return EXIT_OK
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
    with _open_store(args) as store:
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
        _print_json(rows)
        return EXIT_OK
    for r in rows:
        detail = " ".join(f"{k}={v}" for k, v in r["detail"].items())
        print(f"{r['seq']:>6} {r['at']} {r['event']:<15} {r['message_id'] or '-':<36} "
              f"{r['peer'] or '-':<24} {detail}")  # fmt: skip
    return EXIT_OK


def cmd_run(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    import asyncio
    import signal

    from node.compose import build_node

    configure_logging(args.log_format, args.log_level)
    bind_node(NodeDir(args.dir).load_config().node.id)

    async def serve() -> None:
        node = build_node(NodeDir(args.dir), registry=registry)
        await node.start()
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        await stopping.wait()
        await node.stop()

    asyncio.run(serve())
    return EXIT_OK


def cmd_envelope_inspect(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    data = _read_bytes(args.file)
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
    _print_json(result)
    return status


def cmd_envelope_open(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    data = _read_bytes(args.file)
    peers = node_dir.peer_directory(registry)
    keys = node_dir.load_keys(registry, node_dir.passphrase(config))
    opened = envelope.open_envelope(
        registry,
        data,
        own_id=config.node.id,
        own_keys=keys.encryption,
        peers=peers,
        now=_now(),
        max_skew=dt.timedelta(seconds=config.envelope.clock_skew_seconds),
        max_bytes=config.envelope.max_bytes,
    )
    header = opened.header
    _print_json(
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


def cmd_schemas_list(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    families = schema_docs.catalogue(registry)
    if args.json:
        _print_json(families)
        return EXIT_OK
    for family in families:
        print(f"{family['kind']}")
        for entry in family["payloads"]:
            print(f"  {entry['name']:<30} {entry['fingerprint'][:16]}  {entry['doc']}")
    print("\nDetails: xnode schemas show KIND|PAYLOAD [--lang fr]; code lists: xnode schemas codes")
    return EXIT_OK


def cmd_schemas_show(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    try:
        names = schema_docs.resolve_target(args.name)
    except KeyError as exc:
        raise CommandFailed(str(exc.args[0])) from exc
    described = {n: schema_docs.describe(registry, n, args.lang) for n in names}
    if args.json:
        _print_json(
            {short_name(n): [row.to_json() for row in rows] for n, rows in described.items()}
        )
        return EXIT_OK
    for name, rows in described.items():
        info = registry.schema(name)
        print(
            f"{short_name(name)}  (kinds: {', '.join(kinds_of(name))}; "
            f"fingerprint {info.fingerprint_hex[:16]})"
        )
        print(f"  {info.standalone.get('doc', '')}")
        for row in rows:
            depth = row.path.count(".")
            flag = "required" if row.required else "optional"
            print(
                f"  {'  ' * depth}{row.path.rsplit('.', 1)[-1]:<{40 - 2 * depth}} "
                f"{row.type:<28} {flag}"
            )
            if row.doc:
                print(f"  {'  ' * depth}    {row.doc}")
            if row.codes and not args.no_codes:
                for code, label in row.codes:
                    print(f"  {'  ' * depth}      {code:<36} {label}")
        print()
    return EXIT_OK


def cmd_schemas_codes(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    if args.list is None:
        lists = codes.code_lists()
        if args.json:
            _print_json({n: {"source": c.source, "codes": list(c.codes)} for n, c in lists.items()})
            return EXIT_OK
        for name, code_list in lists.items():
            print(f"{name:<34} {len(code_list.codes):>3} codes  {code_list.source}")
        return EXIT_OK
    try:
        code_list = codes.get(args.list)
    except codes.UnknownCode as exc:
        raise CommandFailed(str(exc.args[0])) from exc
    if args.json:
        _print_json([{"code": c, "label": code_list.label(c, args.lang)} for c in code_list.codes])
        return EXIT_OK
    print(f"{code_list.name}: {code_list.doc}\n  source: {code_list.source}")
    for code in code_list.codes:
        print(f"  {code:<48} {code_list.label(code, args.lang)}")
    return EXIT_OK


def cmd_broker(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    import asyncio
    import signal

    from node.transport.broker import BrokerUnavailable, EmbeddedBroker

    async def serve() -> None:
        # Handlers first: a SIGTERM while the broker starts stops it cleanly once it is up.
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        broker = EmbeddedBroker(port=args.port, host=args.host)
        await broker.start()
        try:
            if not stopping.is_set():
                print(f"Development broker (Tansu, in memory) listening on "
                      f"{broker.bootstrap_servers}")  # fmt: skip
                print(f'  use: bootstrap_servers = "{broker.bootstrap_servers}"   '
                      "Stop with Ctrl-C.")  # fmt: skip
                sys.stdout.flush()
                await stopping.wait()
        finally:
            await broker.stop()
            print("Broker stopped.")
            sys.stdout.flush()

    try:
        asyncio.run(serve())
    except BrokerUnavailable as exc:
        raise CommandFailed(str(exc)) from exc
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    from node.demo import run_demo

    if args.dir is not None and args.dir.exists() and any(args.dir.iterdir()):
        raise CommandFailed(f"{args.dir} is not empty; give a new directory for the demo")
    if args.offline:
        return run_demo(registry, _now(), args.dir)
    import asyncio

    from node.demo_network import run_network_demo
    from node.transport.broker import BrokerUnavailable

    configure_logging("console", "warning")
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    try:
        if args.federation:
            from node.demo_federation import run_federation_demo

            return asyncio.run(run_federation_demo(registry, args.dir))
        return asyncio.run(run_network_demo(registry, args.dir))
    except BrokerUnavailable as exc:
        raise CommandFailed(str(exc)) from exc


# -- parser ----------------------------------------------------------------------------------


def _version() -> str:
    try:
        return metadata.version("xnode")
    except metadata.PackageNotFoundError:
        return "unknown"


MAX_TTL_DAYS = 3650


def _ttl_days(text: str) -> int:
    """A whole number of days from 1 to :data:`MAX_TTL_DAYS`. 0 used to mean "the default" and
    a huge value overflowed the date arithmetic; both are command-line mistakes now."""
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of days, got {text!r}") from None
    if not 1 <= days <= MAX_TTL_DAYS:
        raise argparse.ArgumentTypeError(
            f"must be from 1 to {MAX_TTL_DAYS} days (ten years), got {days}; "
            "leave it out for the default from node.toml"
        )
    return days


def _message_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", required=True, choices=[k for k in KINDS if k != "receipt"])
    p.add_argument("--in", dest="input", type=Path, required=True, help="payload JSON file")
    p.add_argument(
        "--schema",
        help="payload record, e.g. MlaResponse (default: the kind's main record; "
        "see xnode schemas list)",
    )
    p.add_argument("--thread", help="thread (case) id; default: a new thread")
    p.add_argument("--reply-to", help="message id this answers")
    p.add_argument("--priority", default="normal", choices=envelope.PRIORITIES)
    p.add_argument(
        "--ttl-days",
        type=_ttl_days,
        help="days until expiry, at most envelope.max_lifetime_days (default: envelope."
        "default_ttl_days from node.toml)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xnode",
        description="Secure information-exchange node: signed, end-to-end encrypted messages.",
    )
    parser.add_argument("--version", action="version", version=f"xnode {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def node_dir_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dir", type=Path, required=True, help="node directory")

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

    cli_trust.register(sub)

    env = sub.add_parser("envelope", help="seal, inspect and open envelope files offline")
    env_sub = env.add_subparsers(dest="envelope_command", required=True, metavar="ACTION")
    p = env_sub.add_parser("seal", help="sign and encrypt a JSON payload into an envelope file")
    node_dir_arg(p)
    p.add_argument("--to", required=True, help="recipient node ids, comma-separated")
    p.add_argument("--out", type=Path, required=True, help="envelope file to write")
    _message_args(p)
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

    schemas = sub.add_parser("schemas", help="the message families, their fields and code lists")
    schemas_sub = schemas.add_subparsers(dest="schemas_command", required=True, metavar="ACTION")
    p = schemas_sub.add_parser("list", help="kinds and the payload records each carries")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_schemas_list)
    p = schemas_sub.add_parser("show", help="fields of a kind's payloads or of one payload record")
    p.add_argument("name", help="a kind (alert, mla, ...) or a payload record (MlaResponse, ...)")
    p.add_argument("--lang", default="en", choices=codes.LANGUAGES, help="language of code labels")
    p.add_argument("--no-codes", action="store_true", help="do not list the codes of enum fields")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_schemas_show)
    p = schemas_sub.add_parser("codes", help="code lists, or the codes of one list with labels")
    p.add_argument("list", nargs="?", help="code list name, e.g. methods_of_control")
    p.add_argument("--lang", default="en", choices=codes.LANGUAGES, help="language of labels")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_schemas_codes)

    p = sub.add_parser("run", help="run the node until SIGINT or SIGTERM")
    node_dir_arg(p)
    p.add_argument("--log-format", default="json", choices=("json", "console"))
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.set_defaults(handler=cmd_run)
    p = sub.add_parser("send", help="queue a message in the outbox (the running node publishes it)")
    node_dir_arg(p)
    p.add_argument(
        "--to", required=True, help='recipient node ids, comma-separated, or "neighbours"'
    )
    _message_args(p)
    p.set_defaults(handler=cmd_send)
    p = sub.add_parser("status", help="delivery state of a sent message, per recipient")
    node_dir_arg(p)
    p.add_argument("message_id")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_status)
    p = sub.add_parser("inbox", help="received messages, decrypted for display")
    node_dir_arg(p)
    p.add_argument("--kind", choices=KINDS)
    p.add_argument("--after", type=int, default=0, help="cursor: show messages after this one")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true", help="machine-readable output, with payloads")
    p.set_defaults(handler=cmd_inbox)
    p = sub.add_parser("quarantine", help="refused inbound records and why")
    node_dir_arg(p)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_quarantine)
    webhook_sub = sub.add_parser("webhook", help="the webhook adapter").add_subparsers(
        dest="webhook_command", required=True, metavar="ACTION"
    )
    p = webhook_sub.add_parser(
        "retry", help="post webhook-failed messages again (after the receiver is fixed)"
    )
    node_dir_arg(p)
    p.add_argument("message_id", nargs="?", help="one message id")
    p.add_argument("--all-failed", action="store_true", help="every webhook-failed message")
    p.set_defaults(handler=cmd_webhook_retry)
    token_sub = sub.add_parser("token", help="bearer tokens of the local HTTP API").add_subparsers(
        dest="token_command", required=True, metavar="ACTION"
    )
    p = token_sub.add_parser("create", help="create a token; prints it once")
    node_dir_arg(p)
    p.add_argument("--name", required=True, help="who uses it, e.g. case-system")
    p.add_argument(
        "--scopes",
        required=True,
        help="comma-separated: send:<kind>, send:*, read:<kind>, read:*, ops (/metrics and /readyz"
        " when [api] ops_token_required), admin",
    )
    p.set_defaults(handler=cmd_token_create)
    p = token_sub.add_parser("list", help="tokens with their scopes (never the secrets)")
    node_dir_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_token_list)
    p = token_sub.add_parser("revoke", help="revoke a token by name or id; effective at once")
    node_dir_arg(p)
    p.add_argument("token", help="token name or id")
    p.set_defaults(handler=cmd_token_revoke)
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

    p = sub.add_parser("broker", help="run the embedded development broker (in memory)")
    p.add_argument("--port", type=int, default=9092, help="port to listen on (default 9092)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.set_defaults(handler=cmd_broker)

    p = sub.add_parser("demo", help="play a short scripted exchange between four agencies")
    p.add_argument("--dir", type=Path, help="keep the demo's nodes here (default: a temp dir)")
    p.add_argument(
        "--offline", action="store_true", help="the file-based variant: no broker, one alert"
    )
    p.add_argument(
        "--federation", action="store_true",
        help="a region run by a threshold-signed trust list: members that never swap files, a"
        " newcomer admitted by two of three governors, a stolen key revoked",
    )  # fmt: skip
    p.set_defaults(handler=cmd_demo)
    return parser


_EXPECTED_FAILURES = (
    TrustListRejected,
    member_requests.RequestRefused,
    submit.FederationExpired,
    submit.UnknownRecipient,
    StoreError,
    PayloadInvalid,
    CommandFailed,
    tokens.TokenError,
    AdapterError,
    NodeDirError,
    KeyFileError,
    TrustError,
    ConfigError,
    InvalidIdentifier,
    envelope.SealError,
    CodecError,
    SchemaError,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace, SchemaRegistry], int] = args.handler
    try:
        return handler(args, default_registry())
    except envelope.EnvelopeError as exc:
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
