"""Typed errors with exit codes.

Every failure a user can cause (bad input, a missing key, a broken plugin)
is one of these, so the CLI can print a sentence and an exit code instead of
a traceback. The exit codes are part of the CLI contract (docs/cli.md).
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes of the `kez` command (documented in docs/cli.md).

    An IntEnum so a code prints with its name in logs and tests, and still
    compares equal to the plain int `sys.exit` and click see.
    """

    OK = 0
    NOT_VALID = 1  # a verification ran and the answer is not `valid`
    USAGE = 2  # wrong flags or arguments (typer/click uses 2 as well)
    BAD_INPUT = 3  # input could not be decoded or is malformed
    STORE = 4  # keystore / file problem: missing identity, permission, bad passphrase
    NETWORK = 5  # a remote could not be reached (retryable)
    PLUGIN = 6  # plugin loading or registry conflict


class KezError(Exception):
    """Base of every error KEZ raises on purpose.

    `hint` says what to do next; the CLI prints it under the message.
    """

    exit_code: int = ExitCode.BAD_INPUT
    code: str = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, str]:
        """The error as `--json` output shows it: `error` (the code), `message`, and `hint` when there is one."""
        out = {"error": self.code, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        return out


class DecodeError(KezError):
    """Input bytes or text are not a well-formed KEZ object in any known encoding."""

    code = "decode_error"


class SizeLimitError(DecodeError):
    """Input (or its decompressed form) is larger than the cap for one object."""

    code = "too_large"


class SchemaError(DecodeError):
    """Well-formed JSON that does not have the shape of a KEZ object."""

    code = "schema_error"


class CanonicalizationError(DecodeError):
    """A value cannot be put in RFC 8785 canonical form (NaN, huge int, lone surrogate)."""

    code = "jcs_error"


class KeyFormatError(DecodeError):
    """A key id, secret key or key file is malformed."""

    code = "key_format"


class Nip44Error(DecodeError):
    """A NIP-44 payload, key or plaintext is invalid (bad version, length, base64, MAC or padding)."""

    code = "nip44"


class SignatureError(KezError):
    """A signature does not verify (or is for a different key than the payload names)."""

    exit_code = ExitCode.NOT_VALID
    code = "bad_signature"


class UnknownNameError(KezError):
    """A name (algorithm, encoding, channel, transport) no loaded plugin provides."""

    exit_code = ExitCode.USAGE
    code = "unknown_name"


class UsageError(KezError):
    """Arguments a service cannot work with (a malformed URL, no server to talk to): exit 2,
    as a wrong flag would be, whether the caller is the CLI or a library."""

    exit_code = ExitCode.USAGE
    code = "usage"


class RegistryError(KezError):
    """Plugins conflict (two claim one name) or a plugin failed in strict mode."""

    exit_code = ExitCode.PLUGIN
    code = "plugin_error"


class StoreError(KezError):
    """The keystore cannot do what was asked (missing identity, bad passphrase, I/O)."""

    exit_code = ExitCode.STORE
    code = "store_error"


class PassphraseError(StoreError):
    """A passphrase is needed but none can be obtained, or it is wrong."""

    code = "passphrase"


class TransportError(KezError):
    """A message transport could not deliver or receive (server down, refused, timed out)."""

    exit_code = ExitCode.NETWORK
    code = "transport_error"


class EnvelopeTooLarge(KezError):
    """An envelope is larger than the transport carries in one send (`Transport.max_envelope`)."""

    exit_code = ExitCode.BAD_INPUT
    code = "envelope_too_large"


# ------------------------------------------------------------ plugin errors
#
# One family for what channel (and other) plugins raise, each with a FIXED
# exit code, so `kez claim publish` exits the same way whichever plugin ran:
# a plugin subclasses these to give its own `code` (the `--json` error name)
# and never changes `exit_code`.


class PluginError(KezError):
    """Base of the errors plugins raise on purpose (credentials, publishing, settings)."""

    exit_code = ExitCode.BAD_INPUT
    code = "plugin_failed"


class CredentialsError(PluginError):
    """Credentials are missing, refused, or belong to another account (a token, an app
    password, a TSIG key, a secret key): the same exit code as any other missing or
    wrong secret (a keystore passphrase), 4."""

    exit_code = ExitCode.STORE
    code = "credentials"


class PublishError(PluginError):
    """The channel could not take the proof: network, refused, rate limited (exit 5, retryable)."""

    exit_code = ExitCode.NETWORK
    code = "publish_error"


class ChannelConfigError(PluginError):
    """A plugin setting (flag or `KEZ_*` variable) is malformed: a usage error, exit 2."""

    exit_code = ExitCode.USAGE
    code = "channel_config"
