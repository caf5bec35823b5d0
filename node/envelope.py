"""Seal and open envelopes (DESIGN §4). Pure: bytes and times in, bytes and records out.

Sealing::

    plaintext   = Avro(payload record, writer schema W)
    content key = 32 random bytes;  nonce = 12 random bytes
    header      = {version 1, message id, kind, SHA-256 fingerprint of W, sender, sender key id,
                   created/expires, thread, in-reply-to, priority, nonce,
                   recipients: [{node id, key id, HPKE-wrap(content key, info=WRAP_INFO)}]}
    ciphertext  = ChaCha20-Poly1305(content key, nonce, plaintext, aad = Avro(header))
    signature   = Ed25519(identity key, ENVELOPE_DOMAIN || Avro(header) || Avro-bytes(ciphertext))
    envelope    = Avro(Envelope{header, ciphertext, signature})

``WRAP_INFO = WRAP_DOMAIN || message id || 0x00 || recipient key id`` binds each wrapped key to
its message and its recipient key, so a wrapped key cannot be transplanted into another
envelope or re-labelled for another key.

Opening runs the checks in an order that never touches the ciphertext of an unauthenticated
envelope: size -> strict decode (the bytes must be exactly the canonical encoding, so there is
one valid byte string per envelope) -> known, unrevoked sender and key -> signature -> age ->
own recipient entry -> unwrap -> decrypt -> payload schema -> decode. The first failing check
names its reason code (the receipt reason codes of the runtime).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from node import validation
from node.codec import CodecError, SchemaInfo, SchemaRegistry, avro_bytes
from node.crypto import primitives
from node.crypto.keys import EncryptionKey, IdentityKey, load_ed25519_public, load_x25519_public
from node.crypto.primitives import CryptoFailure
from node.payloads import KINDS, all_payloads, full_name, payloads_of, short_name
from node.trust import Descriptor, PeerDirectory
from node.uuid7 import uuid7

ENVELOPE_VERSION = 1
ENVELOPE_SCHEMA = "xnode.envelope.Envelope"
HEADER_SCHEMA = "xnode.envelope.Header"
ENVELOPE_DOMAIN = b"xnode-envelope-v1\x00"
WRAP_DOMAIN = b"xnode-wrap-v1\x00"
LOCAL_WRAP_DOMAIN = b"xnode-local-rewrap-v1\x00"  # a stored content key re-wrapped by its node
PRIORITIES = ("low", "normal", "high", "urgent")
DEFAULT_MAX_ENVELOPE_BYTES = 1024 * 1024
DEFAULT_CLOCK_SKEW = dt.timedelta(minutes=5)
DEFAULT_MAX_LIFETIME = dt.timedelta(days=90)
# The signature field is always 64 bytes: Avro writes its length as the varint 0x80 0x01.
SIGNATURE_FIELD_BYTES = 2 + primitives.SIGNATURE_BYTES


class SealError(ValueError):
    """The sender asked for something that cannot be sealed; nothing was produced.

    ``field`` names the request field at fault (``kind``, ``to``, ``schema``...), for APIs.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class EnvelopeTooLarge(SealError):
    """The sealed envelope exceeds the configured limit (HTTP 413)."""


