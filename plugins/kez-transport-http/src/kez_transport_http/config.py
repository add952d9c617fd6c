"""Options of the http transport, and how a context becomes (server URL, handle, signer).

Kept apart from the HTTP code so listing options (`kez --help`, `kez
plugins`) imports nothing heavy.

A handle's home server is where its inbox lives: `bob@kez.example` lives at
`https://kez.example` unless `--inbox-server` names another base URL (a
proxy, a test server). Without `--inbox-handle` the handle is found with
`GET /v1/by-primary/{identity}` on that server: the recipient's identity
for `send` (context value `recipient`, which `kez message send` fills), the
reader's own for `subscribe` (context value `identity`).
"""

from __future__ import annotations

import re
from typing import Any

import attrs
from kez_core.errors import ExitCode, TransportError
from kez_core.protocols import ChannelContext, ChannelOption

SERVER_OPTION = ChannelOption(
    name="inbox_server",
    flag="--inbox-server",
    env="KEZ_INBOX_SERVER",
    help="Base URL of the kez-server holding the inbox (default: https://DOMAIN of a handle@DOMAIN).",
)
HANDLE_OPTION = ChannelOption(
    name="inbox_handle",
    flag="--inbox-handle",
    env="KEZ_INBOX_HANDLE",
    help="The inbox's handle (handle or handle@domain): the recipient's when sending, your own "
    "when listening (default: looked up by identity on the server).",
)
SINCE_OPTION = ChannelOption(
    name="inbox_since",
    flag="--inbox-since",
    env="KEZ_INBOX_SINCE",
    help="Listening catches up from this inbox seq (default: after the last one this identity "
    "handled, else 0: everything the server holds).",
)
OPTIONS: tuple[ChannelOption, ...] = (SERVER_OPTION, HANDLE_OPTION, SINCE_OPTION)

_HANDLE = re.compile(r"^[a-z0-9][a-z0-9_-]{2,31}\Z")
_DOMAIN = re.compile(r"^[a-z0-9.-]+\.[a-z0-9-]+(:[0-9]{1,5})?\Z")
_URL = re.compile(r"^https?://[^/\s?#]+(/[^\s?#]*)?\Z")
HINT = "pass --inbox-server URL and --inbox-handle HANDLE (or KEZ_INBOX_SERVER / KEZ_INBOX_HANDLE)"


class HttpConfigError(TransportError):
    """The http transport's settings cannot work (no server, a malformed handle or URL)."""

    exit_code = ExitCode.USAGE
    code = "http_transport_config"


@attrs.frozen
class Target:
    """Where an inbox is: the server's base URL (no trailing `/`) and the handle (or None: look it up)."""

    base: str
    handle: str | None


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def target(ctx: ChannelContext) -> Target:
    """The server and handle in `ctx.options`; HttpConfigError when they cannot name an inbox."""
    raw_handle = _text(ctx.options.get(HANDLE_OPTION.name))
    raw_server = _text(ctx.options.get(SERVER_OPTION.name))
    handle = domain = None
    if raw_handle is not None:
        handle, at, domain = raw_handle.lower().partition("@")
        if not _HANDLE.match(handle) or (at and not _DOMAIN.match(domain)):
            raise HttpConfigError(
                f"inbox handle {raw_handle[:80]!r} is not handle or handle@domain", hint=HINT
            )
    if raw_server is not None:
        base = raw_server.rstrip("/")
        if not _URL.match(base):
            raise HttpConfigError(
                f"inbox server {raw_server[:80]!r} is not an http(s) base URL", hint=HINT
            )
    elif domain:
        base = f"https://{domain}"
    else:
        raise HttpConfigError("no inbox server: the http transport needs one", hint=HINT)
    return Target(base, handle)


def since(ctx: ChannelContext) -> int | None:
    """`--inbox-since`, or None when not given (then the kept cursor, `cursor.py`, decides)."""
    raw = _text(ctx.options.get(SINCE_OPTION.name))
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise HttpConfigError(f"--inbox-since {raw[:40]!r} is not a non-negative integer")
    return int(raw)


def context_value(ctx: ChannelContext, name: str) -> Any:
    """A value the caller put in the context besides the flags (`recipient`, `identity`, `signer`)."""
    return ctx.options.get(name)
