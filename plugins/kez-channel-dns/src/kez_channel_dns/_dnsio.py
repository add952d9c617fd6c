"""The dns channel's network side (dnspython): TXT lookups and RFC 2136 updates.

Imported lazily by `channel.DnsChannel` so that listing plugins never loads
dnspython.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import socket
from typing import Any

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.tsig
import dns.tsigkeyring
import dns.update
from dns.rdtypes.ANY.TXT import TXT
from kez_core.plugin import (
    DNS_TTL,
    ChannelContext,
    DecodeError,
    FetchOutcome,
    ProofCandidate,
    PublishOutcome,
    compact_encode,
    now,
    txt_strings,
)

from .errors import DnsCredentialsError, DnsOptionError, DnsPublishError

DEFAULT_PORT = 53
EDNS_PAYLOAD = 1232
# dnspython retries a silent server after this long (within the lifetime).
_ATTEMPT_TIMEOUT = 2.0


# ---------------------------------------------------------------- addresses


def parse_hostport(text: str, option: str) -> tuple[str, int]:
    """`HOST[:PORT]`, `[v6]:PORT` or a bare IPv6 address → (host, port)."""
    flag = "--" + option.replace("_", "-")
    value = text.strip()
    port_text = ""
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            host = ""
        port_text = rest[1:]
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    else:
        host = value
        if ":" in host:  # several colons: only a bare IPv6 address is meant that way
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                host = ""
    host = host.strip()
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        port = -1
    if not host or not 0 < port < 65536 or any(c.isspace() for c in host):
        raise DnsOptionError(
            f"{flag} {text!r} is not HOST[:PORT]",
            hint=f"e.g. {flag} 192.0.2.53:53, {flag} [2001:db8::53]:53 or {flag} ns1.example.org",
        )
    return host, port


async def resolve_host(host: str, port: int) -> str:
    """An IP address for a server given by name (dnspython talks to addresses)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    if not infos:
        raise OSError(f"{host} has no address")
    return str(infos[0][4][0])


async def _servers(spec: str) -> list[tuple[str, int]]:
    out = []
    for part in spec.split(","):
        if part.strip():
            host, port = parse_hostport(part, "dns_server")
            out.append((await resolve_host(host, port), port))
    if not out:
        raise DnsOptionError(f"--dns-server {spec!r} names no server")
    return out


async def make_resolver(server: str | None, timeout: float) -> dns.asyncresolver.Resolver:
    """A resolver for `server` ("HOST:PORT[,…]"), or from the system configuration when None."""
    if server:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(address, port) for address, port in await _servers(server)
        ]
    else:
        resolver = dns.asyncresolver.Resolver()
    resolver.lifetime = timeout
    resolver.timeout = min(_ATTEMPT_TIMEOUT, timeout)
    # EDNS(0) offering 1232-byte UDP answers (the DNS Flag Day 2020 size): a
    # TXT proof is 400-600 bytes, over the 512 bytes of plain DNS, so without
    # it every lookup is a truncated UDP answer and then a TCP connection.
    # Larger RRsets are still truncated and read again over TCP.
    resolver.use_edns(0, 0, EDNS_PAYLOAD)
    return resolver


# --------------------------------------------------------------------- fetch


def _failure_summary(exc: dns.resolver.NoNameservers) -> str:
    """'SERVFAIL', 'REFUSED', 'connection refused', … from dnspython's error list."""
    parts = []
    for item in exc.kwargs.get("errors") or ():
        error, response = (item[3], item[4]) if len(item) >= 5 else (item[-1], None)
        if response is not None and hasattr(response, "rcode"):
            parts.append(f"answered {dns.rcode.to_text(response.rcode())}")
        elif isinstance(error, OSError):
            parts.append(error.strerror or type(error).__name__)
        elif error is not None:
            parts.append(str(error) or type(error).__name__)
    unique = list(dict.fromkeys(parts))
    return "; ".join(unique) or "no server could answer"


