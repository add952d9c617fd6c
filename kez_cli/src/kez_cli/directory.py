"""The messaging service's `HandleDirectory` over kez-server: `kez_core.sigserver_client.ServerDirectory`.

Kept as a name for the CLI's commands and the chat app; the client and its
rules live in kez_core, so a library caller builds the same directory.
"""

from __future__ import annotations

from kez_core.sigserver_client import ServerDirectory

__all__ = ["ServerDirectory"]
