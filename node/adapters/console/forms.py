"""HTML forms generated from the Avro payload schemas, and form posts turned back into JSON.

Pure and sans-IO: :func:`build` turns a record schema and a JSON value into a tree of
:class:`Field` for the templates; :func:`parse` turns the posted form fields into the JSON a
local system would send to the API, so the console goes through exactly the same checks.

Input names are the payload paths the node's own validation reports
(``subjects[0].person.prs_Birthdate`` for ``payload.subjects[0].person.prs_Birthdate``), so an
error maps onto the input it belongs to without a table. Lists of records carry their length
in a hidden ``<name>#count`` input; adding or removing an item is a form post too, so every
form works without JavaScript.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from node import codes
from node.codec import PRIMITIVES, SchemaRegistry, named_definitions

Label = Callable[[str, str], str]  # (code list name, code) -> label in the user's language
LONG_TEXT = re.compile(
    r"(description|details|summary|facts|findings|note|reasons?|results|conditions|needed|"
    r"grounds|outcome|status$|wishes|arrangements|plan|purpose|observations|narrative)",
    re.I,
)
CODE_LIST_IN_DOC = re.compile(r"\(code list ([a-z_]+)\)")
MAX_ITEMS = 50  # items of one list in a form: far more than a case needs, bounds a post
MAX_FORM_ITEMS = 200  # list items in a whole form (lists nest: 50 in each would be millions)


@dataclass
class Field:
    """One input, fieldset or list in a generated form."""

    name: str  # input name: the payload path without "payload."
    key: str  # the schema's field name (the label), "" for the root
    widget: str  # text textarea integer number checkbox date datetime select checks
    #              lines fieldset list
    required: bool
    doc: str = ""
    options: tuple[tuple[str, str], ...] = ()
    value: Any = ""  # text of a leaf; a list of codes for checks; True/False for checkbox
    children: list[Field] = field(default_factory=list)
    error: str | None = None
    item_type: str = ""  # lists of records: the record's name

    @property
    def input_id(self) -> str:
        return "f-" + (re.sub(r"[^A-Za-z0-9_-]", "-", self.name) or "root")

    @property
    def count(self) -> int:
        return len(self.children)


def error_name(path: str | None) -> str:
    """A problem's path as the node reports it -> the input name it belongs to."""
    if not path:
        return ""
    for prefix in ("payload.", "$."):
        if path.startswith(prefix):
            return path[len(prefix) :]
    return "" if path in ("payload", "$") else path


