"""The record of processing activities (GDPR art. 30 style) of one node. Pure: no I/O.

A data-protection officer signs off what the node *does*, so the record is computed from what
governs the node rather than written by hand: the configuration (who the controller is, how
long data is kept, how keys rotate), the role policy (to which roles each kind may go), the
peers the node knows (the concrete recipients, and which of them are in another country) and
the payload schemas (which personal data each kind can carry). A hand-kept list would drift the
first time someone adds a field; walking the Avro schemas makes a new ``Person`` field, a new
record or a new payload appear in the next record printed.

What cannot be derived — the controller's address, the DPO's name, the lawful basis under the
applicable data-protection law, the safeguards of each third-country transfer, the DPIA — is
printed as a blank to fill in, never guessed.

:func:`build_record` makes the model; :func:`render_markdown` and :func:`render_json` print it.
:func:`known_peers` turns the node directory's peers and trust list into the one list the
record needs. ``node/cli/processing.py`` is the shell that reads the files and writes the output.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import urllib.parse
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pycountry

from node.codec import PRIMITIVES, SchemaRegistry
from node.config import Config
from node.payloads import KINDS, payloads_of, short_name
from node.policy import Policy, Rule
from node.routing.ids import ROLES, country_of
from node.trust import Descriptor
from node.trustlist import TrustList

ACTIVE = "active"
FORMATS = ("markdown", "json")

# What each kind is for, in words a DPO can sign. A kind missing here is printed as such, so a
# new kind cannot slip into the record without a stated purpose.
PURPOSES: Mapping[str, str] = {
    "alert": "Prevent and detect trafficking in persons and migrant smuggling, and find missing"
    " persons and possible victims, by alerting competent authorities in other countries.",
    "mla": "Mutual legal assistance between judicial and law-enforcement authorities in"
    " criminal investigations, prosecutions and proceedings.",
    "referral": "Transnational referral of (possible) victims of trafficking for identification,"
    " protection and assistance.",
    "repatriation": "Safe and voluntary return of victims to their country of origin or"
    " residence: family and risk assessment, travel, handover and reintegration follow-up.",
    "statistics": "Anonymised statistics for evidence-based policy and regional reporting"
    " (SDG 16.2.2): counts only, protected against disclosure; no personal data is sent.",
}
KIND_TITLES: Mapping[str, str] = {
    "alert": "Alerts",
    "mla": "Mutual legal assistance",
    "referral": "Transnational referrals",
    "repatriation": "Repatriation of victims",
    "statistics": "Anonymised statistics",
}

# Schema record -> the category of personal data it carries. Records absent here and from
# NOT_PERSONAL are listed as "not yet described", so a new record is seen, not missed.
RECORD_CATEGORIES: Mapping[str, str] = {
    "xnode.common.Person": "Identification data: names, aliases, date of birth or estimated age,"
    " gender, citizenship, languages, physical description",
    "xnode.common.IdentityDocument": "Identity and travel documents: type, number, issuing"
    " country, expiry",
    "xnode.common.Contact": "Contact details of named persons: name, function, telephone, e-mail",
    "xnode.common.Location": "Location data: places, border posts, coordinates, routes",
    "xnode.common.Vehicle": "Vehicles: registration, make, model, colour",
    "xnode.common.AlertSubject": "Role of each person in an alert, where and when last seen",
    "xnode.common.PersonConcerned": "Persons concerned by a request: where they are and why"
    " they matter",
    "xnode.common.VictimContext": "Trafficking experience: status, recruitment, methods of"
    " control, relationship to the trafficker, type of exploitation, age when trafficked",
    "xnode.common.ChildSafeguards": "Child safeguards: guardian, best-interests determination",
    "xnode.common.Consent": "Consent record: what the person agreed to, who recorded it, when",
    "xnode.common.Override": "Safeguard overrides: the reason, who decided, on what authority",
    "xnode.common.RiskAssessment": "Risk and protection assessment: risk level, pending asylum"
    " claim, international-protection needs, risks on return",
    "xnode.common.Offence": "Offences under investigation and their legal provisions",
    "xnode.common.Attachment": "Attached files, identified by SHA-256 (their content is not"
    " described by the schemas and may hold any personal data)",
}
# Records that carry no personal data of their own (organisations, time spans, message ids).
NOT_PERSONAL: frozenset[str] = frozenset(
    {
        "xnode.common.Handling",
        "xnode.common.Organisation",
        "xnode.common.TimeWindow",
        "xnode.payload.ErasureOrigin",
        "xnode.payload.ErasureItem",
        "xnode.payload.ReceiptEntry",
        # anonymised counts (docs/statistics.md): protected tables, no record about a person
        "xnode.common.DisclosureMethod",
        "xnode.common.StatisticsTable",
        "xnode.common.StatisticsCell",
    }
)
# Coded fields that are personal data in themselves.
ENUM_CATEGORIES: Mapping[str, str] = {
    "xnode.codes.NeedType": "Assistance needs (e.g. medical care, psychosocial support, shelter)",
    "xnode.codes.RoleInProcess": "Suspected role in the trafficking process",
    "xnode.codes.TravelDocumentStatus": "Travel document status",
}

# Records and coded fields that reveal who the data is about.
RECORD_SUBJECTS: Mapping[str, str] = {
    "xnode.common.VictimContext": "victims and possible victims of trafficking",
    "xnode.common.ChildSafeguards": "children (under 18) and their guardians",
    "xnode.common.PersonConcerned": "persons concerned by an MLA request (suspects, witnesses,"
    " account holders and others)",
    "xnode.common.Offence": "suspects and accused persons",
    "xnode.common.Contact": "officials, case workers, escorts and other contact persons",
    "xnode.common.Override": "officials who decide to override a safeguard",
}
STAFF_SUBJECTS: frozenset[str] = frozenset(
    {RECORD_SUBJECTS["xnode.common.Contact"], RECORD_SUBJECTS["xnode.common.Override"]}
)
ENUM_SUBJECTS: Mapping[str, str] = {
    "xnode.codes.RoleInProcess": "suspects (alleged traffickers and smugglers)",
    "xnode.codes.TravelDocumentStatus": "migrants and returnees crossing a border",
}
# Coded fields whose *symbols* name kinds of data subject (each symbol becomes one category).
SUBJECT_ROLE_ENUMS: frozenset[str] = frozenset({"xnode.codes.SubjectRole"})
_SUBJECT_SYMBOLS: Mapping[str, str] = {
    "PossibleVictim": "possible victims",
    "Suspect": "suspects",
    "Witness": "witnesses",
    "Companion": "companions of a person named in an alert",
    "Other": "other persons named in an alert",
}
# Anything else holding a Person: the data subjects are "persons named" at that path.
PERSON_RECORD = "xnode.common.Person"

# Sensitive data (GDPR art. 9 special categories, art. 10 criminal-offence data, and the two
# groups this network handles that deserve the same care: children and victims), by record ...
RECORD_SENSITIVE: Mapping[str, str] = {
    "xnode.common.VictimContext": "data about victims of crime",
    "xnode.common.ChildSafeguards": "data about children",
    "xnode.common.Offence": "criminal offences (art. 10)",
    "xnode.common.RiskAssessment": "asylum and international-protection status",
}
ENUM_SENSITIVE: Mapping[str, str] = {
    "xnode.codes.RoleInProcess": "criminal offences (art. 10)",
}
# ... and by words in a field name or a code (a new ``medical_history`` field is caught).
SENSITIVE_WORDS: tuple[tuple[str, str], ...] = (
    ("medical", "health (art. 9)"),
    ("health", "health (art. 9)"),
    ("psycho", "health (art. 9)"),
    ("disab", "health (art. 9)"),
    ("pregnan", "health (art. 9)"),
    ("organ_removal", "health (art. 9)"),
    ("sex", "sex life (art. 9)"),
    ("racial", "racial or ethnic origin (art. 9)"),
    ("ethnic", "racial or ethnic origin (art. 9)"),
    ("religio", "religious or philosophical beliefs (art. 9)"),
    ("biometric", "biometric data (art. 9)"),
    ("genetic", "genetic data (art. 9)"),
    ("asylum", "asylum and international-protection status"),
    ("offence", "criminal offences (art. 10)"),
    ("suspect", "criminal offences (art. 10)"),
    ("child", "data about children"),
    ("victim", "data about victims of crime"),
)
# Code lists whose codes only sound sensitive (an industry sector named "human health").
NOT_SENSITIVE_ENUMS: frozenset[str] = frozenset({"xnode.codes.ForcedLabourIndustry"})
# Free-text fields: whatever an officer types may name or describe a person.
FREE_TEXT_WORDS: tuple[str, ...] = (
    "note", "description", "detail", "finding", "summary", "facts", "result", "outcome",
    "reason", "title", "subject_matter", "conditions", "status", "relevance",
)  # fmt: skip
FREE_TEXT = "Free text (notes, descriptions, findings, reasons) that may name or describe persons"


# -- the model ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """A node this node knows, as the record needs it: who, where, which roles, usable or not."""

    node_id: str
    country: str  # ISO 3166-1 alpha-2, upper case (as in the payloads)
    roles: tuple[str, ...]
    name: str
    status: str = ACTIVE  # active, revoked, suspended, not in trust list


@dataclass(frozen=True)
class Finding:
    """One category (of data, of data subjects, of sensitive data) and the schema fields that
    carry it, so the DPO can check the claim against ``xnode schemas show``."""

    label: str
    where: tuple[str, ...]


@dataclass(frozen=True)
class KindRecord:
    """One processing activity: the exchange of one kind of message."""

    kind: str
    title: str
    purpose: str
    payloads: tuple[str, ...]
    rules: tuple[str, ...]
    sends: bool
    receives: bool
    recipient_roles: tuple[str, ...]
    recipients: tuple[str, ...]
    source_roles: tuple[str, ...]
    sources: tuple[str, ...]
    data_subjects: tuple[Finding, ...]
    personal_data: tuple[Finding, ...]
    sensitive_data: tuple[Finding, ...]


@dataclass(frozen=True)
class Transfer:
    """Disclosure to, or receipt from, nodes in another country (GDPR chapter V)."""

    country: str
    country_name: str
    peers: tuple[str, ...]
    kinds_sent: tuple[str, ...]
    kinds_received: tuple[str, ...]


@dataclass(frozen=True)
class RetentionRow:
    what: str
    period: str
    setting: str


@dataclass(frozen=True)
class Controller:
    node_id: str
    name: str
    roles: tuple[str, ...]
    country: str
    country_name: str
    mode: str


@dataclass(frozen=True)
class ProcessingRecord:
    generated_at: dt.datetime
    controller: Controller
    activities: tuple[KindRecord, ...]
    peers: tuple[Peer, ...]
    transfers: tuple[Transfer, ...]
    legal_basis: tuple[str, ...]
    retention: tuple[RetentionRow, ...]
    retention_notes: tuple[str, ...]
    security: tuple[str, ...]
    local_disclosures: tuple[str, ...]
    to_complete: tuple[str, ...]


# -- peers --------------------------------------------------------------------------------------


def known_peers(
    own_id: str,
    descriptors: Iterable[Descriptor],
    revoked: Collection[str],
    trust_list: TrustList | None,
    now: dt.datetime,
) -> tuple[Peer, ...]:
    """The peers the node would use, as the running node sees them (``service._reload_peers``).

    Bilateral mode: the stored descriptors, a locally revoked one marked so. Federated mode: the
    trust list's members with the roles the governors granted — a member whose descriptor has
    not arrived yet is still a recipient tomorrow, so it is listed — and a stored descriptor the
    list does not name marked as unused."""
    peers: dict[str, Peer] = {}
    if trust_list is None:
        for d in descriptors:
            status = "revoked" if d.node_id in revoked else ACTIVE
            peers[d.node_id] = Peer(d.node_id, d.country.upper(), d.roles, d.display_name, status)
    else:
        for m in trust_list.members:
            if m.node_id == own_id:
                continue
            barred = m.status != ACTIVE and m.status_since <= now
            status = "revoked" if m.node_id in revoked else (m.status if barred else ACTIVE)
            peers[m.node_id] = Peer(m.node_id, m.country.upper(), m.roles, m.display_name, status)
        for d in descriptors:
            if d.node_id not in peers and d.node_id != own_id:
                peers[d.node_id] = Peer(
                    d.node_id, d.country.upper(), d.roles, d.display_name, "not in trust list"
                )
    return tuple(peers[n] for n in sorted(peers))


# -- walking the schemas ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Seen:
    """One thing met in a schema: a record, an enum (with its symbols) or a field."""

    what: str  # "record", "enum", "field"
    name: str  # full type name, or field name
    path: str
    parent: str  # the record whose field this is (or that holds it)
    symbols: tuple[str, ...] = ()
    text: bool = False  # a field whose value is a string


def _walk(
    schema: Any, named: Mapping[str, Any], path: str, stack: tuple[str, ...]
) -> Iterator[_Seen]:
    """Every record, enum and field reachable from ``schema``, with its path from the payload
    (``Alert.subjects[].person``). A record already on the path is not entered again."""
    parent = stack[-1] if stack else ""
    if isinstance(schema, str):
        if schema not in PRIMITIVES and schema in named:
            yield from _walk(named[schema], named, path, stack)
        return
    if isinstance(schema, list):
        for branch in schema:
            yield from _walk(branch, named, path, stack)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if kind in ("record", "error"):
        name = schema["name"]
        if name in stack:
            return
        yield _Seen("record", name, path, parent)
        for f in schema.get("fields", ()):
            field_path = f"{path}.{f['name']}"
            yield _Seen("field", f["name"], field_path, name, text=_is_text(f["type"]))
            yield from _walk(f["type"], named, field_path, (*stack, name))
    elif kind == "enum":
        yield _Seen("enum", schema["name"], path, parent, tuple(schema.get("symbols", ())))
    elif kind == "array":
        yield from _walk(schema["items"], named, f"{path}[]", stack)
    elif kind == "map":
        yield from _walk(schema["values"], named, f"{path}{{}}", stack)
    elif isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind in named):
        yield from _walk(kind, named, path, stack)


def _is_text(schema: Any) -> bool:
    if schema == "string":
        return True
    if isinstance(schema, list):
        return any(_is_text(b) for b in schema)
    if isinstance(schema, dict):
        return schema.get("type") == "string" and "logicalType" not in schema
    return False


def _words(name: str) -> str:
    """``vic_TypeOfSexExploitation`` / ``SexualExploitation`` -> lower-case, snake-separated."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _plural_of_symbol(symbol: str) -> str:
    return _SUBJECT_SYMBOLS.get(symbol) or f"{_words(symbol).replace('_', ' ')} (persons)"


