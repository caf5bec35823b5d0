"""The record of processing: derived from config, policy, peers and schemas, never hand-kept.

A data-protection officer signs what this prints, so the tests check that each section follows
what governs the node: recipients follow the role policy (a kind the policy denies names no
recipient), retention figures are the configured ones, the categories of data come from the
schemas (a new ``Person`` field shows up without touching the mapping), and the command writes
a file only its owner can read. Places and agencies are invented (Lusaka, Harare, Lilongwe).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from node import cli
from node import processing_record as pr
from node.codec import SchemaRegistry, default_registry, schemas_directory
from node.config import parse_config
from node.trustlist import Member, TrustList
from tests.conftest import NOW, make_node
from tests.process_helpers import xnode

CONFIG = """
[node]
id = "zm-secretariat"
name = "Lusaka Anti-Trafficking Secretariat"
roles = ["secretariat"]

[store]
inbox_retention_days = 180
outbox_retention_days = 60
quarantine_retention_days = 21

[keys]
encryption_valid_days = 120
retired_key_days = 14

[policy]
rules = [
  "alert: secretariat -> law-enforcement",
  "mla: central-authority,prosecution -> central-authority,prosecution",
]
"""

PEERS = (
    pr.Peer("mw-social-welfare", "MW", ("social-welfare",), "Lilongwe Social Welfare Office"),
    pr.Peer("zm-police", "ZM", ("law-enforcement",), "Zambia Police, Lusaka"),
    pr.Peer("zw-police", "ZW", ("law-enforcement", "immigration"), "ZRP Harare"),
    pr.Peer("zw-shelter-harare", "ZW", ("shelter",), "Harare shelter", status="revoked"),
)


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def activity(record: pr.ProcessingRecord, kind: str) -> pr.KindRecord:
    return next(a for a in record.activities if a.kind == kind)


def labels(findings: tuple[pr.Finding, ...]) -> list[str]:
    return [f.label for f in findings]


def where(findings: tuple[pr.Finding, ...], label_part: str) -> tuple[str, ...]:
    return next(f.where for f in findings if label_part in f.label)


@pytest.fixture(scope="module")
def record() -> pr.ProcessingRecord:
    return pr.build_record(parse_config(CONFIG, {}), PEERS, default_registry(), NOW)


# -- recipients follow the policy ---------------------------------------------------------------


def test_recipients_are_the_peers_whose_roles_the_policy_allows(record):
    alert = activity(record, "alert")
    assert alert.rules == ("alert: secretariat -> law-enforcement",)
    assert alert.recipient_roles == ("law-enforcement",)
    assert alert.recipients == ("zm-police", "zw-police")  # not the welfare office in Lilongwe

    referral = activity(record, "referral")  # the default rule: care and first-contact officials
    assert referral.recipients == ("mw-social-welfare", "zm-police", "zw-police")
    assert "shelter" in referral.recipient_roles


def test_a_kind_the_policy_denies_lists_no_recipient(record):
    mla = activity(record, "mla")
    assert (mla.sends, mla.receives) == (False, False)
    assert mla.recipients == mla.sources == mla.recipient_roles == ()
    text = pr.render_markdown(record)
    section = text.split("(`mla`)")[1].split("### 2.")[0]
    assert "neither sends nor receives this kind" in section
    assert "zw-police" not in section


def test_received_from_follows_the_policy_the_other_way(record):
    alert = activity(record, "alert")  # only secretariats may send alerts under this config
    assert alert.receives is False and alert.sources == ()
    assert alert.sends is True
    assert "Nobody: the policy allows this node to receive no message" in pr.render_markdown(record)


def test_a_revoked_peer_receives_nothing_but_is_listed(record):
    assert all("zw-shelter-harare" not in a.recipients for a in record.activities)
    assert "zw-shelter-harare" in [p.node_id for p in record.peers]
    assert "| `zw-shelter-harare` | Harare shelter | ZW | shelter | revoked | - | - |" in (
        pr.render_markdown(record)
    )


def test_every_usable_peer_abroad_is_a_transfer_and_none_at_home(record):
    transfers = {t.country: t for t in record.transfers}
    assert set(transfers) == {"MW", "ZW"}
    assert transfers["ZW"].peers == ("zw-police",)  # the revoked shelter is no transfer
    assert transfers["ZW"].kinds_sent == ("alert", "referral", "repatriation")  # immigration
    assert transfers["ZW"].country_name == "Zimbabwe"
    assert transfers["MW"].kinds_sent == ("referral", "repatriation")
    assert "ZM" not in transfers


# -- retention, security, legal basis from config -----------------------------------------------


def test_retention_figures_come_from_config(record):
    rows = {r.setting: r.period for r in record.retention}
    assert rows["store.inbox_retention_days"] == "180 days"
    assert rows["store.outbox_retention_days"] == "60 days"
    assert rows["store.quarantine_retention_days"] == "21 days"
    notes = " ".join(record.retention_notes)
    assert "handling.retention_days" in notes and "Legal holds" in notes and "Erasure" in notes
    assert "console.draft_retention_days" not in rows  # the console is off
    text = pr.render_markdown(record)
    assert "| 180 days | `store.inbox_retention_days` |" in text


def test_security_measures_name_the_key_rotation_settings(record):
    text = " ".join(record.security)
    assert "valid 120 days" in text and "for 14 days" in text
    assert "Ed25519" in text and "HPKE" in text and "hash-chained audit log" in text
    assert "PLAINTEXT" in text  # the development default is called out


def test_legal_basis_points_to_the_per_message_field(record):
    first = record.legal_basis[0]
    assert "handling.legal_basis" in first and "handling.legal_instrument" in first
    assert "instrument and article" in first  # quoted from the Handling schema


def test_controller_comes_from_config(record):
    c = record.controller
    assert (c.node_id, c.name, c.country_name) == (
        "zm-secretariat", "Lusaka Anti-Trafficking Secretariat", "Zambia")  # fmt: skip
    assert c.mode == "bilateral"


def test_local_disclosures_follow_the_adapters_enabled():
    config = parse_config(
        CONFIG + '\n[webhook]\nurl = "https://cms.lusaka.example/hook?token=s3cret"\n'
        'secret_file = "hook.secret"\n[folder]\npath = "exchange"\n',
        {},
    )
    record = pr.build_record(config, PEERS, default_registry(), NOW)
    text = " ".join(record.local_disclosures)
    assert "https://cms.lusaka.example" in text and "s3cret" not in text
    assert "exchange/inbox/" in text
    assert "Plaintext files of the folder adapter (inbox/ and sent/)" in [
        r.what for r in record.retention
    ]
    quiet = pr.build_record(
        dataclasses.replace(
            config, folder=dataclasses.replace(config.folder, inbox_files=False)
        ),
        PEERS, default_registry(), NOW,
    )  # fmt: skip
    assert not any("Folder adapter" in line for line in quiet.local_disclosures)
    assert "Plaintext files of the folder adapter (sent/)" in [r.what for r in quiet.retention]


# -- categories derived from the schemas ----------------------------------------------------------


def test_referral_carries_victims_and_children(record):
    referral = activity(record, "referral")
    subjects = labels(referral.data_subjects)
    assert "victims and possible victims of trafficking" in subjects
    assert "children (under 18) and their guardians" in subjects
    staff = "officials, case workers, escorts and other contact persons"
    assert subjects.index("victims and possible victims of trafficking") < subjects.index(staff)
    sensitive = labels(referral.sensitive_data)
    assert "data about children" in sensitive
    assert "data about victims of crime" in sensitive
    assert "health (art. 9)" in sensitive  # needs: Medical, Psychosocial
    assert any("Referral.needs[]" in w for w in where(referral.sensitive_data, "health"))
    assert "sex life (art. 9)" in sensitive  # type of exploitation


def test_alert_carries_suspects(record):
    alert = activity(record, "alert")
    assert "suspects" in labels(alert.data_subjects)
    assert "witnesses" in labels(alert.data_subjects)
    assert "criminal offences (art. 10)" in labels(alert.sensitive_data)
    assert "Alert.subjects[].person" in where(alert.personal_data, "Identification data")


def test_mla_and_repatriation_subjects():
    record = pr.build_record(
        parse_config(CONFIG.replace('["secretariat"]', '["secretariat", "prosecution"]'), {}),
        PEERS, default_registry(), NOW,
    )  # fmt: skip
    mla = activity(record, "mla")
    assert any(
        s.startswith("persons concerned by an MLA request") for s in labels(mla.data_subjects)
    )
    assert "criminal offences (art. 10)" in labels(mla.sensitive_data)
    repatriation = activity(record, "repatriation")
    assert "migrants and returnees crossing a border" in labels(repatriation.data_subjects)


def test_organisation_codes_are_not_taken_for_health_data(record):
    for a in record.activities:
        for f in a.sensitive_data:
            assert not any("org_Type" in w for w in f.where), (a.kind, f)


def _documents(change: dict[str, Any]) -> list[tuple[str, Any]]:
    """The installed schema files, with ``change`` (name -> schema) replacing or adding some."""
    root = schemas_directory()
    docs = []
    for path in sorted(root.rglob("*.avsc")):
        if "history" in path.relative_to(root).parts:
            continue
        doc = json.loads(path.read_text("utf-8"))
        full = f"{doc.get('namespace', '')}.{doc['name']}".lstrip(".")
        docs.append((str(path), change.pop(full, doc)))
    return docs + [(name, doc) for name, doc in change.items()]


def _referral_with(*fields: dict[str, Any], extra: dict[str, Any] | None = None) -> SchemaRegistry:
    path = schemas_directory() / "payload" / "referral.avsc"
    referral = json.loads(path.read_text("utf-8"))
    referral["fields"] += list(fields)
    return SchemaRegistry.from_documents(
        _documents({"xnode.payload.Referral": referral, **(extra or {})})
    )


def test_a_new_person_field_appears_without_touching_the_mapping():
    registry = _referral_with(
        {"name": "interpreter", "type": ["null", "xnode.common.Person"], "default": None}
    )
    record = pr.build_record(parse_config(CONFIG, {}), PEERS, registry, NOW)
    referral = activity(record, "referral")
    assert "Referral.interpreter" in where(referral.personal_data, "Identification data")
    assert "Referral.interpreter" in where(referral.data_subjects, "persons identified")
    documents = where(referral.personal_data, "Identity and travel documents")
    assert "Referral.interpreter.identity_documents[]" in documents


def test_a_new_record_or_sensitive_field_is_flagged_not_missed():
    tattoo = {
        "type": "record", "name": "DistinguishingMark", "namespace": "xnode.common",
        "fields": [{"name": "where_on_body", "type": "string"}],
    }  # fmt: skip
    registry = _referral_with(
        {"name": "marks", "type": {"type": "array", "items": "xnode.common.DistinguishingMark"},
         "default": []},
        {"name": "medical_history", "type": ["null", "string"], "default": None},
        extra={"xnode.common.DistinguishingMark": tattoo},
    )  # fmt: skip
    record = pr.build_record(parse_config(CONFIG, {}), PEERS, registry, NOW)
    referral = activity(record, "referral")
    assert "Referral.marks[]" in where(referral.personal_data, "DistinguishingMark records")
    assert "Referral.medical_history" in where(referral.sensitive_data, "health")


# -- peers as the node sees them ------------------------------------------------------------------


def test_known_peers_in_bilateral_mode():
    police, welfare = make_node("zw-police"), make_node("mw-social-welfare", ("social-welfare",))
    peers = pr.known_peers(
        "zm-secretariat", [police.descriptor, welfare.descriptor], {"zw-police"}, None, NOW
    )
    assert [(p.node_id, p.status) for p in peers] == [
        ("mw-social-welfare", "active"), ("zw-police", "revoked")]  # fmt: skip
    assert (peers[0].roles, peers[0].country) == (("social-welfare",), "MW")


def test_known_peers_in_federated_mode_use_the_list_roles_and_status():
    def member(node_id: str, roles: tuple[str, ...], status: str = "active") -> Member:
        return Member(node_id, node_id[:2], roles, node_id.upper(), b"\x01" * 32, status,
                      NOW - dt.timedelta(days=1))  # fmt: skip

    trust_list = TrustList(
        "SADC-TIP", 7, NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=90), 1, (),
        (member("zm-secretariat", ("secretariat",)), member("zw-police", ("law-enforcement",)),
         member("mw-police", ("law-enforcement",), "suspended")),
    )  # fmt: skip
    stray = make_node("za-police")  # a descriptor the list does not back
    claims_more = dataclasses.replace(make_node("zw-police").descriptor, roles=("secretariat",))
    peers = {
        p.node_id: p
        for p in pr.known_peers(
            "zm-secretariat", [stray.descriptor, claims_more], (), trust_list, NOW
        )
    }
    assert set(peers) == {"mw-police", "za-police", "zw-police"}
    assert peers["zw-police"].roles == ("law-enforcement",)  # the governors' grant wins
    assert peers["mw-police"].status == "suspended"
    assert peers["za-police"].status == "not in trust list"


# -- rendering ------------------------------------------------------------------------------------


def test_json_holds_the_same_record(record):
    doc = json.loads(pr.render_json(record))
    assert doc["controller"]["node_id"] == "zm-secretariat"
    assert doc["generated_at"] == "2026-11-22T08:30:00+00:00"
    assert doc["dpo_sign_off"] == {"name": None, "date": None, "signature": None}
    by_kind = {a["kind"]: a for a in doc["activities"]}
    assert by_kind["alert"]["recipients"] == ["zm-police", "zw-police"]
    assert by_kind["mla"]["recipients"] == []


def test_markdown_has_every_section_and_a_blank_signature(record):
    text = pr.render_markdown(record)
    for heading in (
        "# Record of processing activities: zm-secretariat", "## 1. Controller",
        "## 2. Processing activities", "## 3. Recipients: known peers",
        "## 4. Transfers to other countries", "## 5. Legal basis", "## 6. Retention",
        "## 7. Security measures", "## 8. To be completed by the data protection officer",
        "## Sign-off",
    ):  # fmt: skip
        assert f"\n{heading}\n" in f"\n{text}", heading
    assert "Generated 2026-11-22 08:30 UTC" in text
    assert text.rstrip().endswith("| ____ | ____ | ____ |")
    assert "DPIA" in text


# -- the command, on node directories made by `xnode init` ----------------------------------------


@pytest.fixture(scope="module")
def lusaka(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A secretariat in Lusaka that knows the police in Harare and a welfare office in Lilongwe."""
    root = tmp_path_factory.mktemp("ropa")
    specs = {
        "zm-secretariat": ("secretariat", "Lusaka Anti-Trafficking Secretariat"),
        "zw-police": ("law-enforcement", "ZRP Harare"),
        "mw-social-welfare": ("social-welfare", "Lilongwe Social Welfare Office"),
    }
    for node_id, (roles, name) in specs.items():  # each step fails the fixture if it fails
        xnode("init", "--dir", root / node_id, "--id", node_id, "--roles", roles, "--name", name)
        if node_id != "zm-secretariat":
            out = root / f"{node_id}.xnd"
            xnode("peers", "export", "--dir", root / node_id, "--out", out)
            xnode("peers", "add", "--dir", root / "zm-secretariat", out, "--yes")
    return root / "zm-secretariat"


