"""Server settings: one attrs class, filled from flags, environment variables or code.

Every setting has an environment variable (`ENV`), so a container or a
systemd unit configures the server without a command line. Light imports
only: `kez --help` reads the defaults from here.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Any

import attrs
from kez_core.errors import ExitCode, KezError

DEFAULT_BIND = "127.0.0.1:7878"
DEFAULT_DB = "kez.db"
REGISTER_BODY_CAP = 64 * 1024  # the registration envelope: one signed object
DEFAULT_CHAIN_BODY_CAP = 8 * 1024 * 1024  # one chain POST (~16k typical links)
MIB = 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 1000  # lowered at start to the open-file limit - 64 (kez_server.limits)

# setting name -> environment variable
ENV: dict[str, str] = {
    "bind": "KEZ_SERVER_BIND",
    "db": "KEZ_SERVER_DB",
    "server_name": "KEZ_SERVER_NAME",
    "public_url": "KEZ_SERVER_PUBLIC_URL",
    "write_burst": "KEZ_SERVER_WRITE_BURST",
    "write_rate": "KEZ_SERVER_WRITE_RATE",
    "read_burst": "KEZ_SERVER_READ_BURST",
    "read_rate": "KEZ_SERVER_READ_RATE",
    "max_chain_body": "KEZ_SERVER_MAX_CHAIN_BODY",
    "reserved": "KEZ_SERVER_RESERVED",
    "forwarded_allow_ips": "KEZ_SERVER_FORWARDED_ALLOW_IPS",
    "log_level": "KEZ_SERVER_LOG_LEVEL",
    "header_timeout": "KEZ_SERVER_HEADER_TIMEOUT",
    "body_timeout": "KEZ_SERVER_BODY_TIMEOUT",
    "max_connections": "KEZ_SERVER_MAX_CONNECTIONS",
    "identity_max_links": "KEZ_SERVER_IDENTITY_MAX_LINKS",
    "identity_max_bytes": "KEZ_SERVER_IDENTITY_MAX_BYTES",
    "client_bytes_per_hour": "KEZ_SERVER_CLIENT_BYTES_PER_HOUR",
    "client_links_per_hour": "KEZ_SERVER_CLIENT_LINKS_PER_HOUR",
    "message_burst": "KEZ_SERVER_MESSAGE_BURST",
    "message_rate": "KEZ_SERVER_MESSAGE_RATE",
    "vapid_key": "KEZ_SERVER_VAPID_KEY",
    "vapid_subject": "KEZ_SERVER_VAPID_SUBJECT",
    "push_allow": "KEZ_SERVER_PUSH_ALLOW",
    "nostr_relays": "KEZ_SERVER_NOSTR_RELAY",
}

_NAME = re.compile(
    r"^(?=.{1,253}\Z)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:[0-9]{1,5})?\Z"
)


class ConfigError(KezError):
    """A server setting is malformed (bad bind address, URL, number)."""

    exit_code = ExitCode.USAGE
    code = "config"


def parse_bind(bind: str) -> tuple[str, int]:
    """`127.0.0.1:7878`, `[::1]:7878`, `0.0.0.0:80` → (host, port). Port 0 picks a free one."""
    text = bind.strip()
    match = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:([0-9]{1,5})|([^:\s\[\]]+):([0-9]{1,5})", text)
    if not match:
        raise ConfigError(
            f"bind address {bind!r} is not HOST:PORT", hint="e.g. 127.0.0.1:7878 or [::1]:7878"
        )
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if port > 65535:
        raise ConfigError(f"port {port} in {bind!r} is out of range (0-65535)")
    return host, port


def _check_url(url: str | None) -> str | None:
    if url is None or not url.strip():
        return None
    url = url.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?\Z", url):
        raise ConfigError(
            f"public URL {url!r} is not an http(s) base URL",
            hint="e.g. https://sig.example.org (no query, no fragment)",
        )
    return url


def _nonneg(name: str) -> Any:
    def check(_inst: object, _attr: object, value: float) -> None:
        if value < 0:
            raise ConfigError(f"{name} must be 0 or more, got {value}")

    return check


def _reserved(value: object) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        value = re.split(r"[\s,]+", value)
    return frozenset(str(v).strip().lower() for v in value if str(v).strip())  # type: ignore[union-attr]


def _words(value: object) -> tuple[str, ...]:
    """A list setting: a sequence, or one string split on commas and white space (env vars)."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = re.split(r"[\s,]+", value)
    return tuple(str(v).strip() for v in value if str(v).strip())  # type: ignore[union-attr]


