"""Code lists: complete labels in every offered language, in step with the Avro enums."""

from __future__ import annotations

import csv
import functools
import json
import unicodedata
from pathlib import Path

import pycountry
import pytest

from node import codes

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
# IOM's HTCDS 2.0 field standards (CC BY 4.0), shipped with the repository so that every clone
# checks the code lists against it; see schemas/reference/htcds/README.md.
HTCDS = SCHEMAS / "reference" / "htcds"
HTCDS_CSV = HTCDS / "htcds-field-standards-2.0.csv"


def test_every_list_has_labels_in_every_language():
    for code_list in codes.code_lists().values():
        for code in code_list.codes:
            for language in codes.LANGUAGES:
                assert code_list.label(code, language).strip(), (code_list.name, code, language)


@pytest.mark.parametrize("language", codes.LANGUAGES)
def test_no_code_lacks_a_label_in_an_offered_language(language):
    # label() falls back to English, so the test above cannot see a missing sw or ar label: a
    # new code needs its translations before it is merged.
    missing = codes.missing_labels(language)
    assert not missing, f"{len(missing)} codes have no {language!r} label: {', '.join(missing)}"


def test_offered_languages_are_iso_639_1_and_include_the_required_ones():
    assert len(set(codes.LANGUAGES)) == len(codes.LANGUAGES)
    assert codes.LANGUAGES[: len(codes.REQUIRED_LANGUAGES)] == codes.REQUIRED_LANGUAGES
    assert codes.LANGUAGES[0] == "en"  # the fallback of label()
    for language in codes.LANGUAGES:
        assert pycountry.languages.get(alpha_2=language) is not None, language
    names = {lang: pycountry.languages.get(alpha_2=lang).name for lang in ("sw", "ar")}
    assert names == {"sw": "Swahili (macrolanguage)", "ar": "Arabic"}


def test_labels_are_only_in_offered_languages_and_in_order():
    # A label under a misspelt key ("sv", "ara") would be silently unused.
    for path in sorted((SCHEMAS / "codes").glob("*.json")):
        for entry in json.loads(path.read_text("utf-8"))["codes"]:
            offered = tuple(lang for lang in codes.LANGUAGES if lang in entry["labels"])
            assert tuple(entry["labels"]) == offered, (path.name, entry["code"])
            for language, label in entry["labels"].items():
                assert label == label.strip() and label, (path.name, entry["code"], language)


def _letters(text: str, script: str) -> int:
    return sum(1 for c in text if c.isalpha() and unicodedata.name(c, "").startswith(script))


def test_arabic_labels_are_in_arabic_script():
    for code_list in codes.code_lists().values():
        for code, labels in code_list.labels.items():
            label = labels.get("ar", "")
            arabic, letters = _letters(label, "ARABIC"), sum(c.isalpha() for c in label)
            # only a code's own letter ("A: ...", source reliability) may be Latin
            assert arabic >= 2 and arabic >= letters - 1, (code_list.name, code, label)


def test_swahili_labels_are_not_copied_from_english():
    labels = [
        (f"{code_list.name}.{code}", by_language["en"], by_language.get("sw", ""))
        for code_list in codes.code_lists().values()
        for code, by_language in code_list.labels.items()
    ]
    same = [name for name, en, sw in labels if en.casefold() == sw.casefold()]
    # loanwords may coincide ("Visa" is "Viza"); a list copied from English would not
    assert len(same) <= len(labels) // 20, same
    for _, en, sw in labels:
        assert _letters(sw, "LATIN") == sum(c.isalpha() for c in sw), sw


@pytest.mark.parametrize("name", sorted(n for n, c in codes.code_lists().items() if c.avro_enum))
def test_enum_files_are_generated_from_the_lists(name):
    expected = codes.get(name).enum_schema()
    assert json.loads((SCHEMAS / "codes" / f"{name}.avsc").read_text()) == expected, (
        "run python tools/gen_code_enums.py"
    )


def test_enums_in_the_registry_match_the_lists(registry):
    for code_list in codes.code_lists().values():
        if code_list.avro_enum:
            enum = next(
                d for n in registry.names()
                for d in [registry.schema(n).standalone] if d["name"] == code_list.avro_enum
            )  # fmt: skip
            assert enum["symbols"] == list(code_list.codes)


