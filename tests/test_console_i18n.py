"""The console's message catalogs: every string the templates and pages show is in every
language, with the same placeholders; the missing ones are listed by name."""

from __future__ import annotations

import json
import re
import string

import pytest

from node.adapters.console import catalog, i18n

TRANSLATED = i18n.LANGUAGES[1:]
ARABIC = re.compile(r"[\u0600-\u06ff]")


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_en_json_lists_exactly_the_strings_the_console_shows():
    """Fails when a template gains a string and `python -m node.adapters.console.catalog` was
    not run (the other catalogs would not even list it as missing)."""
    on_disk = json.loads((catalog.HERE / "catalogs" / "en.json").read_text("utf-8"))
    assert on_disk == catalog.english()
    assert "Inbox" in on_disk and "kind:mla" in on_disk and "field:prs_FirstName" in on_disk
    assert not [k for k in on_disk if re.fullmatch(r"[a-z]+:", k)]  # no half ids (t("kind:" ~ k))


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_string_is_translated(language):
    missing = catalog.missing(language)
    assert missing == [], f"{language}: {len(missing)} untranslated, e.g. {missing[:5]}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_their_placeholders(language):
    english = catalog.english()
    translated = i18n.catalog(language)
    wrong = [k for k, v in translated.items() if fields(v) != fields(english[k])]
    assert wrong == []


def test_missing_strings_are_found_and_fall_back_to_english():
    english = catalog.english()
    partial = {k: ("x" if k != "Inbox" else "") for k in english}
    assert catalog.missing("fr", partial) == ["Inbox"]
    assert i18n.Translator("fr")("A string added yesterday") == "A string added yesterday"


def test_arabic_is_written_in_arabic_and_right_to_left():
    values = list(i18n.catalog("ar").values())
    in_arabic = sum(bool(ARABIC.search(v)) for v in values)
    assert in_arabic / len(values) > 0.95
    assert i18n.Translator("ar").direction == "rtl"
    assert i18n.Translator("fr")("Inbox") == "Boîte de réception"
    assert i18n.Translator("pt")("Inbox") != "Inbox" and i18n.Translator("sw")("Inbox") != "Inbox"