class EnvelopeError(Exception):
    """An envelope is refused. ``reason`` is a stable code for receipts, metrics, quarantine."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Header:
    """The broker-visible part of an envelope, as plain Python values."""

    version: int
    message_id: str
    kind: str
    payload_schema: bytes
    sender: str
    sender_key_id: str
    created_at: dt.datetime
    expires_at: dt.datetime
    thread_id: str
    in_reply_to: str | None
    priority: str
    payload_nonce: bytes
    recipients: tuple[Mapping[str, Any], ...]

    @property
    def recipient_ids(self) -> tuple[str, ...]:
        return tuple(r["node_id"] for r in self.recipients)

    def to_record(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "message_id": self.message_id,
            "kind": self.kind,
            "payload_schema": self.payload_schema,
            "sender": self.sender,
            "sender_key_id": self.sender_key_id,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "thread_id": self.thread_id,
            "in_reply_to": self.in_reply_to,
            "priority": self.priority,
            "payload_nonce": self.payload_nonce,
            "recipients": [dict(r) for r in self.recipients],
        }

    @classmethod
    def from_record(cls, r: Mapping[str, Any]) -> Header:
        return cls(
            version=r["version"],
            message_id=str(r["message_id"]),
            kind=r["kind"],
            payload_schema=bytes(r["payload_schema"]),
            sender=r["sender"],
            sender_key_id=r["sender_key_id"],
            created_at=r["created_at"],
            expires_at=r["expires_at"],
            thread_id=str(r["thread_id"]),
            in_reply_to=None if r["in_reply_to"] is None else str(r["in_reply_to"]),
            priority=r["priority"],
            payload_nonce=bytes(r["payload_nonce"]),
            recipients=tuple(r["recipients"]),
        )


@dataclass(frozen=True)
class Sealed:
    """A sealed envelope ready to store, publish or write to a file."""

    header: Header
    data: bytes

    @property
    def message_id(self) -> str:
        return self.header.message_id

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.data).digest()


@dataclass(frozen=True)
class ParsedEnvelope:
    """Strictly decoded but not yet authenticated: trust nothing here but its shape."""

    header: Header
    header_bytes: bytes
    ciphertext: bytes
    signature: bytes
    data: bytes

    @property
    def signed_bytes(self) -> bytes:
        return self.data[: len(self.data) - SIGNATURE_FIELD_BYTES]

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.data).digest()


@dataclass(frozen=True)
class Opened:
    """A verified, decrypted and decoded message."""

    header: Header
    sender: Descriptor
    payload_schema: SchemaInfo
    payload: dict[str, Any]
    envelope_sha256: bytes


def wrap_info(message_id: str, recipient_key_id: str) -> bytes:
    return WRAP_DOMAIN + message_id.encode("ascii") + b"\x00" + recipient_key_id.encode("ascii")


def payload_schema_name(registry: SchemaRegistry, name: str, kind: str | None = None) -> str:
    """Resolve ``Alert`` or ``xnode.payload.Alert``; refuse non-payloads and wrong kinds."""
    full = full_name(name)
    if full not in all_payloads() or full not in registry.names():
        known = ", ".join(short_name(n) for n in all_payloads())
        raise SealError(f"unknown payload schema {name!r}; known: {known}", "schema")
    if kind is not None and full not in payloads_of(kind):
        allowed = ", ".join(short_name(n) for n in payloads_of(kind))
        raise SealError(
            f"a {kind} message cannot carry {short_name(full)}; it carries {allowed}", "schema"
        )
    return full


def seal(
    registry: SchemaRegistry,
    *,
    identity: IdentityKey,
    sender_id: str,
    kind: str,
    schema_name: str,
    payload: Mapping[str, Any],
    recipients: Sequence[Descriptor],
    now: dt.datetime,
    expires_at: dt.datetime,
    thread_id: str | None = None,
    in_reply_to: str | None = None,
    priority: str = "normal",
    message_id: str | None = None,
    max_bytes: int = DEFAULT_MAX_ENVELOPE_BYTES,
    max_lifetime: dt.timedelta = DEFAULT_MAX_LIFETIME,
    writer: SchemaInfo | None = None,
) -> Sealed:
    """Encrypt ``payload`` (already Avro-ready, e.g. from :meth:`SchemaRegistry.from_json`).

    ``writer``: a released earlier version of the payload schema to write with (its fingerprint
    goes in the header), for recipients that may not know the current one yet; the payload is
    still validated against the current version."""
    if now.tzinfo is None or expires_at.tzinfo is None:
        raise SealError("times must carry a time zone", "expires_at")
    if kind not in KINDS:
        raise SealError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}", "kind")
    if priority not in PRIORITIES:
        raise SealError(
            f"unknown priority {priority!r}; expected one of {', '.join(PRIORITIES)}", "priority"
        )
    if not recipients:
        raise SealError("at least one recipient is required", "to")
    ids = [r.node_id for r in recipients]
    if len(set(ids)) != len(ids):
        raise SealError("a recipient is listed twice", "to")
    if sender_id in ids:
        raise SealError("a node does not send to itself", "to")
    if expires_at <= now:
        raise SealError("expiry must be after the creation time", "expires_at")
    if expires_at - now > max_lifetime:
        raise SealError(
            f"expiry {_fmt(expires_at)} is more than {max_lifetime.days} days away; receivers"
            " refuse longer lifetimes (envelope.max_lifetime_days)",
            "expires_at",
        )
    for name, value in (("message_id", message_id), ("thread_id", thread_id),
                        ("in_reply_to", in_reply_to)):  # fmt: skip
        if value is not None and not is_canonical_uuid(value):
            raise SealError(
                f"{name} must be a UUID in canonical form (lowercase, hyphenated, e.g. "
                f"0192f3a4-5b6c-7d8e-9f00-112233445566); got {value[:60]!r}",
                name,
            )
    schema = registry.schema(payload_schema_name(registry, schema_name, kind))
    validation.check(registry, schema.name, payload, validation.Context(now, tuple(ids), sender_id))

    message_id = message_id or str(uuid7(now))
    content_key = primitives.new_content_key()
    wrapped = []
    for recipient in recipients:
        key = recipient.encryption_key_at(now)
        if key is None:
            raise SealError(
                f"{recipient.node_id} has no encryption key valid at {now:%Y-%m-%d}", "to"
            )
        wrapped.append(
            {
                "node_id": recipient.node_id,
                "key_id": key.key_id,
                "wrapped_key": primitives.hpke_wrap(
                    content_key,
                    load_x25519_public(key.public_key),
                    wrap_info(message_id, key.key_id),
                ),
            }
        )
    header = Header(
        version=ENVELOPE_VERSION,
        message_id=message_id,
        kind=kind,
        payload_schema=(writer or schema).fingerprint,
        sender=sender_id,
        sender_key_id=identity.key_id,
        created_at=_millis(now),
        expires_at=_millis(expires_at),
        thread_id=thread_id or message_id,
        in_reply_to=in_reply_to,
        priority=priority,
        payload_nonce=primitives.new_nonce(),
        recipients=tuple(wrapped),
    )
    header_bytes = registry.encode(HEADER_SCHEMA, header.to_record())
    plaintext = registry.encode(schema.name, payload, writer)
    ciphertext = primitives.aead_encrypt(content_key, header.payload_nonce, plaintext, header_bytes)
    signed_bytes = header_bytes + avro_bytes(ciphertext)
    signature = primitives.sign(identity, ENVELOPE_DOMAIN, signed_bytes)
    data = signed_bytes + avro_bytes(signature)
    if len(data) > max_bytes:
        raise EnvelopeTooLarge(f"sealed envelope is {len(data)} bytes; the limit is {max_bytes}")
    return Sealed(header, data)


def is_canonical_uuid(value: str) -> bool:
    """Whether ``value`` is a UUID written the one way receivers accept (they refuse any other
    spelling as malformed, without a receipt: so the sender must refuse it first)."""
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _millis(value: dt.datetime) -> dt.datetime:
    """Truncate to what ``timestamp-millis`` stores, so the header reads back identical."""
    if value.tzinfo is None:
        raise SealError("times must carry a time zone")
    value = value.astimezone(dt.UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def parse(
    registry: SchemaRegistry, data: bytes, max_bytes: int = DEFAULT_MAX_ENVELOPE_BYTES
) -> ParsedEnvelope:
    """Strictly decode an envelope without trusting it. Refuses any non-canonical encoding."""
    if len(data) > max_bytes:
        raise EnvelopeError("too-large", f"envelope is {len(data)} bytes; limit {max_bytes}")
    try:
        record = registry.decode(ENVELOPE_SCHEMA, data)
    except CodecError as exc:
        raise EnvelopeError("malformed", f"not an envelope ({exc.problem})") from exc
    header_record = record["header"]
    if header_record["version"] != ENVELOPE_VERSION:
        raise EnvelopeError(
            "malformed", f"envelope version {header_record['version']} is not supported"
        )
    try:
        header_bytes = registry.encode(HEADER_SCHEMA, header_record)
    except CodecError as exc:
        raise EnvelopeError("malformed", "envelope does not re-encode") from exc
    canonical = header_bytes + avro_bytes(record["ciphertext"]) + avro_bytes(record["signature"])
    if canonical != data:
        raise EnvelopeError("malformed", "envelope is not in canonical Avro encoding")
    if len(record["signature"]) != primitives.SIGNATURE_BYTES:
        raise EnvelopeError("bad-signature", "signature has the wrong length")
    return ParsedEnvelope(
        header=Header.from_record(header_record),
        header_bytes=header_bytes,
        ciphertext=record["ciphertext"],
        signature=record["signature"],
        data=data,
    )


def verify_sender(
    parsed: ParsedEnvelope,
    peers: PeerDirectory,
    *,
    now: dt.datetime | None,
    revoked_ok: bool = False,
) -> Descriptor:
    """Authenticate the envelope: a known, unrevoked sender signed it with a key it may use.

    ``now`` is the arrival time; None when re-opening what was accepted earlier (its inbox
    copy): then a revoked sender (``revoked_ok``) and a key retired since are accepted for what
    was created before, so the local system can still read it (views flag the sender)."""
    header = parsed.header
    sender = peers.get(header.sender)
    if sender is None:
        raise EnvelopeError("unknown-sender", f"sender {header.sender!r} is not a known peer")
    if header.sender in peers.revoked and not revoked_ok:
        raise EnvelopeError("revoked-sender", f"sender {header.sender!r} has been revoked")
    keys = peers.sender_keys(header.sender)
    key = keys.get(header.sender_key_id)
    if key is None:
        raise EnvelopeError(
            "unknown-sender",
            f"sender {header.sender!r} signed with key {header.sender_key_id}, "
            f"not a known identity key of it ({', '.join(sorted(keys))})",
        )
    refusal = key.refusal(header.created_at, now)
    if refusal is not None:
        raise EnvelopeError("unknown-sender", f"sender {header.sender!r}: {refusal}")
    try:
        primitives.verify(
            load_ed25519_public(key.public_key), ENVELOPE_DOMAIN, parsed.signed_bytes,
            parsed.signature,
        )  # fmt: skip
    except (CryptoFailure, ValueError) as exc:
        raise EnvelopeError(
            "bad-signature", f"signature does not verify against {header.sender!r}"
        ) from exc
    return sender


def check_age(
    header: Header,
    now: dt.datetime,
    max_skew: dt.timedelta,
    max_lifetime: dt.timedelta = DEFAULT_MAX_LIFETIME,
) -> None:
    """Refuse expired envelopes, envelopes dated beyond the allowed clock skew, and envelopes
    meant to live longer than the maximum lifetime (which bounds every date derived from one)."""
    if header.created_at > now + max_skew:
        raise EnvelopeError(
            "clock-skew",
            f"created {_fmt(header.created_at)}, later than now ({_fmt(now)}) "
            f"plus the allowed skew of {int(max_skew.total_seconds())} s",
        )
    if header.expires_at <= now:
        raise EnvelopeError("expired", f"expired at {_fmt(header.expires_at)}")
    lifetime = header.expires_at - header.created_at
    if lifetime > max_lifetime:
        raise EnvelopeError(
            "lifetime-exceeded",
            f"lifetime of {lifetime.days} days (created {_fmt(header.created_at)}, expires "
            f"{_fmt(header.expires_at)}) exceeds the {max_lifetime.days} days this node accepts",
        )


LocalWrap = tuple[str, bytes]
"""(key id, wrapped content key): a stored envelope's content key re-wrapped by this node to its
current encryption key, kept beside the envelope (which stays exactly as signed)."""


def local_wrap_info(header: Header, key_id: str) -> bytes:
    return LOCAL_WRAP_DOMAIN + f"{header.sender}\x00{header.message_id}\x00{key_id}".encode()


def sealed_to(parsed: ParsedEnvelope, own_id: str, local_wrap: LocalWrap | None = None) -> str:
    """The id of this node's key that opens the envelope: the local re-wrap's if it has one,
    else the one the sender wrapped the content key to."""
    if local_wrap is not None:
        return local_wrap[0]
    entry = next((r for r in parsed.header.recipients if r["node_id"] == own_id), None)
    if entry is None:
        raise EnvelopeError("not-a-recipient", f"{own_id!r} is not among the recipients")
    return str(entry["key_id"])


def _content_key(
    parsed: ParsedEnvelope,
    own_id: str,
    own_keys: Mapping[str, EncryptionKey],
    local_wrap: LocalWrap | None,
) -> bytes:
    header = parsed.header
    if local_wrap is not None and local_wrap[0] in own_keys:
        rewrapped_to = own_keys[local_wrap[0]]
        info = local_wrap_info(header, rewrapped_to.key_id)
        return primitives.hpke_unwrap(local_wrap[1], rewrapped_to.private, info)
    entries = [r for r in header.recipients if r["node_id"] == own_id]
    if not entries:
        raise EnvelopeError("not-a-recipient", f"{own_id!r} is not among the recipients")
    entry = entries[0]
    key = own_keys.get(entry["key_id"])
    if key is None:
        raise EnvelopeError(
            "not-a-recipient",
            f"encrypted to key {entry['key_id']}, which this node does not hold",
        )
    return primitives.hpke_unwrap(
        entry["wrapped_key"], key.private, wrap_info(header.message_id, key.key_id)
    )


def decrypt(
    parsed: ParsedEnvelope,
    own_id: str,
    own_keys: Mapping[str, EncryptionKey],
    local_wrap: LocalWrap | None = None,
) -> bytes:
    """Find this node's recipient entry (or the local re-wrap), unwrap the content key and
    decrypt the payload."""
    try:
        content_key = _content_key(parsed, own_id, own_keys, local_wrap)
        return primitives.aead_decrypt(
            content_key, parsed.header.payload_nonce, parsed.ciphertext, parsed.header_bytes
        )
    except CryptoFailure as exc:
        # Signed by a known sender yet undecryptable: the sender built it wrongly.
        raise EnvelopeError("invalid-payload", f"cannot decrypt: {exc}") from exc


def rewrap(
    parsed: ParsedEnvelope,
    own_id: str,
    own_keys: Mapping[str, EncryptionKey],
    to: EncryptionKey,
    local_wrap: LocalWrap | None = None,
) -> LocalWrap:
    """The stored envelope's content key wrapped to ``to``, so that the key it was sealed to can
    be destroyed and the message still opens. Checked: the payload decrypts with it."""
    try:
        content_key = _content_key(parsed, own_id, own_keys, local_wrap)
        primitives.aead_decrypt(
            content_key, parsed.header.payload_nonce, parsed.ciphertext, parsed.header_bytes
        )
    except CryptoFailure as exc:
        raise EnvelopeError("invalid-payload", f"cannot decrypt: {exc}") from exc
    info = local_wrap_info(parsed.header, to.key_id)
    return to.key_id, primitives.hpke_wrap(content_key, to.private.public_key(), info)


def decode_payload(
    registry: SchemaRegistry, header: Header, plaintext: bytes
) -> tuple[SchemaInfo, dict[str, Any]]:
    writer = registry.by_fingerprint(header.payload_schema)
    if writer is None or writer.name not in all_payloads():
        raise EnvelopeError(
            "schema-unsupported",
            f"payload schema {header.payload_schema.hex()[:16]}... is not known to this node",
        )
    if writer.name not in payloads_of(header.kind):
        raise EnvelopeError(
            "invalid-payload", f"a {header.kind} message cannot carry {short_name(writer.name)}"
        )
    try:
        payload = registry.decode(writer.name, plaintext, writer)
    except CodecError as exc:
        raise EnvelopeError("invalid-payload", str(exc)) from exc
    context = validation.Context(header.created_at, header.recipient_ids, header.sender)
    problems = validation.validate(registry, writer.name, payload, context)
    if problems:
        raise EnvelopeError("invalid-payload", str(problems[0]))
    return writer, payload


def reopen(
    registry: SchemaRegistry,
    data: bytes,
    *,
    own_id: str,
    own_keys: Mapping[str, EncryptionKey],
    peers: PeerDirectory,
    local_wrap: LocalWrap | None = None,
) -> Opened:
    """Open an envelope this node accepted earlier (its inbox copy): verified and decrypted
    again, but not judged by age — it was in time when it arrived."""
    parsed = parse(registry, data, max(len(data), 1))
    sender = verify_sender(parsed, peers, now=None, revoked_ok=True)
    plaintext = decrypt(parsed, own_id, own_keys, local_wrap)
    schema, payload = decode_payload(registry, parsed.header, plaintext)
    return Opened(parsed.header, sender, schema, payload, parsed.sha256)


def open_envelope(
    registry: SchemaRegistry,
    data: bytes,
    *,
    own_id: str,
    own_keys: Mapping[str, EncryptionKey],
    peers: PeerDirectory,
    now: dt.datetime,
    max_skew: dt.timedelta = DEFAULT_CLOCK_SKEW,
    max_bytes: int = DEFAULT_MAX_ENVELOPE_BYTES,
    max_lifetime: dt.timedelta = DEFAULT_MAX_LIFETIME,
) -> Opened:
    """Verify, then decrypt, then decode. Raises :class:`EnvelopeError` at the first failure."""
    parsed = parse(registry, data, max_bytes)
    sender = verify_sender(parsed, peers, now=now)
    check_age(parsed.header, now, max_skew, max_lifetime)
    plaintext = decrypt(parsed, own_id, own_keys)
    schema, payload = decode_payload(registry, parsed.header, plaintext)
    return Opened(parsed.header, sender, schema, payload, parsed.sha256)


def header_json(registry: SchemaRegistry, header: Header) -> dict[str, Any]:
    """The header as JSON for people and logs; wrapped keys are shortened, never secrets."""
    out: dict[str, Any] = registry.to_json(HEADER_SCHEMA, header.to_record())
    out["payload_schema"] = header.payload_schema.hex()
    schema = registry.by_fingerprint(header.payload_schema)
    out["payload_schema_name"] = schema.name if schema else None
    out["payload_nonce"] = header.payload_nonce.hex()
    for entry in out["recipients"]:
        entry["wrapped_key"] = f"<{len(entry['wrapped_key'])} base64 chars>"
    return out


def new_thread_id(now: dt.datetime) -> str:
    return str(uuid7(now))


def _fmt(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = [
    "EnvelopeError",
    "Header",
    "Opened",
    "ParsedEnvelope",
    "SealError",
    "Sealed",
    "check_age",
    "decode_payload",
    "decrypt",
    "header_json",
    "open_envelope",
    "parse",
    "seal",
    "verify_sender",
]
