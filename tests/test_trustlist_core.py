"""The federation trust list's acceptance rules (node/trustlist.py): quorum of the governors
already trusted, versions that only go up, expiry, final revocation, pinning the first list."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import control
from node import trustlist as tl
from node.crypto.keys import IdentityKey
from node.trustlist import (
    Change,
    Freshness,
    Governor,
    ListChange,
    Member,
    PastKey,
    TrustList,
    TrustListRejected,
)
from tests.conftest import NOW, make_node

DAY = dt.timedelta(days=1)
SECOND = dt.timedelta(seconds=1)
GOVERNORS = [IdentityKey.generate() for _ in range(3)]  # secretariat, zm and zw secretariats
NAMES = ["SADC secretariat", "ZM secretariat", "ZW secretariat"]
OUTSIDER = IdentityKey.generate()
ZM, ZW, MW = (IdentityKey.generate() for _ in range(3))


def member(node_id: str, key: IdentityKey, status: str = "active", reason: str | None = None,
           since: dt.datetime = NOW - DAY, past: tuple[PastKey, ...] = ()) -> Member:  # fmt: skip
    return Member(node_id, node_id[:2], ("law-enforcement",), node_id, key.public_raw, status,
                  since, reason, past)  # fmt: skip


def trust_list(version: int = 1, threshold: int = 2, governors=GOVERNORS, members=None,
               federation: str = "sadc-tip", expires: dt.datetime = NOW + 30 * DAY) -> TrustList:  # fmt: skip
    return TrustList(
        federation=federation, list_version=version, issued_at=NOW - DAY, expires_at=expires,
        threshold=threshold,
        governors=tuple(Governor(NAMES[i % 3] + ("" if i < 3 else f" {i}"), g.public_raw)
                        for i, g in enumerate(governors)),
        members=tuple(members if members is not None else
                      [member("zm-police", ZM), member("zw-police", ZW)]),
        history=tuple(ListChange(v, NOW - DAY, f"version {v}") for v in range(1, version + 1)),
    )  # fmt: skip


def signed(registry, t: TrustList, signers) -> tl.SignedTrustList:
    s = tl.prepare(registry, t)
    for key in signers:
        s = tl.add_signature(s, key)
    return s


@pytest.fixture
def genesis(registry):
    return signed(registry, trust_list(), GOVERNORS[:2])


def test_the_first_list_needs_its_fingerprint_pinned(registry, genesis):
    pin = tl.governance_fingerprint(genesis.trust_list)
    assert tl.decide(None, genesis, NOW, pinned=pin) is Change.APPLY
    for wrong in (None, tl.governance_fingerprint(trust_list(threshold=1))):
        with pytest.raises(TrustListRejected) as err:
            tl.decide(None, genesis, NOW, pinned=wrong)
        assert err.value.reason == "insufficient-signatures" and pin in err.value.detail


def test_a_new_version_with_the_quorum_applies_and_one_short_is_refused(registry, genesis):
    new = trust_list(2, members=[member("zm-police", ZM), member("zw-police", ZW),
                                 member("mw-police", MW)])  # fmt: skip
    assert tl.decide(genesis, signed(registry, new, GOVERNORS[1:]), NOW) is Change.APPLY
    with pytest.raises(TrustListRejected, match=r"1 valid signature.*ZW secretariat.*2 needed"):
        tl.decide(genesis, signed(registry, new, GOVERNORS[2:]), NOW)


def test_signatures_of_non_governors_or_over_other_bytes_do_not_count(registry, genesis):
    new = trust_list(2)
    s = signed(registry, new, GOVERNORS[:1])
    outsider = tl.GovernorSignature(OUTSIDER.key_id, tl.sign(OUTSIDER, tl.LIST_DOMAIN, s.body))
    copied = tl.GovernorSignature(GOVERNORS[1].key_id, genesis.signatures[1].signature)
    forged = dataclasses.replace(s, signatures=(*s.signatures, outsider, copied))
    assert tl.valid_signers(forged, forged.trust_list.governors) == {GOVERNORS[0].key_id}
    with pytest.raises(TrustListRejected) as err:
        tl.decide(genesis, forged, NOW)
    assert err.value.reason == "insufficient-signatures"
    with pytest.raises(TrustListRejected, match="not a governor"):
        tl.add_signature(s, OUTSIDER)


def test_the_same_signature_twice_counts_once(registry, genesis):
    s = signed(registry, trust_list(2), GOVERNORS[:1])
    doubled = dataclasses.replace(s, signatures=s.signatures * 2)
    with pytest.raises(TrustListRejected, match="1 valid signature"):
        tl.decide(genesis, doubled, NOW)


def test_a_replayed_older_list_is_a_rollback_and_the_same_list_is_unchanged(registry, genesis):
    v3 = signed(registry, trust_list(3), GOVERNORS)
    for older in (genesis, signed(registry, trust_list(3, threshold=1), GOVERNORS)):
        with pytest.raises(TrustListRejected) as err:
            tl.decide(v3, older, NOW)
        assert err.value.reason == "rollback"
    assert tl.decide(v3, v3, NOW) is Change.UNCHANGED


def test_governors_change_only_with_the_old_quorum_and_the_new_ones_consent(registry, genesis):
    newcomer = IdentityKey.generate()
    rotated = [GOVERNORS[0], GOVERNORS[1], newcomer]
    new = trust_list(2, governors=rotated)
    # the newcomer and one old governor: not the old quorum
    with pytest.raises(TrustListRejected, match="governors of the list this node trusts"):
        tl.decide(genesis, signed(registry, new, [GOVERNORS[0], newcomer]), NOW)
    assert tl.decide(genesis, signed(registry, new, GOVERNORS[:2]), NOW) is Change.APPLY
    # the new list raises the threshold to 3: every new governor must sign it too
    strict = trust_list(2, threshold=3, governors=rotated)
    with pytest.raises(TrustListRejected, match="its own governors"):
        tl.decide(genesis, signed(registry, strict, GOVERNORS[:2]), NOW)
    assert tl.decide(genesis, signed(registry, strict, rotated), NOW) is Change.APPLY


def test_an_expired_list_or_another_federation_is_refused(registry, genesis):
    stale = trust_list(2, expires=NOW)
    with pytest.raises(TrustListRejected) as err:
        tl.decide(genesis, signed(registry, stale, GOVERNORS), NOW)
    assert err.value.reason == "expired"
    other = trust_list(2, federation="eac-tip")
    with pytest.raises(TrustListRejected) as err:
        tl.decide(genesis, signed(registry, other, GOVERNORS), NOW)
    assert err.value.reason == "wrong-federation"


def test_revocation_is_final_suspension_is_not(registry):
    revoked = member("zw-police", ZW, "revoked", "key-compromise", NOW)
    held = signed(registry, trust_list(2, members=[member("zm-police", ZM), revoked]), GOVERNORS)
    for undo in ([member("zm-police", ZM), member("zw-police", ZW)], [member("zm-police", ZM)],
                 [member("zm-police", ZM), member("zw-police", ZW, "suspended", "misbehaviour")]):  # fmt: skip
        with pytest.raises(TrustListRejected) as err:
            tl.decide(held, signed(registry, trust_list(3, members=undo), GOVERNORS), NOW)
        assert err.value.reason == "revocation-reversed"
    # the stolen key cannot come back under another name either
    thief = member("bw-police", ZW)
    with pytest.raises(TrustListRejected, match="same identity key"):
        tl.decide(held, signed(registry, trust_list(3, members=[member("zm-police", ZM), revoked,
                                                                 thief]), GOVERNORS), NOW)  # fmt: skip
    suspended = signed(registry, trust_list(2, members=[
        member("zm-police", ZM, "suspended", "misbehaviour"), member("zw-police", ZW)]), GOVERNORS)  # fmt: skip
    assert tl.decide(suspended, signed(registry, trust_list(3), GOVERNORS), NOW) is Change.APPLY


def test_a_compromised_past_key_stays_retired(registry):
    new_zw = IdentityKey.generate()
    rotated = member("zw-police", new_zw, past=(PastKey(ZW.public_raw, NOW, "key-compromise"),))
    held = signed(registry, trust_list(2, members=[member("zm-police", ZM), rotated]), GOVERNORS)
    back = trust_list(3, members=[member("zm-police", ZM), member("zw-police", ZW)])
    with pytest.raises(TrustListRejected) as err:
        tl.decide(held, signed(registry, back, GOVERNORS), NOW)
    assert err.value.reason == "revocation-reversed"


@pytest.mark.parametrize(
    ("change", "message"),
    [({"threshold": 0}, "threshold 0 must be from 1"), ({"threshold": 4}, "threshold 4"),
     ({"federation": " "}, "no name"), ({"list_version": 0}, "version must be 1"),
     ({"expires_at": NOW - 2 * DAY}, "expires before it is issued"),
     ({"governors": (Governor("a", GOVERNORS[0].public_raw),) * 2, "threshold": 1},
      "governor key is listed twice"),
     ({"governors": (Governor("zero", bytes(32)),), "threshold": 1}, "small order"),
     ({"members": (member("zm-police", ZM),) * 2}, "listed twice"),
     ({"members": (member("zm-police", ZM), member("zw-police", ZM))}, "same identity key"),
     ({"members": (dataclasses.replace(member("zm-police", ZM), country="zw"),)}, "country"),
     ({"members": (dataclasses.replace(member("zm-police", ZM), roles=("pirate",)),)}, "role"),
     ({"members": (member("zm-police", ZM, "revoked"),)}, "needs a reason code"),
     ({"members": (member("zm-police", ZM, "active", "misbehaviour"),)}, "needs a reason"),
     ({"members": (member("zm-police", ZM, "revoked", "bored"),)}, "needs a reason code"),
     ({"members": (member("zm-police", ZM, past=(PastKey(ZM.public_raw, NOW, "superseded"),)),)},
      "also retired"),
     ({"history": (ListChange(2, NOW, "x"), ListChange(1, NOW, "y"))}, "increasing versions")],
)  # fmt: skip
def test_an_inconsistent_list_is_refused_before_anyone_signs_it(registry, change, message):
    with pytest.raises(TrustListRejected, match=message) as err:
        tl.prepare(registry, dataclasses.replace(trust_list(), **change))
    assert err.value.reason == "invalid"


def test_the_wire_form_is_strict(registry, genesis):
    raw = genesis.encode(registry)
    again = tl.decode(registry, raw)
    assert again == genesis and again.encode(registry) == raw
    with pytest.raises(TrustListRejected) as err:
        tl.decode(registry, raw[:-3])
    assert err.value.reason == "malformed"
    padded = registry.encode(tl.SIGNED_SCHEMA, {"list": genesis.body + b"\x00",
                                                "signatures": []})  # fmt: skip
    with pytest.raises(TrustListRejected, match=r"malformed|canonical"):
        tl.decode(registry, padded)


def test_a_tampered_list_loses_its_signatures(registry, genesis):
    body = bytearray(genesis.body)
    body[-5] ^= 0x01
    tampered = dataclasses.replace(genesis, body=bytes(body))
    assert tl.valid_signers(tampered, genesis.trust_list.governors) == set()


def test_which_keys_a_member_may_sign_with():
    retired = PastKey(ZW.public_raw, NOW, "superseded")
    new_zw = IdentityKey.generate()
    zw = member("zw-police", new_zw, past=(retired,))
    keys = tl.sender_keys(zw)
    assert set(keys) == {new_zw.key_id, ZW.key_id}
    current, old = keys[new_zw.key_id], keys[ZW.key_id]
    assert (current.public_key, old.public_key) == (new_zw.public_raw, ZW.public_raw)
    assert current.refusal(NOW + 400 * DAY, NOW + 400 * DAY) is None  # no limit
    assert old.refusal(NOW - DAY, NOW - SECOND) is None  # arrives within its overlap
    assert old.refusal(NOW - DAY, NOW) is not None  # arrives once retired: refused
    assert old.refusal(NOW - DAY, None) is None  # stored, created before: still verifies
    assert old.refusal(NOW, None) is not None  # stored, created after the retirement
    assert MW.key_id not in keys
    t = trust_list(members=[member("zm-police", ZM, "revoked", "key-compromise", NOW), zw])
    assert tl.members_by_status(t) == {"active": ("zw-police",), "suspended": (),
                                       "revoked": ("zm-police",)}  # fmt: skip


def test_freshness_and_the_grace_period():
    t = trust_list(expires=NOW)
    grace = 7 * DAY
    assert tl.freshness(t, NOW - dt.timedelta(seconds=1), grace) is Freshness.VALID
    assert tl.freshness(t, NOW, grace) is Freshness.DEGRADED
    assert tl.freshness(t, NOW + grace - dt.timedelta(seconds=1), grace) is Freshness.DEGRADED
    assert tl.freshness(t, NOW + grace, grace) is Freshness.EXPIRED


SUBSETS = [list(c) for r in range(4) for c in itertools.combinations(range(3), r)]


@settings(max_examples=60, deadline=None)
@given(threshold=st.integers(1, 3), signers=st.sampled_from(SUBSETS),
       extra=st.lists(st.sampled_from(range(3)), max_size=3))  # fmt: skip
def test_a_list_applies_exactly_when_k_distinct_governors_signed(registry, threshold, signers,
                                                                 extra):  # fmt: skip
    held = signed(registry, trust_list(1, threshold=threshold), GOVERNORS)
    candidate = signed(registry, trust_list(2, threshold=threshold),
                       [GOVERNORS[i] for i in signers + extra])  # fmt: skip
    distinct = len(set(signers + extra))
    if distinct >= threshold:
        assert tl.decide(held, candidate, NOW) is Change.APPLY
    else:
        with pytest.raises(TrustListRejected) as err:
            tl.decide(held, candidate, NOW)
        assert err.value.reason == "insufficient-signatures"


# -- written to kill the survivors of the first mutation run -----------------------------------


def test_every_field_survives_the_wire(registry):
    retired = PastKey(MW.public_raw, NOW - DAY, "superseded")
    t = trust_list(3, members=[member("zm-police", ZM, "suspended", "misbehaviour", NOW),
                               member("zw-police", ZW, past=(retired,))])  # fmt: skip
    again = tl.decode(registry, signed(registry, t, GOVERNORS).encode(registry)).trust_list
    assert again == t
    assert again.member("zw-police").past_keys == (retired,)
    assert again.member("zm-police").reason == "misbehaviour"


def test_a_status_an_older_node_does_not_know_is_not_active():
    record = trust_list().to_record()
    record["members"][0]["status"] = "unknown"
    assert TrustList.from_record(record).members[0].status == "suspended"


def test_size_limit_and_canonical_form(registry):
    with pytest.raises(TrustListRejected, match=r"the limit is 8388608") as err:
        tl.decode(registry, b"\x00" * (tl.MAX_LIST_BYTES + 1))
    assert err.value.reason == "malformed"
    with pytest.raises(TrustListRejected, match=r"^malformed: not a signed trust list"):
        tl.decode(registry, b"\x00" * tl.MAX_LIST_BYTES)


def test_valid_signatures_are_found_behind_foreign_ones(registry):
    s = signed(registry, trust_list(2), GOVERNORS[:2])
    outsider = tl.GovernorSignature(OUTSIDER.key_id, tl.sign(OUTSIDER, tl.LIST_DOMAIN, s.body))
    shuffled = dataclasses.replace(s, signatures=(outsider, *s.signatures))
    assert tl.valid_signers(shuffled, s.trust_list.governors) == {g.key_id for g in GOVERNORS[:2]}


def test_a_list_that_keeps_a_revocation_applies(registry):
    revoked = member("zw-police", ZW, "revoked", "key-compromise", NOW)
    held = signed(registry, trust_list(2, members=[member("zm-police", ZM), revoked]), GOVERNORS)
    grown = trust_list(3, members=[member("zm-police", ZM), revoked, member("mw-police", MW)])
    assert tl.decide(held, signed(registry, grown, GOVERNORS[1:]), NOW) is Change.APPLY


@pytest.mark.parametrize(
    ("change", "message"),
    [({"members": (member("zm-police", IdentityKey.generate()),)}, None),
     ({"members": (dataclasses.replace(member("zm-police", ZM), identity_key=bytes(32)),)},
      "member zm-police: identity key is a point of small order"),
     ({"members": (dataclasses.replace(member("zm-police", ZM), status="weird"),)},
      "member zm-police: unknown status 'weird'"),
     ({"expires_at": NOW - DAY}, "the list expires before it is issued"),
     ({"history": (ListChange(2, NOW, "x"),)}, "the history must list increasing versions"),
     ({"governors": (Governor(" ", GOVERNORS[0].public_raw),), "threshold": 1},
      "governor ' ': no name")],
)  # fmt: skip
def test_content_checks_name_the_problem(registry, change, message):
    t = dataclasses.replace(trust_list(), **change)
    if message is None:
        tl.check_list(t)
        return
    with pytest.raises(TrustListRejected) as err:
        tl.check_list(t)
    assert (err.value.reason, err.value.detail.startswith(message)) == ("invalid", True)


def test_refusals_say_exactly_why(registry, genesis):
    with pytest.raises(TrustListRejected) as err:
        tl.decide(signed(registry, trust_list(4), GOVERNORS), signed(registry, trust_list(3),
                                                                      GOVERNORS), NOW)  # fmt: skip
    assert err.value.detail == "version 3 is not above the held version 4"
    with pytest.raises(TrustListRejected) as err:
        tl.decide(genesis, signed(registry, trust_list(2, federation="eac-tip"), GOVERNORS), NOW)
    assert err.value.detail == "a list of 'eac-tip', this node belongs to 'sadc-tip'"
    with pytest.raises(TrustListRejected) as err:
        tl.decide(genesis, signed(registry, trust_list(2, expires=NOW), GOVERNORS), NOW)
    assert err.value.detail == f"the list expired at {NOW.isoformat()}"
    with pytest.raises(TrustListRejected) as err:
        tl.decide(genesis, signed(registry, trust_list(2), []), NOW)
    assert err.value.detail == (
        "0 valid signature(s) of the governors of the list this node trusts (none); 2 needed"
    )
    rotated = trust_list(2, threshold=3, governors=[*GOVERNORS[:2], OUTSIDER])
    with pytest.raises(TrustListRejected) as err:
        tl.decide(genesis, signed(registry, rotated, GOVERNORS[:2]), NOW)
    assert err.value.detail == (
        "2 valid signature(s) of its own governors (SADC secretariat, ZM secretariat); 3 needed"
    )
    held = signed(registry, trust_list(2, members=[member("zm-police", ZM), member(
        "zw-police", ZW, "revoked", "key-compromise", NOW)]), GOVERNORS)  # fmt: skip
    with pytest.raises(TrustListRejected) as err:
        tl.decide(held, signed(registry, trust_list(3, members=[member("zm-police", ZM)]),
                               GOVERNORS), NOW)  # fmt: skip
    assert err.value.detail == "zw-police is revoked in the held list; revocation is final"
    with pytest.raises(TrustListRejected) as err:
        tl.add_signature(signed(registry, trust_list(), []), OUTSIDER)
    assert err.value.reason == "invalid"


def test_the_governance_fingerprint_changes_with_what_governs():
    base = tl.governance_fingerprint(trust_list())
    assert base == tl.governance_fingerprint(trust_list(7, members=[]))  # members do not count
    assert base != tl.governance_fingerprint(trust_list(threshold=3))
    assert base != tl.governance_fingerprint(trust_list(federation="eac-tip"))
    assert base != tl.governance_fingerprint(trust_list(governors=[*GOVERNORS[:2], OUTSIDER]))
    assert len(base.split()) == 16


# -- proposals ---------------------------------------------------------------------------------


def test_the_next_version_carries_its_change_in_the_history():
    old = trust_list(2)
    later = NOW + DAY
    new = tl.next_version(old, "add mw-police", later, 30 * DAY,
                          members=[*old.members, member("mw-police", MW)])  # fmt: skip
    assert (new.list_version, new.issued_at, new.expires_at) == (3, later, later + 30 * DAY)
    assert new.history[-1] == ListChange(3, later, "add mw-police")
    assert new.history[:-1] == old.history
    assert (new.threshold, new.governors, new.federation) == (old.threshold, old.governors,
                                                              old.federation)  # fmt: skip
    assert [m.node_id for m in new.members] == ["zm-police", "zw-police", "mw-police"]
    regoverned = tl.next_version(old, "governors", later, DAY, governors=old.governors[:1],
                                 threshold=1)  # fmt: skip
    assert (regoverned.threshold, len(regoverned.governors), regoverned.members) == (
        1, 1, old.members)  # fmt: skip


def test_status_changes_and_their_limits():
    t = trust_list(members=[member("zm-police", ZM), member("zw-police", ZW, "revoked",
                                                            "key-compromise")])  # fmt: skip
    suspended = tl.set_status(t, "zm-police", "suspended", "misbehaviour", NOW + DAY)
    assert (suspended.status, suspended.reason, suspended.status_since) == (
        "suspended", "misbehaviour", NOW + DAY)  # fmt: skip
    for node_id, status, reason, code, text in (
        ("bw-police", "suspended", "misbehaviour", "invalid", "bw-police is not a member"),
        ("zw-police", "active", None, "revocation-reversed", "zw-police is revoked"),
        ("zm-police", "active", None, "invalid", "zm-police is already active"),
    ):
        with pytest.raises(TrustListRejected) as err:
            tl.set_status(t, node_id, status, reason, NOW)
        assert err.value.reason == code and err.value.detail.startswith(text)
    updated = tl.with_member(t, suspended)
    assert [(m.node_id, m.status) for m in updated] == [("zm-police", "suspended"),
                                                        ("zw-police", "revoked")]  # fmt: skip
    added = tl.with_member(t, member("bw-police", MW))
    assert [m.node_id for m in added] == ["bw-police", "zm-police", "zw-police"]


def test_the_diff_says_what_changes():
    old = trust_list(2)
    assert tl.diff(None, old)[0] == "new federation 'sadc-tip', version 2"
    assert "threshold: - -> 2 of 3 governors" in tl.diff(None, old)
    new = dataclasses.replace(
        tl.next_version(old, "many", NOW, DAY, threshold=1,
                        governors=[*old.governors[1:], Governor("Newcomer", OUTSIDER.public_raw)],
                        members=[dataclasses.replace(member("zm-police", MW), status="suspended",
                                                     reason="misbehaviour",
                                                     roles=("immigration",)),
                                 member("bw-police", IdentityKey.generate())]),
    )  # fmt: skip
    lines = tl.diff(old, new)
    assert lines[0] == "sadc-tip: version 2 -> 3"
    assert "threshold: 2 -> 1 of 3 governors" in lines
    assert f"+ governor Newcomer (key {OUTSIDER.key_id})" in lines
    assert f"- governor SADC secretariat (key {GOVERNORS[0].key_id})" in lines
    assert any(
        line.startswith("+ member bw-police (law-enforcement) active, key ") for line in lines
    )
    assert "~ zm-police: roles law-enforcement -> immigration" in lines
    assert any(line.startswith("~ zm-police: active -> suspended (misbehaviour) from ")
               for line in lines)  # fmt: skip
    assert f"~ zm-police: identity key {ZM.key_id} -> {MW.key_id}" in lines
    assert "- member zw-police" in lines
    assert lines[-1] == f"expires {new.expires_at:%Y-%m-%d %H:%M} UTC"
    assert not any(line.startswith(("+ governor Z", "- governor Z")) for line in lines)


# -- what the list means for a node ----------------------------------------------------------


@pytest.mark.parametrize(("reason", "kept"), [("superseded", True), ("key-compromise", False)])
def test_a_rotated_members_old_descriptor_stays_in_use_unless_its_key_was_compromised(reason, kept):
    new_zw = IdentityKey.generate()
    old_descriptor = dataclasses.replace(make_node("zw-police").descriptor,
                                         identity_key=ZW.public_raw)  # fmt: skip
    t = trust_list(members=[member("zw-police", new_zw,
                                   past=(PastKey(ZW.public_raw, NOW + DAY, reason),))])  # fmt: skip
    federated = tl.federated_directory(t, {"zw-police": old_descriptor}, NOW)
    assert ("zw-police" in federated.peers) is kept
    if kept:
        assert set(federated.keys["zw-police"]) == {new_zw.key_id, ZW.key_id}


def test_the_federated_directory_holds_what_the_list_backs(registry):
    descriptors = {
        node_id: dataclasses.replace(make_node(node_id).descriptor, identity_key=key.public_raw,
                                     roles=("shelter",))
        for node_id, key in (("zm-police", ZM), ("zw-police", ZW), ("mw-police", MW),
                             ("bw-police", OUTSIDER))
    }  # fmt: skip
    descriptors["zw-police"] = dataclasses.replace(descriptors["zw-police"],
                                                   identity_key=OUTSIDER.public_raw)  # fmt: skip
    t = trust_list(members=[member("zm-police", ZM), member("zw-police", ZW),
                            member("mw-police", MW, "suspended", "misbehaviour", NOW + DAY)])  # fmt: skip
    federated = tl.federated_directory(t, descriptors, NOW)
    assert sorted(federated.peers) == ["mw-police", "zm-police"]  # bw not a member, zw not listed
    assert federated.peers["zm-police"].roles == ("law-enforcement",)  # what the list grants
    assert federated.barred == set()  # the suspension starts tomorrow
    assert set(federated.keys["zm-police"]) == {ZM.key_id}
    assert tl.federated_directory(t, descriptors, NOW + DAY).barred == {"mw-police"}
    outsider_first = {n: descriptors[n] for n in ("bw-police", "zw-police", "zm-police")}
    assert list(tl.federated_directory(t, outsider_first, NOW).peers) == ["zm-police"]
    assert tl.backs(t, "zm-police", ZM.public_raw) is None
    assert tl.backs(t, "bw-police", ZM.public_raw) == "bw-police is not a member of sadc-tip"
    assert tl.backs(t, "zw-police", OUTSIDER.public_raw) == (
        f"zw-police's identity key {OUTSIDER.key_id} is not the one the list names"
    )


def test_a_repeated_signature_does_not_hide_the_ones_after_it(registry):
    s = signed(registry, trust_list(2), GOVERNORS[:2])
    repeated = dataclasses.replace(s, signatures=(s.signatures[0], *s.signatures))
    assert tl.valid_signers(repeated, s.trust_list.governors) == {g.key_id for g in GOVERNORS[:2]}


def test_the_diff_of_a_reinstatement_names_no_reason():
    old = trust_list(2, members=[member("zm-police", ZM, "suspended", "misbehaviour")])
    new = tl.next_version(old, "reinstate", NOW, DAY, members=[member("zm-police", ZM,
                                                                        since=NOW)])  # fmt: skip
    assert f"~ zm-police: suspended -> active from {NOW:%Y-%m-%d %H:%M} UTC" in tl.diff(old, new)


def test_a_bad_signature_does_not_hide_the_good_ones_after_it(registry):
    s = signed(registry, trust_list(2), GOVERNORS[:2])
    bad = tl.GovernorSignature(GOVERNORS[1].key_id, bytes(64))
    assert tl.valid_signers(dataclasses.replace(s, signatures=(bad, *s.signatures)),
                            s.trust_list.governors) == {g.key_id for g in GOVERNORS[:2]}  # fmt: skip


def test_a_member_announces_a_new_list_at_once_and_the_same_list_once_per_interval():
    due = control.list_announcement_due
    assert due(3, None, 100.0, 300)  # never announced
    assert due(4, (3, 100.0), 101.0, 300)  # a new version: at the next heartbeat
    assert not due(4, (4, 100.0), 399.0, 300)
    assert due(4, (4, 100.0), 400.0, 300)