def _check_subject(value: str | None) -> str | None:
    """RFC 8292 `sub`: a `mailto:` address or an `https:` URL (push services refuse others)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if not re.match(r"^(mailto:[^@\s]+@[^@\s]+|https://[^/\s]+(/\S*)?)\Z", value):
        raise ConfigError(
            f"VAPID subject {value!r} is neither a mailto: address nor an https: URL",
            hint="e.g. --vapid-subject mailto:admin@example.org",
        )
    return value


@attrs.frozen
class ServerSettings:
    """Everything the app needs. Rates are tokens per second; a burst of 0 means unlimited.

    `server_name` is the domain handles are registered under (`alice@<server_name>`).
    `public_url` is the base URL written into `sigchain_url`; None means the
    URL each request came in on (scheme and Host, as the proxy forwarded them),
    which the command allows only on loopback (`check_public_url`).
    """

    server_name: str = attrs.field(converter=lambda s: str(s).strip().lower())
    db: str = DEFAULT_DB
    bind: str = attrs.field(default=DEFAULT_BIND)
    public_url: str | None = attrs.field(default=None, converter=_check_url)
    write_burst: int = attrs.field(default=20, converter=int, validator=_nonneg("write burst"))
    write_rate: float = attrs.field(default=1.0, converter=float, validator=_nonneg("write rate"))
    read_burst: int = attrs.field(default=0, converter=int, validator=_nonneg("read burst"))
    read_rate: float = attrs.field(default=0.0, converter=float, validator=_nonneg("read rate"))
    max_chain_body: int = attrs.field(
        default=DEFAULT_CHAIN_BODY_CAP, converter=int, validator=_nonneg("max chain body")
    )
    reserved: frozenset[str] = attrs.field(factory=frozenset, converter=_reserved)
    forwarded_allow_ips: str = "127.0.0.1"
    log_level: str = "info"
    # Slow clients (kez_server.limits): seconds for a request's headers, for its whole
    # body, and the open connections served at once (beyond: 503 `busy`). 0: no limit.
    header_timeout: float = attrs.field(
        default=10.0, converter=float, validator=_nonneg("header timeout")
    )
    body_timeout: float = attrs.field(
        default=60.0, converter=float, validator=_nonneg("body timeout")
    )
    max_connections: int = attrs.field(
        default=DEFAULT_MAX_CONNECTIONS, converter=int, validator=_nonneg("max connections")
    )
    # Storage quotas (kez_server.quotas): per identity (links, bytes of its stored
    # chain) and per client address (new bytes and links stored per hour). 0: no limit.
    identity_max_links: int = attrs.field(
        default=100_000, converter=int, validator=_nonneg("identity max links")
    )
    identity_max_bytes: int = attrs.field(
        default=64 * MIB, converter=int, validator=_nonneg("identity max bytes")
    )
    client_bytes_per_hour: int = attrs.field(
        default=16 * MIB, converter=int, validator=_nonneg("client bytes per hour")
    )
    client_links_per_hour: int = attrs.field(
        default=50_000, converter=int, validator=_nonneg("client links per hour")
    )
    # POST /v1/messages per client IP: 60 a minute, as the seeds' chat server
    message_burst: int = attrs.field(default=60, converter=int, validator=_nonneg("message burst"))
    message_rate: float = attrs.field(
        default=1.0, converter=float, validator=_nonneg("message rate")
    )
    # Web Push (push.py): the VAPID key file (None: beside the SQLite file, or
    # ./kez-vapid.pem), its RFC 8292 subject (None:
    # mailto:postmaster@<server_name>) and the hosts
    # admitted past the SSRF rules (push_targets.py).
    vapid_key: str | None = None
    vapid_subject: str | None = attrs.field(default=None, converter=_check_subject)
    push_allow: tuple[str, ...] = attrs.field(default=(), converter=_words)
    # nostr relays watched for envelopes to registered identities (nostr_listen.py)
    nostr_relays: tuple[str, ...] = attrs.field(default=(), converter=_words)

    @nostr_relays.validator
    def _check_relays(self, _attr: object, value: tuple[str, ...]) -> None:
        from kez_channel_nostr.channel import bad_relay_url

        for url in value:
            if problem := bad_relay_url(url):
                raise ConfigError(
                    f"nostr relay {url[:120]!r} {problem}",
                    hint="e.g. --nostr-relay wss://relay.example.org",
                )

    @server_name.validator
    def _check_name(self, _attr: object, value: str) -> None:
        if not _NAME.match(value):
            raise ConfigError(
                f"server name {value!r} is not a domain name",
                hint="the domain handles are registered under, e.g. example.org",
            )

    @bind.validator
    def _check_bind(self, _attr: object, value: str) -> None:
        parse_bind(value)

    @property
    def host_port(self) -> tuple[str, int]:
        return parse_bind(self.bind)

    def check_public_url(self) -> None:
        """ConfigError when listening beyond loopback without `public_url`.

        Without it, `sigchain_url` and the WebFinger links are built from
        each request's Host header, which any client can set: behind a
        cache that would hand one client's forged host to everyone. On
        loopback (development, a proxy on the same machine that sets Host)
        the request's URL is used, with `Vary: Host` on those answers.
        """
        if self.public_url is not None:
            return
        host = self.host_port[0]
        if host == "localhost":
            return
        try:
            if ipaddress.ip_address(host).is_loopback:
                return
        except ValueError:
            pass
        raise ConfigError(
            f"listening on {host} needs --public-url: the URL clients reach this server at "
            "(sigchain_url and WebFinger links are built from it, not from a Host header "
            "any client can forge)",
            hint="e.g. --public-url https://example.org (or set KEZ_SERVER_PUBLIC_URL)",
        )

    @property
    def push_subject(self) -> str:
        """The VAPID `sub` claim: --vapid-subject, else the RFC 2142 postmaster of the server's domain."""
        return self.vapid_subject or f"mailto:postmaster@{self.server_name.split(':')[0]}"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> ServerSettings:
        """Settings from `KEZ_SERVER_*` variables; keyword arguments win over them."""
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for name, var in ENV.items():
            if environ.get(var, "").strip():
                values[name] = environ[var].strip()
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "server_name" not in values:
            raise ConfigError(
                "no server name: pass --server NAME or set KEZ_SERVER_NAME",
                hint="the domain handles are registered under, e.g. example.org",
            )
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad server setting: {exc}") from exc
