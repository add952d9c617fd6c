"""Typed errors of the github channel (what `publish` raises).

Both belong to kez-core's plugin error family, whose exit codes are fixed
(docs/cli.md): a missing or refused token exits like any missing secret.
"""

from __future__ import annotations

from kez_core.plugin import CredentialsError, PublishError


class GitHubAuthError(CredentialsError):
    """No token was given, GitHub rejected it, or it belongs to another account."""

    code = "github_auth"


class GitHubPublishError(PublishError):
    """GitHub could not be reached or refused to store the proof gist (retryable or not)."""

    code = "github_publish"
