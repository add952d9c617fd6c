"""The networked half of `kez demo`: real servers on 127.0.0.1, real publish, real verify.

Each channel plugin ships a `testing` module whose `running_server()` starts
a local server speaking its service's protocol (a DNS server taking RFC 2136
updates, the nostr relay, GitHub-, Bluesky- and Mastodon-shaped HTTP APIs).
The demo starts one of each, creates the accounts there, publishes the demo
identity's claims through the same code as `kez claim publish`, and verifies
the identity through the same engine as `kez verify`, reading without any
credentials. Channels whose plugin (or its test servers' dependencies) is
not installed are skipped and listed, never an error.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Sequence
from typing import Any

import attrs

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


# The modules each local server needs beyond `pip install kez`. Checked before
# starting: the DNS server imports dnslib only when a query arrives, and the
# nostr relay runs in a child process, so neither fails at import time here.
NEEDS: dict[str, tuple[str, ...]] = {
    "dns": ("dnslib",),
    "github": ("starlette", "uvicorn"),
    "nostr": ("nostr_relay",),
    "bluesky": ("starlette", "uvicorn"),
    "ap": ("starlette", "uvicorn"),
    "kez-server": ("kez_server", "starlette", "uvicorn"),
}


def require_modules(name: str) -> None:
    """Raise ModuleNotFoundError naming the first module `name`'s local server lacks."""
    import importlib.util

    for module in NEEDS.get(name, ()):
        if importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)


def missing_reason(exc: ImportError) -> str:
    """The skip reason for a local server whose dependency is not installed: the module and the fix."""
    return f"its local server needs the module {exc.name or exc}; install it with: {DEMO_INSTALL}"


@attrs.frozen
class LocalChannel:
    """One channel's local server, an account on it, and the options to reach it."""

    name: str
    subject: str
    publish_options: dict[str, Any]  # with the account's credentials
    read_options: dict[str, Any]  # base URLs only: reading needs no credentials
    server: str  # where it listens, for the narration


def _dns(stack: contextlib.ExitStack, nostr: Signer) -> LocalChannel:
    from kez_channel_dns.testing import running_server

    server = stack.enter_context(running_server())
    return LocalChannel(
        "dns", "dns:alice.example.org", server.ctx_options(update=True), server.ctx_options(),
        f"DNS server {server.address} (RFC 2136 updates with TSIG)",
    )


def _github(stack: contextlib.ExitStack, nostr: Signer) -> LocalChannel:
    from kez_channel_github.testing import running_server

    server = stack.enter_context(running_server())
    token = server.token_for("alice")
    return LocalChannel(
        "github", "github:alice", server.ctx_options(token), server.ctx_options(),
        f"GitHub REST API {server.base_url}",
    )


def _nostr(stack: contextlib.ExitStack, nostr: Signer) -> LocalChannel:
    from kez_channel_nostr.testing import running_server

    server = stack.enter_context(running_server())
    pubkey = nostr.key_id.split(":", 1)[1]
    return LocalChannel(
        "nostr", f"nostr:{pubkey}", {**server.ctx_options(), "nostr_secret": nostr.secret.hex()},
        server.ctx_options(), f"nostr relay {server.url}",
    )


def _bluesky(stack: contextlib.ExitStack, nostr: Signer) -> LocalChannel:
    from kez_channel_bluesky.testing import running_server

    server = stack.enter_context(running_server())
    handle = "alice.test"
    server.add_account(handle)
    return LocalChannel(
        "bluesky", f"bluesky:{handle}", server.ctx_options(handle), server.ctx_options(),
        f"atproto PDS + PLC {server.base_url}",
    )


def _activitypub(stack: contextlib.ExitStack, nostr: Signer) -> LocalChannel:
    from kez_channel_activitypub.testing import DEFAULT_DOMAIN, running_server

    server = stack.enter_context(running_server())
    token = secrets.token_urlsafe(24)
    server.add_account("alice", token=token)
    return LocalChannel(
        "ap", f"ap:alice@{DEFAULT_DOMAIN}", server.ctx_options(token), server.ctx_options(),
        f"Mastodon API {server.base_url}",
    )


STARTERS: dict[str, Callable[[contextlib.ExitStack, Signer], LocalChannel]] = {
    "dns": _dns,
    "github": _github,
    "nostr": _nostr,
    "bluesky": _bluesky,
    "ap": _activitypub,
}


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
    for name in names:
        try:
            registry.channel(name)
        except KezError:
            skipped.append({"channel": name, "reason": f"the {name} channel plugin is not installed"})
            continue
        try:
            require_modules(name)
            channel = STARTERS[name](stack, nostr)
        except ImportError as exc:
            skipped.append({"channel": name, "reason": missing_reason(exc), "missing": exc.name or str(exc), "install": DEMO_INSTALL})
            continue
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

    return await verify_identity(state, registry=registry, ctx=read_context(channels), policy=FetchPolicy(timeout=10.0))


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


def start_sig_server(stack: contextlib.ExitStack) -> LocalSigServer:
    """A real kez-server (SQLite in a temporary folder) on 127.0.0.1; ImportError when not installed."""
    require_modules("kez-server")
    from kez_server.testing import running_server

    server = stack.enter_context(running_server(server_name="kez.example"))
    return LocalSigServer(server.url, server.server_name)


async def share_on_server(
    store: Keystore, identity: str, signer: Signer, server: LocalSigServer, registry: Registry, handle: str = "alice"
) -> dict[str, Any]:
    """Push the chain to the server, register a handle, then verify `handle@server` from the server alone.

    The last step reads nothing from the local keystore: the handle is looked
    up, the chain comes from the server's `sigchain_url`, and every proof is
    fetched again, as a stranger would.
    """
    from kez_core.sigchain import merge_copies

    from .io import read_chain_file
    from kez_core.sigserver_client import fetch_url, lookup_handle, push_all, register_handle, registration

    record = store.get(identity)
    lines = read_chain_file(store.chain_path(record.identity_id))
    pushed = (await push_all([server.url], record.identity_id, lines, 10.0))[0]
    registered = await register_handle(server.url, registration(signer, handle, server.name, record.identity_id).to_dict(), 10.0)
    found = await lookup_handle(server.url, handle, server.name, 10.0)
    copy = await fetch_url(found["sigchain_url"], 10.0)
    merged = merge_copies([copy.lines or []], registry=registry)
    return {
        "pushed": pushed.to_json(),
        "registered": registered,
        "lookup": found,
        "served_chain": {"identity_id": merged.identity_id, "length": len(merged.lines),
                         "same_as_local": merged.lines == merge_copies([lines], registry=registry).lines},
        "state": merged,
    }
