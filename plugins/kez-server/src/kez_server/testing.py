"""Run the real kez-server in a background thread, for tests, demos and benchmarks::

    from kez_server.testing import running_server

    with running_server() as server:                    # SQLite in a temporary folder
        httpx.get(server.url + "/v1/healthz")
    with running_server(db="postgresql://…", server_name="example.org", write_burst=5, write_rate=1):
        ...

`running_server(db=None, server_name="example.org", **settings)` starts the
same app `kez-server` serves (database migrated first) under uvicorn on
127.0.0.1 with a free port, and yields a `RunningServer` whose `.url` is the
base URL (`http://127.0.0.1:<port>`, no trailing slash). `db` is a SQLite
file path or a `postgresql://` URL; None means a fresh SQLite file in a
temporary folder removed afterwards. `clock` (unix seconds) replaces the
inbox's clock (auth skew, the 7-day purge). `settings` are any other
`ServerSettings` fields (`write_burst`, `write_rate`, `read_burst`,
`read_rate`, `max_chain_body`, `public_url`, `reserved`, the timeouts,
the connection cap and the quotas); unlike the command, writes are not
rate-limited unless `write_burst` is given. The server runs with the
command's HTTP protocol (header deadline, connection cap). The
server stops when the block ends, even on error.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
from kez_core.localserver import serve_asgi
from starlette.applications import Starlette

from .app import create_app
from .config import ServerSettings
from .db import Store
from .limits import uvicorn_options

__all__ = ["RunningServer", "running_server"]


@attrs.frozen
class RunningServer:
    url: str  # http://127.0.0.1:<port>
    settings: ServerSettings
    app: Starlette

    @property
    def store(self) -> Store:
        return self.app.state.kez.store

    @property
    def server_name(self) -> str:
        return self.settings.server_name


@contextmanager
def running_server(
    db: str | None = None,
    server_name: str = "example.org",
    *,
    clock: Callable[[], float] | None = None,
    **settings: Any,
) -> Iterator[RunningServer]:
    """Serve kez-server on 127.0.0.1 (a free port) in a thread; see the module docstring."""
    with tempfile.TemporaryDirectory(prefix="kez-server-") as tmp:
        settings.setdefault("write_burst", 0)
        config = ServerSettings(
            server_name=server_name,
            db=db or str(Path(tmp) / "kez.db"),
            bind="127.0.0.1:0",
            **settings,
        )
        app = create_app(config, clock=clock)
        try:
            with serve_asgi(
                app, name="kez-server", lifespan="on", **uvicorn_options(config)
            ) as url:
                yield RunningServer(url, config, app)
        finally:
            app.state.kez.store.close()


@contextmanager
def running_callout(server: RunningServer, nats_url: str, keys: Any = None) -> Iterator[Any]:
    """Serve the NATS auth callout of `server` against the nats-server at `nats_url` in a thread.

    `keys` are the server's `NatsKeys` (default: the ones beside its SQLite
    database, made on first use). Yields the `Authorizer`; returns once the
    callout is subscribed, stops when the block ends.
    """
    import asyncio
    import threading

    from .nats_callout import Authorizer, run_callout
    from .nats_config import load_keys

    authorizer = Authorizer(server.store, keys or load_keys(server.settings.db))
    loop = asyncio.new_event_loop()
    ready, stop = threading.Event(), asyncio.Event()
    failure: list[BaseException] = []

    async def main() -> None:
        started = asyncio.Event()
        task = asyncio.ensure_future(run_callout(nats_url, authorizer, ready=started, stop=stop))
        await asyncio.wait([task, asyncio.ensure_future(started.wait())], return_when="FIRST_COMPLETED")
        ready.set()
        await task

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name="kez-nats-callout", daemon=True)
    thread.start()
    ready.wait(30)
    if failure:
        raise failure[0]
    try:
        yield authorizer
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
