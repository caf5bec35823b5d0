"""The console's pure parts: accounts and lock-out, sessions, forms from the schemas, the
language choice, replies and case views, sealed drafts."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from node import payloads
from node.adapters.console import drafts, forms, i18n, threads_view
from node.adapters.console.accounts import (
    AccountError,
    Passwords,
    Permission,
    check_kinds,
    check_name,
    check_password,
    check_role,
    decide_login,
    handled_kinds,
    may,
    user_kinds,
)
from node.adapters.console.sessions import SessionBook, same_token
from node.crypto.keys import EncryptionKey
from node.policy import Policy
from node.store.base import ConsoleUser

EXAMPLES = Path(__file__).resolve().parent.parent / "schemas" / "examples"
NOW = dt.datetime(2026, 12, 4, 9, 0, tzinfo=dt.UTC)
LOCK = dt.timedelta(minutes=15)


def user(**changes: object) -> ConsoleUser:
    base = {"name": "mwila", "role": "officer", "password_hash": "x", "created_at": NOW}
    return ConsoleUser(**{**base, **changes})  # type: ignore[arg-type]


# -- accounts ---------------------------------------------------------------------------------


def test_roles_grant_only_what_they_name():
    assert may("officer", Permission.CASES) and not may("officer", Permission.OPERATE)
    assert not may("officer", Permission.AUDIT)
    assert may("supervisor", Permission.CASES) and may("supervisor", Permission.AUDIT)
    assert not may("supervisor", Permission.OPERATE)
    assert may("operator", Permission.OPERATE) and not may("operator", Permission.CASES)
    assert may("auditor", Permission.AUDIT) and not may("auditor", Permission.CASES)
    assert not may("auditor", Permission.OPERATE)
    assert not any(may("root", p) for p in Permission)  # unknown role: nothing


def test_kinds_follow_the_agency_policy_and_the_users_list():
    policy = Policy.from_config()
    police = handled_kinds(policy, ("law-enforcement",))
    assert police == ("alert", "mla", "referral")  # the default policy: no repatriation
    assert handled_kinds(policy, ("shelter",)) == ("referral", "repatriation")
    assert handled_kinds(policy, ("secretariat",)) == ("alert", "mla", "referral", "repatriation")
    assert user_kinds(user(), police) == police
    assert user_kinds(user(kinds=("mla",)), police) == ("mla",)
    assert user_kinds(user(kinds=("repatriation",)), police) == ()
    assert user_kinds(user(role="supervisor", kinds=("mla",)), police) == police
    assert user_kinds(user(role="operator"), police) == ()
    assert user_kinds(user(role="auditor"), police) == ()


def test_names_roles_kinds_and_passwords_are_checked():
    assert check_name("mwila.banda") == "mwila.banda"
    for bad in ("M", "Mwila", "-x", "a b", "x" * 64, ""):
        with pytest.raises(AccountError):
            check_name(bad)
    assert check_role("auditor") == "auditor"
    with pytest.raises(AccountError):
        check_role("admin")
    assert check_kinds(["mla", " alert ", ""]) == ("mla", "alert")
    with pytest.raises(AccountError):
        check_kinds(["receipt"])
    assert check_password("twelve chars", "mwila") == "twelve chars"
    for bad in ("eleven char", "x" * 1025):
        with pytest.raises(AccountError):
            check_password(bad, "mwila")
    with pytest.raises(AccountError):
        check_password("Mwila.Banda1", "mwila.banda1")


def test_argon2id_hashes_and_verifies_in_constant_shape():
    passwords = Passwords()
    stored = passwords.hash("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert passwords.verify(stored, "correct horse battery")
    assert not passwords.verify(stored, "correct horse batterY")
    assert not passwords.verify(None, "correct horse battery")  # unknown user: still hashed
    assert not passwords.verify("not a hash", "anything at all")
    assert not passwords.verify(stored, "x" * 2000)


def test_lock_out_after_the_nth_failure_and_not_before():
    u = user()
    for failures in range(1, 5):
        d = decide_login(u, False, NOW, 5, LOCK)
        assert (d.ok, d.reason, d.failed_logins, d.locked_until) == (
            False, "wrong-password", failures, None)  # fmt: skip
        u = user(failed_logins=d.failed_logins)
    d = decide_login(u, False, NOW, 5, LOCK)
    assert d.just_locked and d.locked_until == NOW + LOCK and d.failed_logins == 5
    locked = user(failed_logins=5, locked_until=NOW + LOCK)
    d = decide_login(locked, True, NOW + LOCK - dt.timedelta(seconds=1), 5, LOCK)
    assert (d.ok, d.reason) == (False, "locked")  # the right password does not open it
    d = decide_login(locked, True, NOW + LOCK, 5, LOCK)
    assert (d.ok, d.failed_logins, d.locked_until) == (True, 0, None)
    d = decide_login(locked, False, NOW + LOCK, 5, LOCK)  # a run-out lock starts a fresh count
    assert (d.failed_logins, d.locked_until) == (1, None)
    d = decide_login(user(disabled_at=NOW), True, NOW, 5, LOCK)
    assert (d.ok, d.reason) == (False, "disabled")
    d = decide_login(None, True, NOW, 5, LOCK)
    assert (d.ok, d.reason) == (False, "unknown-user")
    d = decide_login(user(failed_logins=3), True, NOW, 5, LOCK)
    assert (d.ok, d.failed_logins) == (True, 0)


# -- sessions ---------------------------------------------------------------------------------


def test_sessions_end_when_idle_or_too_old_and_one_by_one():
    book = SessionBook(idle=900, lifetime=3600)
    s = book.open("mwila", "officer", now=0)
    assert book.get(s.session_id, 899) is s
    assert book.get(s.session_id, 899 + 900) is s  # each use resets the idle clock
    assert book.get(s.session_id, 899 + 900 + 901) is None
    assert book.get(s.session_id, 0) is None  # forgotten
    t = book.open("mwila", "officer", now=0)
    for moment in range(0, 3600, 600):
        assert book.get(t.session_id, moment) is t
    assert book.get(t.session_id, 3601) is None
    a, b = book.open("tendai", "officer", 0), book.open("tendai", "officer", 0)
    other = book.open("rudo", "supervisor", 0)
    assert a.session_id != b.session_id and a.csrf != b.csrf and len(a.session_id) >= 43
    book.close(a.session_id)
    assert (
        book.get(a.session_id, 1) is None
        and book.get(b.session_id, 1) is b
        and book.get(other.session_id, 1) is other
    )
    assert book.get(None, 1) is None and book.get("", 1) is None


def test_csrf_tokens_compare_exactly():
    assert same_token("abc", "abc")
    assert not same_token("abc", "abd") and not same_token("abc", None)
    assert not same_token("abc", "") and not same_token("abc", "abcd")


# -- forms --------------------------------------------------------------------------------------


def posted(root: forms.Field) -> list[tuple[str, str]]:
    """What a browser posts for a form as built (every input with its value)."""
    out: list[tuple[str, str]] = []

    def walk(f: forms.Field) -> None:
        if f.widget in ("fieldset", "list"):
            if f.widget == "list":
                out.append((f"{f.name}#count", str(f.count)))
            for c in f.children:
                walk(c)
        elif f.widget == "checks":
            out.extend((f.name, v) for v in f.value)
        elif f.widget == "checkbox":
            if f.value:
                out.append((f.name, "on"))
        else:
            out.append((f.name, str(f.value)))

    walk(root)
    return out


@pytest.mark.parametrize(
    "name", [n for n in json.loads((EXAMPLES / "index.json").read_text())["examples"]]
)
def test_every_example_survives_the_form_and_back(registry, name):
    """The form shows every value of a real payload and posts it back unchanged."""
    meta = json.loads((EXAMPLES / "index.json").read_text())["examples"][name]
    schema = payloads.full_name(meta["schema"])
    example = json.loads((EXAMPLES / name).read_text())
    root = forms.build(registry, schema, example, lambda lst, c: c)
    back = forms.parse(registry, schema, forms.Form(posted(root)))
    canonical = lambda v: registry.to_json(schema, registry.from_json(schema, v))  # noqa: E731
    assert canonical(back) == canonical(example)


def test_widgets_follow_the_schema(registry):
    root = forms.build(registry, payloads.full_name("Alert"), {}, lambda lst, c: f"<{c}>")
    by_name = {}

    def walk(f: forms.Field) -> None:
        by_name[f.name] = f
        for c in f.children:
            walk(c)

    walk(root)
    assert by_name["handling.code"].widget == "select"
    assert ("H2", "<H2>") in by_name["handling.code"].options  # labels from the code list
    assert by_name["handling"].widget == "fieldset" and by_name["handling"].required
    assert by_name["valid_until"].widget == "datetime" and by_name["valid_until"].required
    assert by_name["subjects"].widget == "list" and by_name["subjects"].count == 0
    assert by_name["requested_actions"].widget == "checks"
    assert by_name["information_accuracy"].widget == "select"  # a code list named in the doc
    assert by_name["description"].widget == "textarea"
    assert by_name["title"].widget == "text" and by_name["title"].required
    assert not by_name["cancellation_reason"].required
    assert by_name["handling.retention_days"].widget == "integer"
    assert by_name["time_window"].widget == "fieldset" and not by_name["time_window"].required
    assert by_name["handling.code"].input_id == "f-handling-code"
    assert "HandlingCode" not in by_name["handling"].doc


def test_empty_inputs_are_left_out_and_numbers_kept_as_typed(registry):
    form = forms.Form([
        ("handling.code", "H1"), ("handling.retention_days", "ninety"), ("title", "  "),
        ("information_accuracy", "3"), ("time_window.start", ""), ("valid_until", "2027-01-02T03:04"),
        ("subjects#count", "1"), ("subjects[0].role", ""), ("requested_actions", "Locate"),
        ("requested_actions", "Identify"), ("vehicles#count", "99999"),
    ])  # fmt: skip
    payload = forms.parse(registry, payloads.full_name("Alert"), form)
    assert payload["handling"] == {"code": "H1", "retention_days": "ninety"}  # the codec names it
    assert "title" not in payload and "time_window" not in payload
    assert payload["information_accuracy"] == 3
    assert payload["valid_until"] == "2027-01-02T03:04:00Z"
    assert "subjects" not in payload  # an item with nothing filled in is not sent
    assert payload["requested_actions"] == ["Locate", "Identify"]
    kept = forms.parse(registry, payloads.full_name("Alert"), form, keep_empty=True)
    assert len(kept["subjects"]) == 1  # kept while the form is being filled in
    assert len(kept.get("vehicles", [])) <= forms.MAX_ITEMS


def test_an_optional_record_of_unticked_boxes_is_not_sent(registry):
    """Consent has required booleans: unticked boxes alone must not invent a consent record."""
    referral = payloads.full_name("Referral")
    payload = forms.parse(registry, referral, forms.Form([("consent.recorded_by", "")]))
    assert "consent" not in payload
    payload = forms.parse(registry, referral, forms.Form([("consent.recorded_by", "T. Nkosi")]))
    assert payload["consent"]["recorded_by"] == "T. Nkosi"
    assert payload["consent"]["con_Consent"] is False  # stated, since the record is given


def test_missing_required_lists_every_empty_required_input(registry):
    schema = payloads.full_name("Alert")
    root = forms.build(registry, schema, {}, lambda lst, c: c)
    missing = forms.missing_required(root, {"subjects": [{}]})
    assert {"handling.code", "handling.legal_basis", "action", "title", "valid_until"} <= set(
        missing
    )
    assert "time_window.start" not in missing  # inside an optional record not given
    assert "cancellation_reason" not in missing
    root = forms.build(registry, schema, {"subjects": [{}]}, lambda lst, c: c)
    assert "subjects[0].role" in forms.missing_required(root, {"subjects": [{}]})


def test_add_and_remove_list_items():
    data: dict = {"subjects": [{"role": "Suspect"}]}
    assert forms.apply_operation(data, "add:subjects")["subjects"] == [{"role": "Suspect"}, {}]
    assert forms.apply_operation(data, "remove:subjects[0]")["subjects"] == [{}]
    nested = forms.apply_operation({}, "add:person.identity_documents")
    assert nested == {"person": {"identity_documents": [{}]}}
    for junk in ("remove:subjects", "add:", "remove:subjects[9]", "rm:x", "add:a[0].b"):
        assert forms.apply_operation({"subjects": [{}]}, junk) == {"subjects": [{}]}


def test_error_paths_map_to_input_names():
    assert forms.error_name("payload.subjects[0].person.prs_Birthdate") == (
        "subjects[0].person.prs_Birthdate")  # fmt: skip
    assert forms.error_name("$.handling.code") == "handling.code"
    assert forms.error_name("payload") == "" and forms.error_name(None) == ""
    field = forms.Field("subjects[0].person.prs_Birthdate", "prs_Birthdate", "date", False)
    assert field.input_id == "f-subjects-0--person-prs_Birthdate"


# -- languages ------------------------------------------------------------------------------------


def test_accept_language_picks_the_best_offered_language():
    assert i18n.negotiate("fr-FR,fr;q=0.9,en;q=0.8") == "fr"
    assert i18n.negotiate("de-DE,de;q=0.9,pt;q=0.5,en;q=0.4") == "pt"
    assert i18n.negotiate("ar") == "ar" and i18n.negotiate("sw-TZ") == "sw"
    assert i18n.negotiate("en;q=0.5,fr;q=0.5") == "en"  # equal: the first wins
    assert i18n.negotiate("de") == "en" and i18n.negotiate(None) == "en"
    assert i18n.negotiate("fr;q=x, pt") == "pt"
    assert i18n.negotiate(",".join(["de"] * 50 + ["fr"])) == "en"  # long headers are cut


def test_translator_falls_back_to_english_and_fills_values():
    fr, en, ar = i18n.Translator("fr"), i18n.Translator("xx"), i18n.Translator("ar")
    assert en.language == "en" and en("Inbox") == "Inbox" and en.direction == "ltr"
    assert ar.direction == "rtl"
    assert fr("A string no catalog has") == "A string no catalog has"
    assert en("Audit chain intact: {count} entries.", count=3) == "Audit chain intact: 3 entries."
    assert en("kind:mla") == "Mutual legal assistance"
    assert en.field("prs_FirstName") == "First name"
    assert i18n.humanise("cas_OutgoingReferralDetails") == "Outgoing referral details"
    assert i18n.humanise("retention_days") == "Retention days"


# -- replies and cases ----------------------------------------------------------------------------


def received(schema: str, kind: str, payload: dict | None = None) -> dict:
    return {"id": "01a1f4d0-1a2b-7c3d-9e4f-5a6b7c8d9e0f", "kind": kind, "sender": "zm-police",
            "thread_id": "01a1f4d0-0000-7000-8000-000000000001", "payload_schema": schema,
            "payload": payload or {}}  # fmt: skip


def test_a_reply_answers_the_message_it_replies_to():
    handling = {"code": "H1", "legal_basis": "UNTOC art. 18", "language": "en",
                "retention_days": 1825, "sender_reference": "ZM/MLA/1"}  # fmt: skip
    state = threads_view.reply_state(received("MlaRequest", "mla", {"handling": handling}))
    assert state["schema"] == "MlaResponse" and state["kind"] == "mla"
    assert state["to"] == ["zm-police"] and state["in_reply_to"].startswith("01a1f4d0-1a2b")
    assert state["thread_id"].endswith("0001")
    assert state["payload"]["request_id"] == state["in_reply_to"]
    assert "sender_reference" not in state["payload"]["handling"]  # theirs, not ours
    assert state["payload"]["handling"]["legal_basis"] == "UNTOC art. 18"
    update = threads_view.reply_state(received("MlaRequest", "mla"), "CaseUpdate")
    assert update["schema"] == "CaseUpdate" and "request_id" not in update["payload"]
    assert threads_view.reply_state(received("Referral", "referral"))["payload"][
        "referral_id"].startswith("01a1")  # fmt: skip
    step = threads_view.reply_state(received("RepatriationProposal", "repatriation"))
    assert step["schema"] == "RepatriationFamilyAssessment"
    last = threads_view.replies("repatriation", "RepatriationFollowUp")
    assert last == ["CaseUpdate"]
    assert threads_view.replies("alert", "Alert") == ["CaseUpdate"]
    bogus = threads_view.reply_state(received("MlaRequest", "mla"), "Alert")
    assert bogus["schema"] == "MlaResponse"


def test_gates_are_explained_where_they_apply():
    assert threads_view.gates("Referral") == (threads_view.GATE_CONSENT, threads_view.GATE_CHILD)
    assert threads_view.GATE_NON_REFOULEMENT in threads_view.gates("RepatriationApproval")
    assert threads_view.gates("Alert") == ()


def test_timeline_and_repatriation_progress():
    sent = [{"id": "b", "created_at": "2026-11-02T00:00:00.000Z", "kind": "repatriation",
             "payload_schema": "RepatriationProposal"}]  # fmt: skip
    got = [{"id": "a", "created_at": "2026-11-03T00:00:00.000Z", "kind": "repatriation",
            "payload_schema": "RepatriationFamilyAssessment"},
           {"id": "c", "created_at": "2026-11-01T00:00:00.000Z", "kind": "mla",
            "payload_schema": "CaseUpdate"}]  # fmt: skip
    line = threads_view.timeline(sent, got)
    assert [i["id"] for i in line] == ["c", "b", "a"]
    assert [i["direction"] for i in line] == ["received", "sent", "received"]
    progress = threads_view.repatriation_progress(line)
    assert len(progress) == 8 and [p["done"] for p in progress[:3]] == [True, True, False]
    assert threads_view.repatriation_progress(line[:1]) == []


# -- drafts ---------------------------------------------------------------------------------------


def test_drafts_are_sealed_to_the_node_and_bound_to_their_owner():
    key, other = EncryptionKey.generate(), EncryptionKey.generate()
    sealed = drafts.seal({"payload": {"title": "Minibus at Nakonde"}}, "mwila", key)
    assert b"Nakonde" not in sealed
    assert drafts.open_draft(sealed, "mwila", {key.key_id: key})["payload"]["title"] == (
        "Minibus at Nakonde")  # fmt: skip
    with pytest.raises(drafts.DraftLost):
        drafts.open_draft(sealed, "tendai", {key.key_id: key})  # another user's draft
    with pytest.raises(drafts.DraftLost):
        drafts.open_draft(sealed, "mwila", {other.key_id: other})  # key destroyed
    tampered = sealed.replace(b'"c": "', b'"c": "AAAA')
    with pytest.raises(drafts.DraftLost):
        drafts.open_draft(tampered, "mwila", {key.key_id: key})
    with pytest.raises(drafts.DraftLost):
        drafts.open_draft(b"junk", "mwila", {key.key_id: key})


# -- the form tree against the schema's own description (node.schema_docs) ----------------------


def every_field(root: forms.Field) -> list[forms.Field]:
    found: list[forms.Field] = []

    def walk(f: forms.Field) -> None:
        found.append(f)
        for c in f.children:
            walk(c)

    walk(root)
    return found


@pytest.mark.parametrize("schema", ["Alert", "Referral", "MlaRequest", "RepatriationApproval"])
def test_every_input_matches_the_schema_description(registry, schema):
    """Name, label key, required flag, help text and code labels of every input agree with
    `xnode schemas show` (node.schema_docs), for a form holding one item in every list."""
    from node import schema_docs

    full = payloads.full_name(schema)
    described = {row.path: row for row in schema_docs.describe(registry, full)}
    data: dict = {}
    for path in sorted(described, key=len):  # one item in every list of records
        row = described[path]
        if row.repeated and f"{path}[]." in "".join(described):
            forms.apply_operation(data, "add:" + path.replace("[]", "[0]"))
    errors = {re.sub(r"\[\]", "[0]", p): f"problem at {p}" for p in described}
    root = forms.build(registry, full, data, lambda lst, c: f"{lst}/{c}", errors)
    seen = set()
    for f in every_field(root)[1:]:
        path = re.sub(r"\[\d+\]", "[]", f.name)
        if f.name.endswith("]"):  # a list item: the record of its list
            assert f.widget == "fieldset" and f.required and f.key == f.name.rsplit(".")[-1][
                : f.name.rsplit(".")[-1].index("[")]  # fmt: skip
            continue
        row = described[path]
        seen.add(path)
        assert f.key == path.rsplit(".", 1)[-1].removesuffix("[]"), f.name
        assert f.error == f"problem at {path}", f.name
        if f.widget not in ("list",):
            assert f.required == (row.required and f.widget not in ("checks", "lines")), f.name
        assert row.doc in f.doc or not row.doc, f.name
        if row.codes and f.widget in ("select", "checks"):
            code_list = f.options[0][1].split("/")[0]
            assert [c for c, _ in f.options] == [c for c, _ in row.codes], f.name
            assert all(label == f"{code_list}/{c}" for c, label in f.options), f.name
        if f.widget == "list":
            assert f.count == 1 and f.item_type and not f.required
    assert seen == set(described)  # every field of the schema has its input


def test_lists_keep_their_order_and_drop_only_empty_items(registry):
    schema = payloads.full_name("Alert")
    form = forms.Form([
        ("intended_route#count", "3"), ("intended_route[0].country", "ZW"),
        ("intended_route[1].country", ""), ("intended_route[2].country", "ZA"),
        ("intended_route[2].place_name", "Johannesburg"),
        ("subjects#count", "1"), ("subjects[0].person.aliases", " KB \n\nUncle Kelvin\n"),
        ("subjects[0].person.prs_Citizenship", "ZW"),
        ("time_window.start", "2026-11-22T06:00:15"),
    ])  # fmt: skip
    payload = forms.parse(registry, schema, form)
    assert payload["intended_route"] == [
        {"country": "ZW"}, {"country": "ZA", "place_name": "Johannesburg"}]  # fmt: skip
    assert payload["subjects"][0]["person"]["aliases"] == ["KB", "Uncle Kelvin"]
    assert payload["subjects"][0]["person"]["prs_Citizenship"] == ["ZW"]
    assert payload["time_window"] == {"start": "2026-11-22T06:00:15Z"}
    kept = forms.parse(registry, schema, form, keep_empty=True)
    assert len(kept["intended_route"]) == 3 and kept["intended_route"][1] == {}
    assert "intended_route" not in forms.parse(
        registry, schema, forms.Form([("intended_route#count", "x"), ("intended_route[0].country", "ZW")]))  # fmt: skip


def test_booleans_and_numbers(registry):
    schema = payloads.full_name("RepatriationApproval")
    shown = forms.build(registry, schema, {"risk_assessment": {"completed": True}},
                        lambda a, b: b)  # fmt: skip
    by = {f.name: f for f in every_field(shown)}
    assert by["risk_assessment.completed"].value is True
    assert by["risk_assessment.asylum_claim_pending"].value is False
    got = forms.parse(registry, schema, forms.Form([("risk_assessment.completed", "on")]))
    assert got["risk_assessment"]["completed"] is True
    assert got["risk_assessment"]["asylum_claim_pending"] is False
    number = forms.parse(registry, payloads.full_name("Alert"), forms.Form([
        ("last_known_locations#count", "1"), ("last_known_locations[0].latitude", "-16.03"),
        ("last_known_locations[0].longitude", "east")]))  # fmt: skip
    assert number["last_known_locations"][0] == {"latitude": -16.03, "longitude": "east"}


def test_refusals_say_what_to_fix():
    with pytest.raises(AccountError, match=r"starting with a letter or digit"):
        check_name("-x")
    with pytest.raises(AccountError, match=r"role 'admin': one of officer, supervisor"):
        check_role("admin")
    with pytest.raises(AccountError, match=r"unknown kind 'receipt'; kinds: alert, mla"):
        check_kinds(["receipt"])
    with pytest.raises(AccountError, match=r"at least 12 characters"):
        check_password("short", "mwila")
    with pytest.raises(AccountError, match=r"at most 1024 characters"):
        check_password("x" * 1025, "mwila")
    assert check_password("x" * 1024, "mwila")  # the limit itself is allowed
    with pytest.raises(AccountError, match=r"must not be the user name"):
        check_password("mwila.banda1", "mwila.banda1")


def test_a_refusal_keeps_the_lock_state_as_it_was():
    until = NOW + LOCK
    d = decide_login(user(disabled_at=NOW, failed_logins=2, locked_until=until), True, NOW, 5,
                     LOCK)  # fmt: skip
    assert (d.failed_logins, d.locked_until) == (2, until)
    d = decide_login(user(failed_logins=5, locked_until=until), False, NOW, 5, LOCK)
    assert (d.reason, d.failed_logins, d.locked_until, d.just_locked) == (
        "locked", 5, until, False)  # fmt: skip
    d = decide_login(None, False, NOW, 5, LOCK)
    assert (d.failed_logins, d.locked_until) == (0, None)
    assert decide_login(user(), True, NOW, 5, LOCK).reason == "signed-in"


def test_a_session_remembers_who_opened_it_and_ends_on_time():
    book = SessionBook(idle=900, lifetime=3600)
    s = book.open("mwila", "supervisor", now=100, language="fr", credential="$argon2id$h")
    assert (s.user, s.role, s.language, s.credential) == ("mwila", "supervisor", "fr",
                                                          "$argon2id$h")  # fmt: skip
    assert (s.created, s.last_seen) == (100, 100) and len(s.csrf) == len(s.session_id) == 43
    assert book.open("x1", "officer", 0).credential == ""
    for moment in range(100, 3700, 800):
        assert book.get(s.session_id, moment) is s
    assert book.get(s.session_id, 3700) is s  # exactly the lifetime: still open
    assert book.get(s.session_id, 3701) is None
    t = book.open("tendai", "officer", 0)
    book.close(t.session_id)
    book.close("no such session")
    assert book.get(t.session_id, 1) is None
    u = book.open("rudo", "officer", 0)
    assert len(book) == 2  # x1 and rudo
    book.sweep(901)
    assert len(book) == 0 and book.get(u.session_id, 1) is None


def test_kinds_with_an_open_side_are_handled_by_everyone():
    open_recipients = Policy.from_config(("mla: prosecution -> *",))
    assert "mla" in handled_kinds(open_recipients, ("shelter",))
    open_senders = Policy.from_config(("mla: * -> prosecution",))
    assert "mla" in handled_kinds(open_senders, ("shelter",))
    neither = Policy.from_config(("mla: prosecution -> central-authority",))
    assert "mla" not in handled_kinds(neither, ("shelter",))
    assert "mla" in handled_kinds(neither, ("central-authority",))
    assert "mla" in handled_kinds(neither, ("prosecution",))


def test_small_form_details(registry):
    schema = payloads.full_name("Alert")
    root = forms.build(registry, schema, {}, lambda a, b: b)
    assert root.doc.startswith("A cross-border alert") and root.key == "" and root.required
    fields = {f.name: f for f in every_field(root)}
    person = forms.build(registry, schema, {"subjects": [{}]}, lambda a, b: b)
    by = {f.name: f for f in every_field(person)}
    assert by["subjects[0].person.prs_Birthdate"].widget == "date"
    assert fields["valid_until"].widget == "datetime"
    locations = forms.build(registry, schema, {"last_known_locations": [{}]}, lambda a, b: b)
    assert {f.name: f for f in every_field(locations)}[
        "last_known_locations[0].latitude"].widget == "number"  # fmt: skip
    shown = forms.build(registry, schema, {"valid_until": "2026-11-29T06:40:00.000Z",
                                           "time_window": {"start": "2026-11-22T06:40:15Z"}},
                        lambda a, b: b)  # fmt: skip
    values = {f.name: f.value for f in every_field(shown)}
    assert values["valid_until"] == "2026-11-29T06:40"
    assert values["time_window.start"] == "2026-11-22T06:40:15"
    text = forms.parse(registry, schema, forms.Form([("description", " one\r\ntwo \r\n")]))
    assert text["description"] == "one\ntwo"
    form = forms.Form([("a", "1"), ("a", "2")])
    assert "a" in form and "b" not in form and form.get("a") == "2" and form.all("a") == ["1", "2"]
    assert form.get("b") == "" and form.all("b") == []
    items = {"subjects": [{}, {}]}
    assert forms.apply_operation(items, "remove:subjects[2]") == {"subjects": [{}, {}]}
    assert forms.apply_operation(items, "remove:subjects[1]") == {"subjects": [{}]}
    full = {"subjects": [{}] * forms.MAX_ITEMS}
    assert len(forms.apply_operation(full, "add:subjects")["subjects"]) == forms.MAX_ITEMS
    nearly = {"subjects": [{}] * (forms.MAX_ITEMS - 1)}
    assert len(forms.apply_operation(nearly, "add:subjects")["subjects"]) == forms.MAX_ITEMS
    assert forms.error_name("$") == "" and forms.error_name("to") == "to"


def test_languages_in_detail():
    assert i18n.negotiate("fr;q=0") == "en"  # q=0: not acceptable
    assert i18n.negotiate("pt;q=1, fr") == "pt"  # no q means 1: equal, the first wins
    assert i18n.negotiate("fr;q=1.2.3, pt") == "pt"
    assert i18n.negotiate("") == "en" and i18n.negotiate("", default="fr") == "fr"
    assert i18n.negotiate(",".join(["de"] * 19 + ["fr"])) == "fr"  # the 20th is still read
    assert i18n.humanise("x") == "X" and i18n.humanise("") == ""
    assert i18n.humanise("per_RoleInProcess") == "Role in process"
    assert i18n.humanise("next_follow_up") == "Next follow up"
    fr = i18n.Translator("fr")
    assert fr.field("prs_FirstName") not in ("First name", "")  # the French label
    assert i18n.Translator("en").field("prs_FirstName") == "First name"  # en.json
    assert fr.field("a_field_no_catalog_has") == "A field no catalog has"
    assert fr("Audit chain intact: {count} entries.", count=2).count("2") == 1
    assert i18n.Translator("en")("{not a placeholder}") == "{not a placeholder}"


def test_reply_and_timeline_details():
    assert threads_view.replies("repatriation", "RepatriationProposal") == [
        "RepatriationFamilyAssessment", "CaseUpdate"]  # fmt: skip
    assert threads_view.replies("receipt", "Receipt") == []
    same_time = [{"id": "b", "created_at": "t"}, {"id": "a", "created_at": "t"},
                 {"id": "c"}]  # fmt: skip
    assert [i["id"] for i in threads_view.timeline(same_time, [])] == ["c", "a", "b"]
    progress = threads_view.repatriation_progress(
        [{"kind": "repatriation", "payload_schema": "RepatriationHandover"}]
    )
    assert [p["step"] for p in progress] == list(threads_view.REPATRIATION_STEPS)
    assert [p["done"] for p in progress].count(True) == 1


def test_peeking_at_a_session_is_not_use():
    """A live view checks its session without keeping it alive (the review found an open
    tab that never idled out)."""
    book = SessionBook(idle=900, lifetime=3600)
    s = book.open("mwila", "officer", now=0)
    assert book.peek(s.session_id, 800) is s and s.last_seen == 0
    assert book.peek(s.session_id, 901) is None and book.get(s.session_id, 902) is None
    assert book.peek("missing", 1) is None
