"""The `web` channel: proofs at `https://<domain>/.well-known/kez.txt`.

A complete channel in one small module, written to be copied. It shows
the pieces every channel has:

- everything comes from `kez_core.plugin`, the public plugin API (no
  other `kez_core` module: those are private and may change);
- `BaseChannel`: the defaults, so only what differs is written;
- `options`: every setting it reads, each a typed `PluginOption` (the CLI
  derives its flag and `KEZ_*` variable and handles defaults; the channel
  reads the value with `ctx.get(OPTION)`);
- `normalize_handle`: one spelling per account (here: a domain name);
- `fetch`: read proofs without credentials, and report network trouble as
  `FetchOutcome(reachable=False)` (never raise, never call it invalid);
- `publish`: put a proof where the channel reads it (here: a file under
  the site's document root, since a static site has no API); errors come
  from kez-core's plugin family (`CredentialsError`, `PublishError`,
  `ChannelConfigError`), whose exit codes are fixed.

httpx is imported inside `fetch`, so `kez --help` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs
from kez_core.plugin import (
    BaseChannel,
    ChannelConfigError,
    FetchOutcome,
    PluginContext,
    PluginOption,
    ProofCandidate,
    PublishOutcome,
    hookimpl,
    hostname,
    now,
)

WELL_KNOWN = "/.well-known/kez.txt"
MAX_BYTES = 256 * 1024

# Each setting is declared once; the CLI derives `--web-base-url` and
# `KEZ_WEB_BASE_URL` from the name, and `ctx.get(OPTION)` reads it back typed.
BASE_URL = PluginOption(
    name="web_base_url",
    help="Read every domain from this base URL instead of https://<domain> (tests, mirrors).",
)
ROOT = PluginOption(
    name="web_root",
    of_type=Path,
    help="Document root of your site: publish writes .well-known/kez.txt under it.",
)


@attrs.frozen
class WebChannel(BaseChannel):
    # BaseChannel gives the defaults (no aliases, compact proofs, no options);
    # a channel sets its name and what differs.
    name: str = "web"
    proof_encoding: str = "markdown"
    options: tuple[PluginOption, ...] = (BASE_URL, ROOT)

    def normalize_handle(self, handle: str) -> str:
        return hostname(handle, "web domain")

    def _url(self, domain: str, ctx: PluginContext) -> str:
        base = ctx.get(BASE_URL) or f"https://{domain}"
        return base.rstrip("/") + WELL_KNOWN

    async def fetch(self, handle: str, ctx: PluginContext) -> FetchOutcome:
        import httpx
        from kez_core.plugin import client_for  # loads the HTTP helper on first use

        url = self._url(handle, ctx)
        try:
            # The caller's client, else one kept for the whole verification run
            # (ctx.scope), else one for this call: kez-core's helper decides.
            async with client_for(ctx, self.name, connections=2, follow_redirects=True) as client:
                response = await client.get(url, headers={"User-Agent": "kez-python"})
        except httpx.HTTPError as exc:
            return FetchOutcome(
                reachable=False, reason=f"{url}: {type(exc).__name__}: {exc}", source=url
            )
        if response.status_code == 404:
            return FetchOutcome(reason=f"{url} answered 404: no proof published", source=url)
        if response.status_code == 429 or response.status_code >= 500:
            retry = response.headers.get("retry-after")
            return FetchOutcome(
                reachable=False,
                reason=f"{url} answered {response.status_code}; retry later",
                source=url,
                retry_after=float(retry) if retry and retry.isdigit() else None,
            )
        if response.status_code != 200:
            return FetchOutcome(reason=f"{url} answered {response.status_code}", source=url)
        text = response.content[:MAX_BYTES].decode("utf-8", "replace")
        return FetchOutcome((ProofCandidate(text, url, now()),), source=url)

    async def publish(self, handle: str, proof_text: str, ctx: PluginContext) -> PublishOutcome:
        root = ctx.get(ROOT)
        if not root:
            # a setting is missing: ChannelConfigError (exit 2), one of kez-core's plugin errors
            raise ChannelConfigError(
                "no document root to publish into", hint="pass --web-root DIR or set KEZ_WEB_ROOT"
            )
        target = root / ".well-known" / "kez.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(".kez.txt.tmp")
        tmp.write_text(proof_text, encoding="utf-8")
        os.replace(tmp, target)
        return PublishOutcome(
            location=f"https://{handle}{WELL_KNOWN}", detail=f"written to {target}"
        )


@hookimpl
def kez_register_channels():
    return [WebChannel()]
