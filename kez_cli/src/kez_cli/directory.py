"""The kez-server client as the messaging service's `HandleDirectory` (kez_core.chat.peers).

The service decides what to trust (pins, chain checks); this only asks a
handle's server for its registration and chain copy, as `kez verify` does:
at `https://<server>`, or at `--handle-server` / `KEZ_HANDLE_SERVER`.
"""

from __future__ import annotations

import attrs

from kez_core.chat.peers import HandleAnswer

from kez_core.sigserver_client import SigServerError, chain_url, fetch_chains, handle_base_url, lookup_handle, split_handle


@attrs.frozen
class ServerDirectory:
    override: str | None = None  # --handle-server
    timeout: float = 10.0

    def parse(self, text: str) -> tuple[str, str] | None:
        return split_handle(text)

    async def lookup(self, handle: str, server: str) -> HandleAnswer:
        base = handle_base_url(server, self.override)
        info = await lookup_handle(base, handle, server, self.timeout)
        identity = str(info.get("identity") or info["primary"])
        urls = [(chain_url(base, identity), base)]
        sigchain_url = info.get("sigchain_url")
        if isinstance(sigchain_url, str) and sigchain_url.startswith(("http://", "https://")):
            urls.append((sigchain_url, base))
        copies = await fetch_chains(urls, self.timeout)
        lines = [c.lines for c in copies if c.lines]
        if not lines:
            errors = [c.error for c in copies if c.error]
            if errors:
                raise SigServerError(errors[0], hint="retry later")
        return HandleAnswer(info, lines)
