"""Adapters: how local systems reach the node (DESIGN §7). Each is a small class with
``start()``/``stop()`` (:class:`node.service.Adapter`); :mod:`node.compose` decides which ones
a node runs, from its configuration, so the runtime never imports this package."""


class AdapterError(RuntimeError):
    """An adapter cannot start (port taken, secret missing...); the message says what to fix."""
