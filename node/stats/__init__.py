"""Anonymised statistics: local case records and exchanged messages counted, protected against
disclosure, released as ordinary messages and rolled up into reports (docs/statistics.md).

Layers, edges to core: ``report`` (files) -> ``rollup``/``release`` -> ``indicators`` ->
``disclosure`` -> ``model``. Everything but ``report`` is pure.
"""
