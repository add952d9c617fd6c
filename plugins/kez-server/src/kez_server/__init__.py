"""KEZ server: a sigchain store, a handle registry and WebFinger in one ASGI app.

Importing this package is cheap (no starlette, sqlalchemy or uvicorn). The
`kez server` command is `kez_server.cli:kez_command`, declared in the
`command.<name>` entries entry-point group, so `kez --help` lists it without importing
anything of this package. The app lives in `kez_server.app`, the command in
`kez_server.cli`, the test helper in `kez_server.testing`.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