async def fetch_txt(domain: str, ctx: ChannelContext, server: str | None) -> FetchOutcome:
    """The TXT records at `_kez.<domain>` as proof candidates. Never raises."""
    owner = f"_kez.{domain}"
    where = server or "the system resolver"
    source = f"dns://{server}/{owner}?type=TXT" if server else f"dns:{owner}?type=TXT"
    timeout = float(ctx.timeout)

    def unreachable(reason: str) -> FetchOutcome:
        return FetchOutcome(reachable=False, reason=reason, source=source)

    try:
        # dnspython bounds the lookup by `lifetime`; this outer bound also covers
        # resolving a server given by name and anything unforeseen.
        async with asyncio.timeout(timeout + 1.0):
            resolver = await make_resolver(server, timeout)
            answer = await resolver.resolve(
                dns.name.from_text(owner + "."), dns.rdatatype.TXT, search=False, lifetime=timeout
            )
    except dns.resolver.NXDOMAIN:
        return FetchOutcome(
            reachable=True, reason=f"{owner} does not exist (NXDOMAIN from {where})", source=source
        )
    except dns.resolver.NoAnswer:
        return FetchOutcome(
            reachable=True, reason=f"{owner} has no TXT records (answer of {where})", source=source
        )
    except (dns.exception.Timeout, TimeoutError):
        return unreachable(f"no answer from {where} for {owner} TXT within {timeout:g} s")
    except dns.resolver.NoNameservers as exc:
        return unreachable(f"{where} could not answer {owner} TXT: {_failure_summary(exc)}")
    except dns.resolver.NoResolverConfiguration:
        return unreachable(
            "no DNS resolver is configured on this system; "
            "set --dns-server HOST:PORT (KEZ_DNS_SERVER)"
        )
    except DnsOptionError as exc:
        return unreachable(f"{exc.message} ({exc.hint})" if exc.hint else exc.message)
    except OSError as exc:
        return unreachable(f"cannot reach {where}: {exc.strerror or exc}")
    except Exception as exc:  # noqa: BLE001 - fetch never raises for what a network does
        return unreachable(
            f"DNS lookup of {owner} TXT at {where} failed: {type(exc).__name__}: {exc}"
        )

    fetched_at = now()
    candidates = tuple(
        ProofCandidate(b"".join(rdata.strings).decode("utf-8", "replace"), source, fetched_at)
        for rdata in answer
    )
    if not candidates:
        return FetchOutcome(reachable=True, reason=f"{owner} has no TXT records", source=source)
    return FetchOutcome(candidates=candidates, reachable=True, source=source)


# ------------------------------------------------------------------- publish


def _claim_strings(domain: str, proof_text: str) -> tuple[list[str], str]:
    """The TXT character-strings and zone-file line for the one object in `proof_text`."""
    from kez_core.plugin import decode_any

    objects = decode_any(proof_text)
    if len(objects) != 1:
        raise DecodeError(f"a TXT record holds one proof; the text holds {len(objects)} objects")
    obj = objects[0]
    subject = obj.payload.get("subject")
    if obj.kind == "claim" and subject != f"dns:{domain}":
        raise DecodeError(
            f"this claim is for {str(subject)[:80]!r}, not dns:{domain}",
            hint=f"make a claim for dns:{domain} first",
        )
    strings = txt_strings(compact_encode(obj))
    rdata = " ".join(f'"{part}"' for part in strings)
    return strings, f"_kez.{domain}. {DNS_TTL} IN TXT {rdata}"


def _zone_for(domain: str, zone_option: str | None) -> str:
    zone = (zone_option or domain).strip().rstrip(".").lower()
    if domain != zone and not domain.endswith("." + zone):
        raise DnsOptionError(
            f"_kez.{domain} is not inside zone {zone!r}",
            hint="set --dns-zone (KEZ_DNS_ZONE) to the zone that holds the domain",
        )
    try:
        dns.name.from_text(zone + ".")
    except dns.exception.DNSException as exc:
        raise DnsOptionError(f"--dns-zone {zone_option!r} is not a domain name: {exc}") from exc
    return zone


