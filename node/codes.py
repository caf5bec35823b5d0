"""Code lists: the controlled vocabularies of the payloads, with labels in several languages.

Each list lives in ``schemas/codes/<list>.json``: its codes (HTCDS value names where HTCDS has
the list), labels, and, for lists carried as Avro enums, the enum's name and default symbol.
A list is refused at load unless every code has a label in each of the ``REQUIRED_LANGUAGES``
(English, French, Portuguese). ``LANGUAGES`` are the languages offered to users: the required
ones plus Swahili and Arabic, where a missing label falls back to English (a test keeps them
complete: ``missing_labels``). The enum ``.avsc`` files beside the lists are generated from them
(``python tools/gen_code_enums.py``) so the two can never disagree; a test checks it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.codec import schemas_directory

# Every code must have a label in these; a list missing one is refused at load.
REQUIRED_LANGUAGES = ("en", "fr", "pt")
# The languages users may ask labels in (CLI --lang, API ?lang=); ISO 639-1 codes.
LANGUAGES = (*REQUIRED_LANGUAGES, "sw", "ar")


class UnknownCode(KeyError):
    """A code or list name that does not exist."""


@dataclass(frozen=True)
class CodeList:
    name: str
    avro_enum: str | None
    source: str
    doc: str
    default: str | None
    labels: Mapping[str, Mapping[str, str]]  # code -> language -> label
    # code -> what else its entry says (e.g. the countries a crossing point joins)
    attributes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(self.labels)

    def label(self, code: str, language: str = "en") -> str:
        """The code's label in ``language``, in English where it has none in that language."""
        if code not in self.labels:
            raise UnknownCode(f"{code!r} is not in code list {self.name}")
        labels = self.labels[code]
        return labels.get(language) or labels["en"]

    def enum_schema(self) -> dict[str, Any]:
        """The Avro enum this list is carried as (what tools/gen_code_enums.py writes)."""
        if self.avro_enum is None:
            raise ValueError(f"code list {self.name} is not an Avro enum")
        namespace, _, name = self.avro_enum.rpartition(".")
        schema: dict[str, Any] = {
            "type": "enum",
            "name": name,
            "namespace": namespace,
            "doc": f"{self.doc} Source: {self.source}. Labels: codes/{self.name}.json.",
            "symbols": list(self.codes),
        }
        if self.default is not None:
            schema["default"] = self.default
        return schema

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CodeList:
        labels = {entry["code"]: dict(entry["labels"]) for entry in data["codes"]}
        for code, by_language in labels.items():
            missing = [lang for lang in REQUIRED_LANGUAGES if not by_language.get(lang)]
            if missing:
                raise ValueError(f"{data['list']}.{code}: no label in {', '.join(missing)}")
        if data.get("default") is not None and data["default"] not in labels:
            raise ValueError(f"{data['list']}: default {data['default']!r} is not a code")
        return cls(
            name=data["list"],
            avro_enum=data.get("avro_enum"),
            source=data["source"],
            doc=data["doc"],
            default=data.get("default"),
            labels=labels,
            attributes={
                entry["code"]: {k: v for k, v in entry.items() if k not in ("code", "labels")}
                for entry in data["codes"]
            },
        )


def load_code_lists(directory: Path) -> dict[str, CodeList]:
    lists = {}
    for path in sorted(directory.glob("*.json")):
        code_list = CodeList.from_json(json.loads(path.read_text("utf-8")))
        lists[code_list.name] = code_list
    return lists


@functools.cache
def code_lists() -> dict[str, CodeList]:
    """This installation's code lists, loaded once."""
    return load_code_lists(schemas_directory() / "codes")


def by_enum(name: str) -> CodeList | None:
    """The code list behind an Avro enum's full name, if it has one."""
    return next((c for c in code_lists().values() if c.avro_enum == name), None)


def missing_labels(language: str) -> list[str]:
    """The codes (``list.code``, e.g. ``gender.Feminine``) with no label in ``language``."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; one of {', '.join(LANGUAGES)}")
    return [
        f"{code_list.name}.{code}"
        for code_list in code_lists().values()
        for code, by_language in code_list.labels.items()
        if not by_language.get(language, "").strip()
    ]


def entry(name: str, code: str) -> Mapping[str, Any]:
    """What code list ``name`` says of ``code`` besides its labels ({} when nothing)."""
    code_list = get(name)
    if code not in code_list.labels:
        raise UnknownCode(f"{code!r} is not in code list {name}")
    return code_list.attributes.get(code, {})


def get(name: str) -> CodeList:
    try:
        return code_lists()[name]
    except KeyError as exc:
        raise UnknownCode(f"unknown code list {name!r}; known: {', '.join(code_lists())}") from exc
