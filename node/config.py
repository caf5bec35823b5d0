"""Node configuration: one TOML file per node, every setting overridable from the environment.

``XNODE_<SECTION>_<KEY>`` overrides ``[section] key`` (e.g. ``XNODE_ENVELOPE_MAX_BYTES=2097152``),
so containers and systemd units can adjust a node without editing its file. Lists are written
comma-separated in the environment. Unknown sections or keys are errors: a mistyped setting
that silently does nothing is worse than a node that refuses to start.

Pure: :func:`parse_config` takes the file text and an environment mapping.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import json
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from node.policy import Policy, PolicyError
from node.routing.ids import InvalidIdentifier, validate_node_id, validate_roles

ENV_PREFIX = "XNODE_"
MAX_LIFETIME_DAYS = 3650  # ten years: far below where date arithmetic overflows


class ConfigError(ValueError):
    """The configuration is invalid; the message names the setting."""


@dataclass(frozen=True)
class NodeSettings:
    """Who this node is."""

    id: str = field(metadata={"doc": "Node id <country>-<agency>, e.g. zm-police."})
    name: str = field(metadata={"doc": "Display name shown to peers."})
    roles: tuple[str, ...] = field(metadata={"doc": "Roles from DESIGN section 3."})
    neighbours: tuple[str, ...] = field(
        default=(), metadata={"doc": 'Node ids addressed by to = "neighbours".'}
    )


def _setting(default: Any, doc: str) -> Any:
    """A settings field whose doc becomes the comment above it in a rendered node.toml."""
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class KeySettings:
    """Key handling."""

    encryption_valid_days: int = _setting(365, "Validity of newly generated encryption keys.")
    retired_key_days: int = _setting(
        30,
        "Days an encryption key replaced by a newer one is kept to open envelopes already sealed"
        " to it; then stored messages are re-wrapped to the current key and it is destroyed"
        " (0: at once, so a message still on its way to the old key is refused).",
    )
    passphrase_file: str = _setting(
        "", "File whose first line is the key passphrase; empty: XNODE_KEY_PASSPHRASE or none."
    )


@dataclass(frozen=True)
class EnvelopeSettings:
    """Limits applied when sealing and opening envelopes."""

    max_bytes: int = _setting(
        1024 * 1024, "Largest envelope sealed or accepted (Kafka's default limit is ~1 MiB)."
    )
    clock_skew_seconds: int = _setting(
        300, "How far in the future an envelope's creation time may lie."
    )
    default_ttl_days: int = _setting(30, "Expiry of a sealed envelope unless the sender sets one.")
    max_lifetime_days: int = _setting(
        90,
        "Longest lifetime (expiry minus creation) of an envelope sealed or accepted; longer ones"
        " are refused (reason lifetime-exceeded), which also bounds how long dedupe rows live.",
    )


@dataclass(frozen=True)
class KafkaConfig:
    """How this node reaches the broker (deploy/ shows a TLS + SASL/SCRAM cluster)."""

    bootstrap_servers: str = _setting("127.0.0.1:9092", "host:port[,host:port...] of the brokers.")
    topic_prefix: str = _setting("xchg", "Prefix of every topic: <prefix>.<node>.<kind>.")
    security_protocol: str = _setting(
        "PLAINTEXT", "PLAINTEXT (development only), SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_mechanism: str = _setting("SCRAM-SHA-512", "SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN.")
    sasl_username: str = _setting("", "SASL user, usually the node id.")
    sasl_password_file: str = _setting(
        "", "File whose first line is the SASL password (relative: to the node directory)."
    )
    ssl_cafile: str = _setting(
        "", "CA certificate(s) that signed the brokers' certificates (relative: to the node dir)."
    )
    ssl_certfile: str = _setting("", "Client certificate, for mutual TLS.")
    ssl_keyfile: str = _setting("", "Client key, for mutual TLS.")
    partitions: int = _setting(3, "Partitions of topics this node creates.")
    replication_factor: int = _setting(
        1, "Replication of topics this node creates (3 in production)."
    )


@dataclass(frozen=True)
class DeliverySettings:
    """Re-publication until every recipient has receipted."""

    retry_initial_seconds: int = _setting(5, "Wait for a receipt before the first re-publication.")
    retry_max_seconds: int = _setting(600, "Longest wait between re-publications.")
    poll_interval_ms: int = _setting(500, "How often the outbox is checked for due messages.")
    heartbeat_seconds: int = _setting(
        30, "How often this node announces itself on the control topic (peer last-seen)."
    )
    broker_check_seconds: int = _setting(
        5, "How often the broker is asked for metadata to measure connectivity (readiness)."
    )
    broker_timeout_seconds: int = _setting(
        10, "Broker unanswered this long: disconnected (metric 0, /readyz 503)."
    )
    duplicate_answer_seconds: int = _setting(
        60,
        "A copy of an envelope already received is answered (its receipt sent again) at most"
        " once in this many seconds per sender and message; other copies are only counted.",
    )
    consume_batch: int = _setting(
        500,
        "Most records read from the broker and stored in one transaction (one fsync). Larger"
        " drains a backlog faster; each batch is retried whole if the disk refuses it.",
    )
    receipt_batch: int = _setting(
        200,
        "Most messages of one sender one receipt answers (one receipt per sender per batch)."
        " 1 answers each message on its own, as nodes before batched receipts expect"
        " (docs/capacity.md, mixed versions).",
    )
    publish_batch: int = _setting(
        500,
        "Most due deliveries published in one round (sent together, recorded in one transaction).",
    )
    crypto_workers: int = _setting(
        2,
        "Threads that verify, decrypt and seal (the primitives run outside the GIL); about"
        " one per core.",
    )


@dataclass(frozen=True)
class StoreSettings:
    """Where the node keeps its outbox, inbox, dedupe table, quarantine and audit log."""

    path: str = _setting("node.db", "SQLite file, relative to the node directory.")
    inbox_retention_days: int = _setting(
        365, "Received messages are deleted this long after arrival (audit hashes stay)."
    )
    outbox_retention_days: int = _setting(
        90, "Sent messages are deleted this long after they reached a final state."
    )
    quarantine_retention_days: int = _setting(
        90, "Refused records are deleted this long after they arrived."
    )
    quarantine_prefix_bytes: int = _setting(
        4096,
        "Of a refused record whose sender is not authenticated, only this many leading bytes are"
        " kept, with the SHA-256 and length of the whole.",
    )
    quarantine_sender_quota_mb: int = _setting(
        64,
        "Refused records of one authenticated sender are kept whole up to this many MiB in"
        " quarantine; beyond it only the prefix and hash are kept.",
    )
    quarantine_unauthenticated_max: int = _setting(
        10000,
        "At most this many refused records of unauthenticated senders are kept; the oldest go"
        " first (counted in xnode_quarantine_evicted_total).",
    )


@dataclass(frozen=True)
class AuditSettings:
    """Signed checkpoints that anchor the audit chain outside the database (truncation)."""

    checkpoint_events: int = _setting(100, "Sign a checkpoint after this many new audit events ...")
    checkpoint_seconds: int = _setting(
        60, "... or after this many seconds with at least one new event."
    )
    checkpoint_file: str = _setting(
        "audit-checkpoint.json", "Latest own checkpoint, relative to the node directory."
    )


@dataclass(frozen=True)
class PolicySettings:
    """Which roles may send which kind to which roles (node/policy.py has the defaults)."""

    rules: tuple[str, ...] = _setting(
        (),
        'Rules "<kind>: <roles> -> <roles>" (roles comma-separated or *) replacing the defaults'
        " for the kinds they name; in the environment separate rules with ';'.",
    )


@dataclass(frozen=True)
class ApiSettings:
    """The local HTTP API for case-management systems (README: HTTP API)."""

    enabled: bool = _setting(True, "Serve the API while the node runs.")
    host: str = _setting("127.0.0.1", "Address to listen on; keep loopback unless behind TLS.")
    port: int = _setting(8470, "TCP port of the API, /metrics and health checks.")
    max_body_bytes: int = _setting(
        1024 * 1024, "Largest request body accepted (413 above); envelope.max_bytes still applies."
    )
    ops_token_required: bool = _setting(
        False,
        "Require a bearer token with scope ops (or admin) for /metrics and /readyz, which name"
        " peers and the broker; /healthz stays open. Needed when the API is not on loopback.",
    )


@dataclass(frozen=True)
class WebhookSettings:
    """POST every received message to a local system (README: webhook adapter)."""

    url: str = _setting(
        "", "Where to POST received messages (and status events); empty: no webhook."
    )
    secret_file: str = _setting(
        "", "File whose first line is the HMAC-SHA256 secret shared with the receiver."
    )
    max_attempts: int = _setting(10, "Attempts before a message is marked webhook-failed.")
    retry_initial_seconds: int = _setting(2, "Wait after the first failed attempt (doubles).")
    retry_max_seconds: int = _setting(300, "Longest wait between attempts.")
    timeout_seconds: int = _setting(10, "Time the receiver has to answer one POST.")
    allow_plain_http: bool = _setting(
        False,
        "Allow an http:// url to a host other than loopback (decrypted case data would cross"
        " the network unencrypted); https:// or loopback otherwise.",
    )
    status_events: bool = _setting(
        True,
        "Also POST the final outcome of every sent message per recipient (delivered, rejected,"
        " expired) to the url, with X-Xnode-Event: status.",
    )


@dataclass(frozen=True)
class FolderSettings:
    """Exchange JSON files through a folder (README: folder adapter)."""

    path: str = _setting(
        "",
        "Folder with outbox/, sent/, failed/, inbox/ and status/ (relative to the node dir);"
        " empty: off.",
    )
    poll_interval_ms: int = _setting(1000, "How often outbox/ is scanned for new files.")
    settle_ms: int = _setting(
        2000,
        "A file is read only once its size and mtime have not changed for this long (slow"
        " writers); files renamed into outbox/ from a hidden or .tmp name are complete anyway.",
    )
    inbox_files: bool = _setting(
        True,
        "Write each received message, decrypted, to inbox/<kind>/ (files 0600, folders 0700)."
        " That is personal data in plain text on this machine's disk: false keeps the folder"
        " for sending and status files only (docs/data-protection.md).",
    )


@dataclass(frozen=True)
class ConsoleSettings:
    """The officer console: a web interface served by the node (README: Officer console)."""

    enabled: bool = _setting(False, "Serve the officer console while the node runs.")
    host: str = _setting(
        "127.0.0.1",
        "Address to listen on. Loopback unless tls_certfile is set or a TLS reverse proxy"
        " (behind_https_proxy) is in front: the console carries case data and passwords.",
    )
    port: int = _setting(8471, "TCP port of the console.")
    tls_certfile: str = _setting("", "PEM certificate chain for HTTPS (relative to the node dir).")
    tls_keyfile: str = _setting("", "PEM private key for HTTPS (relative to the node dir).")
    behind_https_proxy: bool = _setting(
        False,
        "A reverse proxy terminates TLS in front of the console: cookies are marked Secure and"
        " a non-loopback host is allowed without tls_certfile (docs/console.md).",
    )
    idle_minutes: int = _setting(15, "A session unused this long is signed out.")
    session_hours: int = _setting(12, "A session ends this long after sign-in, used or not.")
    max_failed_logins: int = _setting(
        5, "Failed sign-ins in a row after which the account is locked for lockout_minutes."
    )
    lockout_minutes: int = _setting(15, "How long a locked account stays locked.")
    draft_retention_days: int = _setting(30, "Drafts not saved again for this long are deleted.")


@dataclass(frozen=True)
class FederationSettings:
    """Federated mode: a trust list in the node directory's trust/ (README: Federation)."""

    grace_days: int = _setting(
        7,
        "After the trust list expires the node is degraded: it keeps receiving, and keeps sending"
        " for this many days; after that it refuses to send until a newer list arrives.",
    )
    list_announce_seconds: int = _setting(
        300,
        "How often the node re-announces the trust list it holds on the control topic (a list"
        " it has just applied, or one a lagging member announces older, goes out at the next"
        " heartbeat).",
    )


