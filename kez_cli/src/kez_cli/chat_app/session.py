"""What `kez chat` runs on: one identity's messaging service, its routes and its unlock step.

The app asks for the passphrase inside itself (once), so the session is built
before the passphrase is known: `unlock()` checks it by opening the signing key,
then hands the key to the transports (NATS auth callout, http inbox reads) as
`kez message send` does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import attrs

from kez_core.chat import MessagingService, Route
from kez_core.errors import PassphraseError
from kez_core.keystore import IdentityRecord, Keystore, passphrase_bytes


@attrs.define
class ChatSession:
    """The service and routes of one `kez chat` run; `unlock()` before anything else."""

    keystore: Keystore
    record: IdentityRecord
    routes: Sequence[Route]
    directory: Any = (
        None  # a kez_core.chat.HandleDirectory (kez_core.sigserver_client.ServerDirectory)
    )
    timeout: float = 10.0  # seconds per request (claim checks)
    _passphrase: list[bytes | None] = attrs.Factory(list)
    _service: MessagingService | None = None

    @property
    def needs_passphrase(self) -> bool:
        """An encrypted key with no `KEZ_PASSPHRASE`: the app shows its prompt."""
        return bool(self.record.encrypted) and os.environ.get("KEZ_PASSPHRASE") is None

    def _get_passphrase(self) -> bytes | None:
        if self._passphrase:
            return self._passphrase[0]
        env = os.environ.get("KEZ_PASSPHRASE")
        if env is not None:
            return passphrase_bytes(env, source="KEZ_PASSPHRASE")
        if not self.record.encrypted:
            return None
        raise PassphraseError(
            f"identity {self.record.name!r} is locked", hint="enter its passphrase"
        )

    def unlock(self, passphrase: str | None = None) -> MessagingService:
        """Open the signing key (a wrong passphrase raises PassphraseError and changes nothing),
        then give it to every route's context."""
        from ..commands.message import _as_identity

        self._passphrase[:] = (
            [] if passphrase is None else [passphrase_bytes(passphrase, source="the prompt")]
        )
        service = MessagingService(
            self.keystore, self.record, self._get_passphrase, directory=self.directory
        )
        try:
            signer = service.signer()
        except Exception:
            self._passphrase.clear()
            service.close()
            raise
        for route in self.routes:
            _as_identity(route.ctx, self.record, signer)
        self._service = service
        return service

    @property
    def service(self) -> MessagingService:
        if self._service is None:
            raise PassphraseError("the session is locked", hint="unlock it first")
        return self._service

    def close(self) -> None:
        if self._service is not None:
            self._service.close()
