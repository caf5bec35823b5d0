"""Avro codec: the one place that knows how records become bytes and JSON becomes records.

Every node must agree byte-for-byte on encodings (signatures and AAD depend on them), so all
encoding goes through a :class:`SchemaRegistry` built once from the ``.avsc`` files under
``schemas/``. Named types may be defined in one file and used in another.

Fingerprints are **SHA-256 of the Parsing Canonical Form** (Avro specification, "Schema
Fingerprints") of the schema made self-contained: every named type it uses is inlined at its
first use. fastavro's own canonical form of a schema that refers to types from other files
would leave the reference unexpanded, which would let two different schemas share a
fingerprint, hence :func:`standalone_schema`.

JSON conversion follows the conventions local systems expect rather than Avro's JSON encoding:
enums as their symbol strings, ``timestamp-*`` as ISO 8601 with a zone, ``date`` as
``YYYY-MM-DD``, ``bytes``/``fixed`` as base64, nullable unions as the plain value or ``null``.
Unknown fields are errors, never silently dropped, and every error names the field path.

No I/O except :meth:`SchemaRegistry.from_directory`, which reads the schema files once.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import hashlib
import io
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import UnknownType, parse_schema, to_parsing_canonical_form

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

JsonValue = Any
AvroSchema = Any


class CodecError(ValueError):
    """A value does not fit its schema. ``path`` names the field, e.g. ``payload.subjects[2]``."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class SchemaError(Exception):
    """The schema files themselves are broken: a node must not start with them."""


@dataclass(frozen=True)
class SchemaInfo:
    """One named schema, resolved and ready to encode with."""

    name: str
    standalone: dict[str, Any]
    parsed: dict[str, Any]
    canonical_form: str
    fingerprint: bytes

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()

    @functools.cached_property
    def named(self) -> dict[str, Any]:
        """Every named type defined in the standalone schema (computed once)."""
        return named_definitions(self.standalone)


def fingerprint_of(canonical_form: str) -> bytes:
    """SHA-256 over the UTF-8 Parsing Canonical Form (the documented fingerprint algorithm)."""
    return hashlib.sha256(canonical_form.encode("utf-8")).digest()


def standalone_schema(name: str, named: Mapping[str, Any]) -> dict[str, Any]:
    """The schema of ``name`` with every named type it uses inlined once, at first use.

    ``named`` maps full names to fastavro-parsed definitions (which already carry full names).
    """
    defined: set[str] = set()

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            if node in PRIMITIVES:
                return node
            if node in defined:
                return node
            if node not in named:
                raise SchemaError(f"unknown named type {node!r}")
            return walk(named[node])
        if isinstance(node, list):
            return [walk(branch) for branch in node]
        if isinstance(node, dict):
            clean = {k: v for k, v in node.items() if not k.startswith("__")}
            kind = clean.get("type")
            if kind in ("record", "error", "enum", "fixed"):
                if clean["name"] in defined:
                    return clean["name"]
                defined.add(clean["name"])
            if kind in ("record", "error"):
                clean["fields"] = [{**f, "type": walk(f["type"])} for f in clean["fields"]]
            elif kind == "array":
                clean["items"] = walk(clean["items"])
            elif kind == "map":
                clean["values"] = walk(clean["values"])
            elif isinstance(kind, (dict, list)):
                clean["type"] = walk(kind)
            return clean
        raise SchemaError(f"unexpected schema node {node!r}")

    result = walk(name)
    if not isinstance(result, dict):
        raise SchemaError(f"{name!r} is not a named complex type")
    return result


def named_definitions(schema: Any) -> dict[str, Any]:
    """Every named type (record, enum, fixed) defined anywhere in a standalone schema."""
    found: dict[str, Any] = {}

    def collect(node: Any) -> None:
        if isinstance(node, list):
            for branch in node:
                collect(branch)
        elif isinstance(node, dict):
            if node.get("type") in ("record", "error", "enum", "fixed"):
                found[node["name"]] = node
            for field in node.get("fields", ()):
                collect(field["type"])
            for key in ("items", "values", "type"):
                if isinstance(node.get(key), (dict, list)):
                    collect(node[key])

    collect(schema)
    return found


def _schema_documents(directory: Path) -> list[tuple[str, Any]]:
    """Read every ``*.avsc`` below ``directory`` except the released history kept for tests."""
    docs = []
    for path in sorted(directory.rglob("*.avsc")):
        if "history" in path.relative_to(directory).parts:
            continue
        try:
            docs.append((str(path.relative_to(directory)), json.loads(path.read_text("utf-8"))))
        except json.JSONDecodeError as exc:
            raise SchemaError(f"{path.name}: not valid JSON: {exc}") from exc
    return docs


