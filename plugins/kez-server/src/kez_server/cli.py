"""`kez-server` and `kez server`: one typer command, every flag also an environment variable.

Light at import (typer and the settings): the app, uvicorn and the
database driver are imported when the command runs.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import attrs
import typer
from kez_core.errors import KezError

from . import __version__
from .config import DEFAULT_BIND, DEFAULT_CHAIN_BODY_CAP, DEFAULT_DB, ENV, ServerSettings
from .nats_config import DEFAULT_NATS_LISTEN
from .nats_run import NatsOptions

# The flags' defaults are ServerSettings' own: one place says what an unset setting means.
_DEFAULT = {field.name: field.default for field in attrs.fields(ServerSettings)}

HELP = """Run the KEZ server: sigchain store, handle registry, WebFinger and Web Push.

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
            help="Base URL clients reach the server at, for sigchain_url and WebFinger links. "
            "Required when --bind is not a loopback address (default there: the request's URL).",
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
    header_timeout: Annotated[
        float,
        typer.Option(
            "--header-timeout",
            envvar=ENV["header_timeout"],
            help="Seconds for a request's headers to arrive (408 after; 0: no limit).",
        ),
    ] = _DEFAULT["header_timeout"],
    body_timeout: Annotated[
        float,
        typer.Option(
            "--body-timeout",
            envvar=ENV["body_timeout"],
            help="Seconds for a request's whole body to arrive (408 after; 0: no limit).",
        ),
    ] = _DEFAULT["body_timeout"],
    max_connections: Annotated[
        int,
        typer.Option(
            "--max-connections",
            envvar=ENV["max_connections"],
            help="Open connections served at once; beyond, 503 busy (0: the open-file limit).",
        ),
    ] = _DEFAULT["max_connections"],
    identity_max_links: Annotated[
        int,
        typer.Option(
            "--identity-max-links",
            envvar=ENV["identity_max_links"],
            help="Links one identity's chain may have here (403 after; 0: no limit).",
        ),
    ] = _DEFAULT["identity_max_links"],
    identity_max_bytes: Annotated[
        int,
        typer.Option(
            "--identity-max-bytes",
            envvar=ENV["identity_max_bytes"],
            help="Bytes one identity's stored chain may take (403 after; 0: no limit).",
        ),
    ] = _DEFAULT["identity_max_bytes"],
    client_bytes_per_hour: Annotated[
        int,
        typer.Option(
            "--client-bytes-per-hour",
            envvar=ENV["client_bytes_per_hour"],
            help="New chain bytes one client address may store per hour (429 after; 0: no limit).",
        ),
    ] = _DEFAULT["client_bytes_per_hour"],
    client_links_per_hour: Annotated[
        int,
        typer.Option(
            "--client-links-per-hour",
            envvar=ENV["client_links_per_hour"],
            help="New links one client address may store per hour (429 after; 0: no limit).",
        ),
    ] = _DEFAULT["client_links_per_hour"],
    message_burst: Annotated[
        int,
        typer.Option(
            "--message-burst",
            envvar=ENV["message_burst"],
            help="Inbox messages (POST /v1/messages) per client IP in a burst; 0: unlimited.",
        ),
    ] = _DEFAULT["message_burst"],
    message_rate: Annotated[
        float,
        typer.Option(
            "--message-rate",
            envvar=ENV["message_rate"],
            help="Inbox message tokens refilled per second per IP.",
        ),
    ] = _DEFAULT["message_rate"],
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level", envvar=ENV["log_level"], help="critical, error, warning, info, debug."
        ),
    ] = _DEFAULT["log_level"],
    nats: Annotated[
        str | None,
        typer.Option(
            "--nats",
            envvar="KEZ_SERVER_NATS",
            help="Serve the NATS auth callout on this nats-server (nats://HOST:PORT), "
            "configured by `kez-server nats-config`.",
        ),
    ] = None,
    with_nats: Annotated[
        bool,
        typer.Option(
            "--with-nats",
            envvar="KEZ_SERVER_WITH_NATS",
            help="Start nats-server too (config written beside the keys) and serve its callout.",
        ),
    ] = False,
    nats_listen: Annotated[
        str,
        typer.Option(
            "--nats-listen",
            envvar="KEZ_SERVER_NATS_LISTEN",
            help="HOST:PORT of the nats-server --with-nats starts.",
        ),
    ] = DEFAULT_NATS_LISTEN,
    nats_keys: Annotated[
        str | None,
        typer.Option(
            "--nats-keys",
            envvar="KEZ_SERVER_NATS_KEYS",
            help="Folder of the NATS nkey seeds (default: beside the SQLite database).",
        ),
    ] = None,
    vapid_key: Annotated[
        str | None,
        typer.Option(
            "--vapid-key",
            envvar=ENV["vapid_key"],
            help="Web Push VAPID key (P-256 PEM), created on first run "
            "(default: beside the SQLite file, DB.vapid.pem; ./kez-vapid.pem for PostgreSQL).",
        ),
    ] = None,
    vapid_subject: Annotated[
        str | None,
        typer.Option(
            "--vapid-subject",
            envvar=ENV["vapid_subject"],
            help="VAPID contact: mailto:ADDRESS or an https: URL (default mailto:postmaster@SERVER).",
        ),
    ] = None,
    push_allow: Annotated[
        list[str] | None,
        typer.Option(
            "--push-allow",
            metavar="HOST[:PORT]",
            envvar=ENV["push_allow"],
            help="HOST[:PORT] push endpoints may use although not public https (repeatable).",
        ),
    ] = None,
    nostr_relay: Annotated[
        list[str] | None,
        typer.Option(
            "--nostr-relay",
            metavar="URL",
            envvar=ENV["nostr_relays"],
            help="Watch this nostr relay (ws:// or wss://) for envelopes to registered identities "
            "and send their Web Pushes (repeatable).",
        ),
    ] = None,
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
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        max_connections=max_connections,
        identity_max_links=identity_max_links,
        identity_max_bytes=identity_max_bytes,
        client_bytes_per_hour=client_bytes_per_hour,
        client_links_per_hour=client_links_per_hour,
        message_burst=message_burst,
        message_rate=message_rate,
        vapid_key=vapid_key,
        vapid_subject=vapid_subject,
        push_allow=push_allow or (),
        nostr_relays=nostr_relay or (),
    )
    settings.check_public_url()
    serve(settings, NatsOptions(nats, with_nats, nats_listen, nats_keys))