class _Schema:
    """A standalone record schema with its named types."""

    def __init__(self, registry: SchemaRegistry, name: str) -> None:
        self.root = registry.schema(name).standalone
        self.named = named_definitions(self.root)

    def resolve(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema not in PRIMITIVES:
            return self.named[schema]
        return schema


def _unwrap(schema: Any) -> tuple[Any, bool]:
    """(the non-null branch, whether null is allowed)."""
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        return branches[0], len(branches) < len(schema)
    return schema, False


def _code_list(target: Any, doc: str) -> codes.CodeList | None:
    if isinstance(target, dict) and target.get("type") == "enum":
        return codes.by_enum(target["name"])
    match = CODE_LIST_IN_DOC.search(doc)
    if match and match.group(1) in codes.code_lists():
        return codes.get(match.group(1))
    return None


def _leaf_widget(target: Any, key: str) -> str:
    kind = target if isinstance(target, str) else target.get("type")
    logical = target.get("logicalType") if isinstance(target, dict) else None
    if logical == "timestamp-millis":
        return "datetime"
    if logical == "date":
        return "date"
    if kind in ("int", "long"):
        return "integer"
    if kind in ("float", "double"):
        return "number"
    if kind == "boolean":
        return "checkbox"
    return "textarea" if LONG_TEXT.search(key) else "text"


def _show(widget: str, value: Any) -> Any:
    """A JSON value as the input shows it."""
    if value is None:
        return False if widget == "checkbox" else ""
    if widget == "checkbox":
        return value is True
    if widget == "datetime" and isinstance(value, str):
        text = value.removesuffix("Z").split(".")[0]
        return text[:16] if text[17:19] in ("", "00") else text[:19]
    if widget == "lines" and isinstance(value, list):
        return "\n".join(str(v) for v in value)
    if widget == "checks":
        return [str(v) for v in value] if isinstance(value, list) else []
    return str(value)


def build(
    registry: SchemaRegistry,
    schema_name: str,
    data: Mapping[str, Any] | None,
    label: Label,
    errors: Mapping[str, str] | None = None,
) -> Field:
    """The form for record ``schema_name`` filled with ``data`` (JSON), errors attached."""
    schema = _Schema(registry, schema_name)
    errors = errors or {}
    budget = [MAX_FORM_ITEMS]  # list items still allowed in this form

    def options(code_list: codes.CodeList) -> tuple[tuple[str, str], ...]:
        return tuple((c, label(code_list.name, c)) for c in code_list.codes)

    def record(rec: Any, name: str, key: str, required: bool, value: Any, depth: int) -> Field:
        value = value if isinstance(value, Mapping) else {}
        node = Field(name=name, key=key, widget="fieldset", required=required,
                     doc=rec.get("doc", ""), error=errors.get(name))  # fmt: skip
        for f in rec["fields"]:
            child = f"{name}.{f['name']}" if name else f["name"]
            node.children.append(
                member(f["type"], child, f["name"], f.get("doc", ""), "default" in f,
                       value.get(f["name"]), depth)
            )  # fmt: skip
        return node

    def member(
        ftype: Any, name: str, key: str, doc: str, has_default: bool, value: Any, depth: int
    ) -> Field:
        inner, nullable = _unwrap(ftype)
        target = schema.resolve(inner)
        required = not nullable and not has_default
        if isinstance(target, dict) and target.get("type") == "record" and depth < 8:
            node = record(target, name, key, required, value, depth + 1)
            node.doc = doc or node.doc
            return node
        if isinstance(target, dict) and target.get("type") == "array":
            items = schema.resolve(target["items"])
            if isinstance(items, dict) and items.get("type") == "record":
                node = Field(name=name, key=key, widget="list", required=False, doc=doc,
                             error=errors.get(name), item_type=items["name"])  # fmt: skip
                items_value = value if isinstance(value, list) else []
                for i, item in enumerate(items_value[:MAX_ITEMS]):
                    if budget[0] <= 0:
                        break
                    budget[0] -= 1
                    node.children.append(record(items, f"{name}[{i}]", key, True, item, depth + 1))
                return node
            code_list = _code_list(items, doc)
            widget = "checks" if code_list else "lines"
            return Field(name=name, key=key, widget=widget, required=False, doc=doc,
                         options=options(code_list) if code_list else (),
                         value=_show(widget, value), error=errors.get(name))  # fmt: skip
        code_list = _code_list(target, doc)
        if code_list is not None:
            return Field(name=name, key=key, widget="select", required=required, doc=doc,
                         options=options(code_list), value=_show("select", value),
                         error=errors.get(name))  # fmt: skip
        widget = _leaf_widget(target, key)
        return Field(name=name, key=key, widget=widget, required=required, doc=doc,
                     value=_show(widget, value), error=errors.get(name))  # fmt: skip

    root = record(schema.root, "", "", True, data or {}, 0)
    root.doc = schema.root.get("doc", "")
    return root


# -- posted form -> JSON --------------------------------------------------------------------------


class Form:
    """The posted fields: ``get`` the last value of a name, ``all`` every value."""

    def __init__(self, items: Sequence[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for key, value in items:
            self._values.setdefault(key, []).append(value)

    def get(self, name: str) -> str:
        values = self._values.get(name)
        return values[-1] if values else ""

    def all(self, name: str) -> list[str]:
        return list(self._values.get(name, []))

    def __contains__(self, name: str) -> bool:
        return name in self._values


def _count(form: Form, name: str) -> int:
    text = form.get(f"{name}#count")
    return min(int(text), MAX_ITEMS) if re.fullmatch(r"[0-9]{1,4}", text) else 0


def _number(text: str, integer: bool) -> Any:
    """A number when the text is one; otherwise the text, so the codec names the field."""
    try:
        return int(text) if integer else float(text)
    except ValueError:
        return text


def _timestamp(text: str) -> str:
    """A ``datetime-local`` value (UTC by the label) -> RFC 3339 with Z; other text as is."""
    if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d", text):
        return text + ":00Z"
    if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?", text):
        return text + "Z"
    return text


def _blank(value: Any) -> bool:
    """Nothing filled in: an unticked box says nothing when the rest of its record is empty."""
    if isinstance(value, dict):
        return all(_blank(v) for v in value.values())
    return value is None or value is False or value == [] or value == ""


def parse(
    registry: SchemaRegistry, schema_name: str, form: Form, keep_empty: bool = False
) -> dict[str, Any]:
    """The JSON payload the form describes. Empty inputs are left out (the schema's default,
    or "required field missing" for the node to report); so is an optional record or a list
    item with nothing filled in, unless ``keep_empty`` (re-showing the form after an add)."""
    schema = _Schema(registry, schema_name)

    def record(rec: Any, name: str, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for f in rec["fields"]:
            child = f"{name}.{f['name']}" if name else f["name"]
            value = member(f["type"], child, f["name"], f.get("doc", ""), depth)
            if value is not None and value != []:
                result[f["name"]] = value
        return result

    def member(ftype: Any, name: str, key: str, doc: str, depth: int) -> Any:
        inner, nullable = _unwrap(ftype)
        target = schema.resolve(inner)
        if isinstance(target, dict) and target.get("type") == "record" and depth < 8:
            value = record(target, name, depth + 1)
            return value if not nullable or keep_empty or not _blank(value) else None
        if isinstance(target, dict) and target.get("type") == "array":
            items = schema.resolve(target["items"])
            if isinstance(items, dict) and items.get("type") == "record":
                found = [
                    record(items, f"{name}[{i}]", depth + 1) for i in range(_count(form, name))
                ]
                return found if keep_empty else [item for item in found if not _blank(item)]
            if _code_list(items, doc):
                return [v for v in form.all(name) if v]
            lines = [line.strip() for line in form.get(name).splitlines() if line.strip()]
            kind = items if isinstance(items, str) else items.get("type")
            if kind in ("int", "long"):
                return [_number(line, True) for line in lines]
            return lines
        code_list = _code_list(target, doc)
        text = form.get(name).strip()
        if code_list is not None:
            if not text:
                return None
            return _number(text, True) if target in ("int", "long") else text
        widget = _leaf_widget(target, key)
        if widget == "checkbox":  # no schema has an optional boolean; unticked is false
            return form.get(name) in ("on", "true", "yes")
        if not text:
            return None
        if widget == "integer":
            return _number(text, True)
        if widget == "number":
            return _number(text, False)
        if widget == "datetime":
            return _timestamp(text)
        return form.get(name).replace("\r\n", "\n").strip()

    return record(schema.root, "", 0)


def missing_required(root: Field, payload: Mapping[str, Any]) -> dict[str, str]:
    """Every required input left empty, inside the records the payload holds: all of them at
    once, where the codec would name only the first."""
    problems: dict[str, str] = {}

    def walk(node: Field, value: Any) -> None:
        for child in node.children:
            sub = value.get(child.key) if isinstance(value, Mapping) else None
            if child.widget == "fieldset":
                if sub is not None or child.required:
                    walk(child, sub or {})
            elif child.widget == "list":
                for i, item in enumerate(child.children):
                    items = sub if isinstance(sub, list) else []
                    walk(item, items[i] if i < len(items) else {})
            elif child.required and child.widget != "checkbox" and sub in (None, ""):
                problems[child.name] = "required"

    walk(root, payload)
    return problems


def apply_operation(data: dict[str, Any], operation: str) -> dict[str, Any]:
    """``add:subjects`` appends an empty item to a list, ``remove:subjects[1]`` removes one;
    the path is the input name. Anything else leaves ``data`` as it is."""
    verb, _, path = operation.partition(":")
    if verb == "remove":
        match = re.fullmatch(r"(.+)\[([0-9]{1,4})\]", path)
        if not match:
            return data
        path, index = match.group(1), int(match.group(2))
    container, last = _locate(data, path)
    if container is None:
        return data
    items = container.get(last)
    if verb == "add":
        items = items if isinstance(items, list) else []
        if len(items) < MAX_ITEMS:
            container[last] = [*items, {}]
    elif verb == "remove" and isinstance(items, list) and index < len(items):
        del items[index]
    return data


def _locate(data: dict[str, Any], path: str) -> tuple[dict[str, Any] | None, str]:
    """The record holding the last element of ``path`` (created as needed), and that name."""
    parts = re.findall(r"([^.\[\]]+)(?:\[([0-9]{1,4})\])?", path)
    current: Any = data
    for name, index in parts[:-1]:
        if not isinstance(current, dict):
            return None, ""
        if index:  # an item must exist already; only records on the way are created
            items = current.get(name)
            if not isinstance(items, list) or int(index) >= len(items):
                return None, ""
            current = items[int(index)]
        else:
            current = current.setdefault(name, {})
    if not parts or not isinstance(current, dict) or parts[-1][1]:
        return None, ""
    return current, parts[-1][0]
