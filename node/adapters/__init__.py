"""Adapters: how local systems reach the node (DESIGN §7). Each is a small class with
``start()``/``stop()`` (:class:`node.service.Adapter`); :mod:`node.compose` decides which ones
a node runs, from its configuration, so the runtime never imports this package."""

from __future__ import annotations

import ssl

from aiohttp import web


class AdapterError(RuntimeError):
    """An adapter cannot start (port taken, secret missing...); the message says what to fix."""


async def listen(
    runner: web.AppRunner, host: str, port: int, what: str, section: str,
    ssl_context: ssl.SSLContext | None = None,
) -> int:  # fmt: skip
    """Serve ``runner`` (set up) on ``host:port``; the port bound (port 0: the OS picks one).

    A port that cannot be bound cleans the runner up and raises :class:`AdapterError` naming
    the ``[section] port`` setting and its environment variable."""
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise AdapterError(
            f"{what} cannot listen on {host}:{port} ({exc.strerror}); "
            f"set [{section}] port or XNODE_{section.upper()}_PORT"
        ) from exc
    sockets = getattr(site._server, "sockets", None) or []
    return int(sockets[0].getsockname()[1]) if sockets else port
