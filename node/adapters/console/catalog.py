"""Which strings the console shows, for its message catalogs (``python -m
node.adapters.console.catalog`` refreshes them; tests/test_console_i18n.py checks them).

A string is a message id when a template calls ``t("...")`` on a literal, when Python code of
this package passes it as an HTTP ``reason=`` or a gate text, or when it is one of the keys
built from data: ``kind:<kind>``, ``schema:<record>``, ``priority:<p>``, ``state:<s>``,
``check:<name>``, the role names and ``field:<schema field>``.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from node import envelope, payloads
from node.adapters.console import threads_view
from node.adapters.console.accounts import ROLES
from node.adapters.console.i18n import LANGUAGES, humanise
from node.codec import default_registry, named_definitions

HERE = Path(__file__).parent
# t("...") on a literal alone; t("kind:" ~ k) builds its id from data (listed in english())
CALL = re.compile(r"""\bt\(\s*(?:"((?:[^"\\]|\\.)+)"|'((?:[^'\\]|\\.)+)')\s*[,)]""")
STATES = ("queued", "sent", "delivered", "rejected", "expired", "received", "acked",
          "webhook-failed", "delivered-local")  # fmt: skip
CHECKS = ("store", "broker", "keys", "trust")
KIND_NAMES = {"alert": "Alert", "mla": "Mutual legal assistance", "referral": "Referral",
              "repatriation": "Repatriation", "statistics": "Statistics",
              "receipt": "Receipt"}  # fmt: skip
SCHEMA_NAMES = {
    "StatisticsRelease": "Statistics release",
    "Alert": "Alert", "CaseUpdate": "Case update", "MlaRequest": "MLA request",
    "MlaResponse": "MLA response", "Referral": "Referral",
    "ReferralResponse": "Referral response", "RepatriationProposal": "Return proposal",
    "RepatriationFamilyAssessment": "Family assessment",
    "RepatriationRiskAssessment": "Risk assessment", "RepatriationApproval": "Return decision",
    "RepatriationTravelConfirmed": "Travel confirmed", "RepatriationHandover": "Handover",
    "RepatriationArrivalConfirmed": "Arrival confirmed", "RepatriationFollowUp": "Follow-up",
    "Receipt": "Receipt", "ErasureRequest": "Erasure request", "ErasureResult": "Erasure result",
    "Forward": "Forwarded message", "ForwardPermissionRequest": "Request to forward",
    "ForwardPermissionDecision": "Forwarding decision",
    "RecruitmentVerificationRequest": "Recruitment check request",
    "RecruitmentVerificationResponse": "Recruitment check answer",
    "ConsularNotification": "Consular notification",
    "JointInvestigationTeam": "Joint investigation team",
    "ArrestWarrantNotice": "Arrest warrant notice",
    "ProceedingsTransfer": "Transfer of proceedings",
    "AssetRecoveryRequest": "Asset recovery request",
    "VideoTestimonyRequest": "Video testimony request",
    "SpontaneousInformation": "Spontaneous information", "CompensationClaim": "Compensation claim",
}  # fmt: skip


def field_names() -> set[str]:
    registry = default_registry()
    names: set[str] = set()
    for full in payloads.all_payloads():
        standalone = registry.schema(full).standalone
        for definition in [standalone, *named_definitions(standalone).values()]:
            if isinstance(definition, dict) and definition.get("type") == "record":
                names.update(f["name"] for f in definition["fields"])
    return names


def _python_ids(source: str) -> set[str]:
    """``t("...")`` and ``reason="..."`` in Python, read with ``ast`` so that adjacent
    literals ("..." "...") count as the one string they are."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(
            func, ast.Attribute) else ""  # fmt: skip
        if name == "t" and node.args and isinstance(node.args[0], ast.Constant):
            found.add(str(node.args[0].value))
        for keyword in node.keywords if name.startswith("HTTP") else ():
            if keyword.arg == "reason" and isinstance(keyword.value, ast.Constant):
                found.add(str(keyword.value.value))
    return found


def literal_ids() -> set[str]:
    """``t("...")`` in templates and Python, HTTP reasons and gate texts."""
    found: set[str] = set()
    for path in HERE.glob("templates/*.html"):
        for match in CALL.finditer(path.read_text("utf-8")):
            found.add((match.group(1) or match.group(2)).replace('\\"', '"'))
    for path in HERE.glob("*.py"):
        found |= _python_ids(path.read_text("utf-8"))
    found.update(g for gates in threads_view.GATES.values() for g in gates)
    return found


def english() -> dict[str, str]:
    """Every message id with its English text (the id itself unless built from data)."""
    entries = {text: text for text in literal_ids()}
    entries.update({f"kind:{k}": v for k, v in KIND_NAMES.items()})
    entries.update({f"schema:{k}": v for k, v in SCHEMA_NAMES.items()})
    entries.update({f"priority:{p}": p.capitalize() for p in envelope.PRIORITIES})
    entries.update({f"state:{s}": s.replace("-", " ").capitalize() for s in STATES})
    entries.update({f"check:{c}": c.capitalize() for c in CHECKS})
    entries.update({role: role for role in ROLES})
    entries.update({f"field:{n}": humanise(n) for n in field_names()})
    return dict(sorted(entries.items()))


def missing(language: str, catalog: dict[str, str] | None = None) -> list[str]:
    """Message ids with no translation in ``language`` (English falls back for them)."""
    if catalog is None:
        catalog = json.loads((HERE / "catalogs" / f"{language}.json").read_text("utf-8"))
    return sorted(k for k in english() if not catalog.get(k))


def refresh() -> None:
    """Write en.json in full; add missing ids (empty) to the other catalogs, drop stale ones."""
    en = english()
    (HERE / "catalogs" / "en.json").write_text(
        json.dumps(en, ensure_ascii=False, indent=1) + "\n", "utf-8"
    )
    for language in LANGUAGES[1:]:
        path = HERE / "catalogs" / f"{language}.json"
        old = json.loads(path.read_text("utf-8")) if path.exists() else {}
        new = {k: old.get(k, "") for k in en}
        path.write_text(json.dumps(new, ensure_ascii=False, indent=1) + "\n", "utf-8")
        print(f"{language}: {len(missing(language, new))} of {len(en)} strings untranslated")


if __name__ == "__main__":
    refresh()
