"""The `dns` channel: a proof is a TXT record at `_kez.<domain>`.

Reading asks a DNS resolver for the TXT RRset at `_kez.<domain>` (the
server from `--dns-server`, else the system's resolver configuration); each
TXT record is one proof candidate whose text is its character-strings
joined. Publishing prints the zone-file line to add, or, when an update
server and a TSIG key are configured, replaces that RRset with an RFC 2136
dynamic update.

This module stays light (`kez --help` imports it): dnspython is imported
by `_dnsio`, which is loaded the first time the channel does I/O.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
from kez_core.plugin import (
    ChannelContext,
    ChannelOption,
    FetchOutcome,
    PublishOutcome,
    normalize_subject,
)

DEFAULT_TSIG_ALGORITHM = "hmac-sha256"

OPTIONS: tuple[ChannelOption, ...] = (
    ChannelOption(
        name="dns_server",
        flag="--dns-server",
        env="KEZ_DNS_SERVER",
        help="DNS server(s) to read _kez TXT records from, HOST[:PORT] (comma-separated for "
        "several; port 53 by default); unset: the system resolver configuration",
    ),
    ChannelOption(
        name="dns_update_server",
        flag="--dns-update-server",
        env="KEZ_DNS_UPDATE_SERVER",
        help="primary server of the zone, HOST[:PORT], to publish with an RFC 2136 dynamic "
        "update (needs a TSIG key); unset: publish prints the zone-file line to add",
    ),
    ChannelOption(
        name="dns_zone",
        flag="--dns-zone",
        env="KEZ_DNS_ZONE",
        help="zone to update (default: the domain itself)",
    ),
    ChannelOption(
        name="dns_tsig_name",
        flag="--dns-tsig-name",
        env="KEZ_DNS_TSIG_NAME",
        help="name of the TSIG key that signs dynamic updates",
    ),
    ChannelOption(
        name="dns_tsig_secret",
        flag="--dns-tsig-secret",
        env="KEZ_DNS_TSIG_SECRET",
        help="secret of the TSIG key, base64 (as in a BIND key file)",
        secret=True,
    ),
    ChannelOption(
        name="dns_tsig_algorithm",
        flag="--dns-tsig-algorithm",
        env="KEZ_DNS_TSIG_ALGORITHM",
        help="TSIG algorithm of the key (hmac-sha256, hmac-sha512, hmac-sha1, …)",
        default=DEFAULT_TSIG_ALGORITHM,
    ),
)
_DEFAULTS = {option.name: option.default for option in OPTIONS}
_BY_NAME = {option.name: option for option in OPTIONS}


def option_value(ctx: ChannelContext, name: str) -> Any:
    """A setting read with `ctx.get` (set value, else its default); text is trimmed, blank counts as unset."""
    value = ctx.get(_BY_NAME[name])
    if isinstance(value, str):
        value = value.strip()
    if value is None or value == "":
        value = _DEFAULTS[name]
    return value


@attrs.frozen
class DnsChannel:
    """Proofs in DNS: TXT at `_kez.<domain>`, read with dnspython's async resolver."""

    name: ClassVar[str] = "dns"
    aliases: ClassVar[tuple[str, ...]] = ()
    options: ClassVar[tuple[ChannelOption, ...]] = OPTIONS
    proof_encoding: ClassVar[str] = "dns"

    def normalize_handle(self, handle: str) -> str:
        # The core owns the rules for `dns:` so claims are identical with or without this plugin.
        return normalize_subject(f"{self.name}:{handle}").split(":", 1)[1]

    async def fetch(self, handle: str, ctx: ChannelContext) -> FetchOutcome:
        """Read the TXT records at `_kez.<domain>`: one candidate per record."""
        domain = self.normalize_handle(handle)
        from ._dnsio import fetch_txt

        return await fetch_txt(domain, ctx, option_value(ctx, "dns_server"))

    async def publish(self, handle: str, proof_text: str, ctx: ChannelContext) -> PublishOutcome:
        """Print the TXT record to add, or replace it by an RFC 2136 update when configured."""
        domain = self.normalize_handle(handle)
        from ._dnsio import publish_txt

        settings = {option.name: option_value(ctx, option.name) for option in OPTIONS}
        return await publish_txt(domain, proof_text, ctx.timeout, settings)