class _Collector:
    """Findings by label, each with the paths where it was met, in first-met order."""

    def __init__(self) -> None:
        self._found: dict[str, dict[str, None]] = {}

    def add(self, label: str, where: str) -> None:
        """Record ``label`` at ``where``; ``x.offences`` and ``x.offences[]`` count once."""
        paths = self._found.setdefault(label, {})
        if where.removesuffix("[]") + "[]" not in paths and where.removesuffix("[]") not in paths:
            paths[where] = None

    def result(self) -> tuple[Finding, ...]:
        return tuple(Finding(label, tuple(paths)) for label, paths in self._found.items())


def _personal_data(
    registry: SchemaRegistry, payloads: Sequence[str]
) -> tuple[tuple[Finding, ...], tuple[Finding, ...], tuple[Finding, ...]]:
    """Data subjects, categories of personal data and sensitive data that the payload records
    of one kind can carry, each with the schema paths that carry it."""
    subjects, data, sensitive = _Collector(), _Collector(), _Collector()
    for full in payloads:
        info = registry.schema(full)
        for seen in _walk(info.standalone, info.named, short_name(full), ()):
            if seen.parent in NOT_PERSONAL and seen.what != "record":
                continue  # an organisation's type, an erasure's hold reason: not about a person
            if seen.what == "record":
                _record_findings(seen, full, subjects, data, sensitive)
            elif seen.what == "enum":
                _enum_findings(seen, subjects, data, sensitive)
            else:
                words = _words(seen.name)
                for word, label in SENSITIVE_WORDS:
                    if word in words:
                        sensitive.add(label, seen.path)
                if seen.text and any(w in words for w in FREE_TEXT_WORDS):
                    data.add(FREE_TEXT, seen.path)
    # The people the case is about first; the officials who handle it after them.
    about = sorted(subjects.result(), key=lambda f: f.label in STAFF_SUBJECTS)
    return tuple(about), data.result(), sensitive.result()


