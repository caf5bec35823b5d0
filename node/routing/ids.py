"""Node identifiers and roles (DESIGN §3)."""

from __future__ import annotations

import re

NODE_ID_PATTERN = r"^[a-z]{2}-[a-z0-9][a-z0-9-]{1,40}$"
_NODE_ID_RE = re.compile(NODE_ID_PATTERN)

ROLES: tuple[str, ...] = (
    "secretariat",
    "law-enforcement",
    "immigration",
    "central-authority",
    "prosecution",
    "social-welfare",
    "shelter",
    "ngo",
    "consular",
    "international-organisation",
    # a regional economic community's secretariat (SADC, EAC...) or the AU Commission: it
    # receives national statistics; its node id starts with the country of its seat (bw-sadc)
    "regional-body",
)


class InvalidIdentifier(ValueError):
    """A node id or role that the network does not accept."""


def validate_node_id(node_id: str) -> str:
    """Return ``node_id`` unchanged if it is well formed; otherwise say what a valid one is."""
    if not isinstance(node_id, str) or not _NODE_ID_RE.fullmatch(node_id):
        raise InvalidIdentifier(
            f"invalid node id {node_id!r}: expected <country>-<agency> in lowercase, "
            f"e.g. zm-police (pattern {NODE_ID_PATTERN})"
        )
    return node_id


def country_of(node_id: str) -> str:
    """The ISO 3166-1 alpha-2 country code a node id starts with."""
    return validate_node_id(node_id)[:2]


def validate_roles(roles: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Roles from the fixed list, at least one, no repeats; order kept as given."""
    if not roles:
        raise InvalidIdentifier(f"at least one role is required; choose from {', '.join(ROLES)}")
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise InvalidIdentifier(
            f"unknown role(s) {', '.join(map(repr, unknown))}; choose from {', '.join(ROLES)}"
        )
    if len(set(roles)) != len(roles):
        raise InvalidIdentifier("a role is listed twice")
    return tuple(roles)


def parse_id_list(text: str) -> list[str]:
    """``zm-police,zw-police`` -> validated ids, no repeats."""
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids:
        raise InvalidIdentifier("no node id given")
    for node_id in ids:
        validate_node_id(node_id)
    if len(set(ids)) != len(ids):
        raise InvalidIdentifier("a node id is listed twice")
    return ids
