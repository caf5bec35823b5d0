"""What each payload field means, in every language the project ships.

English lives in the schemas themselves (each field's ``doc``), so it cannot drift from the
field. The other languages live in ``schemas/i18n/fields.<lang>.json``: a flat catalog keyed
``<record full name>.<field>`` (``xnode.common.Person.prs_FirstName``), the form translators
and tools read. A field missing from a catalog falls back to English when shown, and
``tests/test_field_docs.py`` lists every untranslated one (:func:`untranslated`), as the code
lists do for their labels. ``xnode schemas show --lang``, the API's ``/v1/schemas?lang=`` and
the generated pages in ``docs/schemas/`` read them here.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping

from node import codes, payloads
from node.codec import SchemaRegistry, default_registry, named_definitions, schemas_directory

LANGUAGES = codes.LANGUAGES
TRANSLATED = LANGUAGES[1:]  # English is the schemas' own doc


def key(record: str, field: str) -> str:
    return f"{record}.{field}"


@functools.cache
def english(registry: SchemaRegistry | None = None) -> Mapping[str, str]:
    """Every record a payload may hold (key: its full name) and every field of it (key:
    ``record.field``), with the English doc ("" if none)."""
    registry = registry or default_registry()
    found: dict[str, str] = {}
    for full in payloads.all_payloads():
        for name, definition in named_definitions(registry.schema(full).standalone).items():
            if isinstance(definition, dict) and definition.get("type") == "record":
                found.setdefault(name, definition.get("doc", ""))
                for f in definition["fields"]:
                    found.setdefault(key(name, f["name"]), f.get("doc", ""))
    return dict(sorted(found.items()))


@functools.cache
def catalog(language: str) -> Mapping[str, str]:
    """The translated docs of ``language`` ({} for English or a language without a file)."""
    if language not in TRANSLATED:
        return {}
    path = schemas_directory() / "i18n" / f"fields.{language}.json"
    if not path.exists():
        return {}
    data: dict[str, str] = json.loads(path.read_text("utf-8"))
    return {k: v for k, v in data.items() if v.strip()}


def doc(record: str, field: str, language: str = "en", fallback: str = "") -> str:
    """The field's meaning in ``language``, else in English (``fallback``: the schema's doc)."""
    k = key(record, field)
    return catalog(language).get(k) or english().get(k) or fallback


def record_doc(record: str, language: str = "en", fallback: str = "") -> str:
    """What a record is, in ``language``, else in English."""
    return catalog(language).get(record) or english().get(record) or fallback


def untranslated(language: str) -> list[str]:
    """Records and fields with an English doc but none in ``language``."""
    if language not in TRANSLATED:
        raise ValueError(f"no catalog for {language!r}; one of {', '.join(TRANSLATED)}")
    translated = catalog(language)
    return [k for k in english() if k not in translated]


def stale(language: str) -> list[str]:
    """Catalog entries for fields that no longer exist (renamed records are not allowed, so
    these are typos)."""
    known = english()
    return [k for k in catalog(language) if k not in known]
