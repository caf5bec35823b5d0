"""A node's directory on disk: configuration, private keys, its own descriptor and its peers.

Layout (created by ``xnode init``)::

    DIR/                        0700
      node.toml                 configuration (no secrets)
      descriptor.xnd            this node's signed descriptor (public; what `peers export` writes)
      keys/                     0700
        identity.key            Ed25519, PKCS#8 PEM, 0600
        identity-next.key       the key a pending identity rotation asks the governors for,
                                until the trust list names it (then it replaces identity.key)
        subject-index.key       32 random bytes, 0600: keys the index of the identifiers
                                received messages name (node/identifiers.py)
        encryption-<keyid>.key  X25519, PKCS#8 PEM, 0600 (one per encryption key; a replaced
                                one is kept keys.retired_key_days, then destroyed once the
                                stored messages are re-wrapped: node/keylife.py)
      peers/
        <node-id>.xnd           verified peer descriptors, exactly as received
      audit-checkpoint.json     this node's newest signed audit checkpoint, 0600
                                (``audit.checkpoint_file``; outside the database on purpose)
      audit-peers/              0700
        <node-id>.json          the newest signed audit checkpoint seen from each peer

This is the imperative shell around :mod:`node.trust` and :mod:`node.crypto`: it reads and
writes files and decides nothing itself. Peer files are verified again on every load, so a
descriptor edited on disk is refused, not trusted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from node import checkpoint, keylife, trustlist
from node.codec import SchemaRegistry
from node.config import Config, KeySettings, NodeSettings, parse_config, render_config
from node.crypto.keyfile import (
    KeyFileError,
    load_encryption_key,
    load_identity_key,
    write_private_key,
)
from node.crypto.keys import EncryptionKey, IdentityKey
from node.routing.ids import country_of, validate_node_id, validate_roles
from node.trust import (
    Descriptor,
    EncryptionKeyInfo,
    PeerChange,
    PeerDirectory,
    Revocation,
    SignedDescriptor,
    TrustError,
    decide_peer_add,
    issue_descriptor,
    verify_descriptor,
)

CONFIG_FILE = "node.toml"
PEER_CHECKPOINTS_DIR = "audit-peers"
DESCRIPTOR_FILE = "descriptor.xnd"
DESCRIPTOR_SUFFIX = ".xnd"
REVOCATIONS_FILE = "revoked.json"
TRUST_LIST_FILE = "list.xtl"
IDENTITY_FILE = "identity.key"
NEXT_IDENTITY_FILE = "identity-next.key"
PASSPHRASE_ENV = "XNODE_KEY_PASSPHRASE"  # noqa: S105 - the variable name, not a secret


INDEX_SECRET_FILE = "subject-index.key"  # noqa: S105 (a file name, not a secret)
INDEX_SECRET_BYTES = 32


class NodeDirError(Exception):
    """The node directory is missing, incomplete or inconsistent."""


@dataclass(frozen=True)
class NodeKeys:
    identity: IdentityKey
    encryption: Mapping[str, EncryptionKey]


def shred(path: Path) -> None:
    """Overwrite a private key file with zeros and flush it, so its bytes do not survive in the
    file's blocks once it is replaced or unlinked (on a copy-on-write or wear-levelled disk the
    old blocks may survive anyway: docs/keys.md says so). A missing file is nothing to do."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return
    with os.fdopen(fd, "wb") as handle:
        handle.write(b"\0" * max(os.fstat(handle.fileno()).st_size, 1))
        handle.flush()
        os.fsync(handle.fileno())


