"""The vocabulary of the business rules: a problem with its field path, the context a rule
judges against, a walk over a payload's records, and the small checks every rule uses (text not
blank, ISO country and language codes, E.164 numbers, dates not in the future). Pure.

Shared by :mod:`node.validation` (which runs the rules) and the modules that hold rules per
family (:mod:`node.rules_people`, :mod:`node.rules_judicial`), so none of them imports another.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pycountry

from node.routing.ids import NODE_ID_PATTERN

ADULT_AGE = 18
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
BCP47 = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MEDIA_TYPE = re.compile(r"^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*$")
NODE_ID = re.compile(NODE_ID_PATTERN)
IDENTIFYING = (
    "prs_FirstName",
    "prs_MiddleName",
    "prs_SecondName",
    "aliases",
    "prs_Birthdate",
    "identity_documents",
    "physical_description",
)


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class PayloadInvalid(ValueError):
    """A payload breaks a business rule. ``problems`` lists all; the message shows the first."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(str(problems[0]))
        self.problems = problems
        self.path = problems[0].path
        self.problem = problems[0].message


@dataclass(frozen=True)
class Context:
    """What the rules compare against: when the message was created, and to whom it goes."""

    created_at: dt.datetime
    recipients: tuple[str, ...] = ()
    sender: str = ""  # the sending node ("" where a rule is run outside a message)

    @property
    def today(self) -> dt.date:
        return self.created_at.astimezone(dt.UTC).date()


Rule = Callable[[Mapping[str, Any], str, Context], Iterator[Problem]]


def records(
    schema: Any, named: Mapping[str, Any], value: Any, path: str
) -> Iterator[tuple[str, Any, str]]:
    """Each (record name, value, path) inside ``value``, walking the standalone schema."""

    def walk(node: Any, v: Any, p: str) -> Iterator[tuple[str, Any, str]]:
        if v is None:
            return
        if isinstance(node, str):
            if node in named:
                yield from walk(named[node], v, p)
            return
        if isinstance(node, list):
            if isinstance(v, tuple):  # explicit branch notation
                yield from walk(v[0], v[1], p)
                return
            for branch in node:
                if branch != "null":
                    yield from walk(branch, v, p)
                    return
            return
        kind = node.get("type")
        if kind == "record" and isinstance(v, Mapping):
            yield node["name"], v, p
            for field in node["fields"]:
                yield from walk(field["type"], v.get(field["name"]), f"{p}.{field['name']}")
        elif kind == "array" and isinstance(v, list):
            for i, item in enumerate(v):
                yield from walk(node["items"], item, f"{p}[{i}]")
        elif isinstance(kind, (dict, list)):
            yield from walk(kind, v, p)

    yield from walk(schema, value, path)


# -- helpers ------------------------------------------------------------------------------------


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def required_text(record: Mapping[str, Any], path: str, *fields: str) -> Iterator[Problem]:
    for name in fields:
        if blank(record.get(name)):
            yield Problem(f"{path}.{name}", "must not be empty")


def country(value: Any, path: str) -> Iterator[Problem]:
    if value is not None and (
        not isinstance(value, str)
        or not value.isupper()
        or pycountry.countries.get(alpha_2=value) is None
    ):
        yield Problem(
            path,
            f"expected an ISO 3166-1 alpha-2 country code in upper case, e.g. ZM; got {value!r}",
        )


def language(value: Any, path: str) -> Iterator[Problem]:
    if value is None:
        return
    lang = None
    if isinstance(value, str) and value.islower():
        lang = pycountry.languages.get(alpha_2=value) if len(value) == 2 else None
        lang = lang or (pycountry.languages.get(alpha_3=value) if len(value) == 3 else None)
    if lang is None:
        yield Problem(path, f"expected an ISO 639 language code, e.g. en, bem, sn; got {value!r}")


def phone(value: Any, path: str) -> Iterator[Problem]:
    if value is not None and not E164.match(value):
        yield Problem(path, f"expected an E.164 phone number, e.g. +260211123456; got {value!r}")


def not_future(value: dt.datetime | dt.date | None, path: str, ctx: Context) -> Iterator[Problem]:
    if value is None:
        return
    if isinstance(value, dt.datetime):
        if value > ctx.created_at + dt.timedelta(minutes=5):
            yield Problem(path, "must not be in the future")
    elif value > ctx.today:
        yield Problem(path, "must not be in the future")


def age_on(birthdate: dt.date, day: dt.date) -> int:
    years = day.year - birthdate.year
    return years - ((day.month, day.day) < (birthdate.month, birthdate.day))


def person_age(person: Mapping[str, Any], day: dt.date) -> int | None:
    """Age in whole years from the birthdate, else the estimated age, else unknown."""
    if person.get("prs_Birthdate") is not None:
        return age_on(person["prs_Birthdate"], day)
    age = person.get("estimated_age")
    return int(age) if age is not None else None


def identifies(person: Mapping[str, Any]) -> bool:
    """Whether a person record could identify someone (and so needs consent to be shared)."""
    return any(person.get(field) not in (None, [], "") for field in IDENTIFYING)


def person_safeguards(
    p: Mapping[str, Any], path: str, ctx: Context, person_field: str = "person"
) -> Iterator[Problem]:
    """Consent (or an override) to share an identifiable person; safeguards for a child. The
    record holds the person in ``person_field`` beside ``consent``, ``consent_override`` and
    ``child_safeguards``."""
    person = p[person_field]
    if identifies(person):
        consent, override = p.get("consent"), p.get("consent_override")
        if override is None:
            if consent is None:
                yield Problem(
                    f"{path}.consent",
                    "required: the person is identifiable; record their consent "
                    "(or a consent_override with reason and authority)",
                )
            elif not consent["con_Consent"]:
                yield Problem(
                    f"{path}.consent.con_Consent",
                    "the person did not consent; sharing needs a consent_override "
                    "with reason and authority",
                )
    age = person_age(person, ctx.today)
    if age is None or age < ADULT_AGE:
        safeguards = p.get("child_safeguards") or {}
        if safeguards.get("guardian") is None and blank(
            safeguards.get("best_interests_determination_ref")
        ):
            who = "a child" if age is not None else "a person of unknown age (presumed a child)"
            yield Problem(
                f"{path}.child_safeguards",
                f"required for {who}: give a guardian or a best-interests determination reference",
            )