def _record_findings(
    seen: _Seen, payload: str, subjects: _Collector, data: _Collector, sensitive: _Collector
) -> None:
    name = seen.name
    if name == payload or name in NOT_PERSONAL:
        return
    undescribed = f"{name.rpartition('.')[2]} records (not yet described in {__name__})"
    data.add(RECORD_CATEGORIES.get(name, undescribed), seen.path)
    if name in RECORD_SUBJECTS:
        subjects.add(RECORD_SUBJECTS[name], seen.path)
    elif name == PERSON_RECORD:
        subjects.add("persons identified by name or document", seen.path)
    if name in RECORD_SENSITIVE:
        sensitive.add(RECORD_SENSITIVE[name], seen.path)


def _enum_findings(
    seen: _Seen, subjects: _Collector, data: _Collector, sensitive: _Collector
) -> None:
    name = seen.name
    if name in ENUM_CATEGORIES:
        data.add(ENUM_CATEGORIES[name], seen.path)
    if name in ENUM_SUBJECTS:
        subjects.add(ENUM_SUBJECTS[name], seen.path)
    if name in ENUM_SENSITIVE:
        sensitive.add(ENUM_SENSITIVE[name], seen.path)
    if name in SUBJECT_ROLE_ENUMS:
        for symbol in seen.symbols:
            subjects.add(_plural_of_symbol(symbol), f"{seen.path} = {symbol}")
    if name in NOT_SENSITIVE_ENUMS:
        return
    matched: dict[str, list[str]] = {}
    for symbol in seen.symbols:
        words = _words(symbol)
        for label in dict.fromkeys(label for word, label in SENSITIVE_WORDS if word in words):
            matched.setdefault(label, []).append(symbol)
    for label, symbols in matched.items():
        sensitive.add(label, f"{seen.path} ({', '.join(symbols)})")


