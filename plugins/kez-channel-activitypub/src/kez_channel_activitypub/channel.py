"""The `ap` channel: proofs in a fediverse (ActivityPub / Mastodon) profile.

Subject `ap:alice@host` (`mastodon:` is an alias). The proof is the compact
form (`kez:z1:…`) in one of the actor's profile fields (`attachment` entries
of type `PropertyValue`) or in its `summary` (the bio).

Reading needs no credentials: WebFinger at `https://<host>` → the actor URL
(`rel="self"`, ActivityPub media type) → the actor JSON. Publishing uses the
Mastodon REST API with the account's access token.

This module stays cheap to import (`kez --help` imports it through
`plugin.py`): httpx is imported only inside `fetch` and `publish`, through
the `_fetch` and `_publish` submodules.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
from kez_core.plugin import (
    ChannelContext,
    ChannelOption,
    FetchOutcome,
    PublishOutcome,
    normalize_subject,
)

OPTIONS: tuple[ChannelOption, ...] = (
    ChannelOption(
        name="ap_base_url",
        flag="--ap-base-url",
        env="KEZ_AP_BASE_URL",
        help=(
            "send every fediverse request (WebFinger, actor, Mastodon API) to this base URL "
            "instead of https://<host>, keeping the handle's host in the Host header "
            "(tests, a proxy); unset: https://<host>"
        ),
        default=None,
    ),
    ChannelOption(
        name="mastodon_token",
        flag="--mastodon-token",
        env="KEZ_MASTODON_TOKEN",
        help=(
            "Mastodon access token of the account to publish to "
            "(scopes read:accounts and write:accounts); only publishing needs it"
        ),
        default=None,
        secret=True,
    ),
)


def option(ctx: ChannelContext, name: str) -> object:
    """The typed value of the declared option `name` (`ctx.get`: set value, else its default)."""
    for declared in OPTIONS:
        if declared.name == name:
            return ctx.get(declared)
    raise KeyError(name)


def split_handle(handle: str) -> tuple[str, str]:
    """(user, host) of a handle in normal form."""
    user, _, host = handle.partition("@")
    return user, host


@attrs.frozen
class ActivityPubChannel:
    """Proofs in an ActivityPub actor's profile fields or summary."""

    name: str = "ap"
    aliases: tuple[str, ...] = ("mastodon", "activitypub")  # subject prefixes meaning `ap:`
    options: tuple[ChannelOption, ...] = OPTIONS
    proof_encoding: ClassVar[str] = "compact"

    def normalize_handle(self, handle: str) -> str:
        """`@Alice@Host.example` → `alice@host.example` (the core owns the rule)."""
        return normalize_subject(f"{self.name}:{handle}").split(":", 1)[1]

    async def fetch(self, handle: str, ctx: ChannelContext) -> FetchOutcome:
        """WebFinger → actor → one candidate per profile field or summary holding `kez`."""
        user, host = split_handle(self.normalize_handle(handle))
        from ._fetch import fetch_proofs

        return await fetch_proofs(user, host, ctx)

    async def publish(self, handle: str, proof_text: str, ctx: ChannelContext) -> PublishOutcome:
        """Write the compact proof to the profile (field `KEZ`, or the bio) with the Mastodon API."""
        user, host = split_handle(self.normalize_handle(handle))
        from ._publish import publish_proof

        return await publish_proof(user, host, proof_text.strip(), ctx)