NATS_CONFIG_HELP = """Write a complete nats-server config whose auth callout is this server.

The server's NATS keys (issuer account and callout service user) are made
on first use beside the database (or in --nats-keys DIR) and kept; the
config trusts that issuer, names the service user, and has no other users.
Start nats-server with it (`nats-server -c FILE`), then `kez-server --nats
nats://HOST:PORT`."""


def nats_config_command(
    out: Annotated[str, typer.Option("--out", help="File to write the config to (mode 0600).")],
    db: Annotated[
        str,
        typer.Option(
            "--db", envvar=ENV["db"], help="The server's database (its keys sit beside it)."
        ),
    ] = DEFAULT_DB,
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT nats-server listens on.")
    ] = DEFAULT_NATS_LISTEN,
    nats_keys: Annotated[
        str | None,
        typer.Option(
            "--nats-keys",
            envvar="KEZ_SERVER_NATS_KEYS",
            help="Folder of the NATS nkey seeds (default: beside the SQLite database).",
        ),
    ] = None,
) -> None:
    """Write the nats-server config (see `kez-server nats-config --help`)."""
    from .nats_config import load_keys, write_config

    path = write_config(db, listen, out, keys_dir=nats_keys)
    issuer = load_keys(db, nats_keys).issuer_public
    sys.stderr.write(f"kez-server: wrote {path} (auth callout issuer {issuer})\n")


# `kez server`: the object the `command.<name>` entry point names, imported when that command runs.
kez_command = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
kez_command.command("server", help=HELP, no_args_is_help=False)(serve_command)


def _config_error(message: str) -> KezError:
    from .config import ConfigError

    return ConfigError(
        message, hint="the domain handles are registered under, e.g. --server example.org"
    )


def serve(settings: ServerSettings, nats: NatsOptions | None = None) -> None:
    """Migrate the database, then serve until interrupted (uvicorn, one process).

    With `nats` enabled the same process serves the NATS auth callout, and
    starts nats-server first for `--with-nats`.
    """
    import uvicorn

    from .app import create_app
    from .db import describe
    from .limits import uvicorn_options

    level = settings.log_level.upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(levelname)s:     %(name)s: %(message)s",
    )
    host, port = settings.host_port
    try:
        app = create_app(settings, freeze_gc=True)
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
    uv_options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": settings.log_level,
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
        # above INFO the access log writes nothing, but uvicorn would still build each line
        "access_log": getattr(logging, level, logging.INFO) <= logging.INFO,
        **uvicorn_options(settings),
    }
    if nats is None or not nats.enabled:
        uvicorn.run(app, **uv_options)
        return
    import asyncio
    import contextlib

    from .nats_run import serve_with_callout, started_nats

    with contextlib.ExitStack() as stack:
        url = stack.enter_context(started_nats(settings.db, nats)) if nats.with_nats else nats.url
        assert url is not None
        sys.stderr.write(f"kez-server: NATS auth callout on {url}\n")
        config = uvicorn.Config(app, **uv_options)
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the SIGINT it handled
            asyncio.run(serve_with_callout(config, store, settings.db, url, nats.keys_dir))


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
        prog = "kez-server"
        if args[:1] == ["nats-config"]:  # the one subcommand; the bare command serves
            app.command(help=NATS_CONFIG_HELP)(nats_config_command)
            args, prog = args[1:], "kez-server nats-config"
        else:
            app.command(
                help=HELP
                + "\n\nkez-server --version prints the version; `kez-server nats-config --help` "
                "writes a nats-server config."
            )(serve_command)
        try:
            app(args=args, prog_name=prog)
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
