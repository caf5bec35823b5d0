"""Code lists: complete labels in the SADC languages, in step with the Avro enums."""

from __future__ import annotations

import csv
import functools
import json
from pathlib import Path

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