# -- policy -------------------------------------------------------------------------------------


def _ordered(roles: Iterable[str]) -> tuple[str, ...]:
    chosen = set(roles)
    return tuple(r for r in ROLES if r in chosen)


def _rule_text(rule: Rule) -> str:
    def side(roles: frozenset[str]) -> str:
        return ",".join(_ordered(roles)) if roles else "*"

    return f"{rule.kind}: {side(rule.senders)} -> {side(rule.recipients)}"


def _roles_reached(rules: Iterable[Rule], own: Sequence[str], outgoing: bool) -> tuple[str, ...]:
    """The roles this node may send to (``outgoing``) or accept from, under ``rules``."""
    reached: set[str] = set()
    for rule in rules:
        mine, theirs = rule.senders, rule.recipients
        if not outgoing:
            mine, theirs = theirs, mine
        if not mine or any(r in mine for r in own):
            reached |= set(theirs) if theirs else set(ROLES)
    return _ordered(reached)


# -- building the record ------------------------------------------------------------------------


def _country_name(code: str) -> str:
    country = pycountry.countries.get(alpha_2=code.upper())
    return str(country.name) if country is not None else code.upper()


def build_record(
    config: Config,
    peers: Sequence[Peer],
    registry: SchemaRegistry,
    generated_at: dt.datetime,
    *,
    federation: str | None = None,
) -> ProcessingRecord:
    """The record of processing of the node configured by ``config``, knowing ``peers``.

    ``federation`` names the trust list the node applies (None: bilateral mode)."""
    own_roles = config.node.roles
    own_country = country_of(config.node.id)
    policy = Policy.from_config(config.policy.rules)
    usable = [p for p in peers if p.status == ACTIVE]
    activities = tuple(_activity(kind, policy, own_roles, usable, registry) for kind in _kinds())
    controller = Controller(
        node_id=config.node.id,
        name=config.node.name,
        roles=tuple(own_roles),
        country=own_country.upper(),
        country_name=_country_name(own_country),
        mode=f"federated (trust list {federation})" if federation else "bilateral",
    )
    return ProcessingRecord(
        generated_at=generated_at,
        controller=controller,
        activities=activities,
        peers=tuple(peers),
        transfers=_transfers(own_country, usable, activities),
        legal_basis=_legal_basis(registry),
        retention=_retention(config),
        retention_notes=_retention_notes(registry),
        security=_security(config),
        local_disclosures=_local_disclosures(config),
        to_complete=TO_COMPLETE,
    )


