"""The `bluesky` channel: a `lat.kez.claim` record in the account's atproto repo.

Where the proof lives (DESIGN.md §3): the record `lat.kez.claim/self` in the
repo of the account's DID, value
`{"$type": "lat.kez.claim", "claim": "kez:z1:…", "createdAt": "…"}`; as a
fallback, the profile record `app.bsky.actor.profile/self` whose
`description` holds a compact claim.

Reading needs no credentials: handle → DID (`com.atproto.identity.resolveHandle`
on the configured resolver), DID → DID document (PLC directory for
`did:plc`, `https://<host>/.well-known/did.json` for `did:web`), a check that
the document lists `at://<handle>` (bidirectional handle check), the PDS from
its `#atproto_pds` service, then `com.atproto.repo.getRecord` for both
records. Publishing logs in with an app password through the `atproto` SDK
and writes the record with `com.atproto.repo.putRecord`.

This module stays cheap to import: httpx and atproto are imported by the
submodules `_read` and `_publish`, which are loaded only when used.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from kez_core.plugin import (
    ChannelContext,
    ChannelOption,
    FetchOutcome,
    PublishOutcome,
    normalize_subject,
)

COLLECTION = "lat.kez.claim"
RKEY = "self"
PROFILE_COLLECTION = "app.bsky.actor.profile"
PROFILE_RKEY = "self"

DEFAULT_RESOLVER = "https://bsky.social"
DEFAULT_PLC = "https://plc.directory"

OPTIONS: tuple[ChannelOption, ...] = (
    ChannelOption(
        name="atproto_resolver",
        flag="--atproto-resolver",
        env="KEZ_ATPROTO_RESOLVER",
        help="XRPC service that resolves handles to DIDs (com.atproto.identity.resolveHandle).",
        default=DEFAULT_RESOLVER,
    ),
    ChannelOption(
        name="atproto_plc",
        flag="--plc",
        env="KEZ_ATPROTO_PLC",
        help="PLC directory that serves did:plc DID documents.",
        default=DEFAULT_PLC,
    ),
    ChannelOption(
        name="atproto_pds",
        flag="--atproto-pds",
        env="KEZ_ATPROTO_PDS",
        help="PDS base URL to read and write records at, instead of the one in the DID document.",
        default=None,
    ),
    ChannelOption(
        name="bluesky_app_password",
        flag="--bluesky-app-password",
        env="KEZ_BLUESKY_APP_PASSWORD",
        help="Bluesky app password of the account (publishing only).",
        default=None,
        secret=True,
    ),
    ChannelOption(
        name="bluesky_identifier",
        flag="--bluesky-identifier",
        env="KEZ_BLUESKY_IDENTIFIER",
        help="Login identifier (handle, DID or e-mail) when it is not the claimed handle.",
        default=None,
    ),
)


def option(ctx: ChannelContext, name: str) -> str | None:
    """The declared option `name` read with `ctx.get` (set value, else its default); blank text counts as unset."""
    value = ctx.get(next(o for o in OPTIONS if o.name == name))
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    if value is None:
        return None
    text = str(value).strip()
    return text or None


@attrs.frozen
class BlueskyChannel:
    """Proofs in a Bluesky / atproto repo (`bluesky:alice.bsky.social`, `bluesky:did:plc:…`)."""

    name: str = "bluesky"
    aliases: Sequence[str] = (
        "bsky",
    )  # `bsky:` means `bluesky:` (the plugin declares it, not the core)
    options: Sequence[ChannelOption] = OPTIONS
    proof_encoding: str = "compact"

    def normalize_handle(self, handle: str) -> str:
        """Lowercase handle (a domain) or a did:plc / did:web DID kept as is. Raises DecodeError."""
        return normalize_subject(f"{self.name}:{handle}").split(":", 1)[1]

    async def fetch(self, handle: str, ctx: ChannelContext) -> FetchOutcome:
        """Read `lat.kez.claim/self` and the profile description of `handle` (no credentials)."""
        normal = self.normalize_handle(handle)
        from ._read import fetch_proofs

        return await fetch_proofs(normal, ctx)

    async def publish(self, handle: str, proof_text: str, ctx: ChannelContext) -> PublishOutcome:
        """Write `lat.kez.claim/self` with the account's app password; returns the at:// URI."""
        normal = self.normalize_handle(handle)
        from ._publish import publish_proof

        return await publish_proof(normal, proof_text, ctx)
