"""Typed errors of the bluesky channel (what `publish` raises)."""

from __future__ import annotations

from kez_core.errors import ExitCode, KezError


class BlueskyCredentialsError(KezError):
    """No app password was given, or the PDS refused the login."""

    exit_code = ExitCode.USAGE
    code = "bluesky_credentials"


class BlueskyPublishError(KezError):
    """The PDS could not be reached or refused to write the proof record."""

    exit_code = ExitCode.NETWORK
    code = "bluesky_publish"
