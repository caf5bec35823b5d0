"""Every payload field means something in every language the project ships (issue: translated
field descriptions), and the generated pages in docs/schemas/ show them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from node import field_docs, schema_docs
from node.cli import main as cli_main
from node.codec import default_registry

DOCS = Path(__file__).resolve().parent.parent / "docs" / "schemas"
ARABIC = re.compile(r"[\u0600-\u06FF]")


def test_every_record_and_field_says_what_it_means_in_english():
    english = field_docs.english()
    assert len(english) > 500
    assert [k for k, doc in english.items() if not doc.strip()] == []


@pytest.mark.parametrize("language", field_docs.TRANSLATED)
def test_no_record_or_field_lacks_a_translation(language):
    # the list is what a translator has to do next
    assert field_docs.untranslated(language) == []
    assert field_docs.stale(language) == []


def test_arabic_descriptions_are_in_arabic_script():
    catalog = field_docs.catalog("ar")
    assert [k for k, text in catalog.items() if not ARABIC.search(text)] == []


@pytest.mark.parametrize("language", field_docs.TRANSLATED)
def test_translations_keep_the_codes_and_examples_they_quote(language):
    """A translator may reword, but `E.164`, `+260977123456` or `ISO 3166-1` must survive."""
    english, catalog = field_docs.english(), field_docs.catalog(language)
    lost = []
    for k, text in catalog.items():
        for token in re.findall(r"\+\d{8,15}|ISO \d{3,4}(?:-\d)?|E\.164|UUID", english[k]):
            if token not in text:
                lost.append((k, token))
    assert lost == []


def test_a_missing_translation_falls_back_to_english():
    record, field = "xnode.common.Person", "prs_FirstName"
    assert field_docs.doc(record, field, "fr") != field_docs.doc(record, field, "en")
    assert field_docs.doc(record, "no_such_field", "fr", "the fallback") == "the fallback"


@pytest.mark.parametrize("language", schema_docs.PAGE_WORDS)
def test_the_generated_pages_are_up_to_date(language):
    page = (DOCS / f"{language}.md").read_text("utf-8")
    assert page == schema_docs.markdown(default_registry(), language), (
        "run python tools/gen_schema_docs.py"
    )


def test_every_field_of_every_record_is_on_every_page():
    pages = {lang: (DOCS / f"{lang}.md").read_text("utf-8") for lang in schema_docs.PAGE_WORDS}
    for k in field_docs.english():
        if k.count(".") == 2:  # a record's own doc
            continue
        record, field = k.rsplit(".", 1)
        for language, page in pages.items():
            meaning = field_docs.doc(record, field, language)
            assert f"| `{field}` |" in page and meaning.replace("|", "\\|") in page, (
                language, k,
            )  # fmt: skip


def test_schemas_show_prints_the_fields_in_the_language_asked(capsys):
    assert cli_main(["schemas", "show", "ConsularNotification", "--lang", "pt"]) == 0
    out = capsys.readouterr().out
    meaning = field_docs.doc("xnode.payload.ConsularNotification", "informed_of_rights", "pt")
    assert meaning in out and meaning != field_docs.doc(
        "xnode.payload.ConsularNotification", "informed_of_rights", "en"
    )
