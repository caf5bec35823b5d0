"""structlog configuration: JSON lines by default, a readable console format on request.

Log lines carry identifiers (node, message id, thread id, peer) and never payload plaintext,
tokens or key material: callers pass only such fields. Libraries that use the standard
``logging`` module (aiokafka, aiohttp) are rendered the same way, so a node's output stays one
JSON object per line, each with the node id once :func:`bind_node` has been called.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

import structlog

# pycountry reports the quirks of its own databases at debug level when a table first loads
LIBRARY_LOGGERS = ("aiokafka", "kafka", "aiohttp", "pycountry")
REPEAT_WINDOW_SECONDS = 60.0


class RepeatFilter(logging.Filter):
    """Lets one record per logger and message template through per window, and says how many
    like it were held back when the next one passes.

    A broker that is down makes the Kafka client log the same connection error dozens of times
    a second; the node reports the outage itself (broker_lost / still unreachable / back), so
    the client's repeats add nothing but noise that buries other lines.
    """

    def __init__(
        self, window: float = REPEAT_WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(LIBRARY_LOGGERS):
            return True
        key = (record.name, str(record.msg))
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.window:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last {self.window:.0f} s)"
        return True


def configure(fmt: str = "json", level: str = "info") -> None:
    renderer: structlog.typing.Processor = (
        # Plain tracebacks: the rich formatter prints local variables, which can hold tokens
        # or payload text.
        structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
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
    # Libraries are chatty at info level; their warnings and errors are what an operator needs,
    # once: repeats are held back (RepeatFilter).
    # On the handler, not the loggers: a logger's filters do not see its children's records.
    handler.addFilter(RepeatFilter())
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))


def bind_node(node_id: str) -> None:
    """Put the node id on every later line of this context (one node per process)."""
    structlog.contextvars.bind_contextvars(node=node_id)