def _kinds() -> tuple[str, ...]:
    """Every business kind; receipts carry ids, hashes and outcomes, no case data."""
    return tuple(k for k in KINDS if k != "receipt")


def _activity(
    kind: str,
    policy: Policy,
    own_roles: Sequence[str],
    peers: Sequence[Peer],
    registry: SchemaRegistry,
) -> KindRecord:
    rules = policy.rules.get(kind, ())
    recipients = tuple(p.node_id for p in peers if policy.allows(kind, own_roles, p.roles))
    sources = tuple(p.node_id for p in peers if policy.allows(kind, p.roles, own_roles))
    payloads = payloads_of(kind)
    subjects, data, sensitive = _personal_data(registry, payloads)
    recipient_roles = _roles_reached(rules, own_roles, outgoing=True)
    source_roles = _roles_reached(rules, own_roles, outgoing=False)
    return KindRecord(
        kind=kind,
        title=KIND_TITLES.get(kind, kind),
        purpose=PURPOSES.get(kind, "NOT DESCRIBED: add this kind to processing_record.PURPOSES"),
        payloads=tuple(short_name(p) for p in payloads),
        rules=tuple(_rule_text(r) for r in rules),
        sends=bool(recipient_roles),
        receives=bool(source_roles),
        recipient_roles=recipient_roles,
        recipients=recipients,
        source_roles=source_roles,
        sources=sources,
        data_subjects=subjects,
        personal_data=data,
        sensitive_data=sensitive,
    )


def _transfers(
    own_country: str, peers: Sequence[Peer], activities: Sequence[KindRecord]
) -> tuple[Transfer, ...]:
    """Every usable peer in another country with which this node may exchange something."""
    by_country: dict[str, list[Peer]] = {}
    for p in peers:
        if p.country.upper() != own_country.upper():
            by_country.setdefault(p.country.upper(), []).append(p)
    transfers = []
    for country in sorted(by_country):
        ids = {p.node_id for p in by_country[country]}
        sent = tuple(a.kind for a in activities if ids & set(a.recipients))
        received = tuple(a.kind for a in activities if ids & set(a.sources))
        if not sent and not received:
            continue
        involved = tuple(
            sorted(n for n in ids if any(n in a.recipients or n in a.sources for a in activities))
        )
        transfers.append(Transfer(country, _country_name(country), involved, sent, received))
    return tuple(transfers)


def _field_doc(registry: SchemaRegistry, record: str, field: str) -> str | None:
    """The ``doc`` of ``record.field`` in the schemas, or None if the schemas lack it."""
    for name in registry.names():
        named = registry.schema(name).named
        if record in named:
            for f in named[record].get("fields", ()):
                if f["name"] == field:
                    return str(f.get("doc", "")) or None
            return None
    return None


_HANDLING = "xnode.common.Handling"


