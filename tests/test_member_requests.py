"""Join and identity-rotation requests (node/member_requests.py): what a request proves by
itself, and what the governors' proposal may make of it."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from node import member_requests as mr
from node import trustlist as tl
from node.crypto.keys import IdentityKey
from node.crypto.primitives import sign
from node.member_requests import RequestRefused
from node.trust import issue_descriptor
from node.trustlist import Governor, ListChange, Member, TrustList
from tests.conftest import NOW, MemNode, make_node

GOVERNORS = [IdentityKey.generate() for _ in range(3)]
HOUR = dt.timedelta(hours=1)


def listed(node: MemNode, status: str = "active", reason: str | None = None) -> Member:
    d = node.descriptor
    return Member(d.node_id, d.country, d.roles, d.display_name, d.identity_key, status,
                  NOW - HOUR, reason)  # fmt: skip


@pytest.fixture
def region(nodes):
    members = [listed(nodes["zm-police"]), listed(nodes["zw-police"])]
    return TrustList("sadc-tip", 4, NOW - HOUR, NOW + 30 * 24 * HOUR, 2,
                     tuple(Governor(f"governor {i}", g.public_raw) for i, g in
                           enumerate(GOVERNORS)),
                     tuple(members), (ListChange(4, NOW - HOUR, "v4"),))  # fmt: skip


def request(registry, node: MemNode, kind: str = mr.JOIN, signers=None, **over) -> bytes:
    args = {
        "request": kind, "federation": "sadc-tip",
        "descriptor": issue_descriptor(node.identity, node.descriptor, registry),
        "roles": ("law-enforcement",), "contact": "Lilongwe liaison office",
        "note": "mandate of 2026", "now": NOW, "signers": signers or [node.identity],
    }  # fmt: skip
    args.update(over)
    return mr.make_request(registry, **args)


def rotation(registry, node: MemNode, fresh: IdentityKey, signers) -> bytes:
    """``node`` asks for ``fresh`` as its identity key."""
    moved = dataclasses.replace(node.descriptor, identity_key=fresh.public_raw,
                                descriptor_version=2)  # fmt: skip
    return request(registry, dataclasses.replace(node, identity=fresh, descriptor=moved),
                   mr.ROTATE, signers=signers)  # fmt: skip


def test_a_join_request_becomes_an_active_member_with_the_roles_granted(registry, nodes, region):
    mw = nodes["mw-police"]
    req = mr.read_request(registry, request(registry, mw, roles=("law-enforcement", "immigration")))
    assert (req.node_id, req.contact, req.note) == ("mw-police", "Lilongwe liaison office",
                                                    "mandate of 2026")  # fmt: skip
    entry = mr.admit(region, req, NOW)
    assert (entry.node_id, entry.status, entry.status_since) == ("mw-police", "active", NOW)
    assert entry.identity_key == mw.identity.public_raw
    assert entry.roles == ("law-enforcement", "immigration")  # asked for
    assert mr.admit(region, req, NOW, ("shelter",)).roles == ("shelter",)  # granted instead
    with pytest.raises(RequestRefused, match="unknown role"):
        mr.admit(region, req, NOW, ("liaison",))
    new = tl.next_version(region, "add mw-police", NOW, 90 * 24 * HOUR,
                          members=tl.with_member(region, entry))  # fmt: skip
    tl.check_list(new)


def test_a_join_request_must_be_signed_by_the_key_it_carries(registry, nodes):
    mw, thief = nodes["mw-police"], IdentityKey.generate()
    with pytest.raises(RequestRefused, match="not signed by its descriptor's identity key"):
        mr.read_request(registry, request(registry, mw, signers=[thief]))
    raw = bytearray(request(registry, mw))
    raw[12] ^= 0x01  # inside the signed request
    with pytest.raises(RequestRefused):
        mr.read_request(registry, bytes(raw))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"federation": "eac-tip"}, "asks to be in 'eac-tip'"),
        ({"kind": mr.ROTATE}, "a rotate identity request, not a join request"),
    ],
)
def test_a_join_request_for_something_else_is_refused(registry, nodes, region, change, message):
    kind = change.pop("kind", mr.JOIN)
    req = mr.read_request(registry, request(registry, nodes["mw-police"], kind, **change))
    with pytest.raises(RequestRefused, match=message):
        mr.admit(region, req, NOW)


def test_a_member_or_a_members_key_cannot_join_again(registry, nodes, region):
    zm = nodes["zm-police"]
    with pytest.raises(RequestRefused, match="zm-police is already a member"):
        mr.admit(region, mr.read_request(registry, request(registry, zm)), NOW)
    # another id with zm-police's key
    twin = dataclasses.replace(zm, node_id="mw-police", descriptor=dataclasses.replace(
        zm.descriptor, node_id="mw-police", country="mw", display_name="mw-police"))  # fmt: skip
    with pytest.raises(RequestRefused, match="its identity key is, or was, zm-police's"):
        mr.admit(region, mr.read_request(registry, request(registry, twin)), NOW)


def test_a_revoked_node_id_is_never_admitted_again(registry, nodes, region):
    gone = dataclasses.replace(region, members=(*region.members,
                                                listed(nodes["mw-police"], "revoked",
                                                       "key-compromise")))  # fmt: skip
    fresh = make_node("mw-police")
    with pytest.raises(RequestRefused, match="already a member \\(revoked\\)"):
        mr.admit(gone, mr.read_request(registry, request(registry, fresh)), NOW)


def test_an_identity_rotation_signed_by_the_old_and_new_key(registry, nodes, region):
    zw, fresh = nodes["zw-police"], IdentityKey.generate()
    req = mr.read_request(registry, rotation(registry, zw, fresh, [zw.identity, fresh]))
    entry = mr.rotate(region, req, NOW, 24 * HOUR)
    assert entry.identity_key == fresh.public_raw and entry.status == "active"
    assert entry.past_keys == (tl.PastKey(zw.identity.public_raw, NOW + 24 * HOUR, "superseded"),)
    new = tl.next_version(region, "rotate", NOW, 90 * 24 * HOUR,
                          members=tl.with_member(region, entry))  # fmt: skip
    tl.check_list(new)
    keys = tl.sender_keys(new.member("zw-police"))  # type: ignore[arg-type]
    assert keys[zw.identity.key_id].arrivals_until == NOW + 24 * HOUR
    stolen = mr.rotate(region, req, NOW, 24 * HOUR, compromised=True)
    assert stolen.past_keys == (tl.PastKey(zw.identity.public_raw, NOW, "key-compromise"),)


def test_a_rotation_needs_the_current_key_and_a_member_not_revoked(registry, nodes, region):
    zw, fresh, thief = nodes["zw-police"], IdentityKey.generate(), IdentityKey.generate()
    # the new key alone (a stranger claiming zw-police's id) does not authorise it
    req = mr.read_request(registry, rotation(registry, zw, fresh, [fresh, thief]))
    with pytest.raises(RequestRefused, match="not signed by zw-police's current identity key"):
        mr.rotate(region, req, NOW, HOUR)
    # without the new key's signature it proves nothing about holding the new key
    with pytest.raises(RequestRefused, match="not signed by its descriptor's identity key"):
        mr.read_request(registry, rotation(registry, zw, fresh, [zw.identity]))
    req = mr.read_request(registry, rotation(registry, zw, fresh, [zw.identity, fresh]))
    revoked = dataclasses.replace(region, members=(
        listed(nodes["zm-police"]), listed(zw, "revoked", "misbehaviour")))  # fmt: skip
    with pytest.raises(RequestRefused, match="revoked; revocation is final"):
        mr.rotate(revoked, req, NOW, HOUR)
    stranger = mr.read_request(registry, rotation(registry, nodes["mw-police"], fresh,
                                                  [nodes["mw-police"].identity, fresh]))  # fmt: skip
    with pytest.raises(RequestRefused, match="mw-police is not a member"):
        mr.rotate(region, stranger, NOW, HOUR)
    reused = mr.read_request(registry, rotation(registry, zw, nodes["zm-police"].identity,
                                                [zw.identity, nodes["zm-police"].identity]))  # fmt: skip
    with pytest.raises(RequestRefused, match="is, or was, zm-police's"):
        mr.rotate(region, reused, NOW, HOUR)


def test_a_request_of_an_unknown_type_is_refused(registry, nodes):
    with pytest.raises(RequestRefused, match="unknown request 'leave'"):
        mr.read_request(registry, request(registry, nodes["mw-police"], "leave"))


def test_garbage_and_oversized_requests_are_refused_clearly(registry):
    with pytest.raises(RequestRefused, match="not a member request"):
        mr.read_request(registry, b"\x00\x01garbage")
    with pytest.raises(RequestRefused, match="at most"):
        mr.read_request(registry, b"\x00" * (mr.MAX_REQUEST_BYTES + 1))


def test_a_request_carries_what_the_governors_need(registry, nodes, region):
    mw = nodes["mw-police"]
    req = mr.read_request(registry, request(registry, mw))
    assert req.requested_at == NOW
    assert mr.admit(region, req, NOW).display_name == mw.descriptor.display_name


def test_a_key_retired_by_a_member_is_not_given_to_a_newcomer(registry, nodes, region):
    zm, mw = nodes["zm-police"], nodes["mw-police"]
    rotated = dataclasses.replace(listed(zm), identity_key=IdentityKey.generate().public_raw,
                                  past_keys=(tl.PastKey(mw.identity.public_raw, NOW,
                                                        "superseded"),))  # fmt: skip
    t = dataclasses.replace(region, members=(rotated, listed(nodes["zw-police"])))
    with pytest.raises(RequestRefused, match="is, or was, zm-police's"):
        mr.admit(t, mr.read_request(registry, request(registry, mw)), NOW)


def test_a_bad_signature_does_not_hide_a_good_one_after_it(registry, nodes):
    mw = nodes["mw-police"]
    wrapper = registry.decode(mr.SIGNED_SCHEMA, request(registry, mw))
    good = wrapper["signatures"][0]
    wrapper["signatures"] = [{"key_id": good["key_id"], "signature": bytes(64)}, good]
    assert mr.read_request(registry, registry.encode(mr.SIGNED_SCHEMA, wrapper)).node_id == (
        "mw-police"
    )


def test_the_request_must_be_canonical_and_its_descriptor_valid(registry, nodes):
    mw = nodes["mw-police"]
    raw = request(registry, mw, roles=("law-enforcement", "immigration"))
    wrapper = registry.decode(mr.SIGNED_SCHEMA, raw)
    body = wrapper["request"]
    # the same roles written as two blocks of one item: decodes the same, other bytes
    canonical = b"\x04\x1elaw-enforcement\x16immigration\x00"
    split = b"\x02\x1elaw-enforcement\x02\x16immigration\x00"
    assert body.count(canonical) == 1
    odd = body.replace(canonical, split)
    wrapper["request"] = odd
    wrapper["signatures"] = [{"key_id": mw.identity.key_id,
                              "signature": sign(mw.identity, mr.REQUEST_DOMAIN, odd)}]  # fmt: skip
    with pytest.raises(RequestRefused, match=r"^the request is not in canonical Avro encoding$"):
        mr.read_request(registry, registry.encode(mr.SIGNED_SCHEMA, wrapper))
    good = issue_descriptor(mw.identity, mw.descriptor, registry)
    broken = dataclasses.replace(good, raw=good.raw[:-1] + bytes([good.raw[-1] ^ 1]))
    with pytest.raises(RequestRefused, match=r"^its descriptor does not verify: "):
        mr.read_request(registry, request(registry, mw, descriptor=broken))


def test_an_unknown_request_type_is_named_in_at_most_40_characters(registry, nodes):
    with pytest.raises(RequestRefused) as refused:
        mr.read_request(registry, request(registry, nodes["mw-police"], "x" * 60))
    assert str(refused.value) == f"unknown request {'x' * 40!r}"


def test_the_size_limit_is_inclusive(registry):
    with pytest.raises(RequestRefused, match="not a member request"):
        mr.read_request(registry, b"\x00" * mr.MAX_REQUEST_BYTES)
