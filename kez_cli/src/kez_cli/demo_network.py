"""The networked half of `kez demo`: real servers on 127.0.0.1, real publish, real verify.

Plugins offer local servers through the `kez_demo_servers` hook
(`kez_core.demo`): each channel plugin a server speaking its service's
protocol (a DNS server taking RFC 2136 updates, a nostr relay, GitHub-,
Bluesky- and Mastodon-shaped HTTP APIs), kez-server itself, and each
transport its server. The demo starts the channel servers, creates the
accounts there, publishes the demo identity's claims through the same code
as `kez claim publish`, and verifies the identity through the same engine as
`kez verify`, reading without any credentials. It names no plugin: channels
whose plugin (or its test servers' dependencies) is not installed are
skipped and listed, never an error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from kez_core.demo import DemoServer, DemoSetup
from kez_core.errors import ExitCode, KezError
from kez_core.keys import Signer
from kez_core.keystore import Keystore
from kez_core.protocols import ChannelContext
from kez_core.registry import Registry


# The local servers are test doubles whose dependencies (starlette, uvicorn,
# dnslib, nostr-relay, kez-server) are not in `pip install kez`; this extra has them.
DEMO_INSTALL = "pip install 'kez[demo]'"


class DemoExtraMissing(KezError):
    """`kez demo` (its network part) was asked for, and no local server could start."""

    exit_code = ExitCode.PLUGIN
    code = "demo_extra_missing"


def missing_reason(exc: ImportError) -> str:
    """The skip reason for a local server whose dependency is not installed: the module and the fix."""
    return f"its local server needs the module {exc.name or exc}; install it with: {DEMO_INSTALL}"


def demo_servers(registry: Registry, kind: str) -> dict[str, DemoServer]:
    """The local servers of one kind that installed plugins offer, by name, in narration order."""
    return {s.name: s for s in registry.demo_servers() if s.kind == kind}


def start_server(stack: contextlib.ExitStack, server: DemoServer, setup: DemoSetup) -> Any:
    """Start `server` for the rest of `stack`; ImportError naming the first module it lacks."""
    missing = server.missing_module()
    if missing is not None:  # checked first: some servers import their library only when used
        raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)
    return stack.enter_context(server.start(setup))


def demo_setup(nostr: Signer, **kwargs: Any) -> DemoSetup:
    """What the starters are told: the account name and the demo identity's nostr key."""
    pubkey = nostr.key_id.split(":", 1)[1]
    return DemoSetup(account="alice", keys={"nostr": (pubkey, nostr.secret.hex())}, **kwargs)


@attrs.frozen
class LocalChannel:
    """One channel's local server, an account on it, and the options to reach it."""

    name: str
    subject: str
    publish_options: dict[str, Any]  # with the account's credentials
    read_options: dict[str, Any]  # base URLs only: reading needs no credentials
    server: str  # where it listens, for the narration


def channel_names(registry: Registry) -> list[str]:
    """The channels with a local server, in narration order (the default of `--channels`)."""
    return list(demo_servers(registry, "channel"))


def start_channels(
    stack: contextlib.ExitStack,
    names: Sequence[str],
    nostr: Signer,
    registry: Registry,
    on_start: Callable[[LocalChannel], None] = lambda _c: None,
) -> tuple[list[LocalChannel], list[dict[str, str]]]:
    """Start the local servers of `names`; returns (started, skipped-with-reason)."""
    started: list[LocalChannel] = []
    skipped: list[dict[str, str]] = []
    offered = demo_servers(registry, "channel")
    setup = demo_setup(nostr)
    for name in names:
        try:
            registry.channel(name)
        except KezError:
            skipped.append(
                {"channel": name, "reason": f"the {name} channel plugin is not installed"}
            )
            continue
        server = offered.get(name)
        if server is None:
            skipped.append(
                {"channel": name, "reason": f"the {name} channel plugin offers no local server"}
            )
            continue
        try:
            running = start_server(stack, server, setup)
        except ImportError as exc:
            skipped.append(
                {
                    "channel": name,
                    "reason": missing_reason(exc),
                    "missing": exc.name or str(exc),
                    "install": DEMO_INSTALL,
                }
            )
            continue
        channel = LocalChannel(
            name,
            str(running.subject),
            dict(running.options),
            dict(running.read_options),
            running.description,
        )
        started.append(channel)
        on_start(channel)
    return started, skipped