def _legal_basis(registry: SchemaRegistry) -> tuple[str, ...]:
    basis = _field_doc(registry, _HANDLING, "legal_basis")
    instrument = _field_doc(registry, _HANDLING, "legal_instrument")
    lines = [
        "The legal basis is stated per message, by its sender: handling.legal_basis"
        + _quoted(basis)
        + (f" and handling.legal_instrument{_quoted(instrument)}" if instrument else "")
        + ". Every payload carries it; a recipient can show it for each message it holds.",
        "Instruments named in the node's configuration or policy: none (neither has a setting"
        " for them); the instruments relied on are those the messages name.",
        "The role policy (section 2) limits each kind to the authorities whose mandate it"
        " serves; the sender checks it before sealing and the recipient again before opening.",
    ]
    return tuple(lines)


def _quoted(doc: str | None) -> str:
    """A schema field's doc as a parenthesised quotation, or nothing."""
    return f" (schema: “{doc.strip().rstrip('.')}”)" if doc else ""


def _retention_notes(registry: SchemaRegistry) -> tuple[str, ...]:
    """What shortens or lengthens the periods above, message by message."""
    return (
        "Each message also carries its sender's handling.retention_days"
        + _quoted(_field_doc(registry, _HANDLING, "retention_days"))
        + ": the node deletes a received message at that limit when it comes before the"
        " period above.",
        "Erasure: the originator of a message may ask every recipient to erase it (consent"
        " withdrawn, data inaccurate, retention ended); the recipient erases every copy and"
        " answers with a signed ErasureResult, or Held with the reason.",
        "Legal holds: a supervisor may record a hold on a message or a thread (e.g. evidence in"
        " judicial proceedings); while it is in force neither retention nor erasure deletes it."
        " Holds are audited.",
    )


def _retention(config: Config) -> tuple[RetentionRow, ...]:
    s, c = config.store, config.console
    rows = [
        RetentionRow(
            "Received messages (inbox, kept sealed), from arrival",
            f"{s.inbox_retention_days} days",
            "store.inbox_retention_days",
        ),
        RetentionRow(
            "Sent messages (outbox, kept sealed), from their final state",
            f"{s.outbox_retention_days} days",
            "store.outbox_retention_days",
        ),
        RetentionRow(
            "Refused records (quarantine), from arrival",
            f"{s.quarantine_retention_days} days",
            "store.quarantine_retention_days",
        ),
        RetentionRow(
            "Message ids, senders and hashes remembered to refuse replays (no content)",
            "until shortly after the message expires (lifetime at most"
            f" {config.envelope.max_lifetime_days} days), or while the inbox holds it",
            "envelope.max_lifetime_days",
        ),
        RetentionRow(
            "Audit log: event metadata and hashes, never content (a purged message stays as"
            " its id and hash)",
            "not deleted (accountability)",
            "-",
        ),
    ]
    if c.enabled:
        rows.append(
            RetentionRow(
                "Officer console drafts, from their last save",
                f"{c.draft_retention_days} days",
                "console.draft_retention_days",
            )
        )
    if config.folder.path:
        where = "inbox/ and sent/" if config.folder.inbox_files else "sent/"
        rows.append(
            RetentionRow(
                f"Plaintext files of the folder adapter ({where})",
                "until the local office deletes them (the node does not, except on erasure)",
                "folder.path, folder.inbox_files",
            )
        )
    rows.append(
        RetentionRow(
            "Ciphertext on the Kafka broker",
            "the topics' retention, set on the cluster (not by the node)",
            "-",
        )
    )
    return tuple(rows)


def _security(config: Config) -> tuple[str, ...]:
    k, a, kafka = config.keys, config.audit, config.kafka
    passphrase = (
        "protected by a passphrase (keys.passphrase_file)"
        if k.passphrase_file
        else "protected by a passphrase only if XNODE_KEY_PASSPHRASE is set (keys.passphrase_file"
        " is empty)"
    )
    transport = f"Connection to the broker: kafka.security_protocol = {kafka.security_protocol}" + (
        " — neither encrypted nor authenticated (payloads still are); use SASL_SSL in production."
        if kafka.security_protocol == "PLAINTEXT"
        else "."
    )
    return (
        "Origin and integrity: every envelope and receipt is signed with the sender's Ed25519"
        " identity key and verified before anything is decrypted or parsed.",
        "Confidentiality end to end: each payload is encrypted with ChaCha20-Poly1305 under a"
        " fresh key, wrapped to each recipient with HPKE (RFC 9180, X25519, HKDF-SHA256); the"
        " broker and any other node see only the header (ids, kind, sender, recipients, times).",
        "At rest: the inbox and outbox keep the sealed envelope; the node decrypts a message only"
        " when a local system reads it. Private keys are files readable only by the node (0600),"
        f" {passphrase}.",
        f"Key rotation: encryption keys are valid {k.encryption_valid_days} days"
        f" (keys.encryption_valid_days); a replaced key opens what was sealed to it for"
        f" {k.retired_key_days} days (keys.retired_key_days), then stored messages are re-wrapped"
        " and it is destroyed. Peers can be revoked at once (xnode peers revoke).",
        "Accountability: every submission, publication, reception, receipt, refusal, quarantine,"
        " purge and key or trust change is appended to a hash-chained audit log; a signed"
        f" checkpoint every {a.checkpoint_events} events or {a.checkpoint_seconds} s"
        " (audit.checkpoint_events, audit.checkpoint_seconds) is sent to peers so truncation or"
        " rollback is detected (xnode audit verify).",
        "Access: the role policy refuses by default; local systems use bearer tokens scoped per"
        " kind (stored hashed), officers use personal console accounts; every change is audited.",
        "Safeguards before sending: payloads are validated against the schemas; victim data needs"
        " a recorded consent or a documented override, a child a guardian or best-interests"
        " determination.",
        f"Replay and age: a message id is accepted once; envelopes live at most"
        f" {config.envelope.max_lifetime_days} days (envelope.max_lifetime_days).",
        transport,
    )


