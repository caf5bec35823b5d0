"""The officer console (README: Officer console): a web interface served by the node for the
people who exchange the messages, and the pages operators and auditors use."""

from node.adapters.console.server import ConsoleServer

__all__ = ["ConsoleServer"]
