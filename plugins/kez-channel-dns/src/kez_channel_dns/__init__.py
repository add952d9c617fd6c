"""KEZ channel: proofs in DNS TXT records at _kez.<domain>."""

from __future__ import annotations

__all__ = ["DnsChannel"]


def __getattr__(name: str):  # keep `import kez_channel_dns` free of side effects
    if name == "DnsChannel":
        from .channel import DnsChannel

        return DnsChannel
    raise AttributeError(name)