class SchemaRegistry:
    """All schemas of the network, by full name and by fingerprint. Build once; share freely."""

    def __init__(
        self,
        named: Mapping[str, Any],
        top_level: Sequence[str],
        history: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self._named = dict(named)
        self.top_level: tuple[str, ...] = tuple(top_level)
        # Released versions first, so the current version wins where they are identical.
        self._by_fingerprint: dict[bytes, SchemaInfo] = {}
        for doc in history:
            info = _info_of(dict(doc))
            if info.name not in self._named:
                raise SchemaError(f"history holds {info.name}, which no current schema defines")
            self._by_fingerprint[info.fingerprint] = info
        for name in self.top_level:
            self._by_fingerprint[self.schema(name).fingerprint] = self.schema(name)

    @classmethod
    def from_documents(cls, documents: Iterable[tuple[str, Any]]) -> SchemaRegistry:
        """Parse schema documents in whatever order they come, resolving cross-file names."""
        pending = list(documents)
        named: dict[str, Any] = {}
        top_level: list[str] = []
        while pending:
            unresolved: list[tuple[str, Any, str]] = []
            for source, doc in pending:
                trial = dict(named)
                try:
                    parsed = parse_schema(doc, named_schemas=trial, _write_hint=False)
                except UnknownType as exc:
                    unresolved.append((source, doc, str(exc.name)))
                    continue
                except Exception as exc:  # fastavro raises several types for bad schemas
                    raise SchemaError(f"{source}: {exc}") from exc
                named = trial
                if not isinstance(parsed, dict) or "name" not in parsed:
                    raise SchemaError(f"{source}: top level must be a named type")
                top_level.append(parsed["name"])
            if len(unresolved) == len(pending):
                details = ", ".join(f"{src} needs {name}" for src, _, name in unresolved)
                raise SchemaError(f"unresolvable named types: {details}")
            pending = [(src, doc) for src, doc, _ in unresolved]
        return cls(named, top_level)

    @classmethod
    def from_directory(cls, directory: Path) -> SchemaRegistry:
        current = cls.from_documents(_schema_documents(directory))
        history = [doc for _, doc in _history_documents(directory)]
        return cls(current._named, current.top_level, history)

    # -- lookup ------------------------------------------------------------------------------

    def names(self) -> tuple[str, ...]:
        return self.top_level

    @functools.cache  # noqa: B019 - registries live for the whole process
    def schema(self, name: str) -> SchemaInfo:
        if name not in self._named:
            raise KeyError(f"unknown schema {name!r}")
        return _info_of(standalone_schema(name, self._named))

    def by_fingerprint(self, fingerprint: bytes) -> SchemaInfo | None:
        """The current or a released version of a top-level schema, by its fingerprint."""
        return self._by_fingerprint.get(bytes(fingerprint))

    def history(self, name: str) -> list[SchemaInfo]:
        """Released versions of ``name`` other than the current one (order not significant)."""
        current = self.schema(name).fingerprint
        return [
            info for fp, info in self._by_fingerprint.items() if info.name == name and fp != current
        ]

    # -- binary ------------------------------------------------------------------------------

    def encode(self, name: str, record: Any, writer: SchemaInfo | None = None) -> bytes:
        """Avro binary encoding (schemaless: the schema travels by fingerprint or is implied),
        with the current version of ``name`` or a released one (``writer``)."""
        buf = io.BytesIO()
        try:
            fastavro.schemaless_writer(buf, (writer or self.schema(name)).parsed, record)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise CodecError(name, f"cannot encode: {exc}") from exc
        return buf.getvalue()

    def decode(self, name: str, data: bytes, writer: SchemaInfo | None = None) -> Any:
        """Decode ``data`` written with ``writer`` (default: the current schema of ``name``).

        Strict: trailing bytes are an error, so one value has exactly one encoding prefix.
        """
        reader = self.schema(name)
        buf = io.BytesIO(data)
        try:
            value = fastavro.schemaless_reader(
                buf, (writer or reader).parsed, reader.parsed if writer else None
            )
        except Exception as exc:  # corrupt input surfaces as many exception types
            raise CodecError(name, f"malformed Avro data: {type(exc).__name__}: {exc}") from exc
        if buf.tell() != len(data):
            raise CodecError(name, f"{len(data) - buf.tell()} trailing bytes after the record")
        return value

    # -- JSON --------------------------------------------------------------------------------

    def from_json(self, name: str, value: JsonValue, path: str = "$") -> Any:
        """Check a plain JSON value against schema ``name`` and return the Avro-ready value."""
        return _from_json(self.schema(name).parsed, value, path, self._named)

    def to_json(self, name: str, value: Any) -> JsonValue:
        """The plain JSON form of a decoded value (inverse of :meth:`from_json`)."""
        return _to_json(self.schema(name).parsed, value, self._named)

    def encode_json(self, name: str, value: JsonValue, path: str = "$") -> bytes:
        return self.encode(name, self.from_json(name, value, path))


def _info_of(standalone: dict[str, Any]) -> SchemaInfo:
    # The write hint marks the schema as parsed, so fastavro does not re-parse per record.
    parsed = parse_schema(standalone)
    assert isinstance(parsed, dict)
    canonical = to_parsing_canonical_form(parsed)
    return SchemaInfo(parsed["name"], standalone, parsed, canonical, fingerprint_of(canonical))


def _history_documents(directory: Path) -> list[tuple[str, Any]]:
    """Released versions: ``history/<full name>/v<N>.avsc``, each standalone."""
    docs = []
    for path in sorted((directory / "history").glob("*/v*.avsc")):
        try:
            docs.append((str(path.relative_to(directory)), json.loads(path.read_text("utf-8"))))
        except json.JSONDecodeError as exc:
            raise SchemaError(f"{path}: not valid JSON: {exc}") from exc
    return docs


def history_versions(directory: Path, name: str) -> list[dict[str, Any]]:
    """The released versions of ``name`` kept in ``history/``, oldest first."""
    folder = directory / "history" / name
    paths = sorted(folder.glob("v*.avsc"), key=lambda p: int(p.stem[1:]))
    return [json.loads(p.read_text("utf-8")) for p in paths]


def released_info(registry: SchemaRegistry, document: Mapping[str, Any]) -> SchemaInfo:
    """The registry's entry for a released version (a document from :func:`history_versions`)."""
    info = registry.by_fingerprint(_info_of(dict(document)).fingerprint)
    if info is None:
        raise SchemaError(f"{document.get('name')}: this release is not in the registry")
    return info


def schemas_directory() -> Path:
    """Where the schema files are: inside the wheel, or at the repository root in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "schemas", here.parent / "schemas"):
        if candidate.is_dir():
            return candidate
    raise SchemaError("schema directory not found; is the package installed correctly?")


@functools.cache
def default_registry() -> SchemaRegistry:
    """The registry of this installation's schemas, loaded once per process."""
    return SchemaRegistry.from_directory(schemas_directory())


# -- JSON -> Avro ------------------------------------------------------------------------------


def _type_name(schema: AvroSchema) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    t = schema.get("type")
    return t if isinstance(t, str) else "complex"


def _describe(schema: AvroSchema) -> str:
    if isinstance(schema, dict):
        logical = schema.get("logicalType")
        if logical:
            return str(logical)
        if "name" in schema:
            return f"{schema['type']} {schema['name']}"
    return _type_name(schema)


def _resolve(schema: AvroSchema, named: Mapping[str, Any]) -> AvroSchema:
    if isinstance(schema, str) and schema not in PRIMITIVES:
        return named[schema]
    return schema


def _json_kind(value: Any) -> str:
    return {
        type(None): "null",
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def _from_json(schema: AvroSchema, value: Any, path: str, named: Mapping[str, Any]) -> Any:
    schema = _resolve(schema, named)
    if isinstance(schema, list):
        return _union_from_json(schema, value, path, named)
    if isinstance(schema, str):
        return _primitive_from_json(schema, value, path)
    kind = schema["type"]
    logical = schema.get("logicalType")
    if logical is not None:
        converted = _logical_from_json(logical, kind, value, path)
        if converted is not NotImplemented:
            return converted
    if kind in ("record", "error"):
        return _record_from_json(schema, value, path, named)
    if kind == "enum":
        if not isinstance(value, str) or value not in schema["symbols"]:
            allowed = ", ".join(schema["symbols"])
            raise CodecError(path, f"expected one of {allowed}; got {json.dumps(value)}")
        return value
    if kind == "array":
        if not isinstance(value, list):
            raise CodecError(path, f"expected an array; got {_json_kind(value)}")
        return [_from_json(schema["items"], v, f"{path}[{i}]", named) for i, v in enumerate(value)]
    if kind == "map":
        if not isinstance(value, dict):
            raise CodecError(path, f"expected an object; got {_json_kind(value)}")
        return {k: _from_json(schema["values"], v, f"{path}.{k}", named) for k, v in value.items()}
    if kind == "fixed":
        raw = _base64_from_json(value, path)
        if len(raw) != schema["size"]:
            raise CodecError(path, f"expected {schema['size']} bytes; got {len(raw)}")
        return raw
    if isinstance(kind, str) and kind in PRIMITIVES:
        return _primitive_from_json(kind, value, path)
    return _from_json(kind, value, path, named)


def _record_from_json(
    schema: dict[str, Any], value: Any, path: str, named: Mapping[str, Any]
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CodecError(path, f"expected an object; got {_json_kind(value)}")
    fields = {f["name"]: f for f in schema["fields"]}
    for key in value:
        if key not in fields:
            raise CodecError(f"{path}.{key}", "unknown field")
    out: dict[str, Any] = {}
    for fname, field in fields.items():
        fpath = f"{path}.{fname}"
        if fname in value:
            out[fname] = _from_json(field["type"], value[fname], fpath, named)
        elif "default" in field:
            out[fname] = _default_value(field["type"], field["default"], named)
        else:
            raise CodecError(fpath, "required field missing")
    return out


def _default_value(schema: AvroSchema, default: Any, named: Mapping[str, Any]) -> Any:
    """Avro defaults are written in Avro's JSON encoding for the first union branch."""
    schema = _resolve(schema, named)
    if isinstance(schema, list):
        schema = _resolve(schema[0], named)
    if default is None:
        return None
    kind = schema if isinstance(schema, str) else schema.get("type")
    if kind in ("bytes", "fixed") and isinstance(default, str):
        return default.encode("latin-1")
    return default


def _union_from_json(branches: list[Any], value: Any, path: str, named: Mapping[str, Any]) -> Any:
    if value is None:
        if "null" in branches:
            return None
        raise CodecError(path, "must not be null")
    candidates = [b for b in branches if b != "null"]
    if len(candidates) == 1:
        return _from_json(candidates[0], value, path, named)
    errors = []
    for branch in candidates:
        try:
            converted = _from_json(branch, value, path, named)
        except CodecError as exc:
            errors.append(exc)
            continue
        resolved = _resolve(branch, named)
        if isinstance(resolved, dict) and resolved.get("type") == "record":
            return (resolved["name"], converted)  # fastavro's explicit union branch notation
        return converted
    deepest = max(errors, key=lambda e: len(e.path))
    if deepest.path != path:
        raise deepest
    kinds = ", ".join(_describe(_resolve(b, named)) for b in candidates)
    raise CodecError(path, f"expected one of: {kinds}; got {_json_kind(value)}")


def _primitive_from_json(kind: str, value: Any, path: str) -> Any:
    if kind == "null":
        if value is not None:
            raise CodecError(path, f"expected null; got {_json_kind(value)}")
        return None
    if kind == "boolean":
        if not isinstance(value, bool):
            raise CodecError(path, f"expected true or false; got {_json_kind(value)}")
        return value
    if kind in ("int", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise CodecError(path, f"expected an integer; got {_json_kind(value)}")
        lo, hi = INT_RANGE if kind == "int" else LONG_RANGE
        if not lo <= value <= hi:
            raise CodecError(path, f"integer out of range for {kind}")
        return value
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CodecError(path, f"expected a number; got {_json_kind(value)}")
        return float(value)
    if kind == "string":
        if not isinstance(value, str):
            raise CodecError(path, f"expected a string; got {_json_kind(value)}")
        return value
    if kind == "bytes":
        return _base64_from_json(value, path)
    raise CodecError(path, f"unsupported type {kind}")


def _base64_from_json(value: Any, path: str) -> bytes:
    if not isinstance(value, str):
        raise CodecError(path, f"expected base64 text; got {_json_kind(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CodecError(path, "expected base64 text") from exc


def parse_timestamp(value: Any, path: str) -> dt.datetime:
    """ISO 8601 with an explicit zone; naive times are refused because they are ambiguous."""
    problem = "expected timestamp ISO 8601 with time zone, e.g. 2026-11-22T08:30:00Z"
    if not isinstance(value, str):
        raise CodecError(path, f"{problem}; got {_json_kind(value)}")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise CodecError(path, problem) from exc
    if parsed.tzinfo is None:
        raise CodecError(path, problem)
    return parsed.astimezone(dt.UTC)


def _logical_from_json(logical: str, kind: str, value: Any, path: str) -> Any:
    if logical in ("timestamp-millis", "timestamp-micros") and kind == "long":
        return parse_timestamp(value, path)
    if logical == "date" and kind == "int":
        if not isinstance(value, str) or not _DATE_RE.match(value):
            raise CodecError(path, "expected date YYYY-MM-DD")
        try:
            return dt.date.fromisoformat(value)
        except ValueError as exc:
            raise CodecError(path, "expected date YYYY-MM-DD") from exc
    if logical == "uuid" and kind == "string":
        if not isinstance(value, str):
            raise CodecError(path, f"expected a UUID string; got {_json_kind(value)}")
        try:
            return str(uuid.UUID(value))
        except ValueError as exc:
            raise CodecError(
                path, "expected a UUID, e.g. 0192f3a4-5b6c-7d8e-9f00-112233445566"
            ) from exc
    return NotImplemented


# -- Avro -> JSON ------------------------------------------------------------------------------


def format_timestamp(value: dt.datetime) -> str:
    """UTC, millisecond precision, ``Z`` suffix: one spelling per instant."""
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _to_json(schema: AvroSchema, value: Any, named: Mapping[str, Any]) -> JsonValue:
    schema = _resolve(schema, named)
    if isinstance(schema, list):
        if value is None:
            return None
        if isinstance(value, tuple):  # (record name, record) notation
            return _to_json(value[0], value[1], named)
        for branch in schema:
            if branch != "null" and _matches(_resolve(branch, named), value, named):
                return _to_json(branch, value, named)
        raise CodecError("$", f"value of type {type(value).__name__} matches no union branch")
    if isinstance(schema, str):
        return base64.b64encode(value).decode("ascii") if schema == "bytes" else value
    kind = schema["type"]
    if isinstance(value, dt.datetime):
        return format_timestamp(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if kind in ("record", "error"):
        return {
            f["name"]: _to_json(f["type"], value.get(f["name"]), named) for f in schema["fields"]
        }
    if kind == "array":
        return [_to_json(schema["items"], v, named) for v in value]
    if kind == "map":
        return {k: _to_json(schema["values"], v, named) for k, v in value.items()}
    if kind == "fixed" or kind == "bytes":
        return base64.b64encode(value).decode("ascii")
    if isinstance(kind, str) and kind in PRIMITIVES:
        return value
    if kind == "enum":
        return value
    return _to_json(kind, value, named)


def _matches(schema: AvroSchema, value: Any, named: Mapping[str, Any]) -> bool:
    """Which union branch produced a decoded value (fastavro returns plain Python values)."""
    kind = schema if isinstance(schema, str) else schema.get("type")
    logical = None if isinstance(schema, str) else schema.get("logicalType")
    if logical in ("timestamp-millis", "timestamp-micros"):
        return isinstance(value, dt.datetime)
    if logical == "date":
        return isinstance(value, dt.date) and not isinstance(value, dt.datetime)
    if logical == "uuid":
        return isinstance(value, (uuid.UUID, str))
    checks: dict[str, Any] = {
        "boolean": lambda v: isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, float),
        "double": lambda v: isinstance(v, float),
        "string": lambda v: isinstance(v, str),
        "bytes": lambda v: isinstance(v, bytes),
        "fixed": lambda v: isinstance(v, bytes) and len(v) == schema["size"],
        "enum": lambda v: isinstance(v, str) and v in schema["symbols"],
        "array": lambda v: isinstance(v, list),
        "map": lambda v: isinstance(v, dict),
        "record": lambda v: isinstance(v, dict) and set(v) == {f["name"] for f in schema["fields"]},
    }
    check = checks.get(kind) if isinstance(kind, str) else None
    if check is None:
        return _matches(_resolve(kind, named), value, named)
    return bool(check(value))


def avro_bytes(value: bytes) -> bytes:
    """Avro's encoding of a ``bytes`` value: zig-zag varint length, then the bytes.

    Spelled out because the envelope's signed bytes are defined in terms of it (schemas/README.md)
    and because building them from parts avoids encoding the header twice per message.
    """
    n = len(value) << 1  # zig-zag of a non-negative length
    prefix = bytearray()
    while n > 0x7F:
        prefix.append(n & 0x7F | 0x80)
        n >>= 7
    prefix.append(n)
    return bytes(prefix) + value


def timestamp_millis(value: dt.datetime) -> int:
    """Milliseconds since the epoch, as Avro's ``timestamp-millis`` stores them."""
    delta = value.astimezone(dt.UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
