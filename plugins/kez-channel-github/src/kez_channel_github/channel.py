"""The `github` channel: proofs in a GitHub user's public gists.

A proof is a public gist owned by the user with a file holding a ```kez
fenced block (the markdown encoding). Reading lists the user's gists through
the REST API (`GET /users/{user}/gists`, paginated), then reads the files of
the gists that may hold a proof (`GET /gists/{id}`). Publishing creates a
public gist with one file, `kez-proof.md`, or updates the one already there.

This module stays cheap to import (`kez --help` imports it through
`plugin.py`): the HTTP code lives in `kez_channel_github._api`, imported by
`fetch` and `publish` when they run.
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

DEFAULT_API = "https://api.github.com"
PROOF_FILENAME = "kez-proof.md"
PROOF_DESCRIPTION = "KEZ identity proof"

OPTIONS: tuple[ChannelOption, ...] = (
    ChannelOption(
        name="github_api",
        flag="--github-api",
        env="KEZ_GITHUB_API",
        help="Base URL of the GitHub REST API (GitHub Enterprise: https://HOST/api/v3).",
        default=DEFAULT_API,
    ),
    ChannelOption(
        name="github_token",
        flag="--github-token",
        env="GITHUB_TOKEN",
        help=(
            "GitHub token with the gist scope: required to publish; when set it is "
            "also sent on reads, which raises the rate limit from 60 to 5,000 requests an hour."
        ),
        secret=True,
    ),
)


@attrs.frozen
class GitHubChannel:
    """Channel `github`: subject `github:<user>`, proof in a public gist of that user."""

    name: ClassVar[str] = "github"
    aliases: ClassVar[tuple[str, ...]] = ()
    options: ClassVar[tuple[ChannelOption, ...]] = OPTIONS
    proof_encoding: ClassVar[str] = "markdown"

    def normalize_handle(self, handle: str) -> str:
        """`@Alice` → `alice`: the core's rule, so claims match with or without this plugin."""
        return normalize_subject(f"{self.name}:{handle}").split(":", 1)[1]

    async def fetch(self, handle: str, ctx: ChannelContext) -> FetchOutcome:
        """Read every file of the user's public gists holding a ```kez block (no credentials)."""
        user = self.normalize_handle(handle)
        from ._api import fetch_proofs

        return await fetch_proofs(user, ctx)

    async def publish(self, handle: str, proof_text: str, ctx: ChannelContext) -> PublishOutcome:
        """Create (or update) the public gist `kez-proof.md` of `handle` holding `proof_text`."""
        user = self.normalize_handle(handle)
        from ._api import publish_proof

        return await publish_proof(user, proof_text, ctx)
