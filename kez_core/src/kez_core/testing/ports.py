"""Ports on 127.0.0.1 for tests: one to start a server on, one where nothing answers.

Tests start real servers on loopback (nats-server, a nostr relay, uvicorn)
and need a port for them, and "server down" tests need a port where a
connection is refused. Both were copied into many suites; these are the one
copy. The pytest plugin (`kez_core.testing.pytest_plugin`) wraps them as the
`free_port` and `closed_port` fixtures.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

__all__ = ["free_port", "held_closed_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, to start a server on.

    The port is bound and released, so another process could take it before
    the caller does; that race is as small as every test suite accepts.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def held_closed_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 where connections are refused, for as long as the block runs.

    The socket stays bound and never listens: the kernel refuses connections
    to it at once (no timeout) and no other process can start a server on it
    meanwhile, which a bound-then-released port cannot promise.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])