def _origin(url: str) -> str:
    """Scheme, host and port of a URL: a path or query may hold a secret."""
    parts = urllib.parse.urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def _local_disclosures(config: Config) -> tuple[str, ...]:
    """Where decrypted data leaves the node for the controller's own systems."""
    lines = []
    if config.api.enabled:
        lines.append(
            f"HTTP API on {config.api.host}:{config.api.port}: local systems holding"
            " a token with a read scope receive decrypted messages of those kinds."
        )
    if config.webhook.url:
        lines.append(
            f"Webhook: every received message is posted decrypted to"
            f" {_origin(config.webhook.url)} (HMAC-signed)."
        )
    if config.folder.path and config.folder.inbox_files:
        lines.append(
            f"Folder adapter: received messages are written in plaintext under"
            f" {config.folder.path}/inbox/ (folder.inbox_files)."
        )
    if config.console.enabled:
        lines.append(
            f"Officer console on {config.console.host}:{config.console.port}: officers"
            " read and write messages of the kinds their accounts allow."
        )
    if not lines:
        lines.append("None enabled: messages are read only with the xnode command line.")
    return tuple(lines)


TO_COMPLETE: tuple[str, ...] = (
    "Name and contact details of the controller and of its representative, if any.",
    "Name and contact details of the data protection officer.",
    "Lawful basis under the applicable data-protection law for each activity (e.g. GDPR art. 6),"
    " the condition for special categories (art. 9(2)) and the authorisation for criminal-offence"
    " data (art. 10), or the national equivalents.",
    "For each transfer to another country: the safeguard or derogation relied on (e.g. an"
    " international agreement, art. 46, or art. 49).",
    "Reference of the data protection impact assessment (DPIA).",
    "Processors (hosting, the broker's operator) and joint controllers, if any.",
    "How data subjects' rights are handled (access, rectification, erasure requests).",
)


# -- rendering ----------------------------------------------------------------------------------


def to_json(record: ProcessingRecord) -> dict[str, Any]:
    """The record as plain JSON values (timestamps as ISO 8601 UTC)."""
    doc = dataclasses.asdict(record)
    doc["generated_at"] = record.generated_at.astimezone(dt.UTC).isoformat()
    doc["dpo_sign_off"] = {"name": None, "date": None, "signature": None}
    return doc


def render_json(record: ProcessingRecord) -> str:
    return json.dumps(to_json(record), indent=2, ensure_ascii=False) + "\n"


_MAX_PATHS = 6


