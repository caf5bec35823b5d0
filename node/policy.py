"""Which roles may send which kind of message to which roles (DESIGN §5). Pure.

Deny by default: a kind is allowed only between roles a rule names. The sender checks before
sealing (so the local system gets a clear 403 instead of a silent refusal abroad) and the
receiver checks again before decrypting, answering ``policy-denied`` — a node cannot be made to
accept what its own policy refuses, whatever the sender's configuration says.

A rule reads ``"<kind>: <sender roles> -> <recipient roles>"``; roles are comma-separated or
``*`` for any. Rules in config (``[policy] rules``) replace the defaults for the kinds they name.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from node.payloads import KINDS
from node.routing.ids import ROLES

ANY = "*"
_OFFICIAL = "secretariat,law-enforcement,immigration,central-authority,prosecution"
_CARE = "secretariat,social-welfare,shelter,ngo,consular,international-organisation"

DEFAULT_RULES: tuple[str, ...] = (
    # Alerts name suspects and routes: among officials, consulates and international partners.
    f"alert: {_OFFICIAL},international-organisation -> {_OFFICIAL},consular,"
    "international-organisation",
    # MLA is between judicial and law-enforcement authorities (UNTOC art. 18).
    "mla: secretariat,law-enforcement,central-authority,prosecution -> "
    "secretariat,law-enforcement,central-authority,prosecution",
    # Referrals and repatriations are victim care: care organisations, and officials who meet
    # victims first (police, immigration) may refer them.
    f"referral: {_CARE},law-enforcement,immigration -> {_CARE},law-enforcement,immigration",
    f"repatriation: {_CARE},immigration -> {_CARE},immigration",
    # Anonymised statistics go up the chain: every national agency to its country's secretariat
    # (the rules of the release keep them in the country), the secretariat to regional bodies.
    f"statistics: {_OFFICIAL},{_CARE} -> secretariat",
    "statistics: secretariat -> regional-body",
)


class PolicyError(ValueError):
    """A rule in config cannot be read; the message quotes it."""


class PolicyRefused(Exception):
    """The policy does not allow this sending; the message says which rule would be needed."""

    def __init__(self, message: str, recipient: str | None = None) -> None:
        super().__init__(message)
        self.recipient = recipient


@dataclass(frozen=True)
class Rule:
    kind: str
    senders: frozenset[str]  # empty = any
    recipients: frozenset[str]  # empty = any

    def allows(self, sender_roles: Iterable[str], recipient_roles: Iterable[str]) -> bool:
        return _matches(self.senders, sender_roles) and _matches(self.recipients, recipient_roles)


def _matches(allowed: frozenset[str], roles: Iterable[str]) -> bool:
    return not allowed or any(role in allowed for role in roles)


def _roles(text: str, rule: str) -> frozenset[str]:
    names = [r.strip() for r in text.split(",") if r.strip()]
    if names == [ANY]:
        return frozenset()
    unknown = [n for n in names if n not in ROLES]
    if not names or unknown:
        raise PolicyError(f"policy rule {rule!r}: unknown role(s) {', '.join(unknown) or '(none)'}")
    return frozenset(names)


def parse_rule(text: str) -> Rule:
    kind, sep, rest = text.partition(":")
    senders, arrow, recipients = rest.partition("->")
    kind = kind.strip()
    if not sep or not arrow:
        raise PolicyError(f"policy rule {text!r}: expected '<kind>: <roles> -> <roles>'")
    if kind not in KINDS or kind == "receipt":
        raise PolicyError(f"policy rule {text!r}: unknown kind {kind!r}")
    return Rule(kind, _roles(senders, text), _roles(recipients, text))


@dataclass(frozen=True)
class Policy:
    rules: Mapping[str, tuple[Rule, ...]]

    @classmethod
    def from_config(cls, overrides: Sequence[str] = ()) -> Policy:
        """The defaults, with every kind named in ``overrides`` replaced by those rules.

        Parsed once per distinct rule set: every submission asks for the policy."""
        return _policy(tuple(overrides))

    def allows(
        self, kind: str, sender_roles: Iterable[str], recipient_roles: Iterable[str]
    ) -> bool:
        if kind == "receipt":
            return True  # answering is always allowed: it carries no case data
        sender, recipient = tuple(sender_roles), tuple(recipient_roles)
        return any(rule.allows(sender, recipient) for rule in self.rules.get(kind, ()))

    def check_send(
        self,
        kind: str,
        sender_roles: Sequence[str],
        recipients: Mapping[str, Sequence[str]],
    ) -> None:
        """Raise :class:`PolicyRefused` naming the first recipient this may not go to."""
        for node_id, roles in recipients.items():
            if not self.allows(kind, sender_roles, roles):
                raise PolicyRefused(
                    f"policy does not allow {kind} from role(s) {', '.join(sender_roles)} to "
                    f"{node_id} (role(s) {', '.join(roles)}); see [policy] rules",
                    node_id,
                )


@functools.lru_cache(maxsize=16)
def _policy(overrides: tuple[str, ...]) -> Policy:
    custom = [parse_rule(r) for r in overrides]
    replaced = {r.kind for r in custom}
    chosen = [r for r in map(parse_rule, DEFAULT_RULES) if r.kind not in replaced] + custom
    by_kind: dict[str, tuple[Rule, ...]] = {}
    for rule in chosen:
        by_kind[rule.kind] = (*by_kind.get(rule.kind, ()), rule)
    return Policy(by_kind)
