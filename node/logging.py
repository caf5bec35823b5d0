"""structlog configuration: JSON lines by default, a readable console format on request.

Log lines carry identifiers (node, message id, thread id, peer) and never payload plaintext,
tokens or key material: callers pass only such fields. Libraries that use the standard
``logging`` module (aiokafka, aiohttp) are rendered the same way, so a node's output stays one
JSON object per line, each with the node id once :func:`bind_node` has been called.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure(fmt: str = "json", level: str = "info") -> None:
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    processors = list(shared)
    if fmt != "console":  # the console renderer formats exceptions itself
        processors.append(structlog.processors.format_exc_info)
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Standard-library records (aiokafka's connection errors...) in the same format.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *([] if fmt == "console" else [structlog.processors.format_exc_info]),
                renderer,
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    # Libraries are chatty at info level; their warnings and errors are what an operator needs.
    for name in ("aiokafka", "kafka", "aiohttp"):
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))


def bind_node(node_id: str) -> None:
    """Put the node id on every later line of this context (one node per process)."""
    structlog.contextvars.bind_contextvars(node=node_id)
