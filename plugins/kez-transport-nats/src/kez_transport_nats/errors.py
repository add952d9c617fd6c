"""Typed errors of the NATS transport (the CLI prints the message, the hint and the exit code)."""

from __future__ import annotations

from kez_core.errors import ExitCode, TransportError


class NatsConfigError(TransportError):
    """The NATS settings cannot work: a server URL that is not nats:// or tls://, a missing creds file.

    A `TransportError`, so a caller that handles "the transport failed" handles
    this too, but with the usage exit code: retrying does not help, fixing the
    flag does.
    """

    exit_code = ExitCode.USAGE
    code = "nats_config"
