"""Typed errors of the nostr channel (the CLI prints the message, the hint and the exit code)."""

from __future__ import annotations

from kez_core.plugin import ChannelConfigError, CredentialsError, ExitCode, KezError, PublishError


class NostrSecretMissingError(CredentialsError):
    """Publishing needs the subject's nostr secret key and none was given."""

    code = "nostr_secret_missing"


class NostrKeyMismatchError(KezError):
    """The nostr secret given belongs to another key than the claim's subject."""

    exit_code = ExitCode.BAD_INPUT
    code = "nostr_key_mismatch"


class NostrConfigError(ChannelConfigError):
    """The relay list is empty or holds something that is not a ws:// or wss:// URL."""

    code = "nostr_config"


class NostrPublishError(PublishError):
    """No relay accepted the proof event (all refused it, or none could be reached)."""

    code = "nostr_publish_failed"
