"""Schema evolution checks: can data written with one schema be read with another?

Implements Avro's schema resolution rules (specification, "Schema Resolution") over standalone
schemas, plus the project's stricter policy (schemas/README.md): compatibility must hold in
both directions against every released version (full transitive), no field is removed or
renamed, and an enum that gains symbols must have a default symbol so older readers can cope.

Pure: schemas in, a list of human-readable problems out (empty means compatible).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from node.codec import PRIMITIVES, named_definitions

_PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}


def _base(schema: Any, named: Mapping[str, Any]) -> Any:
    """Resolve a reference, and reduce a primitive with a logical type to the primitive."""
    if isinstance(schema, str) and schema not in PRIMITIVES:
        return named[schema]
    if isinstance(schema, dict) and schema.get("type") in PRIMITIVES:
        return schema["type"]
    return schema


def _kind(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    return str(schema["type"])


def reader_problems(reader: Any, writer: Any) -> list[str]:
    """Why ``reader`` cannot read every datum written with ``writer`` (both standalone)."""
    r_named, w_named = named_definitions(reader), named_definitions(writer)
    problems: list[str] = []
    in_progress: set[tuple[str, str]] = set()  # guards recursive types only

    def check(r: Any, w: Any, path: str) -> bool:
        r, w = _base(r, r_named), _base(w, w_named)
        rk, wk = _kind(r), _kind(w)
        if wk == "union":
            return all(check(r, branch, f"{path}<{_kind(branch)}>") for branch in w)
        if rk == "union":
            for branch in r:
                trial: list[str] = []
                if _quiet_check(branch, w, trial):
                    return True
            problems.append(f"{path}: no branch of the reader's union reads the writer's {wk}")
            return False
        if rk != wk:
            if wk in _PROMOTIONS and rk in _PROMOTIONS[wk]:
                return True
            problems.append(f"{path}: writer's {wk} cannot be read as {rk}")
            return False
        if rk in ("record", "enum", "fixed"):
            if r["name"] != w["name"] and w["name"] not in r.get("aliases", ()):
                problems.append(f"{path}: named type {w['name']} is read as {r['name']}")
                return False
        if rk == "record":
            key = (r["name"], w["name"])
            if key in in_progress:
                return True
            in_progress.add(key)
            ok = True
            w_fields = {f["name"]: f for f in w["fields"]}
            for field in r["fields"]:
                fpath = f"{path}.{field['name']}"
                if field["name"] in w_fields:
                    ok &= check(field["type"], w_fields[field["name"]]["type"], fpath)
                elif "default" not in field:
                    problems.append(f"{fpath}: field missing from the writer and has no default")
                    ok = False
            in_progress.discard(key)
            return ok
        if rk == "enum":
            missing = [s for s in w["symbols"] if s not in r["symbols"]]
            if missing and "default" not in r:
                problems.append(
                    f"{path}: symbols {', '.join(missing)} unknown to the reader, "
                    "which has no default"
                )
                return False
            return True
        if rk == "fixed":
            if r["size"] != w["size"]:
                problems.append(f"{path}: fixed size {w['size']} read as {r['size']}")
                return False
            return True
        if rk == "array":
            return check(r["items"], w["items"], f"{path}[]")
        if rk == "map":
            return check(r["values"], w["values"], f"{path}{{}}")
        return True

    def _quiet_check(r: Any, w: Any, sink: list[str]) -> bool:
        before = len(problems)
        ok = check(r, w, "")
        sink.extend(problems[before:])
        del problems[before:]
        return ok

    check(reader, writer, _name(reader))
    return problems


def policy_problems(new: Any, old: Any) -> list[str]:
    """The project's rules beyond resolution: nothing removed or renamed; enums grow safely."""
    new_named, old_named = named_definitions(new), named_definitions(old)
    problems = []
    for name, old_def in old_named.items():
        new_def = new_named.get(name)
        if new_def is None:
            problems.append(f"{name}: named type removed or renamed")
            continue
        if old_def["type"] in ("record", "error"):
            new_fields = {f["name"] for f in new_def.get("fields", ())}
            for field in old_def["fields"]:
                if field["name"] not in new_fields:
                    problems.append(f"{name}.{field['name']}: field removed or renamed")
            old_fields = {f["name"] for f in old_def["fields"]}
            for field in new_def.get("fields", ()):
                if field["name"] not in old_fields and "default" not in field:
                    problems.append(f"{name}.{field['name']}: new field needs a default")
        elif old_def["type"] == "enum":
            removed = [s for s in old_def["symbols"] if s not in new_def.get("symbols", ())]
            if removed:
                problems.append(f"{name}: symbols removed: {', '.join(removed)}")
            if (
                len(new_def.get("symbols", ())) > len(old_def["symbols"])
                and "default" not in old_def
            ):
                problems.append(f"{name}: grew, but older readers have no default symbol")
    return problems


def full_transitive_problems(current: Any, history: Iterable[Any]) -> list[str]:
    """Everything wrong between ``current`` and each released version, in both directions."""
    problems = []
    for version, old in enumerate(history, start=1):
        for p in reader_problems(current, old):
            problems.append(f"v{version} -> current: {p}")
        for p in reader_problems(old, current):
            problems.append(f"current -> v{version} reader: {p}")
        problems.extend(f"v{version}: {p}" for p in policy_problems(current, old))
    return problems


def enums_without_default(schema: Any) -> list[str]:
    """Enums that could never grow (schemas/README.md requires a default symbol)."""
    return sorted(
        name
        for name, d in named_definitions(schema).items()
        if d["type"] == "enum" and "default" not in d
    )


def _name(schema: Any) -> str:
    return str(schema.get("name", "$")) if isinstance(schema, dict) else "$"