@functools.cache
def htcds_fields() -> dict[str, dict[str, str]]:
    """The HTCDS CSV by field name. A missing file fails (never skips) every test that reads it."""
    assert HTCDS_CSV.is_file(), f"the HTCDS reference is missing: {HTCDS_CSV}"
    with HTCDS_CSV.open(encoding="utf-8", newline="") as handle:
        return {r["Field Name including Prefix"]: r for r in csv.DictReader(handle)}


def test_htcds_reference_ships_with_its_licence():
    # CC BY 4.0: the data may travel only with its attribution.
    assert HTCDS_CSV.is_file(), f"the HTCDS reference is missing: {HTCDS_CSV}"
    licence = (HTCDS / "LICENSE.md").read_text("utf-8")
    assert "Human Trafficking Case Data Standard (HTCDS) by IOM" in licence
    assert "CC BY 4.0" in licence
    assert "CC BY 4.0" in (HTCDS / "README.md").read_text("utf-8")


@pytest.mark.parametrize(
    ("list_name", "htcds_field"),
    [
        ("gender", "prs_Gender"),
        ("trafficking_status", "vic_TraffickingStatus"),
        ("trafficking_status_decision_org", "vic_TraffickingStatusDecisionMakingOrg"),
        ("relationship_to_trafficker", "vic_RelationshipToTrafficker"),
        ("recruitment_method", "vic_MethodOfRecruitment"),
        ("methods_of_control", "vic_MethodsOfControl"),
        ("exploitation_type", "vic_TypeOfExploitation"),
        ("sex_exploitation_type", "vic_TypeOfSexExploitation"),
        ("forced_labour_industry", "vic_ForcedLabourIndustry"),
        ("case_status", "cas_Status"),
        ("referral_reason", "cas_ReasonForOutgoingReferral"),
        ("perpetrator_role", "per_RoleInProcess"),
        ("organisation_type", "org_Type"),
    ],
)
def test_htcds_code_lists_keep_htcds_value_names(list_name, htcds_field):
    htcds = [
        v.strip()
        for v in htcds_fields()[htcds_field]["Value Names (if picklist)"].splitlines()
        if v.strip()
    ]
    assert htcds, f"{htcds_field} has no picklist values in the HTCDS reference"
    ours = list(codes.get(list_name).codes)
    assert ours[: len(htcds)] == htcds  # HTCDS values, in HTCDS order; xnode extensions after


def test_labels_fall_back_and_unknown_codes_are_refused():
    gender = codes.get("gender")
    assert gender.label("Feminine", "fr") == "Féminin"
    assert gender.label("Feminine", "sw") == "Kike"
    assert gender.label("Feminine", "ar") == "أنثى"
    with pytest.raises(codes.UnknownCode):
        gender.label("Unknown")
    with pytest.raises(codes.UnknownCode):
        codes.get("colours")


def _demo_list(**labels: dict[str, str]) -> dict[str, object]:
    return {
        "list": "demo",
        "source": "test",
        "doc": "A list for the test.",
        "codes": [{"code": code, "labels": by_language} for code, by_language in labels.items()],
    }


def test_a_required_language_is_required_and_an_offered_one_falls_back(monkeypatch):
    required = {"en": "Yes", "fr": "Oui", "pt": "Sim"}
    for language in codes.REQUIRED_LANGUAGES:
        with pytest.raises(ValueError, match=f"demo.Yes: no label in {language}"):
            codes.CodeList.from_json(
                _demo_list(Yes={k: v for k, v in required.items() if k != language})
            )
    demo = codes.CodeList.from_json(
        _demo_list(Yes={**required, "sw": "Ndiyo", "ar": "نعم"}, No={"en": "No", "fr": "Non",
                   "pt": "Não", "ar": ""})
    )  # fmt: skip
    assert demo.label("Yes", "sw") == "Ndiyo" and demo.label("Yes", "ar") == "نعم"
    assert demo.label("No", "sw") == "No" and demo.label("No", "ar") == "No"  # English
    monkeypatch.setattr(codes, "code_lists", lambda: {"demo": demo})
    assert codes.missing_labels("sw") == ["demo.No"]
    assert codes.missing_labels("ar") == ["demo.No"]
    assert codes.missing_labels("fr") == []
    with pytest.raises(ValueError, match="unknown language 'xx'"):
        codes.missing_labels("xx")
