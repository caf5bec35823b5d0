"""The console's languages: message catalogs, Accept-Language, right-to-left scripts.

Catalogs are small JSON files beside this module (``catalogs/<lang>.json``) mapping the English
text of a string to its translation; English is the key, so a string missing from a catalog
falls back to English and the suite lists what is missing (tests/test_console_i18n.py). Field
labels use the key ``field:<schema field name>``; code-list labels come from the code lists.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

from node import codes

LANGUAGES = codes.LANGUAGES  # the code lists and the interface offer the same languages
NAMES = {"en": "English", "fr": "Français", "pt": "Português", "sw": "Kiswahili", "ar": "العربية"}
RTL = frozenset({"ar"})
_TAG = re.compile(r"^\s*([A-Za-z]{1,8})(?:-[A-Za-z0-9]{1,8})*\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*$")


@functools.cache
def catalog(language: str) -> Mapping[str, str]:
    """The catalog of ``language`` ({} for English, whose keys are the text itself)."""
    if language not in LANGUAGES or language == "en":
        return {}
    path = resources.files("node.adapters.console") / "catalogs" / f"{language}.json"
    data: dict[str, str] = json.loads(path.read_text("utf-8"))
    return {k: v for k, v in data.items() if v}


@functools.cache
def english() -> Mapping[str, str]:
    """English labels of schema fields (``field:<name>``) and any reworded strings."""
    path = resources.files("node.adapters.console") / "catalogs" / "en.json"
    data: dict[str, str] = json.loads(path.read_text("utf-8"))
    return data


def negotiate(header: str | None, default: str = "en") -> str:
    """The best of :data:`LANGUAGES` for an ``Accept-Language`` header (RFC 9110 §12.5.4)."""
    best, best_q = default, 0.0
    for position, part in enumerate((header or "").split(",")[:20]):
        match = _TAG.match(part)
        if not match:
            continue
        language = match.group(1).lower()
        try:
            q = float(match.group(2)) if match.group(2) else 1.0
        except ValueError:
            continue
        q -= position * 1e-6  # earlier wins among equals
        if language in LANGUAGES and q > best_q:
            best, best_q = language, q
    return best


def humanise(name: str) -> str:
    """``prs_FirstName`` -> ``First name``; ``retention_days`` -> ``Retention days``."""
    text = re.sub(r"^[a-z]{2,4}_(?=[A-Z])", "", name)
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", text).replace("_", " ").strip()
    return (text[:1].upper() + text[1:].lower()) if text else name


class Translator:
    """``t("Inbox")`` in one language; ``field("prs_FirstName")`` for a form label."""

    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGES else "en"
        self._catalog = catalog(self.language)
        self._english = english()

    @property
    def direction(self) -> str:
        return "rtl" if self.language in RTL else "ltr"

    def __call__(self, text: str, **values: Any) -> str:
        translated = self._catalog.get(text) or self._english.get(text) or text
        return translated.format(**values) if values else translated

    def field(self, name: str) -> str:
        key = f"field:{name}"
        return self._catalog.get(key) or self._english.get(key) or humanise(name)
