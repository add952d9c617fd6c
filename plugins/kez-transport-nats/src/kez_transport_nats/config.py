"""The transport's options and how they are read from a `ChannelContext`.

Kept apart from the connection code so that listing options (`kez --help`,
`kez plugins`) never imports nats-py, and so the rules for URLs and
credentials are in one place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
from kez_core.messaging.envelope import check_routing_id
from kez_core.protocols import ChannelContext, ChannelOption

from .errors import NatsConfigError

SUBJECT_PREFIX = "kez.inbox."
DEFAULT_URL = "nats://127.0.0.1:4222"
SCHEMES = ("nats", "tls")

URL_OPTION = ChannelOption(
    name="nats_url",
    flag="--nats-url",
    env="KEZ_NATS_URL",
    help="NATS server (nats:// or tls://) that carries envelopes; repeat the flag "
    "(or separate with commas in the variable) to name several servers of a cluster.",
    default=(DEFAULT_URL,),
    multiple=True,
)
TOKEN_OPTION = ChannelOption(
    name="nats_token",
    flag="--nats-token",
    env="KEZ_NATS_TOKEN",
    help="Token for a NATS server that requires one (sent as the CONNECT auth_token).",
    secret=True,
)
CREDS_OPTION = ChannelOption(
    name="nats_creds",
    flag="--nats-creds",
    env="KEZ_NATS_CREDS",
    help="Path of a NATS credentials file (user JWT and NKey seed) for a server "
    "that authenticates with them.",
    secret=True,
)
OPTIONS: tuple[ChannelOption, ...] = (URL_OPTION, TOKEN_OPTION, CREDS_OPTION)

# Not flags: the caller's own key, put in `ctx.options` by `kez message send/listen`.
# With them (and no token or creds) the transport proves the key to a server
# whose auth callout is kez-server (spec §12.5, `.auth`).
SIGNER_OPTION = "signer"  # a kez_core.keys.Signer: the identity's primary or device key
IDENTITY_OPTION = "identity"  # the identity id that key belongs to

_USERINFO = re.compile(r"://[^/?#]*@")
URL_HINT = (
    "pass --nats-url nats://HOST:PORT (repeatable) or set KEZ_NATS_URL=nats://a:4222,nats://b:4222"
)


def subject_for(routing_id: object) -> str:
    """`kez.inbox.<routing id>`; DecodeError for anything but 64 lowercase hex.

    The check comes first, so no `.`, `*` or `>` can ever reach a subject and
    widen a publish or a subscription to other inboxes.
    """
    return SUBJECT_PREFIX + check_routing_id(routing_id)


@attrs.frozen
class NatsSettings:
    """Where to connect and how to authenticate, read once from a context.

    `key` identifies the settings for sharing one connection per run; it
    holds the secrets, so it stays in memory and is never printed.
    """

    urls: tuple[str, ...]
    token: str | None = attrs.field(default=None, repr=False)
    creds: Path | None = None
    signer: Any = attrs.field(default=None, repr=False)  # kez_core.keys.Signer (see SIGNER_OPTION)
    identity: str | None = None

    @property
    def key(self) -> tuple[Any, ...]:
        signer = self.signer.key_id if self.signer is not None else None
        creds = str(self.creds) if self.creds else None
        return ("nats", self.urls, self.token, creds, signer, self.identity)

    @property
    def shown_urls(self) -> str:
        """The server URLs for messages, without any user:password inside them."""
        return ", ".join(redact(url) for url in self.urls)


def settings(ctx: ChannelContext) -> NatsSettings:
    """The NATS settings in `ctx.options` (defaults where absent); NatsConfigError when unusable."""
    options = ctx.options
    token = _text(options.get(TOKEN_OPTION.name))
    creds_text = _text(options.get(CREDS_OPTION.name))
    creds = None
    if creds_text:
        creds = Path(creds_text).expanduser()
        if not creds.is_file():
            raise NatsConfigError(
                f"NATS credentials file {str(creds)!r} does not exist or is not a file",
                hint="pass --nats-creds PATH (or KEZ_NATS_CREDS) naming a .creds file",
            )
    signer = options.get(SIGNER_OPTION)
    identity = _text(options.get(IDENTITY_OPTION))
    if signer is not None and identity is None:
        identity = signer.key_id
    return NatsSettings(
        urls=server_urls(ctx), token=token, creds=creds, signer=signer, identity=identity
    )


def server_urls(ctx: ChannelContext) -> tuple[str, ...]:
    """The configured server URLs, in order, without blanks and duplicates.

    `ctx.options["nats_url"]` may be a sequence of URLs or one string with
    commas between URLs (the form of the environment variable); absent (or
    None) means the default. A URL without a scheme gets `nats://`.
    """
    value = ctx.options.get(URL_OPTION.name)
    if value is None:
        value = URL_OPTION.default
    items: Iterable[Any] = [value] if isinstance(value, str) else value
    urls: list[str] = []
    for item in items:
        for part in str(item).split(","):
            url = part.strip()
            if not url:
                continue
            if "://" not in url:
                url = "nats://" + url
            _check_url(url)
            if url not in urls:
                urls.append(url)
    if not urls:
        raise NatsConfigError("no NATS server URL is configured", hint=URL_HINT)
    return tuple(urls)


def redact(url: str) -> str:
    """`url` with any user:password replaced by `***` (for messages and logs)."""
    return _USERINFO.sub("://***@", url)


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise NatsConfigError(
            f"NATS server URL {redact(url)!r} is malformed: {exc}", hint=URL_HINT
        ) from None
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise NatsConfigError(
            f"NATS server URL {redact(url)!r} is not nats://HOST[:PORT] or tls://HOST[:PORT]",
            hint=URL_HINT,
        )
    if port == 0:
        raise NatsConfigError(f"NATS server URL {redact(url)!r} has port 0", hint=URL_HINT)


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
