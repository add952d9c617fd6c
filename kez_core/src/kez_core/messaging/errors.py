"""Typed errors of the messaging layer (each prints as one sentence plus a hint).

A message that cannot be opened is refused with one of these, never with a
traceback: an envelope arrives from anyone on a public transport, so every
byte of it is untrusted input.
"""

from __future__ import annotations

from ..errors import DecodeError, ExitCode, KezError


class EnvelopeError(DecodeError):
    """An envelope is malformed, not for any of our inbox keys, or was tampered with."""

    code = "bad_envelope"


class MessageTooLarge(KezError):
    """A message is larger than the biggest padding bucket (send big files in chunks)."""

    exit_code = ExitCode.BAD_INPUT
    code = "message_too_large"


class MessageRefused(KezError):
    """A message opened but must not be accepted: wrong recipient or inbox key,
    too old, from the future, a replay, or a sender key its chain does not allow.

    `reason` is a stable word for programs (`wrong_recipient`, `wrong_inbox_key`,
    `too_old`, `from_future`, `replay`, `sender_not_allowed`); the message says it
    in words.
    """

    exit_code = ExitCode.NOT_VALID
    code = "message_refused"

    def __init__(self, message: str, *, reason: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "reason": self.reason}


class InboxKeysExpired(MessageRefused):
    """Every inbox key the recipient's chain lists has expired: nothing can be sealed to them
    until they publish a new one (any receiving command of theirs does) and we refresh the chain."""

    code = "inbox_keys_expired"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, reason="no_inbox_key", hint=hint)
