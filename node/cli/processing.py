"""``xnode processing-record``: the node's record of processing activities (GDPR art. 30 style).

The shell around :mod:`node.processing_record`: it reads the node directory (configuration,
peers, revocations, trust list), lets the pure core build the record and prints it or writes it
to a file readable only by its owner — the record names peers and settings an outsider has no
business reading, and a DPO's draft is often kept beside other confidential papers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from node import processing_record
from node.cli.support import EXIT_OK, Subcommands, node_dir_arg, now
from node.codec import SchemaRegistry
from node.nodedir import NodeDir, write_atomically


def cmd_processing_record(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    node_dir = NodeDir(args.dir)
    config = node_dir.load_config()
    at = now()
    held = node_dir.trust_list(registry)
    peers = processing_record.known_peers(
        config.node.id,
        (s.descriptor for s in node_dir.peers(registry).values()),
        set(node_dir.revocations()),
        held.trust_list if held is not None else None,
        at,
    )
    federation = f"{held.trust_list.federation} v{held.trust_list.list_version}" if held else None
    record = processing_record.build_record(config, peers, registry, at, federation=federation)
    render = (
        processing_record.render_json if args.format == "json"
        else processing_record.render_markdown
    )  # fmt: skip
    text = render(record)
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    write_atomically(args.output, text.encode("utf-8"), 0o600)
    print(f"Wrote the record of processing of {config.node.id} to {args.output} (mode 0600).")
    print("The data protection officer completes the blanks (____) and signs it.")
    return EXIT_OK


def register(sub: Subcommands) -> None:
    """Add ``xnode processing-record`` to the CLI's subcommands."""
    p = sub.add_parser(
        "processing-record",
        help="record of processing (GDPR art. 30 style) from config, policy, peers and schemas",
    )
    node_dir_arg(p)
    p.add_argument("--format", choices=processing_record.FORMATS, default="markdown",
                   help="markdown (default) or json")  # fmt: skip
    p.add_argument("--output", "-o", type=Path,
                   help="file to write, mode 0600 (default: standard output)")  # fmt: skip
    p.set_defaults(handler=cmd_processing_record)
