"""Typed errors of the github channel (what `publish` raises)."""

from __future__ import annotations

from kez_core.errors import ExitCode, KezError


class GitHubAuthError(KezError):
    """No token was given, GitHub rejected it, or it belongs to another account."""

    exit_code = ExitCode.USAGE
    code = "github_auth"


class GitHubPublishError(KezError):
    """GitHub could not be reached or refused to store the proof gist (retryable or not)."""

    exit_code = ExitCode.NETWORK
    code = "github_publish"
