"""Which payload records each message kind carries (the kind decides the inbox topic).

A record may travel under more than one kind: a consular notification goes with alerts (an
arrest, between officials and consulates) and with referrals (a victim, between care
organisations and consulates); the kind's topic and policy decide who sends it to whom.

A case update may travel on any thread, so every family except receipts accepts it; so do an
erasure request and its result, a forward and the permission exchange before it, which travel
on the topic of the message they are about (so, on one partition per thread, after it).
"""

from __future__ import annotations

import functools

PAYLOAD_NAMESPACE = "xnode.payload."
STATISTICS_SCHEMA = "xnode.payload.StatisticsRelease"

ON_ANY_THREAD: tuple[str, ...] = (
    "CaseUpdate",
    "ErasureRequest",
    "ErasureResult",
    "Forward",
    "ForwardPermissionRequest",
    "ForwardPermissionDecision",
)

# sent by the node itself for a dedicated route (erasure, forwarding), never through the generic
# send path: a local system cannot hand-craft a grant or an erasure answer
PROCEDURAL: tuple[str, ...] = ON_ANY_THREAD[1:]

# judicial cooperation beyond evidence requests (UNTOC arts. 13, 16, 18(18), 19, 21): each is a
# request an MlaResponse answers, so each opens the MLA procedure as an MlaRequest does
JUDICIAL_REQUESTS: tuple[str, ...] = (
    "JointInvestigationTeam",
    "ArrestWarrantNotice",
    "ProceedingsTransfer",
    "AssetRecoveryRequest",
    "VideoTestimonyRequest",
)

KIND_PAYLOADS: dict[str, tuple[str, ...]] = {
    "alert": (
        "Alert",
        "RecruitmentVerificationRequest",
        "RecruitmentVerificationResponse",
        "ConsularNotification",
        *ON_ANY_THREAD,
    ),
    "mla": (
        "MlaRequest",
        "MlaResponse",
        *JUDICIAL_REQUESTS,
        "SpontaneousInformation",
        *ON_ANY_THREAD,
    ),
    "referral": (
        "Referral",
        "ReferralResponse",
        "CompensationClaim",
        "ConsularNotification",
        *ON_ANY_THREAD,
    ),
    "repatriation": (
        "RepatriationProposal",
        "RepatriationFamilyAssessment",
        "RepatriationRiskAssessment",
        "RepatriationApproval",
        "RepatriationTravelConfirmed",
        "RepatriationHandover",
        "RepatriationArrivalConfirmed",
        "RepatriationFollowUp",
        *ON_ANY_THREAD,
    ),
    # anonymised counts up the reporting chain (docs/statistics.md): no thread, no case update
    "statistics": ("StatisticsRelease",),
    "receipt": ("Receipt",),
}
KINDS: tuple[str, ...] = tuple(KIND_PAYLOADS)
DEFAULT_PAYLOAD: dict[str, str] = {kind: names[0] for kind, names in KIND_PAYLOADS.items()}


def full_name(short_or_full: str) -> str:
    """``Alert`` or ``xnode.payload.Alert`` -> ``xnode.payload.Alert``."""
    if short_or_full.startswith(PAYLOAD_NAMESPACE):
        return short_or_full
    return PAYLOAD_NAMESPACE + short_or_full


def short_name(full: str) -> str:
    return full.removeprefix(PAYLOAD_NAMESPACE)


def payloads_of(kind: str) -> tuple[str, ...]:
    """Full schema names a message of ``kind`` may carry; empty for an unknown kind."""
    return tuple(full_name(n) for n in KIND_PAYLOADS.get(kind, ()))


def kinds_of(schema_name: str) -> tuple[str, ...]:
    """The kinds under which a payload record may travel."""
    short = short_name(schema_name)
    return tuple(kind for kind, names in KIND_PAYLOADS.items() if short in names)


@functools.cache
def all_payloads() -> tuple[str, ...]:
    """Every payload record's full name, once each (cached: asked for every message)."""
    seen: dict[str, None] = {}
    for names in KIND_PAYLOADS.values():
        seen.update(dict.fromkeys(full_name(n) for n in names))
    return tuple(seen)
