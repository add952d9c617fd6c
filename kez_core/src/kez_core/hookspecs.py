"""The hook specifications: every extension point of KEZ, in one module.

Each `kez_register_<kind>` hook is called once per plugin when the
`Registry` first needs that kind. Every implementation's result is
collected (none wins over another); the Registry indexes the returned
objects by name and refuses two with the same name. Implementations may
accept fewer arguments than the spec names (pluggy allows it), which is how
specs grow without breaking plugins.

Plugins implement these with `@kez_core.hookimpl`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pluggy

from .demo import DemoServer
from .protocols import Channel, Encoding, KeyAlgorithm, Transport

hookspec = pluggy.HookspecMarker("kez")


@hookspec
def kez_register_key_algorithms() -> Iterable[KeyAlgorithm]:
    """Return the key algorithms this plugin provides.

    Called once, the first time any key algorithm is looked up. Each object
    must satisfy `kez_core.protocols.KeyAlgorithm`; its `name` is the key-id
    prefix it owns and its `signature_alg` the `signature.alg` value it
    verifies. All results are collected; duplicate names are an error.
    """


@hookspec
def kez_register_encodings() -> Iterable[Encoding]:
    """Return the wire encodings of signed objects this plugin provides.

    Called once, the first time any encoding is looked up or auto-detection
    runs. Each object must satisfy `kez_core.protocols.Encoding`. All results
    are collected; duplicate names are an error.
    """


@hookspec
def kez_register_channels() -> Iterable[Channel]:
    """Return the identity channels (subject prefixes) this plugin provides.

    Called once, the first time any channel is looked up. Each object must
    satisfy `kez_core.protocols.Channel`; its `name` and `aliases` are subject
    prefixes. All results are collected; a name or alias claimed twice is an
    error. Import heavy SDKs inside the channel's methods, not at module top.
    """


@hookspec
def kez_register_transports() -> Iterable[Transport]:
    """Return the message transports this plugin provides.

    Called once, the first time any transport is looked up. Each object must
    satisfy `kez_core.protocols.Transport`. All results are collected;
    duplicate names are an error.
    """


@hookspec
def kez_register_commands(cli: Any) -> None:
    """Add sub-commands to the `kez` command line.

    Called with a `typer.Typer` app only when the user typed a command name
    that neither the built-ins nor a `command.<name>` entry point knows; add
    commands with `cli.command()` or groups with `cli.add_typer()`. Return
    nothing. `kez --help` does not call it, so it cannot list these commands:
    declare a command in a `command.<name>` entry of the `kez` entry-point group to be listed.
    """


@hookspec
def kez_demo_servers() -> Iterable[DemoServer]:
    """Return the local servers this plugin offers `kez demo` (and tests).

    Called only by `kez demo` (`Registry.demo_servers()`), never when a
    command looks up channels or transports. Each `kez_core.demo.DemoServer`
    names the channel or transport it serves, its kind (`channel`,
    `transport` or `sig_server`), the modules it needs beyond `pip install kez`
    and a `start(setup)` context manager that runs the server on 127.0.0.1
    and yields a `RunningDemo` (what to narrate and the options that reach
    it). Import the plugin's `testing` module inside `start`, never at hook
    time. All results are collected; the same kind and name twice is an error.
    """
