"""Run an ASGI app under uvicorn on 127.0.0.1 in a background thread.

The local servers of the channel plugins' `testing` modules and of
kez-server's stand-ins for GitHub, Mastodon and the sigchain store all need
the same few steps: bind a free port, start uvicorn in a daemon thread,
wait until it listens (or fail clearly), and stop it when the block ends,
even on error. Used by tests, `kez demo` and the benchmarks; kez-core does
not depend on uvicorn, so it is imported only when a server is started.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal


@contextlib.contextmanager
def serve_asgi(
    app: Any,
    *,
    name: str,
    lifespan: Literal["auto", "on", "off"] = "off",
    backlog: int = 4096,
    keep_alive: float = 30,
    start_timeout: float = 30,
    stop_timeout: float = 15,
    **options: Any,
) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 (a free port); yields its base URL `http://127.0.0.1:<port>`.

    `name` names the thread and the error when the server does not start
    within `start_timeout` seconds. `options` are more `uvicorn.Config`
    keywords (kez-server passes its own HTTP protocol class).
    """
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            access_log=False,
            lifespan=lifespan,
            backlog=backlog,
            timeout_graceful_shutdown=1,
            timeout_keep_alive=int(keep_alive),
            **options,
        )
    )
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout=stop_timeout)
            raise RuntimeError(f"{name} did not start on 127.0.0.1")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=stop_timeout)