def _tsig_key(name: str, secret: str, algorithm: str) -> tuple[dict[Any, Any], Any]:
    try:
        algorithm_name = dns.name.from_text(algorithm)
        key_name = dns.name.from_text(name)
    except dns.exception.DNSException as exc:
        raise DnsOptionError(f"TSIG key name or algorithm is malformed: {exc}") from exc
    if algorithm_name not in dns.tsig.mac_sizes or algorithm_name == dns.tsig.GSS_TSIG:
        known = ", ".join(
            str(a).rstrip(".").lower() for a in dns.tsig.mac_sizes if a != dns.tsig.GSS_TSIG
        )
        raise DnsOptionError(
            f"--dns-tsig-algorithm {algorithm!r} is not a TSIG HMAC algorithm",
            hint=f"use one of: {known}",
        )
    try:
        raw = base64.b64decode("".join(secret.split()), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if not raw:
        raise DnsOptionError(
            "--dns-tsig-secret (KEZ_DNS_TSIG_SECRET) is not base64",
            hint="give the `secret` of the key as in the server's key file (see `tsig-keygen`)",
        )
    keyring = dns.tsigkeyring.from_text(
        {key_name.to_text(): (algorithm_name.to_text(), base64.b64encode(raw).decode())}
    )
    return keyring, algorithm_name


_RCODE_HINTS = {
    "NOTAUTH": "the server is not authoritative for the zone or does not accept this key for it; "
    "check --dns-zone (KEZ_DNS_ZONE) and the key",
    "REFUSED": "the server's update policy does not let this key change the record",
    "NOTZONE": "the record is outside the zone; set --dns-zone (KEZ_DNS_ZONE)",
    "SERVFAIL": "the server failed; retry later",
    "NOTIMP": "the server does not implement dynamic updates (RFC 2136)",
}


async def publish_txt(
    domain: str, proof_text: str, timeout: float, settings: dict[str, Any]
) -> PublishOutcome:
    """Print the record (no update server) or replace `_kez.<domain>` TXT by RFC 2136 update."""
    strings, zone_line = _claim_strings(domain, proof_text)
    owner = f"_kez.{domain}."
    location = f"{owner} TXT"
    server = settings.get("dns_update_server")
    key_name = settings.get("dns_tsig_name")
    secret = settings.get("dns_tsig_secret")
    if not server:
        if key_name or secret:
            raise DnsOptionError(
                "a TSIG key is set but no update server to send the update to",
                hint="set --dns-update-server HOST:PORT (KEZ_DNS_UPDATE_SERVER), "
                "or unset the TSIG settings to print the record instead",
            )
        return PublishOutcome(
            location=location,
            detail=(
                f"Nothing was sent: add this record to the DNS zone of {domain} "
                "(or set --dns-update-server and a TSIG key to publish it with an RFC 2136 "
                f"dynamic update):\n{zone_line}"
            ),
        )
    if not key_name or not secret:
        missing = " and ".join(
            text
            for text, value in (
                ("--dns-tsig-name (KEZ_DNS_TSIG_NAME)", key_name),
                ("--dns-tsig-secret (KEZ_DNS_TSIG_SECRET)", secret),
            )
            if not value
        )
        raise DnsCredentialsError(
            f"an RFC 2136 update to {server} must be signed with a TSIG key; {missing} not set",
            hint="set --dns-tsig-name and --dns-tsig-secret (base64) to a key the server accepts "
            "for this zone, or unset --dns-update-server to print the record instead",
        )
    zone = _zone_for(domain, settings.get("dns_zone"))
    algorithm = settings.get("dns_tsig_algorithm") or dns.tsig.default_algorithm.to_text()
    keyring, algorithm_name = _tsig_key(key_name, secret, algorithm)
    host, port = parse_hostport(server, "dns_update_server")

    update = dns.update.UpdateMessage(zone + ".", keyring=keyring, keyalgorithm=algorithm_name)
    rdata = TXT(dns.rdataclass.IN, dns.rdatatype.TXT, [s.encode("ascii") for s in strings])
    update.replace(owner, DNS_TTL, rdata)

    what = f"the update of {owner} TXT (zone {zone}, key {key_name.rstrip('.')})"
    key_hint = (
        "check --dns-tsig-name, --dns-tsig-secret and --dns-tsig-algorithm "
        "(KEZ_DNS_TSIG_*) against the key configured on the server"
    )
    try:
        address = await resolve_host(host, port)
        response = await dns.asyncquery.tcp(update, address, port=port, timeout=timeout)
    except dns.tsig.PeerBadSignature as exc:
        raise DnsPublishError(
            f"{server} refused {what}: NOTAUTH, TSIG error BADSIG "
            "(the signature does not match the server's secret for this key)",
            hint=key_hint,
            rcode="NOTAUTH",
            tsig_error="BADSIG",
        ) from exc
    except dns.tsig.PeerBadKey as exc:
        raise DnsPublishError(
            f"{server} refused {what}: NOTAUTH, TSIG error BADKEY "
            "(the server does not know this key name and algorithm)",
            hint=key_hint,
            rcode="NOTAUTH",
            tsig_error="BADKEY",
        ) from exc
    except dns.tsig.PeerBadTime as exc:
        raise DnsPublishError(
            f"{server} refused {what}: NOTAUTH, TSIG error BADTIME (the clocks differ too much)",
            hint="set this machine's clock (NTP) and retry",
            rcode="NOTAUTH",
            tsig_error="BADTIME",
        ) from exc
    except dns.tsig.PeerError as exc:
        raise DnsPublishError(
            f"{server} refused {what}: NOTAUTH, TSIG error ({exc})", hint=key_hint, rcode="NOTAUTH"
        ) from exc
    except (dns.tsig.BadSignature, dns.tsig.BadKey, dns.tsig.BadAlgorithm, dns.tsig.BadTime) as exc:
        raise DnsPublishError(
            f"the answer of {server} to {what} is not signed with the same TSIG key "
            f"({type(exc).__name__}); the update may or may not have been applied",
            hint=key_hint,
        ) from exc
    except (dns.exception.Timeout, TimeoutError) as exc:
        raise DnsPublishError(
            f"no answer from {server} to {what} within {timeout:g} s",
            hint="check --dns-update-server (KEZ_DNS_UPDATE_SERVER) and retry",
        ) from exc
    except OSError as exc:
        raise DnsPublishError(
            f"cannot reach {server} for {what}: {exc.strerror or exc}",
            hint="check --dns-update-server (KEZ_DNS_UPDATE_SERVER): the zone's primary server, "
            "which must accept TCP",
        ) from exc
    except dns.exception.DNSException as exc:
        raise DnsPublishError(
            f"{server} answered {what} with a malformed or unsigned message: {exc}",
            hint="is --dns-update-server the zone's primary and does it know the TSIG key?",
        ) from exc
    rcode = response.rcode()
    if rcode != dns.rcode.NOERROR:
        text = dns.rcode.to_text(rcode)
        raise DnsPublishError(
            f"{server} refused {what}: {text}",
            hint=_RCODE_HINTS.get(text, "see the server's log for the reason"),
            rcode=text,
        )
    return PublishOutcome(
        location=location,
        detail=(
            f"replaced the TXT records at {owner} with the claim ({len(strings)} "
            f"character-string{'s' if len(strings) != 1 else ''}) by an RFC 2136 update "
            f"to {server}, zone {zone}, TSIG key {key_name.rstrip('.')}"
        ),
    )