@dataclass(frozen=True)
class ProcedureSettings:
    """Case procedures and their deadlines (docs/procedures.md)."""

    mla_response_days: int = _setting(
        90, "Days an MLA request waits for a final answer when it names no deadline of its own."
    )
    referral_response_days: int = _setting(
        14,
        "Days a referral waits for an answer when it names no requested_response_date.",
    )
    overdue_check_seconds: int = _setting(
        60, "How often overdue requests are looked for (metric, and one webhook/folder notice)."
    )

    def defaults(self) -> dict[str, dt.timedelta]:
        """Response times per procedure, for :func:`node.procedures.response_deadline`."""
        return {"mla": dt.timedelta(days=self.mla_response_days),
                "referral": dt.timedelta(days=self.referral_response_days)}  # fmt: skip


@dataclass(frozen=True)
class StatisticsSettings:
    """Anonymised statistics (docs/statistics.md): how releases are made and reports read."""

    period: str = _setting(
        "quarter",
        "The one granularity this node releases at: month, quarter or year (releases at two"
        " granularities would give suppressed cells away by difference).",
    )
    threshold: int = _setting(
        5, "Smallest count published; smaller ones (and cells revealing them) are suppressed."
    )
    rounding: int = _setting(1, "Round published counts to multiples of this (1: no rounding).")
    epsilon: float = _setting(
        0.0,
        "Differential privacy: privacy loss each release spends, noise added before"
        " suppression (0: no noise).",
    )
    budget_per_period: float = _setting(
        3.0,
        "Differential privacy: total privacy loss allowed for one period, replacements"
        " included; a release that would exceed it is refused.",
    )
    legal_instrument: str = _setting(
        "TraffickingInPersonsProtocol",
        "Code (legal_instrument list) named as the legal basis of releases.",
    )
    expected_from: tuple[str, ...] = _setting(
        (), "Nodes whose releases reports expect for each period (missing and late are flagged)."
    )
    due_days: int = _setting(
        30, "Days after a period ends by which its release is due (later ones are flagged late)."
    )


