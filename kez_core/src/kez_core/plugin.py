"""The public plugin API: the one module a KEZ plugin imports.

Everything a channel, encoding, key algorithm or transport plugin needs is
named here, and `__all__` is the promise: these names keep their meaning
across kez-core minor versions. Every other `kez_core.<module>` is private
to the core and may change without notice; the built-in plugins and the
example plugin import only this module (tests/test_plugin_api.py checks it
by reading their source).

    from kez_core.plugin import BaseChannel, FetchOutcome, hookimpl

    @attrs.frozen
    class MyChannel(BaseChannel):
        name: str = "mine"
        ...

    @hookimpl
    def kez_register_channels():
        return [MyChannel()]

Heavy helpers (the HTTP client, the ASGI test server, nostr event signing)
are loaded on first use of their name, so importing this module stays as
cheap as importing the Protocols.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from . import hookimpl
from .builtins.encodings import DNS_TTL, txt_strings
from .demo import DemoServer, DemoSetup, RunningDemo
from .codec import COMPACT_PREFIX, COMPACT_TOKEN, check_text, compact_decode, compact_encode
from .errors import (
    ChannelConfigError,
    CredentialsError,
    DecodeError,
    ExitCode,
    KeyFormatError,
    KezError,
    PluginError,
    PublishError,
    TransportError,
    EnvelopeTooLarge,
)
from .protocols import (
    Channel,
    ChannelContext,
    ChannelOption,
    Encoding,
    FetchOutcome,
    KeyAlgorithm,
    PluginContext,
    PluginOption,
    ProofCandidate,
    PublishOutcome,
    Transport,
)
from .signed import SignedObject
from .subjects import hostname, normalize_subject
from .timefmt import now

if TYPE_CHECKING:  # loaded on first use by __getattr__ below
    from .builtins.bip340 import BIP340
    from .encoding import decode_any
    from .localserver import serve_asgi
    from .nostr_event import sign_event, verify_event
    from .verifier.http import client_for
    from .verifier.http import new_client as new_http_client

__all__ = [
    # the marker
    "hookimpl",
    # the Protocols and what their methods take and return
    "Channel",
    "Encoding",
    "KeyAlgorithm",
    "Transport",
    # the typed option a plugin declares, and the context it reads values from
    "PluginOption",
    "PluginContext",
    "ChannelContext",  # deprecated name of PluginContext
    "ChannelOption",  # deprecated name of PluginOption
    "FetchOutcome",
    "ProofCandidate",
    "PublishOutcome",
    "SignedObject",
    # a base class with the defaults every channel shares
    "BaseChannel",
    # the local servers a plugin offers `kez demo` (hook `kez_demo_servers`)
    "DemoServer",
    "DemoSetup",
    "RunningDemo",
    # the errors (exit codes are fixed per family: docs/cli.md)
    "ExitCode",
    "KezError",
    "DecodeError",
    "KeyFormatError",
    "PluginError",
    "CredentialsError",
    "PublishError",
    "ChannelConfigError",
    "TransportError",
    "EnvelopeTooLarge",
    # helpers
    "SUBJECT_SECRET",
    "hostname",
    "normalize_subject",
    "txt_strings",
    "DNS_TTL",
    "now",
    "check_text",
    "compact_encode",
    "compact_decode",
    "COMPACT_PREFIX",
    "COMPACT_TOKEN",
    # loaded on first use (see _LAZY)
    "client_for",
    "new_http_client",
    "decode_any",
    "sign_event",
    "verify_event",
    "BIP340",
    "serve_asgi",
]


#: The `PluginContext.options` key under which `publish_claim` hands a channel the secret of
#: the subject's own key (hex), when the claim's signer IS the subject (`nostr:<hex>` claimed
#: by that nostr key): the account's key is then known without a flag. A channel prefers its
#: own option (e.g. `--nostr-secret`) when one is given.
SUBJECT_SECRET = "subject_secret"


@attrs.frozen
class BaseChannel:
    """Defaults every channel shares; subclass it with `@attrs.frozen` and set `name`.

    A channel has no aliases and no options unless it says so, writes its
    proof in the `compact` encoding, and cannot publish until it overrides
    `publish`. `fetch` and `normalize_handle` have no sensible default and
    must be written; the registry reports a channel that lacks them.
    """

    name: str = ""
    aliases: Sequence[str] = ()
    options: Sequence[PluginOption] = ()
    proof_encoding: str = "compact"

    def normalize_handle(self, handle: str) -> str:
        """The handle in normal form; the default only trims ASCII whitespace and refuses empty text."""
        text = handle.strip(" \t\r\n") if isinstance(handle, str) else ""
        if not text:
            raise DecodeError(f"{self.name} handle must not be empty")
        return text

    async def fetch(self, handle: str, ctx: ChannelContext) -> FetchOutcome:
        """Read the proofs of `handle`; every channel writes its own (there is no sensible default)."""
        raise NotImplementedError(f"channel {self.name!r} does not implement fetch")

    async def publish(self, handle: str, proof_text: str, ctx: ChannelContext) -> PublishOutcome:
        """Refuse with `PublishError`: a channel that can publish overrides this."""
        raise PublishError(
            f"the {self.name} channel cannot publish proofs",
            hint="publish the proof text by hand where the channel reads it",
        )


# name -> (module, attribute): imported when first asked for, never by `import kez_core.plugin`
_LAZY: dict[str, tuple[str, str]] = {
    "client_for": ("kez_core.verifier.http", "client_for"),
    "new_http_client": ("kez_core.verifier.http", "new_client"),
    "decode_any": ("kez_core.encoding", "decode_any"),
    "sign_event": ("kez_core.nostr_event", "sign_event"),
    "verify_event": ("kez_core.nostr_event", "verify_event"),
    "BIP340": ("kez_core.builtins.bip340", "BIP340"),
    "serve_asgi": ("kez_core.localserver", "serve_asgi"),
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'kez_core.plugin' has no attribute {name!r}")
    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
