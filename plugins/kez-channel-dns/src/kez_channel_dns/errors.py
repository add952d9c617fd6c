"""Typed errors of the dns channel (each prints as one sentence plus a hint)."""

from __future__ import annotations

from kez_core.plugin import ChannelConfigError, CredentialsError, PublishError


class DnsOptionError(ChannelConfigError):
    """A dns channel setting is malformed (server address, zone, TSIG secret or algorithm)."""

    code = "dns_option"


class DnsCredentialsError(CredentialsError):
    """An RFC 2136 update needs a TSIG key name and secret that were not given."""

    code = "dns_credentials"


class DnsPublishError(PublishError):
    """The update server could not be reached or did not accept the update.

    `rcode` is the DNS response code the server answered (`NOTAUTH`,
    `REFUSED`, …) and `tsig_error` the TSIG error (`BADSIG`, `BADKEY`,
    `BADTIME`), when there was one.
    """

    code = "dns_publish"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        rcode: str | None = None,
        tsig_error: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.rcode = rcode
        self.tsig_error = tsig_error

    def to_dict(self) -> dict[str, str]:
        out = super().to_dict()
        if self.rcode:
            out["rcode"] = self.rcode
        if self.tsig_error:
            out["tsig_error"] = self.tsig_error
        return out
