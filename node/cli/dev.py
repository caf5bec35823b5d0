"""``xnode broker`` and ``xnode demo``: try xnode with no infrastructure (the embedded
development broker; the scripted exchange between four agencies)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from node.cli.support import EXIT_OK, CommandFailed, Subcommands, now
from node.codec import SchemaRegistry
from node.logging import configure as configure_logging


def cmd_broker(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    import asyncio
    import signal

    from node.transport.broker import BrokerUnavailable, EmbeddedBroker

    async def serve() -> None:
        # Handlers first: a SIGTERM while the broker starts stops it cleanly once it is up.
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        broker = EmbeddedBroker(port=args.port, host=args.host)
        await broker.start()
        try:
            if not stopping.is_set():
                print(f"Development broker (Tansu, in memory) listening on "
                      f"{broker.bootstrap_servers}")  # fmt: skip
                print(f'  use: bootstrap_servers = "{broker.bootstrap_servers}"   '
                      "Stop with Ctrl-C.")  # fmt: skip
                sys.stdout.flush()
                await stopping.wait()
        finally:
            await broker.stop()
            print("Broker stopped.")
            sys.stdout.flush()

    try:
        asyncio.run(serve())
    except BrokerUnavailable as exc:
        raise CommandFailed(str(exc)) from exc
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, registry: SchemaRegistry) -> int:
    from node.demo import run_demo

    if args.dir is not None and args.dir.exists() and any(args.dir.iterdir()):
        raise CommandFailed(f"{args.dir} is not empty; give a new directory for the demo")
    if args.offline:
        return run_demo(registry, now(), args.dir)
    import asyncio

    from node.demo_network import run_network_demo
    from node.transport.broker import BrokerUnavailable

    configure_logging("console", "warning")
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    try:
        if args.federation:
            from node.demo_federation import run_federation_demo

            return asyncio.run(run_federation_demo(registry, args.dir))
        return asyncio.run(run_network_demo(registry, args.dir))
    except BrokerUnavailable as exc:
        raise CommandFailed(str(exc)) from exc


def register(sub: Subcommands) -> None:
    """Add ``xnode broker`` and ``xnode demo`` to the CLI's subcommands."""
    p = sub.add_parser("broker", help="run the embedded development broker (in memory)")
    p.add_argument("--port", type=int, default=9092, help="port to listen on (default 9092)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.set_defaults(handler=cmd_broker)

    p = sub.add_parser("demo", help="play a short scripted exchange between four agencies")
    p.add_argument("--dir", type=Path, help="keep the demo's nodes here (default: a temp dir)")
    p.add_argument(
        "--offline", action="store_true", help="the file-based variant: no broker, one alert"
    )
    p.add_argument(
        "--federation", action="store_true",
        help="a region run by a threshold-signed trust list: members that never swap files, a"
        " newcomer admitted by two of three governors, a stolen key revoked",
    )  # fmt: skip
    p.set_defaults(handler=cmd_demo)