def _paths(where: Sequence[str]) -> str:
    shown = ", ".join(f"`{p}`" for p in where[:_MAX_PATHS])
    more = len(where) - _MAX_PATHS
    return shown + (f" and {more} more" if more > 0 else "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _list_or(items: Sequence[str], empty: str) -> str:
    return ", ".join(items) if items else empty


def render_markdown(record: ProcessingRecord) -> str:
    """The record as a Markdown document to print, review and sign."""
    when = record.generated_at.astimezone(dt.UTC)
    out = [
        f"# Record of processing activities: {record.controller.node_id}",
        "",
        f"Generated {when:%Y-%m-%d %H:%M} UTC by `xnode processing-record` from the node's"
        " configuration, role policy, known peers and payload schemas (GDPR art. 30 style)."
        " Generate it again after any change to these; blanks (`____`) are for the data"
        " protection officer.",
        *_md_controller(record.controller),
        "",
        "## 2. Processing activities",
        "",
        "One activity per kind of message. Each kind may also carry case updates and erasure"
        " requests and results on its threads.",
    ]
    peers = {p.node_id: p for p in record.peers}
    for number, activity in enumerate(record.activities, 1):
        out += _md_activity(f"2.{number}", activity, peers)
    out += _md_peers(record)
    out += _md_transfers(record.transfers)
    out += ["", "## 5. Legal basis", ""]
    out += [f"- {line}" for line in record.legal_basis]
    out += ["- Lawful basis under the applicable data-protection law: ____"]
    out += ["", "## 6. Retention", "", "| Data | Kept | Setting |", "|---|---|---|"]
    out += [f"| {_cell(r.what)} | {_cell(r.period)} | `{r.setting}` |" for r in record.retention]
    out += ["", *(f"- {line}" for line in record.retention_notes)]
    out += ["", "## 7. Security measures", ""]
    out += [f"- {line}" for line in record.security]
    out += ["", "## 8. To be completed by the data protection officer", ""]
    out += [f"- {line} ____" for line in record.to_complete]
    out += [
        "",
        "## Sign-off",
        "",
        "Reviewed and approved by the data protection officer:",
        "",
        "| Name | Date | Signature |",
        "|---|---|---|",
        "| ____ | ____ | ____ |",
        "",
    ]
    return "\n".join(out)


def _md_controller(c: Controller) -> list[str]:
    return [
        "",
        "## 1. Controller",
        "",
        "| | |",
        "|---|---|",
        f"| Node | `{c.node_id}` |",
        f"| Name | {_cell(c.name)} |",
        f"| Roles | {', '.join(c.roles)} |",
        f"| Country | {c.country_name} ({c.country}) |",
        f"| Mode | {c.mode} |",
        "| Controller's contact details | ____ |",
        "| Data protection officer | ____ |",
    ]


def _md_activity(number: str, a: KindRecord, peers: Mapping[str, Peer]) -> list[str]:
    rules = "; ".join(f"`{r}`" for r in a.rules) or "no rule"
    out = [
        "",
        f"### {number} {a.title} (`{a.kind}`)",
        "",
        f"**Purpose.** {a.purpose}",
        "",
        f"**Payload records.** {', '.join(a.payloads)}.",
        "",
        f"**Role policy.** {rules}.",
        "",
    ]
    if not a.sends and not a.receives:
        return [
            *out,
            "This node neither sends nor receives this kind under its policy; it processes no"
            " personal data for it.",
        ]
    recipients = (
        f"Roles {', '.join(a.recipient_roles)}; known peers: {_peer_list(a.recipients, peers)}."
        if a.sends
        else "None: the policy allows this node to send no message of this kind."
    )
    sources = (
        f"Roles {', '.join(a.source_roles)}; known peers: {_peer_list(a.sources, peers)}."
        if a.receives
        else "Nobody: the policy allows this node to receive no message of this kind."
    )
    return [
        *out,
        f"**Recipients.** {recipients}",
        "",
        f"**Received from.** {sources}",
        "",
        "**Categories of data subjects.**",
        "",
        *_findings(a.data_subjects),
        "",
        "**Categories of personal data.**",
        "",
        *_findings(a.personal_data),
        "",
        "**Sensitive data** (special categories, criminal-offence data, children, victims).",
        "",
        *_findings(a.sensitive_data),
    ]


def _md_peers(record: ProcessingRecord) -> list[str]:
    out = ["", "## 3. Recipients: known peers", ""]
    if not record.peers:
        out.append("No peers known yet: the recipients are the roles in section 2.")
    else:
        out += [
            "| Node | Name | Country | Roles | Status | Sent | Received |",
            "|---|---|---|---|---|---|---|",
        ]
        for p in record.peers:
            sent = [a.kind for a in record.activities if p.node_id in a.recipients]
            got = [a.kind for a in record.activities if p.node_id in a.sources]
            out.append(
                f"| `{p.node_id}` | {_cell(p.name)} | {p.country} | {', '.join(p.roles)}"
                f" | {p.status} | {_list_or(sent, '-')} | {_list_or(got, '-')} |"
            )
        out += [
            "",
            "Only active peers exchange messages with this node; the others are listed"
            " for completeness.",
        ]
    out += ["", "### Local recipients (the controller's own systems)", ""]
    return out + [f"- {line}" for line in record.local_disclosures]


def _md_transfers(transfers: Sequence[Transfer]) -> list[str]:
    out = ["", "## 4. Transfers to other countries", ""]
    if not transfers:
        return [*out, "None with the peers known now; every peer added in another country is one."]
    out += [
        "| Country | Peers | Kinds sent | Kinds received | Safeguard relied on |",
        "|---|---|---|---|---|",
    ]
    for t in transfers:
        out.append(
            f"| {t.country_name} ({t.country}) | {', '.join(f'`{n}`' for n in t.peers)} |"
            f" {_list_or(t.kinds_sent, '-')} | {_list_or(t.kinds_received, '-')} | ____ |"
        )
    return out


def _peer_list(ids: Sequence[str], peers: Mapping[str, Peer]) -> str:
    if not ids:
        return "none yet"
    return ", ".join(f"`{n}` ({_cell(peers[n].name)}, {peers[n].country})" for n in ids)


def _findings(findings: Sequence[Finding]) -> list[str]:
    if not findings:
        return ["- none"]
    return [f"- {f.label} — {_paths(f.where)}" for f in findings]
