"""Human-readable descriptions of payload schemas, for ``xnode schemas`` and the API.

Pure: walks a standalone schema and returns rows; printing is the caller's business. Code
labels come from the code lists in the requested language (en, fr, pt, sw, ar).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from node import codes, payloads
from node.codec import PRIMITIVES, SchemaRegistry, named_definitions


@dataclass(frozen=True)
class FieldDoc:
    path: str
    type: str
    required: bool
    doc: str
    codes: tuple[tuple[str, str], ...] = field(default=())
    repeated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.path,
            "type": self.type,
            "required": self.required,
            "repeated": self.repeated,
            "doc": self.doc,
            "codes": [{"code": c, "label": label} for c, label in self.codes],
        }


def _type_label(schema: Any) -> str:
    if isinstance(schema, str):
        return schema.rsplit(".", 1)[-1]
    if isinstance(schema, list):
        return " | ".join(_type_label(b) for b in schema if b != "null")
    logical = schema.get("logicalType")
    if logical == "timestamp-millis":
        return "timestamp"
    if logical:
        return str(logical)
    kind = schema["type"]
    if kind in ("record", "enum", "fixed"):
        return str(schema["name"]).rsplit(".", 1)[-1]
    if kind == "array":
        return f"list of {_type_label(schema['items'])}"
    return str(kind) if isinstance(kind, str) else _type_label(kind)


def describe(registry: SchemaRegistry, name: str, language: str = "en") -> list[FieldDoc]:
    """Every field of record ``name``, nested records expanded, in schema order."""
    standalone = registry.schema(name).standalone
    named = named_definitions(standalone)
    rows: list[FieldDoc] = []

    def resolve(schema: Any) -> Any:
        if isinstance(schema, str) and schema not in PRIMITIVES:
            return named[schema]
        return schema

    def walk(record: dict[str, Any], prefix: str, depth: int) -> None:
        for f in record["fields"]:
            ftype = f["type"]
            optional = isinstance(ftype, list) and "null" in ftype
            inner = resolve(
                next(b for b in ftype if b != "null") if isinstance(ftype, list) else ftype
            )
            repeated = isinstance(inner, dict) and inner.get("type") == "array"
            target = resolve(inner["items"]) if repeated else inner
            code_list = None
            if isinstance(target, dict) and target.get("type") == "enum":
                code_list = codes.by_enum(target["name"])
            rows.append(
                FieldDoc(
                    path=f"{prefix}{f['name']}",
                    type=_type_label(ftype if not isinstance(ftype, str) else resolve(ftype)),
                    required=not optional and "default" not in f,
                    doc=f.get("doc", ""),
                    codes=tuple((c, code_list.label(c, language)) for c in code_list.codes)
                    if code_list
                    else (),
                    repeated=repeated,
                )
            )
            if isinstance(target, dict) and target.get("type") == "record" and depth < 6:
                walk(target, f"{prefix}{f['name']}{'[]' if repeated else ''}.", depth + 1)

    walk(standalone, "", 0)
    return rows


def catalogue(registry: SchemaRegistry) -> list[dict[str, Any]]:
    """Each kind with the payload records it carries: name, doc and fingerprint."""
    return [
        {
            "kind": kind,
            "payloads": [
                {
                    "name": payloads.short_name(full),
                    "doc": registry.schema(full).standalone.get("doc", ""),
                    "fingerprint": registry.schema(full).fingerprint_hex,
                }
                for full in payloads.payloads_of(kind)
            ],
        }
        for kind in payloads.KINDS
    ]


def resolve_target(name: str) -> tuple[str, ...]:
    """``alert`` (a kind) or ``MlaResponse`` (a record) -> the full record names to show."""
    if name in payloads.KIND_PAYLOADS:
        return payloads.payloads_of(name)
    full = payloads.full_name(name)
    if full in payloads.all_payloads():
        return (full,)
    raise KeyError(
        f"unknown kind or payload {name!r}; kinds: {', '.join(payloads.KINDS)}; "
        f"payloads: {', '.join(payloads.short_name(n) for n in payloads.all_payloads())}"
    )
