"""The identifiers a message names, written one way so the same one matches across messages.
Pure.

An alert from Nakonde names ``0977 123 456``; one from Chirundu a week later names
``+260 97 7123456``. They are the same phone, and an officer must be able to find the first
from the second. Three jobs:

* :func:`normalise` runs before sealing: phone numbers in :class:`PhoneSubject` and mobile-money
  accounts become E.164 (with Google's libphonenumber metadata, through ``phonenumbers``), so
  every node writes them the same way; a number that cannot be read is refused with its path.
* :func:`match_keys` lists the comparable keys a payload names: ``phone:+260977123456``,
  ``email:...``, ``web:jobs-abroad.example.com/apply``, ``handle:kelvin.b`` (and the same with
  its platform), ``ref:ALZ4471`` for account, document, vehicle and registration numbers
  (letters and digits only, upper case), ``crossing:Chirundu``.
* :func:`query_keys` reads what an officer types (``+260 97 712 3456``, ``ALZ-4471``,
  ``phone:0977123456``) as the keys it could mean.

The store never holds a key in clear: :func:`digest` is an HMAC under a node-local secret, so
the index of a stolen database names no phone number (``docs/payloads.md``).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import phonenumbers

from node import codes
from node.checks import PayloadInvalid, Problem, records
from node.codec import SchemaRegistry

KINDS_OF_KEY = ("phone", "email", "web", "handle", "ref", "crossing")
_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]")
_WEB_PLATFORMS = frozenset({"Website"})
_HANDLE_PLATFORMS_EXCLUDED = frozenset({"Website", "EmailAddress"})
INDEX_LABEL = b"xnode-subject-index-v1\x00"


class UnreadableIdentifier(ValueError):
    """A value that cannot be read as the identifier its field holds."""


def phone_e164(raw: str, region: str | None = None) -> str:
    """``raw`` as E.164. A number in national form needs ``region`` (ISO 3166-1 alpha-2)."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        national = not raw.strip().startswith(("+", "00")) and region is None
        where = " (a national number needs its country)" if national else ""
        raise UnreadableIdentifier(f"not a phone number{where}: {raw!r}") from exc
    # valid, not merely possible: a number with a digit missing must not become a key that
    # matches nothing (or the wrong phone)
    if not phonenumbers.is_valid_number(number):
        raise UnreadableIdentifier(f"not a valid phone number in its country's plan: {raw!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def reference(raw: str) -> str:
    """An account, document, vehicle or registration number compared on letters and digits."""
    return _NOT_ALNUM.sub("", raw).upper()


def web(raw: str) -> str:
    """A web address compared without scheme, ``www.``, query or trailing slash."""
    text = raw.strip()
    parts = urlsplit(text if "//" in text else f"//{text}")
    host = (parts.hostname or "").removeprefix("www.")
    return f"{host}{parts.path.rstrip('/')}".lower()


def handle(raw: str) -> str:
    """A social-media or messaging handle compared without ``@`` and case."""
    return raw.strip().removeprefix("@").lower()


# -- before sealing -----------------------------------------------------------------------------


def normalise(
    registry: SchemaRegistry, schema_name: str, payload: Any, root: str = "payload"
) -> Any:
    """A copy of ``payload`` (Avro-ready values) with its phone numbers in E.164. Raises
    :class:`PayloadInvalid` naming every number that cannot be read."""
    result = copy.deepcopy(payload)
    info = registry.schema(schema_name)
    problems: list[Problem] = []
    for name, value, path in records(info.parsed, info.named, result, root):
        if name == "xnode.common.PhoneSubject":
            field, region = "number", value.get("country")
        elif name == "xnode.common.FinancialAccount" and value["type"] == "MobileMoney":
            field, region = "account", value.get("country")
        else:
            continue
        try:
            value[field] = phone_e164(value[field], region)
        except UnreadableIdentifier as exc:
            problems.append(Problem(f"{path}.{field}", str(exc)))
    if problems:
        raise PayloadInvalid(problems)
    return result


# -- the keys a payload names ---------------------------------------------------------------------


def _keys_of(name: str, value: Mapping[str, Any]) -> Iterator[str]:
    if name == "xnode.common.PhoneSubject":
        yield f"phone:{value['number']}"
    elif name == "xnode.common.FinancialAccount":
        if value["type"] == "MobileMoney":
            yield f"phone:{value['account']}"
        yield f"ref:{reference(value['account'])}"
    elif name == "xnode.common.OnlineAccount":
        identifier, platform = value["identifier"], value["platform"]
        if platform == "EmailAddress" or "@" in identifier.strip("@"):
            yield f"email:{identifier.strip().lower()}"
        elif platform in _WEB_PLATFORMS or "/" in identifier or identifier.startswith("http"):
            yield f"web:{web(identifier)}"
        if platform not in _HANDLE_PLATFORMS_EXCLUDED and "/" not in identifier:
            yield f"handle:{handle(identifier)}"
            yield f"handle:{platform.lower()}:{handle(identifier)}"
    elif name == "xnode.common.Organisation" and value.get("registration_number"):
        yield f"ref:{reference(value['registration_number'])}"
    elif name == "xnode.common.IdentityDocument":
        yield f"ref:{reference(value['number'])}"
    elif name == "xnode.common.Vehicle" and value.get("registration"):
        yield f"ref:{reference(value['registration'])}"
    elif name == "xnode.common.Location" and value.get("crossing_point") not in (None, "Other"):
        yield f"crossing:{value['crossing_point']}"


def match_keys(registry: SchemaRegistry, schema_name: str, payload: Any) -> frozenset[str]:
    """Every comparable key ``payload`` names, wherever it names it (a subject, a route...).
    Keys whose value is empty are left out."""
    info = registry.schema(schema_name)
    found: set[str] = set()
    for name, value, _ in records(info.parsed, info.named, payload, "payload"):
        found.update(k for k in _keys_of(name, value) if not k.endswith(":"))
    return frozenset(found)


def query_keys(text: str, region: str | None = None) -> frozenset[str]:
    """The keys a search text could mean. ``kind:value`` asks for one kind (``phone:``,
    ``email:``, ``web:``, ``handle:``, ``ref:``, ``crossing:``); bare text is tried as each
    kind it can be read as, national phone numbers in ``region``."""
    text = text.strip()
    kind, sep, value = text.partition(":")
    if sep and kind in KINDS_OF_KEY and value.strip():
        return frozenset(_as(kind, value.strip(), region))
    keys: set[str] = set()
    for candidate in KINDS_OF_KEY:
        keys.update(_as(candidate, text, region))
    return frozenset(keys)


def _as(kind: str, value: str, region: str | None) -> Iterable[str]:
    if kind == "phone":
        try:
            return [f"phone:{phone_e164(value, region)}"]
        except UnreadableIdentifier:
            return []
    if kind == "email":
        return [f"email:{value.lower()}"] if "@" in value.strip("@") else []
    if kind == "web":
        return [f"web:{web(value)}"] if "." in value and " " not in value else []
    if kind == "handle":
        return [f"handle:{handle(value)}"] if " " not in value.strip() else []
    if kind == "ref":
        return [f"ref:{reference(value)}"] if reference(value) else []
    point = next((c for c in codes.get("crossing_point").codes if c.lower() == value.lower()), None)
    return [f"crossing:{point}"] if point is not None else []


def digest(secret: bytes, key: str) -> bytes:
    """What the store keeps of a key: HMAC-SHA-256 under the node's index secret."""
    return hmac.new(secret, INDEX_LABEL + key.encode("utf-8"), hashlib.sha256).digest()


def digests(secret: bytes, keys: Iterable[str]) -> tuple[bytes, ...]:
    return tuple(sorted(digest(secret, k) for k in keys))


def searched(secret: bytes, text: str, region: str | None) -> tuple[bytes, ...]:
    """The index digests a search text stands for (what ``GET /v1/inbox?match=`` and
    ``xnode inbox --match`` look up)."""
    return digests(secret, query_keys(text, region))
