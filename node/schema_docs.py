"""Human-readable descriptions of payload schemas, for ``xnode schemas`` and the API.

Pure: walks a standalone schema and returns rows; printing is the caller's business. Field
meanings (:mod:`node.field_docs`) and code labels (the code lists) come in the requested
language (en, fr, pt, sw, ar). :func:`markdown` renders a record for the generated pages in
``docs/schemas/`` (``python tools/gen_schema_docs.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from node import codes, field_docs, payloads
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
                    doc=field_docs.doc(record["name"], f["name"], language, f.get("doc", "")),
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


# The generated pages' own words, per language (the field meanings come from node.field_docs).
PAGE_WORDS: dict[str, dict[str, str]] = {
    "en": {"title": "Payload schemas", "kinds": "kinds", "field": "Field", "type": "Type",
           "required": "Required", "meaning": "Meaning", "codes": "Codes", "yes": "yes",
           "no": "no", "list": "list of",
           "intro": "Every field of every payload record, with its meaning and the codes of "
                    "coded fields. Generated by tools/gen_schema_docs.py; do not edit."},
    "fr": {"title": "Schémas des messages", "kinds": "types", "field": "Champ", "type": "Type",
           "required": "Obligatoire", "meaning": "Signification", "codes": "Codes", "yes": "oui",
           "no": "non", "list": "liste de",
           "intro": "Chaque champ de chaque type de message, avec sa signification et les codes "
                    "des champs codés. Généré par tools/gen_schema_docs.py ; ne pas modifier."},
    "pt": {"title": "Esquemas das mensagens", "kinds": "tipos", "field": "Campo", "type": "Tipo",
           "required": "Obrigatório", "meaning": "Significado", "codes": "Códigos",
           "yes": "sim", "no": "não", "list": "lista de",
           "intro": "Cada campo de cada tipo de mensagem, com o seu significado e os códigos dos "
                    "campos codificados. Gerado por tools/gen_schema_docs.py; não editar."},
    "sw": {"title": "Miundo ya ujumbe", "kinds": "aina", "field": "Sehemu", "type": "Aina ya data",
           "required": "Inahitajika", "meaning": "Maana", "codes": "Misimbo", "yes": "ndiyo",
           "no": "hapana", "list": "orodha ya",
           "intro": "Kila sehemu ya kila aina ya ujumbe, pamoja na maana yake na misimbo ya "
                    "sehemu zenye misimbo. Imetolewa na tools/gen_schema_docs.py; usihariri."},
    "ar": {"title": "مخططات الرسائل", "kinds": "الأنواع", "field": "الحقل", "type": "النوع",
           "required": "إلزامي", "meaning": "المعنى", "codes": "الرموز", "yes": "نعم",
           "no": "لا", "list": "قائمة من",
           "intro": "كل حقل من حقول كل نوع من أنواع الرسائل، مع معناه ورموز الحقول المرمّزة. "
                    "أُنشئ بواسطة tools/gen_schema_docs.py؛ لا تعدّله."},
}  # fmt: skip


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _anchor(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower()


def _record_table(
    registry: SchemaRegistry, record: dict[str, Any], language: str, seen: dict[str, None]
) -> list[str]:
    """A record's own fields; records and code lists they use are linked, and noted in
    ``seen`` to be described once further down."""
    words = PAGE_WORDS[language]
    lines = [f"| {words['field']} | {words['type']} | {words['required']} | {words['meaning']} |",
             "|---|---|---|---|"]  # fmt: skip
    for f in record["fields"]:
        ftype = f["type"]
        optional = isinstance(ftype, list) and "null" in ftype
        branch = next(b for b in ftype if b != "null") if isinstance(ftype, list) else ftype
        repeated = isinstance(branch, dict) and branch.get("type") == "array"
        target = branch["items"] if repeated else branch
        if isinstance(target, dict) and target.get("type") in ("record", "enum"):
            target = target["name"]
        label = _type_label(target if isinstance(target, str) else branch)
        if isinstance(target, str) and "." in target:
            seen[target] = None
            label = f"[{target.rsplit('.', 1)[-1]}](#{_anchor(target)})"
        elif not isinstance(target, str):
            label = _type_label(target)
        if repeated:
            label = f"{words['list']} {label}"
        required = not optional and "default" not in f
        meaning = field_docs.doc(record["name"], f["name"], language, f.get("doc", ""))
        lines.append(f"| `{f['name']}` | {label} | {words['yes' if required else 'no']} | "
                     f"{_cell(meaning)} |")  # fmt: skip
    return lines


def markdown(registry: SchemaRegistry, language: str = "en") -> str:
    """One page in ``language``: every payload record with its own fields, then each shared
    record and each code list once, linked from the fields that use them."""
    words = PAGE_WORDS[language]
    lines = [f"# {words['title']} ({language})", "", words["intro"], ""]
    seen: dict[str, None] = {}
    named: dict[str, Any] = {}
    for full in payloads.all_payloads():
        info = registry.schema(full)
        named.update(named_definitions(info.standalone))
        lines += [f"## {payloads.short_name(full)}", "",
                  f"{words['kinds']}: {', '.join(payloads.kinds_of(full))} · "
                  f"`{info.fingerprint_hex[:16]}`", "", _cell(info.standalone.get("doc", "")),
                  "", *_record_table(registry, info.standalone, language, seen), ""]  # fmt: skip
    done: set[str] = set()
    while pending := [n for n in seen if n not in done and named[n].get("type") == "record"]:
        for name in sorted(pending):
            done.add(name)
            record = named[name]
            lines += [f"## {name.rsplit('.', 1)[-1]}", "", f"`{name}`", "",
                      _cell(field_docs.record_doc(name, language, record.get("doc", ""))), "",
                      *_record_table(registry, record, language, seen), ""]  # fmt: skip
    lines += [f"## {words['codes']}", ""]
    for name in sorted(n for n in seen if named[n].get("type") == "enum"):
        code_list = codes.by_enum(name)
        if code_list is None:
            continue
        lines += [f"### {name.rsplit('.', 1)[-1]}", "", code_list.doc, "",
                  f"| {words['codes']} | |", "|---|---|"]  # fmt: skip
        lines += [f"| `{c}` | {_cell(code_list.label(c, language))} |" for c in code_list.codes]
        lines.append("")
    return "\n".join(lines)