def fsync_directory(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    directory = os.open(path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename, then fsync the directory:
    readers never see half, and after a crash the file is the old or the new one, with ``mode``
    (also when a temporary file of an earlier crash was left with another mode)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_directory(path.parent)


class NodeDir:
    """Files of one node. Constructing it touches nothing; each method does one file task."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def keys_path(self) -> Path:
        return self.path / "keys"

    @property
    def peers_path(self) -> Path:
        return self.path / "peers"

    def exists(self) -> bool:
        return self.config_path.exists()

    # -- creation --------------------------------------------------------------------------

    def create(
        self,
        registry: SchemaRegistry,
        *,
        node_id: str,
        roles: tuple[str, ...],
        name: str,
        now: dt.datetime,
        passphrase: bytes | None,
        key_valid_days: int = KeySettings.encryption_valid_days,
    ) -> SignedDescriptor:
        """Generate keys, write config and the signed descriptor. Refuses an existing node."""
        validate_node_id(node_id)
        validate_roles(roles)
        if self.exists() or (self.keys_path / IDENTITY_FILE).exists():
            raise NodeDirError(f"{self.path} already holds a node; refusing to overwrite it")
        if self.path.exists() and any(self.path.iterdir()):
            raise NodeDirError(f"{self.path} is not empty; choose a new directory")
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.keys_path.mkdir(mode=0o700)
        self.peers_path.mkdir(mode=0o755)

        identity = IdentityKey.generate()
        encryption = EncryptionKey.generate()
        write_private_key(self.keys_path / IDENTITY_FILE, identity.private, passphrase)
        write_private_key(
            self._encryption_key_file(encryption.key_id), encryption.private, passphrase
        )

        descriptor = Descriptor(
            node_id=node_id,
            country=country_of(node_id),
            roles=roles,
            display_name=name,
            identity_key=identity.public_raw,
            encryption_keys=(
                EncryptionKeyInfo(
                    encryption.key_id,
                    encryption.public_raw,
                    valid_from=now,
                    valid_until=now + dt.timedelta(days=key_valid_days),
                ),
            ),
            descriptor_version=1,
            created_at=now,
        )
        signed = issue_descriptor(identity, descriptor, registry)
        write_atomically(self.path / DESCRIPTOR_FILE, signed.raw)
        config = Config(
            node=NodeSettings(id=node_id, name=name, roles=roles),
            keys=KeySettings(encryption_valid_days=key_valid_days),
        )
        write_atomically(self.config_path, render_config(config).encode("utf-8"))
        return signed

    def rotate_encryption_key(
        self,
        registry: SchemaRegistry,
        passphrase: bytes | None,
        now: dt.datetime,
        valid_days: int,
    ) -> SignedDescriptor:
        """A new encryption key, valid from ``now``, in a new descriptor version signed by the
        identity key. Senders use the newest valid key as soon as they hold the descriptor; the
        old keys stay (listed and on disk) so that what was sealed to them still opens."""
        keys = self.load_keys(registry, passphrase)
        old = self.own_descriptor(registry).descriptor
        fresh = EncryptionKey.generate()
        write_private_key(self._encryption_key_file(fresh.key_id), fresh.private, passphrase)
        info = EncryptionKeyInfo(fresh.key_id, fresh.public_raw, valid_from=now,
                                 valid_until=now + dt.timedelta(days=valid_days))  # fmt: skip
        descriptor = dataclasses.replace(
            old, encryption_keys=(*old.encryption_keys, info),
            descriptor_version=old.descriptor_version + 1, created_at=now,
        )  # fmt: skip
        signed = issue_descriptor(keys.identity, descriptor, registry)
        write_atomically(self.path / DESCRIPTOR_FILE, signed.raw)
        return signed

    def prepare_identity_rotation(
        self, registry: SchemaRegistry, passphrase: bytes | None, now: dt.datetime
    ) -> tuple[IdentityKey, IdentityKey, SignedDescriptor]:
        """The current and the pending identity key (generated once, kept in
        ``identity-next.key`` until the trust list names it), and the descriptor the node will
        use with it, signed by it: what a rotation request carries."""
        keys = self.load_keys(registry, passphrase)
        path = self.keys_path / NEXT_IDENTITY_FILE
        if path.exists():
            fresh = IdentityKey(load_identity_key(path, passphrase))
        else:
            fresh = IdentityKey.generate()
            write_private_key(path, fresh.private, passphrase)
        return keys.identity, fresh, self._descriptor_for(registry, fresh, now)

    def _descriptor_for(
        self, registry: SchemaRegistry, identity: IdentityKey, now: dt.datetime
    ) -> SignedDescriptor:
        old = self.own_descriptor(registry).descriptor
        descriptor = dataclasses.replace(
            old, identity_key=identity.public_raw, descriptor_version=old.descriptor_version + 1,
            created_at=now,
        )  # fmt: skip
        return issue_descriptor(identity, descriptor, registry)

    def adopt_next_identity(
        self, registry: SchemaRegistry, passphrase: bytes | None, listed: bytes, now: dt.datetime
    ) -> SignedDescriptor | None:
        """Switch to the pending identity key once the trust list names it (``listed``): a new
        descriptor version signed with it, then the old private key overwritten and replaced.
        None if no pending key, or not the one listed. Crash-safe: :meth:`load_keys` finishes a
        switch interrupted after the descriptor was written."""
        path = self.keys_path / NEXT_IDENTITY_FILE
        if not path.exists():
            return None
        fresh = IdentityKey(load_identity_key(path, passphrase))
        if fresh.public_raw != listed:
            return None
        signed = self._descriptor_for(registry, fresh, now)
        write_atomically(self.path / DESCRIPTOR_FILE, signed.raw)
        self._finish_identity_switch()
        return signed

    def _finish_identity_switch(self) -> None:
        current = self.keys_path / IDENTITY_FILE
        shred(current)
        os.replace(self.keys_path / NEXT_IDENTITY_FILE, current)
        fsync_directory(self.keys_path)

    def destroy_encryption_key(
        self, registry: SchemaRegistry, passphrase: bytes | None, key_id: str, now: dt.datetime
    ) -> SignedDescriptor:
        """A new descriptor version without encryption key ``key_id``, then its private key
        overwritten and removed. Never the newest key: senders seal to it."""
        keys = self.load_keys(registry, passphrase)
        old = self.own_descriptor(registry).descriptor
        if key_id not in {k.key_id for k in old.encryption_keys}:
            raise NodeDirError(f"encryption key {key_id} is not one of this node's keys")
        if keylife.newest(old.encryption_keys).key_id == key_id:
            raise NodeDirError(f"encryption key {key_id} is the current one; rotate it first")
        descriptor = dataclasses.replace(
            old, encryption_keys=tuple(k for k in old.encryption_keys if k.key_id != key_id),
            descriptor_version=old.descriptor_version + 1, created_at=now,
        )  # fmt: skip
        signed = issue_descriptor(keys.identity, descriptor, registry)
        write_atomically(self.path / DESCRIPTOR_FILE, signed.raw)
        path = self._encryption_key_file(key_id)
        shred(path)
        path.unlink(missing_ok=True)
        fsync_directory(self.keys_path)
        return signed

    def _encryption_key_file(self, key_id: str) -> Path:
        return self.keys_path / f"encryption-{key_id}.key"

    # -- loading ---------------------------------------------------------------------------

    def load_config(self, env: Mapping[str, str] | None = None) -> Config:
        if not self.exists():
            raise NodeDirError(f"{self.path}: no node here (missing {CONFIG_FILE}); run xnode init")
        text = self.config_path.read_text("utf-8")
        return parse_config(text, env if env is not None else os.environ, str(self.config_path))

    def own_descriptor(self, registry: SchemaRegistry) -> SignedDescriptor:
        path = self.path / DESCRIPTOR_FILE
        try:
            return verify_descriptor(path.read_bytes(), registry)
        except FileNotFoundError as exc:
            raise NodeDirError(f"{path}: missing; the node directory is incomplete") from exc
        except TrustError as exc:
            raise NodeDirError(f"{path}: {exc}") from exc

    def passphrase(self, config: Config, env: Mapping[str, str] | None = None) -> bytes | None:
        """The key passphrase from ``keys.passphrase_file`` or ``XNODE_KEY_PASSPHRASE``."""
        return read_passphrase(config.keys.passphrase_file or None, env)

    def index_secret(self) -> bytes:
        """The secret the identifier index is keyed with (node/identifiers.py): 32 random bytes
        in ``keys/subject-index.key`` (0600), made on first use, so a node of an earlier
        release gets one when it starts. Losing it only loses the index of what was received
        before: searches then find newer messages only."""
        path = self.keys_path / INDEX_SECRET_FILE
        if not path.exists():
            write_atomically(path, os.urandom(INDEX_SECRET_BYTES), mode=0o600)
        secret = path.read_bytes()
        if len(secret) != INDEX_SECRET_BYTES:
            raise NodeDirError(f"{path}: expected {INDEX_SECRET_BYTES} bytes, found {len(secret)}")
        return secret

    def load_keys(self, registry: SchemaRegistry, passphrase: bytes | None) -> NodeKeys:
        """Private keys, checked against the node's own descriptor so a swapped file is caught."""
        descriptor = self.own_descriptor(registry).descriptor
        identity = self._identity_matching(descriptor, passphrase)
        encryption: dict[str, EncryptionKey] = {}
        for info in descriptor.encryption_keys:
            path = self._encryption_key_file(info.key_id)
            key = EncryptionKey(load_encryption_key(path, passphrase))
            if key.public_raw != info.public_key:
                raise NodeDirError(f"{path}: does not match the descriptor")
            encryption[key.key_id] = key
        return NodeKeys(identity, encryption)

    def _identity_matching(self, descriptor: Descriptor, passphrase: bytes | None) -> IdentityKey:
        path = self.keys_path / IDENTITY_FILE
        pending = self.keys_path / NEXT_IDENTITY_FILE
        try:
            identity = IdentityKey(load_identity_key(path, passphrase))
        except KeyFileError:
            if not pending.exists():
                raise
            identity = None  # overwritten by a switch that a crash interrupted
        if identity is not None and identity.public_raw == descriptor.identity_key:
            return identity
        if pending.exists():
            fresh = IdentityKey(load_identity_key(pending, passphrase))
            if fresh.public_raw == descriptor.identity_key:
                self._finish_identity_switch()
                return fresh
        raise NodeDirError(f"{path}: does not match the descriptor")

    # -- peers -----------------------------------------------------------------------------

    def _peer_file(self, node_id: str) -> Path:
        return self.peers_path / f"{validate_node_id(node_id)}{DESCRIPTOR_SUFFIX}"

    def peers(self, registry: SchemaRegistry) -> dict[str, SignedDescriptor]:
        """Every stored peer, each verified again; a file that fails is an error, not skipped."""
        found: dict[str, SignedDescriptor] = {}
        if not self.peers_path.is_dir():
            return found
        for path in sorted(self.peers_path.glob(f"*{DESCRIPTOR_SUFFIX}")):
            try:
                signed = verify_descriptor(path.read_bytes(), registry)
            except TrustError as exc:
                raise NodeDirError(f"{path}: {exc}") from exc
            if path.name != f"{signed.node_id}{DESCRIPTOR_SUFFIX}":
                raise NodeDirError(f"{path}: holds the descriptor of {signed.node_id!r}")
            found[signed.node_id] = signed
        return found

    def peer_directory(self, registry: SchemaRegistry) -> PeerDirectory:
        """The known peers and the ids this node has revoked (refused as ``revoked-sender``)."""
        return PeerDirectory.of(
            (s.descriptor for s in self.peers(registry).values()), self.revocations()
        )

    @property
    def revocations_path(self) -> Path:
        return self.peers_path / REVOCATIONS_FILE

    def revocations(self) -> dict[str, Revocation]:
        """Revoked peers by node id; a file that cannot be read is an error, never "none"."""
        path = self.revocations_path
        if not path.exists():
            return {}
        try:
            docs = json.loads(path.read_text("utf-8"))
            found = [Revocation.from_json(doc) for doc in docs]
        except (OSError, ValueError, KeyError, TypeError, TrustError) as exc:
            raise NodeDirError(f"{path}: cannot read the revocations ({exc})") from exc
        return {r.node_id: r for r in found}

    def save_revocations(self, revocations: Mapping[str, Revocation]) -> None:
        self.peers_path.mkdir(exist_ok=True)
        docs = [revocations[n].to_json() for n in sorted(revocations)]
        write_atomically(self.revocations_path,
                         (json.dumps(docs, indent=2) + "\n").encode("utf-8"), 0o600)  # fmt: skip

    def add_peer(
        self, registry: SchemaRegistry, own_id: str, incoming: SignedDescriptor, now: dt.datetime
    ) -> PeerChange:
        known = self.peers(registry).get(incoming.node_id)
        change = decide_peer_add(own_id, known, incoming, now)
        if change is not PeerChange.UNCHANGED:
            self.peers_path.mkdir(exist_ok=True)
            write_atomically(self._peer_file(incoming.node_id), incoming.raw)
        return change

    def remove_peer(self, node_id: str) -> bool:
        path = self._peer_file(node_id)
        if not path.exists():
            return False
        path.unlink()
        return True

    # -- federation trust list ---------------------------------------------------------------

    @property
    def trust_path(self) -> Path:
        return self.path / "trust"

    def trust_list(self, registry: SchemaRegistry) -> trustlist.SignedTrustList | None:
        """The federation trust list this node applies, or None (bilateral mode: peers only)."""
        path = self.trust_path / TRUST_LIST_FILE
        if not path.exists():
            return None
        try:
            return trustlist.decode(registry, path.read_bytes())
        except (OSError, trustlist.TrustListRejected) as exc:
            raise NodeDirError(f"{path}: cannot read the trust list ({exc})") from exc

    def save_trust_list(self, registry: SchemaRegistry, signed: trustlist.SignedTrustList) -> None:
        self.trust_path.mkdir(mode=0o755, exist_ok=True)
        write_atomically(self.trust_path / TRUST_LIST_FILE, signed.encode(registry))

    # -- audit checkpoints -------------------------------------------------------------------

    def checkpoint_path(self, config: Config) -> Path:
        """``audit.checkpoint_file``, relative to the node directory unless absolute."""
        path = Path(config.audit.checkpoint_file)
        return path if path.is_absolute() else self.path / path

    @property
    def peer_checkpoints_path(self) -> Path:
        return self.path / PEER_CHECKPOINTS_DIR

    def _peer_checkpoint_file(self, node_id: str) -> Path:
        return self.peer_checkpoints_path / f"{validate_node_id(node_id)}.json"

    def own_checkpoint(
        self, registry: SchemaRegistry, config: Config, descriptor: Descriptor
    ) -> checkpoint.SignedCheckpoint | None:
        """This node's checkpoint file, verified with its own identity key; None if absent."""
        return read_checkpoint(
            registry, self.checkpoint_path(config), descriptor.node_id, descriptor.identity_key
        )

    def save_own_checkpoint(self, config: Config, signed: checkpoint.SignedCheckpoint) -> None:
        write_checkpoint(self.checkpoint_path(config), signed)

    def peer_checkpoint(
        self, registry: SchemaRegistry, peer: Descriptor
    ) -> checkpoint.SignedCheckpoint | None:
        """The newest checkpoint kept of ``peer``, verified again with its descriptor."""
        path = self._peer_checkpoint_file(peer.node_id)
        return read_checkpoint(registry, path, peer.node_id, peer.identity_key)

    def peer_checkpoint_ids(self) -> list[str]:
        """Node ids of the peers whose checkpoints this node keeps."""
        if not self.peer_checkpoints_path.is_dir():
            return []
        return sorted(p.stem for p in self.peer_checkpoints_path.glob("*.json"))

    def save_peer_checkpoint(self, signed: checkpoint.SignedCheckpoint) -> None:
        self.peer_checkpoints_path.mkdir(mode=0o700, exist_ok=True)
        write_checkpoint(self._peer_checkpoint_file(signed.checkpoint.node_id), signed)


def read_checkpoint(
    registry: SchemaRegistry, path: Path, node_id: str, identity_key: bytes
) -> checkpoint.SignedCheckpoint | None:
    """A checkpoint file of ``node_id``, verified with ``identity_key``; None if there is none.
    A file that is there but unreadable, edited or not signed by that key is an error."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise NodeDirError(f"{path}: cannot read the audit checkpoint ({exc})") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NodeDirError(f"{path}: not a valid audit checkpoint (invalid JSON)") from exc
    try:
        return checkpoint.from_document(
            registry, document, node_id=node_id, identity_key=identity_key
        )
    except checkpoint.CheckpointError as exc:
        raise NodeDirError(f"{path}: audit checkpoint refused: {exc}") from exc


def write_checkpoint(path: Path, signed: checkpoint.SignedCheckpoint) -> None:
    """Atomically, readable by the node's user only."""
    text = json.dumps(checkpoint.to_document(signed), indent=2) + "\n"
    write_atomically(path, text.encode("utf-8"), mode=0o600)


def read_passphrase(
    passphrase_file: str | None, env: Mapping[str, str] | None = None
) -> bytes | None:
    """First line of ``passphrase_file``, else ``XNODE_KEY_PASSPHRASE``, else no passphrase."""
    if passphrase_file:
        try:
            line = Path(passphrase_file).read_text("utf-8").splitlines()
        except OSError as exc:
            raise KeyFileError(
                f"{passphrase_file}: cannot read passphrase file ({exc.strerror})"
            ) from exc
        if not line or not line[0]:
            raise KeyFileError(f"{passphrase_file}: passphrase file is empty")
        return line[0].encode("utf-8")
    value = (env if env is not None else os.environ).get(PASSPHRASE_ENV)
    return value.encode("utf-8") if value else None
