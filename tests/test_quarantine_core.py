"""What quarantine keeps of a refused record (node/quarantine.py): bounded for anyone who is
not authenticated, whole for an authenticated sender within its quota."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from node.quarantine import QuarantineLimits, kept_bytes

LIMITS = QuarantineLimits(prefix_bytes=8, sender_quota_bytes=100, unauthenticated_max=3)


def test_defaults_are_the_documented_ones():
    assert QuarantineLimits() == QuarantineLimits(4096, 64 * 1024 * 1024, 10_000)


def test_unauthenticated_input_keeps_only_the_prefix():
    assert kept_bytes(b"0123456789", False, 0, LIMITS) == b"01234567"
    assert kept_bytes(b"short", False, 0, LIMITS) == b"short"


def test_an_authenticated_sender_is_kept_whole_up_to_its_quota_inclusive():
    raw = b"x" * 40
    assert kept_bytes(raw, True, 60, LIMITS) == raw  # 60 + 40 == 100: still within
    assert kept_bytes(raw, True, 61, LIMITS) == b"x" * 8  # one byte beyond: prefix only


@given(raw=st.binary(max_size=300), authenticated=st.booleans(), used=st.integers(0, 200))
def test_never_more_than_the_record_and_never_beyond_the_quota(raw, authenticated, used):
    kept = kept_bytes(raw, authenticated, used, LIMITS)
    assert raw.startswith(kept)
    if len(kept) > LIMITS.prefix_bytes:
        assert authenticated and used + len(raw) <= LIMITS.sender_quota_bytes and kept == raw
