"""`kez-server` and `kez server`: one typer command, every flag also an environment variable.

Light at import (typer and the settings): the app, uvicorn and the
database driver are imported when the command runs.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import attrs
import typer
from kez_core.errors import KezError

from . import __version__
from .config import DEFAULT_BIND, DEFAULT_CHAIN_BODY_CAP, DEFAULT_DB, ENV, ServerSettings

# The flags' defaults are ServerSettings' own: one place says what an unset setting means.
_DEFAULT = {field.name: field.default for field in attrs.fields(ServerSettings)}

HELP = """Run the KEZ server: sigchain store, handle registry and WebFinger.

SQLite by default (--db FILE, created with its schema on first run);
--db postgresql://… lets several server processes share one database.
Every flag can also be set with the environment variable shown."""


def serve_command(
    bind: Annotated[
        str,
        typer.Option(
            "--bind", envvar=ENV["bind"], help="HOST:PORT to listen on ([::1]:7878 for IPv6)."
        ),
    ] = DEFAULT_BIND,
    db: Annotated[
        str,
        typer.Option(
            "--db",
            envvar=ENV["db"],
            help="SQLite file path, or a postgresql://user:pass@host/db URL.",
        ),
    ] = DEFAULT_DB,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar=ENV["server_name"],
            help="Domain handles are registered under (alice@DOMAIN). Required.",
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            envvar=ENV["public_url"],
            help="Base URL for sigchain_url in answers (default: the URL each request came in on).",
        ),
    ] = None,
    write_burst: Annotated[
        int,
        typer.Option(
            "--write-burst",
            envvar=ENV["write_burst"],
            help="Writes per client IP in a burst; 0: unlimited.",
        ),
    ] = _DEFAULT["write_burst"],
    write_rate: Annotated[
        float,
        typer.Option(
            "--write-rate",
            envvar=ENV["write_rate"],
            help="Write tokens refilled per second per IP.",
        ),
    ] = _DEFAULT["write_rate"],
    read_burst: Annotated[
        int,
        typer.Option(
            "--read-burst",
            envvar=ENV["read_burst"],
            help="Reads per client IP in a burst; 0: unlimited.",
        ),
    ] = _DEFAULT["read_burst"],
    read_rate: Annotated[
        float,
        typer.Option(
            "--read-rate", envvar=ENV["read_rate"], help="Read tokens refilled per second per IP."
        ),
    ] = _DEFAULT["read_rate"],
    max_chain_body: Annotated[
        int,
        typer.Option(
            "--max-chain-body",
            envvar=ENV["max_chain_body"],
            help="Largest sigchain POST body in bytes.",
        ),
    ] = DEFAULT_CHAIN_BODY_CAP,
    reserved: Annotated[
        str | None,
        typer.Option(
            "--reserved", envvar=ENV["reserved"], help="More reserved handles, comma-separated."
        ),
    ] = None,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            "--forwarded-allow-ips",
            envvar=ENV["forwarded_allow_ips"],
            help="Proxies whose X-Forwarded-For/-Proto are trusted (comma-separated, '*' for any).",
        ),
    ] = _DEFAULT["forwarded_allow_ips"],
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level", envvar=ENV["log_level"], help="critical, error, warning, info, debug."
        ),
    ] = _DEFAULT["log_level"],
) -> None:
    """Run the KEZ server (see `kez server --help`)."""
    if not server:
        raise _config_error("no server name: pass --server NAME or set KEZ_SERVER_NAME")
    settings = ServerSettings(
        server_name=server,
        db=db,
        bind=bind,
        public_url=public_url,
        write_burst=write_burst,
        write_rate=write_rate,
        read_burst=read_burst,
        read_rate=read_rate,
        max_chain_body=max_chain_body,
        reserved=reserved,
        forwarded_allow_ips=forwarded_allow_ips,
        log_level=log_level.lower(),
    )
    serve(settings)


# `kez server`: the object the `kez.commands` entry point names, imported when that command runs.
kez_command = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
kez_command.command("server", help=HELP, no_args_is_help=False)(serve_command)


def _config_error(message: str) -> KezError:
    from .config import ConfigError

    return ConfigError(
        message, hint="the domain handles are registered under, e.g. --server example.org"
    )


def serve(settings: ServerSettings) -> None:
    """Migrate the database, then serve until interrupted (uvicorn, one process)."""
    import uvicorn

    from .app import create_app
    from .db import describe

    level = settings.log_level.upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(levelname)s:     %(name)s: %(message)s",
    )
    host, port = settings.host_port
    try:
        app = create_app(settings)
    except Exception as exc:
        if isinstance(exc, KezError):
            raise
        raise _StartError(f"cannot open the database {settings.db!r}: {exc}") from exc
    store = app.state.kez.store
    shown = f"[{host}]" if ":" in host else host
    sys.stderr.write(
        f"kez-server {__version__}: handles @{settings.server_name}, "
        f"database {describe(store.url)} (schema {store.revision()}), listening on http://{shown}:{port}\n"
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=settings.log_level,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        server_header=False,
        timeout_graceful_shutdown=10,
    )


class _StartError(KezError):
    code = "server_start"
    exit_code = 4


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `kez-server` console script; returns the exit code when given `argv`."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args == ["--version"]:
        sys.stdout.write(f"kez-server {__version__}\n")
        code = 0
    else:
        app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        app.command(help=HELP + "\n\nkez-server --version prints the version.")(serve_command)
        try:
            app(args=args, prog_name="kez-server")
            code = 0
        except SystemExit as exc:  # typer ends help, usage errors and runs this way
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except KezError as exc:
            sys.stderr.write(f"kez-server: error: {exc.message}\n")
            if exc.hint:
                sys.stderr.write(f"  hint: {exc.hint}\n")
            code = exc.exit_code
        except KeyboardInterrupt:
            code = 130
    if argv is None:
        sys.exit(code)
    return code
