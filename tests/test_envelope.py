"""Envelope seal/open: the core, no files, no broker."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node import envelope
from node.codec import SchemaRegistry
from node.crypto.keys import IdentityKey
from node.envelope import EnvelopeError, SealError
from node.trust import PeerDirectory, SenderKey
from tests.conftest import NOW, MemNode, peers_of

SKEW = dt.timedelta(minutes=5)


def seal_to(
    registry: SchemaRegistry,
    sender: MemNode,
    to: list[MemNode],
    payload: dict[str, Any],
    **overrides: Any,
) -> envelope.Sealed:
    args: dict[str, Any] = {
        "identity": sender.identity,
        "sender_id": sender.node_id,
        "kind": "alert",
        "schema_name": "CaseUpdate",
        "payload": payload,
        "recipients": [r.descriptor for r in to],
        "now": NOW,
        "expires_at": NOW + dt.timedelta(days=7),
    }
    args.update(overrides)
    return envelope.seal(registry, **args)


def open_as(
    registry: SchemaRegistry, node: MemNode, data: bytes, peers: PeerDirectory, **kw: Any
) -> envelope.Opened:
    kw.setdefault("now", NOW)
    return envelope.open_envelope(
        registry, data, own_id=node.node_id, own_keys=node.keys, peers=peers, **kw
    )


@pytest.fixture
def sealed(registry, nodes, payload) -> envelope.Sealed:
    recipients = [nodes["zw-police"], nodes["mw-police"], nodes["za-shelter-johannesburg"]]
    return seal_to(registry, nodes["zm-police"], recipients, payload)


def test_three_recipients_each_open_the_same_payload(registry, nodes, payload, sealed):
    peers = peers_of(nodes["zm-police"])
    for name in ("zw-police", "mw-police", "za-shelter-johannesburg"):
        opened = open_as(registry, nodes[name], sealed.data, peers)
        assert opened.payload == payload
        assert opened.sender.node_id == "zm-police"
        assert opened.header.recipient_ids == (
            "zw-police",
            "mw-police",
            "za-shelter-johannesburg",
        )
        assert opened.payload_schema.name == "xnode.payload.CaseUpdate"
        assert opened.envelope_sha256 == sealed.sha256


def test_non_recipient_is_refused(registry, nodes, sealed):
    with pytest.raises(EnvelopeError) as err:
        open_as(registry, nodes["bw-police"], sealed.data, peers_of(nodes["zm-police"]))
    assert err.value.reason == "not-a-recipient"


def test_recipient_entry_with_key_we_do_not_hold(registry, nodes, sealed):
    impostor = dataclasses.replace(nodes["zw-police"], encryption=nodes["bw-police"].encryption)
    with pytest.raises(EnvelopeError) as err:
        open_as(registry, impostor, sealed.data, peers_of(nodes["zm-police"]))
    assert err.value.reason == "not-a-recipient"
    assert "does not hold" in err.value.detail


def test_no_payload_plaintext_in_sealed_bytes(registry, nodes, payload, sealed):
    plaintext = registry.encode("xnode.payload.CaseUpdate", payload)
    for text in ("Chirundu", "Harare", "Mwila Banda", "ZP/CHR/2026/0142", "SADC Protocol"):
        assert text.encode() not in sealed.data
    # nor any 12-byte window of the encoded payload
    windows = {plaintext[i : i + 12] for i in range(len(plaintext) - 12)}
    assert not any(w in sealed.data for w in windows)


def test_unknown_sender(registry, nodes, sealed):
    with pytest.raises(EnvelopeError) as err:
        open_as(registry, nodes["zw-police"], sealed.data, peers_of(nodes["mw-police"]))
    assert err.value.reason == "unknown-sender"


def test_forged_sender_signed_with_another_key(registry, nodes, payload):
    forger = dataclasses.replace(nodes["bw-police"], node_id="zm-police")
    forged = seal_to(registry, forger, [nodes["zw-police"]], payload)
    with pytest.raises(EnvelopeError) as err:
        open_as(registry, nodes["zw-police"], forged.data, peers_of(nodes["zm-police"]))
    assert err.value.reason == "unknown-sender"  # key id is not the known identity key


def test_forged_sender_reusing_the_victims_key_id(registry, nodes, payload, monkeypatch):
    # Failure injection: make the forger's key claim the real sender's key id.
    real = nodes["zm-police"]
    forger = dataclasses.replace(nodes["bw-police"], node_id="zm-police")
    real_key_id = real.identity.key_id
    monkeypatch.setattr(type(forger.identity), "key_id", property(lambda self: real_key_id))
    forged = seal_to(registry, forger, [nodes["zw-police"]], payload)
    monkeypatch.undo()
    with pytest.raises(EnvelopeError) as err:
        open_as(registry, nodes["zw-police"], forged.data, peers_of(real))
    assert err.value.reason == "bad-signature"


def test_revoked_sender(registry, nodes, sealed):
    peers = PeerDirectory.of([nodes["zm-police"].descriptor], revoked=["zm-police"])
    with pytest.raises(EnvelopeError) as err:
        open_as(registry, nodes["zw-police"], sealed.data, peers)
    assert err.value.reason == "revoked-sender"


def test_expired(registry, nodes, sealed):
    with pytest.raises(EnvelopeError) as err:
        open_as(
            registry,
            nodes["zw-police"],
            sealed.data,
            peers_of(nodes["zm-police"]),
            now=NOW + dt.timedelta(days=7),
        )
    assert err.value.reason == "expired"


def test_clock_skew_window(registry, nodes, sealed):
    peers = peers_of(nodes["zm-police"])
    earlier = NOW - SKEW + dt.timedelta(seconds=1)
    open_as(registry, nodes["zw-police"], sealed.data, peers, now=earlier, max_skew=SKEW)
    with pytest.raises(EnvelopeError) as err:
        open_as(
            registry,
            nodes["zw-police"],
            sealed.data,
            peers,
            now=NOW - SKEW - dt.timedelta(seconds=1),
            max_skew=SKEW,
        )
    assert err.value.reason == "clock-skew"


def test_too_large_on_open_and_on_seal(registry, nodes, payload, sealed):
    with pytest.raises(EnvelopeError) as err:
        open_as(
            registry,
            nodes["zw-police"],
            sealed.data,
            peers_of(nodes["zm-police"]),
            max_bytes=len(sealed.data) - 1,
        )
    assert err.value.reason == "too-large"
    big = dict(payload, note="x" * 5000)
    with pytest.raises(SealError, match="limit is 4096"):
        seal_to(registry, nodes["zm-police"], [nodes["zw-police"]], big, max_bytes=4096)


def test_garbage_is_malformed(registry, nodes):
    for data in (b"", b"\x00", b"garbage bytes \xff\xfe", bytes(300)):
        with pytest.raises(EnvelopeError) as err:
            open_as(registry, nodes["zw-police"], data, peers_of(nodes["zm-police"]))
        assert err.value.reason == "malformed"


def test_trailing_bytes_are_malformed(registry, nodes, sealed):
    with pytest.raises(EnvelopeError) as err:
        open_as(registry, nodes["zw-police"], sealed.data + b"\x00", peers_of(nodes["zm-police"]))
    assert err.value.reason == "malformed"


def test_unknown_payload_schema(registry, nodes, payload, monkeypatch):
    sealed = seal_to(registry, nodes["zm-police"], [nodes["zw-police"]], payload)
    # Failure injection: a registry that has never heard of the writer schema.
    monkeypatch.setattr(registry, "by_fingerprint", lambda fp: None)
    with pytest.raises(EnvelopeError) as err:
        open_as(registry, nodes["zw-police"], sealed.data, peers_of(nodes["zm-police"]))
    assert err.value.reason == "schema-unsupported"


def test_wrapped_key_cannot_be_transplanted(registry, nodes, payload):
    """A wrapped key is bound to its message id: re-using it in another envelope fails."""
    zm, zw = nodes["zm-police"], nodes["zw-police"]
    first = seal_to(registry, zm, [zw], payload)
    second = seal_to(registry, zm, [zw], payload)
    p1, p2 = envelope.parse(registry, first.data), envelope.parse(registry, second.data)
    forged = dataclasses.replace(
        p2, header=dataclasses.replace(p2.header, recipients=p1.header.recipients)
    )
    with pytest.raises(EnvelopeError) as err:
        envelope.decrypt(forged, zw.node_id, zw.keys)
    assert err.value.reason == "invalid-payload"


def test_threads_and_replies_round_trip(registry, nodes, payload):
    zm, zw = nodes["zm-police"], nodes["zw-police"]
    request = seal_to(registry, zm, [zw], payload, kind="mla", priority="high")
    reply = seal_to(
        registry,
        zw,
        [zm],
        payload,
        kind="mla",
        thread_id=request.header.thread_id,
        in_reply_to=request.message_id,
    )
    opened = open_as(registry, zm, reply.data, peers_of(zw))
    assert opened.header.thread_id == request.message_id
    assert opened.header.in_reply_to == request.message_id
    assert request.header.priority == "high"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "gossip"}, "unknown kind"),
        ({"priority": "asap"}, "unknown priority"),
        ({"recipients": []}, "at least one recipient"),
        ({"expires_at": NOW}, "expiry must be after"),
        ({"schema_name": "NoSuchThing"}, "unknown payload schema"),
        ({"schema_name": "xnode.common.Handling"}, "unknown payload schema"),
    ],
)
def test_seal_refuses_bad_requests(registry, nodes, payload, change, message):
    with pytest.raises(SealError, match=message):
        seal_to(registry, nodes["zm-police"], [nodes["zw-police"]], payload, **change)


def test_seal_refuses_duplicates_self_and_expired_keys(registry, nodes, payload):
    zm, zw = nodes["zm-police"], nodes["zw-police"]
    with pytest.raises(SealError, match="listed twice"):
        seal_to(registry, zm, [zw, zw], payload)
    with pytest.raises(SealError, match="to itself"):
        seal_to(registry, zm, [zm], payload)
    later = NOW + dt.timedelta(days=400)
    with pytest.raises(SealError, match="no encryption key valid"):
        seal_to(registry, zm, [zw], payload, now=later, expires_at=later + dt.timedelta(days=1))


# -- tampering: every single-byte change is refused before any payload is touched ------------


@pytest.fixture(scope="module")
def tamper_case(registry, nodes):
    from tests.conftest import CASE_UPDATE_JSON

    payload = registry.from_json("xnode.payload.CaseUpdate", CASE_UPDATE_JSON)
    recipients = [nodes["zw-police"], nodes["mw-police"], nodes["za-shelter-johannesburg"]]
    return seal_to(registry, nodes["zm-police"], recipients, payload)


@settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_single_byte_change_is_refused_before_decryption(
    registry, nodes, tamper_case, monkeypatch, data
):
    original = tamper_case.data
    position = data.draw(st.integers(0, len(original) - 1), label="position")
    value = data.draw(st.integers(0, 255).filter(lambda v: v != original[position]), label="value")
    tampered = original[:position] + bytes([value]) + original[position + 1 :]

    def must_not_decrypt(*args: Any, **kwargs: Any) -> bytes:
        raise AssertionError(f"tampered envelope reached decryption (byte {position})")

    # Spy (not a mock of behaviour): fails the test if the ciphertext is ever touched.
    monkeypatch.setattr(envelope, "decrypt", must_not_decrypt)
    with pytest.raises(EnvelopeError) as err:
        open_as(registry, nodes["zw-police"], tampered, peers_of(nodes["zm-police"]))
    assert err.value.reason in {"malformed", "bad-signature", "unknown-sender", "not-a-recipient"}
    assert err.value.reason != "not-a-recipient"  # recipient checks come after the signature


def test_every_position_flipped_once(registry, nodes, tamper_case):
    """Exhaustive complement to the property test: flip the low bit of every byte."""
    original = tamper_case.data
    peers = peers_of(nodes["zm-police"])
    for position in range(len(original)):
        tampered = bytearray(original)
        tampered[position] ^= 0x01
        with pytest.raises(EnvelopeError) as err:
            open_as(registry, nodes["zw-police"], bytes(tampered), peers)
        assert err.value.reason in {"malformed", "bad-signature", "unknown-sender"}, position


def test_a_key_the_federation_retired_opens_within_its_overlap_and_for_stored_copies(
    registry, nodes, sealed
):
    """zm-police rotated its identity key: the trust list lists its old key as retired at
    NOW + 1 h. An envelope signed with the old key is accepted as it arrives until then, and
    re-opened from the inbox later because it was created before the retirement."""
    zm, zw = nodes["zm-police"], nodes["zw-police"]
    new_key = IdentityKey.generate()
    retired_at = NOW + dt.timedelta(hours=1)
    keys = {"zm-police": {
        new_key.key_id: SenderKey(new_key.public_raw),
        zm.identity.key_id: SenderKey(zm.identity.public_raw, retired_at, retired_at),
    }}  # fmt: skip
    peers = PeerDirectory.of([zm.descriptor], keys=keys)
    assert open_as(registry, zw, sealed.data, peers).header.sender == "zm-police"
    with pytest.raises(EnvelopeError) as refused:
        open_as(registry, zw, sealed.data, peers, now=retired_at)
    assert refused.value.reason == "unknown-sender" and "retired" in refused.value.detail
    reopened = envelope.reopen(registry, sealed.data, own_id=zw.node_id, own_keys=zw.keys,
                               peers=peers)  # fmt: skip
    assert reopened.header.message_id == sealed.message_id
    # A key the list does not name at all is refused even though the descriptor holds it.
    only_new = PeerDirectory.of([zm.descriptor], keys={"zm-police": {
        new_key.key_id: SenderKey(new_key.public_raw)}})  # fmt: skip
    with pytest.raises(EnvelopeError, match="not a known identity key"):
        open_as(registry, zw, sealed.data, only_new)
