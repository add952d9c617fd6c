"""Typed errors of the bluesky channel (what `publish` raises).

Both belong to kez-core's plugin error family, whose exit codes are fixed
(docs/cli.md).
"""

from __future__ import annotations

from kez_core.plugin import CredentialsError, PublishError


class BlueskyCredentialsError(CredentialsError):
    """No app password was given, or the PDS refused the login."""

    code = "bluesky_credentials"


class BlueskyPublishError(PublishError):
    """The PDS could not be reached or refused to write the proof record."""

    code = "bluesky_publish"
