"""Local servers for `kez demo`, offered by plugins through the `kez_demo_servers` hook.

`kez demo` starts, on 127.0.0.1, a server for each channel (a DNS server, a
GitHub-shaped API, a nostr relay, ...), a kez-server and each transport's
server, then runs the real publish, verify and messaging code against them.
The demo knows none of them by name: each plugin returns `DemoServer`
descriptors, and the demo starts what the registry offers. A descriptor is
cheap (its plugin's entry module imports nothing heavy); `start` imports the
plugin's `testing` module, whose dependencies (starlette, uvicorn, dnslib,
nostr-relay, nats-server) come with `pip install 'kez[demo]'`, and `needs`
names those modules so the demo can say which is missing before starting.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Literal

import attrs

DemoKind = Literal["channel", "transport", "sig_server"]


@attrs.frozen
class DemoSetup:
    """What the demo hands a starter: who the demo user is and what already runs."""

    account: str = "alice"  # the account to create where the service has accounts
    # the demo identity's keys: key algorithm name -> (public key hex, secret key hex)
    keys: Mapping[str, tuple[str, str]] = attrs.field(factory=dict)
    server_name: str = "kez.example"  # a kez-server: the domain it registers handles under
    sig_server_url: str | None = None  # a transport: the demo's running kez-server (its inbox)


@attrs.frozen
class RunningDemo:
    """A started local server: what to tell the user and the options that reach it.

    Channel servers give `subject` (the demo account's subject),
    `options` (to publish, with the account's credentials) and
    `read_options` (base URLs only: reading needs no credentials). A
    kez-server gives `url` and `server_name`. A transport gives `options`
    (to send and receive), `handle_option` when a route names the peer's
    handle in an option, and `bulk_options` when the demo's file act (1 MB in
    chunks) runs over it, with `bulk_rate` (events/s) and `bulk_note` for the
    narration.
    """

    description: str
    options: Mapping[str, Any] = attrs.field(factory=dict)
    read_options: Mapping[str, Any] = attrs.field(factory=dict)
    subject: str | None = None
    url: str | None = None
    server_name: str | None = None
    handle_option: str | None = None
    bulk_options: Mapping[str, Any] | None = None
    bulk_rate: float | None = None
    bulk_note: str = ""


#: Starts a server for the length of a `with` block; raises ImportError (a module of the
#: `testing` extra is missing) or RuntimeError (a binary such as nats-server is missing).
DemoStarter = Callable[[DemoSetup], AbstractContextManager[RunningDemo]]


@attrs.frozen
class DemoServer:
    """One local server a plugin offers the demo (`kez_demo_servers`).

    `name` is the channel or transport it serves (a kez-server: any name,
    `kez-server` by convention); `kind` says which part of the demo uses it;
    `needs` lists the modules it imports beyond `pip install kez`, checked
    before `start`; `order` places it in the narration (lower first).
    """

    name: str
    kind: DemoKind
    start: DemoStarter
    needs: tuple[str, ...] = ()
    order: int = 100

    def missing_module(self) -> str | None:
        """The first module of `needs` that is not installed, or None."""
        for module in self.needs:
            if importlib.util.find_spec(module) is None:
                return module
        return None