def test_command_prints_markdown(lusaka):
    out = xnode("processing-record", "--dir", lusaka).stdout  # exit status 0 checked
    assert out.startswith("# Record of processing activities: zm-secretariat\n")
    assert "\n## 4. Transfers to other countries\n" in out
    assert (
        # statistics from a foreign agency: the policy allows the kind, the release's rules keep
        # an agency's release in its own country (docs/statistics.md)
        "| Zimbabwe (ZW) | `zw-police` | alert, mla, referral | alert, mla, referral, statistics "
        "| ____ |" in out
    )
    assert "| Malawi (MW) | `mw-social-welfare` |" in out
    assert "| 365 days | `store.inbox_retention_days` |" in out
    assert "Lusaka Anti-Trafficking Secretariat" in out


def test_command_prints_json(lusaka, capsys):
    code, out, err = run(capsys, "processing-record", "--dir", lusaka, "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["controller"]["name"] == "Lusaka Anti-Trafficking Secretariat"
    assert {p["node_id"] for p in doc["peers"]} == {"mw-social-welfare", "zw-police"}
    by_kind = {a["kind"]: a for a in doc["activities"]}
    assert by_kind["repatriation"]["recipients"] == ["mw-social-welfare"]  # police: no returns


@pytest.mark.parametrize("fmt", ["markdown", "json"])
def test_command_writes_a_file_only_its_owner_reads(lusaka, tmp_path, capsys, fmt):
    target = tmp_path / f"ropa.{fmt}"
    code, out, err = run(capsys, "processing-record", "--dir", lusaka, "--format", fmt,
                         "--output", target)  # fmt: skip
    assert code == 0, err
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert str(target) in out and "Record of processing" not in out
    text = target.read_text("utf-8")
    if fmt == "json":
        assert json.loads(text)["controller"]["node_id"] == "zm-secretariat"
    else:
        assert text.startswith("# Record of processing activities: zm-secretariat")


def test_command_without_a_node_fails_with_one_line(tmp_path, capsys):
    code, out, err = run(capsys, "processing-record", "--dir", tmp_path / "nowhere")
    assert code == 1 and out == ""
    assert err.startswith("xnode: error:") and "xnode init" in err
