"""Which push endpoints the server may send to: the SSRF rules of Web Push.

A browser's push subscription names the URL the server will POST to, and
the client chooses it, so without rules any user could make the server
reach its own network (a database's HTTP port, a cloud metadata service at
169.254.169.254, a router's admin page). The rules:

- the URL is `https://HOST[:PORT]/…`, without user info, at most
  `MAX_ENDPOINT` characters;
- HOST is a DNS name or an IP literal in canonical form; forms that some
  resolvers read as IPv4 addresses (`2130706433`, `0x7f.1`, `0177.0.0.1`,
  `127.1`) are refused, so what is checked is what is connected to;
- every address HOST resolves to is public: not loopback, private,
  link-local, shared (100.64/10), multicast, reserved or unspecified, also
  when wrapped as IPv4-mapped, 6to4 or Teredo IPv6.

The address check runs when a subscription is made and again inside the
connection of every push (`PublicResolver`, the resolver of the push
client's connector): the addresses connected to are the ones just checked,
so a DNS answer that changes in between (rebinding) cannot slip through.
Redirects are not followed (see `push.py`).

`--push-allow HOST[:PORT]` admits one host the rules refuse (a push
service on the operator's own network, tests on 127.0.0.1): any address,
and plain `http` too. Without PORT, every port of that host.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import attrs

from .config import ConfigError

MAX_ENDPOINT = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> addresses; the default asks the system resolver
Lookup = Callable[[str, int], Awaitable[list[str]]]

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)\Z")
_SPECIAL_V4 = [
    ipaddress.ip_network(n)
    for n in ("0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "240.0.0.0/4")
]


class EndpointRefused(Exception):
    """The endpoint is not one this server sends to; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def is_public_address(address: IPAddress) -> bool:
    """True for an address on the public internet (the only kind a push may reach)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if inner is not None and not is_public_address(inner):
            return False
    if not address.is_global:
        return False
    if (
        address.is_multicast
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_private
    ):
        return False
    return not (
        isinstance(address, ipaddress.IPv4Address) and any(address in n for n in _SPECIAL_V4)
    )


@attrs.frozen
class Endpoint:
    """A push endpoint URL that passed the syntax rules."""

    url: str
    scheme: str
    host: str  # lowercase; an IPv6 literal without brackets
    port: int
    literal: IPAddress | None  # the host as an address, when it is one
    allowed: bool  # admitted by --push-allow: no address rules

    @property
    def origin(self) -> str:
        """`scheme://host[:port]` as in the URL: the `aud` of the VAPID token."""
        return f"{self.scheme}://{urlsplit(self.url).netloc.lower()}"


def _parse_allow(entry: str) -> tuple[str, int | None]:
    text = entry.strip().lower()
    match = re.fullmatch(
        r"\[([0-9a-f:.]+)\](?::([0-9]{1,5}))?|([^:\[\]\s/]+)(?::([0-9]{1,5}))?", text
    )
    if not match:
        raise ConfigError(
            f"--push-allow {entry!r} is not HOST or HOST:PORT",
            hint="e.g. --push-allow push.internal.example or --push-allow 127.0.0.1:8443",
        )
    host = match.group(1) or match.group(3)
    port = match.group(2) or match.group(4)
    if port is not None and not 0 < int(port) < 65536:
        raise ConfigError(f"--push-allow {entry!r}: port out of range")
    return host, int(port) if port is not None else None


async def _system_lookup(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [info[4][0] for info in infos]


class EndpointPolicy:
    """The SSRF rules above, with the operator's `--push-allow` exceptions."""

    def __init__(self, allow: Iterable[str] = (), *, lookup: Lookup | None = None) -> None:
        self.allow = frozenset(_parse_allow(entry) for entry in allow)
        self.lookup = lookup or _system_lookup

    def allowed(self, host: str, port: int) -> bool:
        return (host, port) in self.allow or (host, None) in self.allow

    def check_url(self, url: object) -> Endpoint:
        """The syntax rules and, for an IP literal, the address rule; EndpointRefused otherwise."""
        if not isinstance(url, str) or not url:
            raise EndpointRefused("the endpoint must be a URL string")
        if len(url) > MAX_ENDPOINT:
            raise EndpointRefused(f"the endpoint is longer than {MAX_ENDPOINT} characters")
        if not url.isascii() or any(c.isspace() or ord(c) < 0x21 or c == "\x7f" for c in url):
            raise EndpointRefused("the endpoint must be an ASCII URL without spaces or controls")
        try:
            parts = urlsplit(url)
            port = parts.port
            host = parts.hostname
        except ValueError as exc:
            raise EndpointRefused(f"the endpoint is not a valid URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("https", "http"):
            raise EndpointRefused("the endpoint must be an https:// URL")
        if not host:
            raise EndpointRefused("the endpoint URL has no host")
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise EndpointRefused("the endpoint URL must not carry a user name or password")
        if parts.fragment or "#" in url:
            raise EndpointRefused("the endpoint URL must not have a fragment")
        port = port if port is not None else (443 if scheme == "https" else 80)
        if port == 0:
            raise EndpointRefused("the endpoint URL has port 0")
        literal = _literal(host, bracketed=parts.netloc.startswith("["))
        allowed = self.allowed(host, port) or (
            literal is not None and self.allowed(str(literal), port)
        )
        if not allowed:
            if scheme != "https":
                raise EndpointRefused("the endpoint must be an https:// URL")
            if literal is not None and not is_public_address(literal):
                raise EndpointRefused(f"the endpoint's address {literal} is not a public address")
        return Endpoint(url, scheme, host, port, literal, allowed)

    async def check(self, url: object) -> Endpoint:
        """`check_url`, then every address the host resolves to must be public."""
        endpoint = self.check_url(url)
        if not endpoint.allowed and endpoint.literal is None:
            await self.public_addresses(endpoint.host, endpoint.port)
        return endpoint

    async def public_addresses(self, host: str, port: int) -> list[str]:
        """The addresses of `host`, all public (or the host is allowed); EndpointRefused otherwise."""
        try:
            addresses = await self.lookup(host, port)
        except (OSError, UnicodeError) as exc:
            raise EndpointRefused(f"the endpoint's host {host!r} does not resolve: {exc}") from None
        if not addresses:
            raise EndpointRefused(f"the endpoint's host {host!r} has no address")
        if not self.allowed(host, port):
            require_public(host, addresses)
        return addresses


def require_public(host: str, addresses: Iterable[str]) -> None:
    """EndpointRefused unless every one of `addresses` (of `host`) is public."""
    for text in addresses:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:  # a scoped (`%zone`) or unreadable address is not a public one
            raise EndpointRefused(f"the endpoint's host {host!r} resolved to {text!r}") from None
        if not is_public_address(address):
            raise EndpointRefused(
                f"the endpoint's host {host!r} resolves to {address}, not a public address"
            )


def _literal(host: str, *, bracketed: bool) -> IPAddress | None:
    """The host as an IP address, or None for a DNS name; EndpointRefused for a non-canonical form."""
    if bracketed:
        if "%" in host:
            raise EndpointRefused(
                f"the endpoint's host [{host}] has a zone id: not a public address"
            )
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise EndpointRefused(f"the endpoint's host [{host}] is not an IPv6 address") from None
    try:
        return ipaddress.IPv4Address(host)  # strict dotted quad, no leading zeros
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if _NUMERIC_LABEL.match(labels[-1]) or all(_NUMERIC_LABEL.match(label) for label in labels):
        # `2130706433`, `127.1`, `0x7f.0.0.1`, `0177.0.0.01`: what a resolver makes of them
        # is not what a reader sees. URL parsers (WHATWG) read a numeric last label as IPv4.
        raise EndpointRefused(
            f"the endpoint's host {host!r} is a non-canonical IP address; write it as a dotted quad"
        )
    try:
        encoded = host.rstrip(".").encode("idna").decode("ascii")
    except UnicodeError:
        raise EndpointRefused(f"the endpoint's host {host!r} is not a valid host name") from None
    if not all(_LABEL.match(label) for label in encoded.split(".")):
        raise EndpointRefused(f"the endpoint's host {host!r} is not a valid host name")
    return None


def public_resolver(policy: EndpointPolicy) -> Any:
    """An aiohttp resolver that answers only public addresses (or those of an allowed host).

    It is the connector's resolver, so the addresses checked are the
    addresses connected to (no DNS rebinding between check and connect).
    aiohttp connects to IP literals without a resolver: `check_url` runs
    before every push for those.
    """
    import aiohttp
    from aiohttp.abc import AbstractResolver, ResolveResult

    class PublicResolver(AbstractResolver):
        def __init__(self) -> None:
            self._inner = aiohttp.ThreadedResolver()

        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[ResolveResult]:
            results = await self._inner.resolve(host, port, family)
            if not policy.allowed(host.lower(), port):
                try:
                    require_public(host, [r["host"] for r in results])
                except EndpointRefused as exc:
                    raise OSError(exc.message) from None
            return results

        async def close(self) -> None:
            await self._inner.close()

    return PublicResolver()
