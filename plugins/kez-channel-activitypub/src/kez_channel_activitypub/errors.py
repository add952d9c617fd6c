"""Typed errors of the ap channel's publish path (fetch never raises for network trouble).

Each is a `kez_core.errors.KezError`, so the CLI prints one sentence, a hint
and an exit code (docs/cli.md) instead of a traceback.
"""

from __future__ import annotations

from kez_core.errors import ExitCode, KezError, StoreError


class PublishError(KezError):
    """Publishing to a Mastodon account failed (network, 429, 5xx, an unexpected answer)."""

    exit_code = ExitCode.NETWORK
    code = "publish_error"


class MissingTokenError(StoreError):
    """No Mastodon access token was given (`--mastodon-token` / `KEZ_MASTODON_TOKEN`)."""

    code = "missing_credentials"


class TokenRejectedError(PublishError):
    """The instance answered 401/403: the token is invalid, revoked or lacks a scope."""

    exit_code = ExitCode.STORE
    code = "token_rejected"


class WrongAccountError(PublishError):
    """The token belongs to another account than the handle being published for."""

    exit_code = ExitCode.STORE
    code = "wrong_account"


class ProfileFullError(PublishError):
    """No room for the proof: all profile fields are taken, or the bio would be too long."""

    exit_code = ExitCode.BAD_INPUT
    code = "profile_full"
