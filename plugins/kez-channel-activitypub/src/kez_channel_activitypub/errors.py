"""Typed errors of the ap channel's publish path (fetch never raises for network trouble).

Each is a `KezError`, so the CLI prints one sentence, a hint and an exit
code (docs/cli.md) instead of a traceback. Network trouble, 429 and 5xx
raise kez-core's own `PublishError` (exit 5); the credential errors belong
to its `CredentialsError` family (exit 4), as in every channel.
"""

from __future__ import annotations

from kez_core.plugin import CredentialsError, ExitCode, KezError, PublishError

__all__ = [
    "CredentialsError",
    "MissingTokenError",
    "ProfileFullError",
    "PublishError",
    "TokenRejectedError",
    "WrongAccountError",
]


class MissingTokenError(CredentialsError):
    """No Mastodon access token was given (`--mastodon-token` / `KEZ_MASTODON_TOKEN`)."""

    code = "missing_credentials"


class TokenRejectedError(CredentialsError):
    """The instance answered 401/403: the token is invalid, revoked or lacks a scope."""

    code = "token_rejected"


class WrongAccountError(CredentialsError):
    """The token belongs to another account than the handle being published for."""

    code = "wrong_account"


class ProfileFullError(KezError):
    """No room for the proof: all profile fields are taken, or the bio would be too long."""

    exit_code = ExitCode.BAD_INPUT
    code = "profile_full"
