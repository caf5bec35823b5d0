"""``xnode schemas``: the message families, their fields and code lists, for people who
write the local systems."""

from __future__ import annotations

import argparse

from node import codes, schema_docs
from node.cli.support import EXIT_OK, CommandFailed, Subcommands, print_json
from node.codec import SchemaRegistry
from node.payloads import kinds_of, short_name


def cmd_schemas_list(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    families = schema_docs.catalogue(registry)
    if args.json:
        print_json(families)
        return EXIT_OK
    for family in families:
        print(f"{family['kind']}")
        for entry in family["payloads"]:
            print(f"  {entry['name']:<30} {entry['fingerprint'][:16]}  {entry['doc']}")
    print("\nDetails: xnode schemas show KIND|PAYLOAD [--lang fr]; code lists: xnode schemas codes")
    return EXIT_OK


def cmd_schemas_show(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    try:
        names = schema_docs.resolve_target(args.name)
    except KeyError as exc:
        raise CommandFailed(str(exc.args[0])) from exc
    described = {n: schema_docs.describe(registry, n, args.lang) for n in names}
    if args.json:
        print_json(
            {short_name(n): [row.to_json() for row in rows] for n, rows in described.items()}
        )
        return EXIT_OK
    for name, rows in described.items():
        info = registry.schema(name)
        print(
            f"{short_name(name)}  (kinds: {', '.join(kinds_of(name))}; "
            f"fingerprint {info.fingerprint_hex[:16]})"
        )
        print(f"  {info.standalone.get('doc', '')}")
        for row in rows:
            depth = row.path.count(".")
            flag = "required" if row.required else "optional"
            print(
                f"  {'  ' * depth}{row.path.rsplit('.', 1)[-1]:<{40 - 2 * depth}} "
                f"{row.type:<28} {flag}"
            )
            if row.doc:
                print(f"  {'  ' * depth}    {row.doc}")
            if row.codes and not args.no_codes:
                for code, label in row.codes:
                    print(f"  {'  ' * depth}      {code:<36} {label}")
        print()
    return EXIT_OK


def cmd_schemas_codes(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    if args.list is None:
        lists = codes.code_lists()
        if args.json:
            print_json({n: {"source": c.source, "codes": list(c.codes)} for n, c in lists.items()})
            return EXIT_OK
        for name, code_list in lists.items():
            print(f"{name:<34} {len(code_list.codes):>3} codes  {code_list.source}")
        return EXIT_OK
    try:
        code_list = codes.get(args.list)
    except codes.UnknownCode as exc:
        raise CommandFailed(str(exc.args[0])) from exc
    if args.json:
        print_json([{"code": c, "label": code_list.label(c, args.lang)} for c in code_list.codes])
        return EXIT_OK
    print(f"{code_list.name}: {code_list.doc}\n  source: {code_list.source}")
    for code in code_list.codes:
        print(f"  {code:<48} {code_list.label(code, args.lang)}")
    return EXIT_OK


def register(sub: Subcommands) -> None:
    """Add ``xnode schemas ...`` to the CLI's subcommands."""
    schemas = sub.add_parser("schemas", help="the message families, their fields and code lists")
    schemas_sub = schemas.add_subparsers(dest="schemas_command", required=True, metavar="ACTION")
    p = schemas_sub.add_parser("list", help="kinds and the payload records each carries")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_schemas_list)
    p = schemas_sub.add_parser("show", help="fields of a kind's payloads or of one payload record")
    p.add_argument("name", help="a kind (alert, mla, ...) or a payload record (MlaResponse, ...)")
    p.add_argument("--lang", default="en", choices=codes.LANGUAGES, help="language of code labels")
    p.add_argument("--no-codes", action="store_true", help="do not list the codes of enum fields")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_schemas_show)
    p = schemas_sub.add_parser("codes", help="code lists, or the codes of one list with labels")
    p.add_argument("list", nargs="?", help="code list name, e.g. methods_of_control")
    p.add_argument("--lang", default="en", choices=codes.LANGUAGES, help="language of labels")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_schemas_codes)