@dataclass(frozen=True)
class Config:
    node: NodeSettings
    keys: KeySettings = field(default_factory=KeySettings)
    envelope: EnvelopeSettings = field(default_factory=EnvelopeSettings)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    folder: FolderSettings = field(default_factory=FolderSettings)
    federation: FederationSettings = field(default_factory=FederationSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    procedures: ProcedureSettings = field(default_factory=ProcedureSettings)
    statistics: StatisticsSettings = field(default_factory=StatisticsSettings)


_SECTIONS: dict[str, type[Any]] = {
    "node": NodeSettings,
    "keys": KeySettings,
    "envelope": EnvelopeSettings,
    "kafka": KafkaConfig,
    "delivery": DeliverySettings,
    "store": StoreSettings,
    "audit": AuditSettings,
    "policy": PolicySettings,
    "api": ApiSettings,
    "webhook": WebhookSettings,
    "folder": FolderSettings,
    "federation": FederationSettings,
    "procedures": ProcedureSettings,
    "console": ConsoleSettings,
    "statistics": StatisticsSettings,
}
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def _coerce(setting: str, declared: Any, value: Any, from_env: bool) -> Any:
    kind = str(declared)
    if "tuple" in kind:
        if from_env:
            sep = ";" if ";" in str(value) else ","
            value = [v.strip() for v in str(value).split(sep) if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{setting}: expected a list of strings")
        return tuple(value)
    if kind == "bool":
        if from_env:
            text = str(value).strip().lower()
            if text not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(f"{setting}: expected true or false, got {value!r}")
            value = text in ("true", "1", "yes")
        if not isinstance(value, bool):
            raise ConfigError(f"{setting}: expected true or false")
        return value
    if kind == "int":
        if from_env:
            try:
                value = int(value)
            except ValueError as exc:
                raise ConfigError(f"{setting}: expected an integer, got {value!r}") from exc
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{setting}: expected an integer")
        return value
    if kind == "float":
        if from_env:
            try:
                value = float(value)
            except ValueError as exc:
                raise ConfigError(f"{setting}: expected a number, got {value!r}") from exc
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{setting}: expected a number")
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"{setting}: expected a string")
    return value


def parse_config(
    text: str, env: Mapping[str, str] | None = None, source: str = "node.toml"
) -> Config:
    """Parse ``node.toml`` text, apply ``XNODE_*`` overrides, validate."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    sections: dict[str, dict[str, Any]] = {}
    for name, value in data.items():
        if name not in _SECTIONS:
            raise ConfigError(f"{source}: unknown section [{name}]")
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {name} must be a table")
        sections[name] = dict(value)
    built: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        given = sections.get(name, {})
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in given:
            if key not in fields:
                raise ConfigError(f"{source}: unknown setting {name}.{key}")
        values: dict[str, Any] = {}
        for key, f in fields.items():
            setting = f"{name}.{key}"
            env_name = f"{ENV_PREFIX}{name}_{key}".upper()
            if env is not None and env_name in env:
                values[key] = _coerce(f"{env_name}", f.type, env[env_name], from_env=True)
            elif key in given:
                values[key] = _coerce(f"{source}: {setting}", f.type, given[key], from_env=False)
        try:
            built[name] = cls(**values)
        except TypeError as exc:
            missing = [k for k, f in fields.items() if k not in values and _required(f)]
            raise ConfigError(f"{source}: missing setting {name}.{missing[0]}") from exc
    config = Config(**built)
    _validate(config, source)
    return config


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _validate(config: Config, source: str) -> None:
    try:
        validate_node_id(config.node.id)
        validate_roles(config.node.roles)
        for neighbour in config.node.neighbours:
            validate_node_id(neighbour)
    except InvalidIdentifier as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    for setting, value, low in (
        ("keys.encryption_valid_days", config.keys.encryption_valid_days, 1),
        ("keys.retired_key_days", config.keys.retired_key_days, 0),
        ("envelope.max_bytes", config.envelope.max_bytes, 1024),
        ("envelope.clock_skew_seconds", config.envelope.clock_skew_seconds, 0),
        ("envelope.default_ttl_days", config.envelope.default_ttl_days, 1),
        ("envelope.max_lifetime_days", config.envelope.max_lifetime_days, 1),
        ("delivery.duplicate_answer_seconds", config.delivery.duplicate_answer_seconds, 1),
        ("delivery.consume_batch", config.delivery.consume_batch, 1),
        ("delivery.receipt_batch", config.delivery.receipt_batch, 1),
        ("delivery.publish_batch", config.delivery.publish_batch, 1),
        ("delivery.crypto_workers", config.delivery.crypto_workers, 1),
        ("store.quarantine_prefix_bytes", config.store.quarantine_prefix_bytes, 0),
        ("store.quarantine_sender_quota_mb", config.store.quarantine_sender_quota_mb, 0),
        ("store.quarantine_unauthenticated_max", config.store.quarantine_unauthenticated_max, 1),
        ("kafka.partitions", config.kafka.partitions, 1),
        ("kafka.replication_factor", config.kafka.replication_factor, 1),
        ("delivery.retry_initial_seconds", config.delivery.retry_initial_seconds, 1),
        ("delivery.retry_max_seconds", config.delivery.retry_max_seconds, 1),
        ("delivery.poll_interval_ms", config.delivery.poll_interval_ms, 10),
        ("delivery.heartbeat_seconds", config.delivery.heartbeat_seconds, 1),
        ("delivery.broker_check_seconds", config.delivery.broker_check_seconds, 1),
        ("delivery.broker_timeout_seconds", config.delivery.broker_timeout_seconds, 1),
        ("audit.checkpoint_events", config.audit.checkpoint_events, 1),
        ("audit.checkpoint_seconds", config.audit.checkpoint_seconds, 1),
        ("store.inbox_retention_days", config.store.inbox_retention_days, 1),
        ("store.outbox_retention_days", config.store.outbox_retention_days, 1),
        ("store.quarantine_retention_days", config.store.quarantine_retention_days, 1),
        ("api.port", config.api.port, 0),
        ("api.max_body_bytes", config.api.max_body_bytes, 1024),
        ("webhook.max_attempts", config.webhook.max_attempts, 1),
        ("webhook.retry_initial_seconds", config.webhook.retry_initial_seconds, 1),
        ("webhook.retry_max_seconds", config.webhook.retry_max_seconds, 1),
        ("webhook.timeout_seconds", config.webhook.timeout_seconds, 1),
        ("folder.poll_interval_ms", config.folder.poll_interval_ms, 10),
        ("folder.settle_ms", config.folder.settle_ms, 0),
        ("federation.grace_days", config.federation.grace_days, 0),
        ("federation.list_announce_seconds", config.federation.list_announce_seconds, 1),
        ("console.port", config.console.port, 0),
        ("console.idle_minutes", config.console.idle_minutes, 1),
        ("console.session_hours", config.console.session_hours, 1),
        ("console.max_failed_logins", config.console.max_failed_logins, 1),
        ("console.lockout_minutes", config.console.lockout_minutes, 1),
        ("console.draft_retention_days", config.console.draft_retention_days, 1),
        ("procedures.mla_response_days", config.procedures.mla_response_days, 1),
        ("procedures.referral_response_days", config.procedures.referral_response_days, 1),
        ("procedures.overdue_check_seconds", config.procedures.overdue_check_seconds, 1),
        ("statistics.threshold", config.statistics.threshold, 3),
        ("statistics.rounding", config.statistics.rounding, 1),
        ("statistics.due_days", config.statistics.due_days, 0),
    ):
        if value < low:
            raise ConfigError(f"{source}: {setting} must be at least {low}")
    if config.envelope.max_lifetime_days > MAX_LIFETIME_DAYS:
        raise ConfigError(
            f"{source}: envelope.max_lifetime_days must be at most {MAX_LIFETIME_DAYS}"
        )
    if config.envelope.default_ttl_days > config.envelope.max_lifetime_days:
        raise ConfigError(
            f"{source}: envelope.default_ttl_days ({config.envelope.default_ttl_days}) exceeds"
            f" envelope.max_lifetime_days ({config.envelope.max_lifetime_days})"
        )
    _validate_kafka(config, source)
    _validate_statistics(config.statistics, source)
    if config.webhook.url:
        if not config.webhook.url.startswith(("http://", "https://")):
            raise ConfigError(f"{source}: webhook.url must start with http:// or https://")
        if not config.webhook.secret_file:
            raise ConfigError(f"{source}: webhook.secret_file is required with webhook.url")
        if (
            config.webhook.url.startswith("http://")
            and not is_loopback_url(config.webhook.url)
            and not config.webhook.allow_plain_http
        ):
            raise ConfigError(
                f"{source}: webhook.url is plain http:// to a host that is not loopback; decrypted"
                " case data would cross the network unencrypted. Use https://, or set"
                " webhook.allow_plain_http = true if the network path is protected otherwise"
            )
    _validate_console(config, source)
    try:
        Policy.from_config(config.policy.rules)
    except PolicyError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def _validate_console(config: Config, source: str) -> None:
    """The console carries passwords and case data: plain HTTP only on loopback."""
    console = config.console
    if bool(console.tls_certfile) != bool(console.tls_keyfile):
        raise ConfigError(f"{source}: console.tls_certfile and console.tls_keyfile go together")
    if (
        console.enabled
        and not console.tls_certfile
        and not console.behind_https_proxy
        and not is_loopback_url(f"http://{_bracketed(console.host)}/")
    ):
        raise ConfigError(
            f"{source}: console.host {console.host!r} is not loopback; passwords and case data"
            " would cross the network unencrypted. Set console.tls_certfile and"
            " console.tls_keyfile, or put a TLS reverse proxy in front and set"
            " console.behind_https_proxy = true (docs/console.md)"
        )


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` names this machine (localhost or a loopback address)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _validate_kafka(config: Config, source: str) -> None:
    if config.kafka.security_protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(
            f"{source}: kafka.security_protocol must be one of {', '.join(SECURITY_PROTOCOLS)}"
        )
    if config.kafka.security_protocol.startswith("SASL") and not config.kafka.sasl_username:
        raise ConfigError(f"{source}: kafka.sasl_username is required with SASL")


def render_config(config: Config) -> str:
    """Write a config back as commented TOML (used by ``xnode init``)."""
    lines = [
        "# xnode node configuration. Every setting can be overridden by an environment",
        "# variable XNODE_<SECTION>_<KEY>, e.g. XNODE_ENVELOPE_MAX_BYTES=2097152.",
    ]
    for name, cls in _SECTIONS.items():
        section = getattr(config, name)
        lines += ["", f"[{name}]"]
        for f in dataclasses.fields(cls):
            if "doc" in f.metadata:
                lines.append(f"# {f.metadata['doc']}")
            lines.append(f"{f.name} = {_toml_value(getattr(section, f.name))}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic strings
    return str(value)


def _validate_statistics(s: StatisticsSettings, source: str) -> None:
    from node import codes  # the code lists load the schemas: only when a config is checked

    if s.period not in ("month", "quarter", "year"):
        raise ConfigError(f"{source}: statistics.period must be month, quarter or year")
    if s.rounding > 100:
        raise ConfigError(f"{source}: statistics.rounding must be at most 100")
    if s.epsilon < 0 or s.budget_per_period <= 0:
        raise ConfigError(
            f"{source}: statistics.epsilon must be 0 or more, statistics.budget_per_period more"
            " than 0"
        )
    if s.epsilon > s.budget_per_period:
        raise ConfigError(f"{source}: statistics.epsilon exceeds statistics.budget_per_period")
    if s.legal_instrument not in codes.get("legal_instrument").codes:
        raise ConfigError(
            f"{source}: statistics.legal_instrument {s.legal_instrument!r} is not a code of the"
            " legal_instrument list"
        )
    for node_id in s.expected_from:
        try:
            validate_node_id(node_id)
        except InvalidIdentifier as exc:
            raise ConfigError(f"{source}: statistics.expected_from: {exc}") from None
