"""``xnode run``: run the node (with the adapters its configuration enables) until a signal."""

from __future__ import annotations

import argparse

from node.cli.support import EXIT_OK, Subcommands, node_dir_arg
from node.codec import SchemaRegistry
from node.logging import bind_node
from node.logging import configure as configure_logging
from node.nodedir import NodeDir


def cmd_run(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    import asyncio
    import signal

    from node.compose import build_node

    configure_logging(args.log_format, args.log_level)
    bind_node(NodeDir(args.dir).load_config().node.id)

    async def serve() -> None:
        node = build_node(NodeDir(args.dir), registry=registry)
        await node.start()
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        await stopping.wait()
        await node.stop()

    asyncio.run(serve())
    return EXIT_OK


def register(sub: Subcommands) -> None:
    """Add ``xnode run`` to the CLI's subcommands."""
    p = sub.add_parser("run", help="run the node until SIGINT or SIGTERM")
    node_dir_arg(p)
    p.add_argument("--log-format", default="json", choices=("json", "console"))
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.set_defaults(handler=cmd_run)