def read_context(channels: Sequence[LocalChannel]) -> ChannelContext:
    """Options to read every channel's server: base URLs, no credentials."""
    options: dict[str, Any] = {}
    for channel in channels:
        options.update(channel.read_options)
    return ChannelContext(options=options, timeout=10.0)


async def verify_state(state: Any, channels: Sequence[LocalChannel], registry: Registry) -> Any:
    from kez_core.verifier import FetchPolicy, verify_identity

    return await verify_identity(
        state, registry=registry, ctx=read_context(channels), policy=FetchPolicy(timeout=10.0)
    )


async def publish_and_verify(
    store: Keystore,
    identity: str,
    signer: Signer,
    channels: Sequence[LocalChannel],
    registry: Registry,
    on_published: Callable[[LocalChannel, Any], None] = lambda _c, _p: None,
) -> tuple[list[Any], Any]:
    """Publish one claim per channel, then verify the whole identity from its chain."""
    from kez_core.sigchain import read_chain

    from kez_core.publishing import publish_claim

    published = []
    for channel in channels:
        ctx = ChannelContext(options=dict(channel.publish_options), timeout=10.0)
        done = await publish_claim(store, identity, signer, channel.subject, ctx, registry=registry)
        published.append(done)
        on_published(channel, done)
    state = read_chain(store.chain_path(store.get(identity).identity_id), registry=registry)
    return published, await verify_state(state, channels, registry)


@attrs.frozen
class LocalSigServer:
    url: str
    name: str  # the domain handles are registered under
    description: str = ""  # for the narration


def start_sig_server(stack: contextlib.ExitStack, registry: Registry) -> LocalSigServer:
    """A real kez-server on 127.0.0.1, from the plugin that offers one; ImportError when none can start."""
    servers = list(demo_servers(registry, "sig_server").values())
    if not servers:
        raise ModuleNotFoundError("No module named 'kez_server'", name="kez_server")
    running = start_server(stack, servers[0], DemoSetup(server_name="kez.example"))
    return LocalSigServer(str(running.url), str(running.server_name), running.description)


async def share_on_server(
    store: Keystore,
    identity: str,
    signer: Signer,
    server: LocalSigServer,
    registry: Registry,
    handle: str = "alice",
) -> dict[str, Any]:
    """Push the chain to the server, register a handle, then verify `handle@server` from the server alone.

    The last step reads nothing from the local keystore: the handle is looked
    up, the chain comes from the server's `sigchain_url`, and every proof is
    fetched again, as a stranger would.
    """
    from kez_core.sigchain import merge_copies

    from kez_core.sigchain import read_chain_lines
    from kez_core.sigserver_client import (
        fetch_url,
        lookup_handle,
        push_all,
        register_handle,
        registration,
    )

    record = store.get(identity)
    lines = read_chain_lines(store.chain_path(record.identity_id))
    pushed = (await push_all([server.url], record.identity_id, lines, 10.0))[0]
    registered = await register_handle(
        server.url, registration(signer, handle, server.name, record.identity_id).to_dict(), 10.0
    )
    found = await lookup_handle(server.url, handle, server.name, 10.0)
    copy = await fetch_url(found["sigchain_url"], 10.0)
    merged = merge_copies([copy.lines or []], registry=registry)
    return {
        "pushed": pushed.to_json(),
        "registered": registered,
        "lookup": found,
        "served_chain": {
            "identity_id": merged.identity_id,
            "length": len(merged.lines),
            "same_as_local": merged.lines == merge_copies([lines], registry=registry).lines,
        },
        "state": merged,
    }
