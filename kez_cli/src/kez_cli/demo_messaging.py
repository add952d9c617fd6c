"""The messaging act of `kez demo`: alice writes to `bob@kez.example` over each transport.

Bob gets an identity, a sigchain with an inbox key, and the handle `bob` on
the demo's local kez-server. Alice (who has a handle there already) gets an
inbox key too, so Bob's acks can reach her. Then, for each transport (NATS,
nostr, the kez-server's HTTP inbox), both subscribe to their inboxes, Alice
sends through `kez_core.chat.MessagingService.send_text`, Bob `receive`s and
`flush_acks`, Alice `receive`s the ack, and her history gives the state.
Everything messaging-related is the service's; this module only wires the
local servers, the identities and the routes together.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from kez_core.keystore import Keystore
from kez_core.protocols import ChannelContext

from .demo_network import DEMO_INSTALL, LocalSigServer, missing_reason, require_modules

TRANSPORTS = ("nats", "nostr", "http")
STEP_WAIT = 20.0  # seconds one envelope may take on loopback before the demo calls it failed


def _no_passphrase() -> bytes | None:
    return None


def ensure_inbox(store: Keystore, name: str) -> str:
    """Give identity `name` (created when absent) a sigchain and a fresh inbox key; returns the key."""
    from kez_core import keychange
    from kez_core.keyfiles import private_dir
    from kez_core.keystore import atomic_write

    from .io import chain_builder, read_chain_file

    if name not in {r.name for r in store.list()}:
        store.create(name, "ed25519", None)
    record = store.get(name)
    path = store.chain_path(record.identity_id)
    if not path.exists():
        private_dir(path.parent)
        atomic_write(path, b"", 0o644)
    builder = chain_builder(read_chain_file(path, missing_ok=True), store.registry)
    change = keychange.add_inbox(
        store, name, path, builder, signer=lambda: store.signer(name, _no_passphrase),
        passphrase=_no_passphrase, lifetime=timedelta(days=7),
    )
    return change.key_id


def transport_options(name: str, stack: contextlib.ExitStack, server: LocalSigServer) -> dict[str, Any]:
    """Start (or find) the local server of transport `name`; the options that reach it.

    Raises ImportError/RuntimeError when its server cannot run here.
    """
    if name == "nats":
        from kez_transport_nats.testing import running_nats_server

        nats = stack.enter_context(running_nats_server())
        return {"nats_url": [f"nats://127.0.0.1:{nats.port}"]}
    if name == "nostr":
        require_modules("nostr")
        from kez_channel_nostr.testing import running_server

        relay = stack.enter_context(running_server())
        return {"nostr_transport_relays": [relay.url]}
    return {"inbox_server": server.url}


def route_context(store: Keystore, name: str, base: dict[str, Any], handle: str | None) -> ChannelContext:
    """A context carrying the identity's key (servers that want proof get it) and, for http, an inbox handle."""
    record = store.get(name)
    options = {**base, "signer": store.signer(name, _no_passphrase), "identity": record.identity_id,
               "identity_dir": str(record.path)}
    if handle is not None and "inbox_server" in base:
        options["inbox_handle"] = handle
    return ChannelContext(options=options, timeout=10.0)


async def _next(inbox: Any) -> bytes:
    envelope = await asyncio.wait_for(anext(aiter(inbox)), STEP_WAIT)
    done = getattr(inbox, "done", None)  # a transport with a cursor (http) is told it was handled
    if done is not None:
        done(envelope)
    return envelope


async def _exchange(alice: Any, bob: Any, peer: Any, name: str, transport: Any,
                    ctx: dict[str, ChannelContext], keys: dict[str, str], text: str) -> dict[str, Any]:
    """One message alice → bob and its ack back, over one transport; the states alice saw."""
    from kez_core.chat import Route
    from kez_core.messaging import routing_id

    async with (transport.subscribe(routing_id(keys["bob"]), ctx["bob_listen"]) as bob_in,
                transport.subscribe(routing_id(keys["alice"]), ctx["alice_listen"]) as alice_in):
        sent = await alice.send_text(peer, text, [Route(name, transport, ctx["alice_send"])])
        states = [sent.state]
        got = bob.receive(await _next(bob_in))
        await bob.flush_acks([Route(name, transport, ctx["bob_send"])])
        while True:
            ack = alice.receive(await _next(alice_in))
            if ack.kind == "ack" and sent.key in ack.delivered:
                break
        _, entries = await alice.history(peer.identity, mark_read=False)
        state = next(e.state for e in entries if e.key == sent.key)
        states.append(state)
    return {"transport": name, "text": text, "states": states, "state": state,
            "bob_got": got.message.body.get("text"),
            "sender_checked": got.sender_checked}


def run_messaging(stack: contextlib.ExitStack, store: Keystore, server: LocalSigServer, registry: Any,
                  say: Callable[..., None], transports: tuple[str, ...] = TRANSPORTS) -> dict[str, Any]:
    """The act: bob on the server, alice → bob@<server> over each transport, acks back; the report."""
    from kez_core.chat import MessagingService

    from .directory import ServerDirectory
    from .io import read_chain_file
    from .sigservers import push_all

    from .demo_network import share_on_server

    keys = {"alice": ensure_inbox(store, "alice"), "bob": ensure_inbox(store, "bob")}
    bob_record = store.get("bob")
    shared = asyncio.run(share_on_server(store, "bob", store.signer("bob", _no_passphrase), server, registry,
                                         handle="bob"))
    alice_record = store.get("alice")
    alice_lines = read_chain_file(store.chain_path(alice_record.identity_id))
    asyncio.run(push_all([server.url], alice_record.identity_id, alice_lines, 10.0))
    bob_handle = f"bob@{server.name}"
    say("  ", ("registered", "green"), f" {shared['registered']['fqhn']} → {bob_record.identity_id}")
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    directory = ServerDirectory(server.url, 10.0)
    alice = MessagingService(store, alice_record, _no_passphrase, directory=directory)
    bob = MessagingService(store, bob_record, _no_passphrase, directory=directory)
    try:
        peer = asyncio.run(alice.resolve_peer(bob_handle))
        for name in transports:
            try:
                base = transport_options(name, stack, server)
            except ImportError as exc:
                skipped.append({"transport": name, "reason": missing_reason(exc), "install": DEMO_INSTALL})
                say("  ", (f"skipped {name}", "yellow"), f": {missing_reason(exc)}")
                continue
            except RuntimeError as exc:  # nats-server binary not found
                skipped.append({"transport": name, "reason": str(exc), "install": DEMO_INSTALL})
                say("  ", (f"skipped {name}", "yellow"), f": {exc}; install it with: {DEMO_INSTALL}")
                continue
            ctx = {
                "alice_send": route_context(store, "alice", base, bob_handle),
                "alice_listen": route_context(store, "alice", base, "alice"),
                "bob_send": route_context(store, "bob", base, f"alice@{server.name}"),
                "bob_listen": route_context(store, "bob", base, "bob"),
            }
            transport = registry.transport(name)
            try:
                row = asyncio.run(_exchange(alice, bob, peer, name, transport, ctx, keys,
                                            f"hello bob, over {name}"))
            except (TimeoutError, asyncio.TimeoutError):
                row = {"transport": name, "states": [], "state": "timeout", "text": f"hello bob, over {name}"}
            rows.append(row)
            colour = "green" if row["state"] == "delivered" else "red"
            say("  ", (f"{row['state']:<9}", colour), f" alice → {bob_handle} over {name}: ",
                " → ".join(row["states"]))
        file_part = _file_act(alice, bob, peer, say)
    finally:
        alice.close()
        bob.close()
    ok = bool(rows) and all(r["state"] == "delivered" for r in rows)
    return {"ok": ok, "to": bob_handle, "messages": rows, "skipped": skipped, "file": file_part}


def _file_act(alice: Any, bob: Any, peer: Any, say: Callable[..., None]) -> dict[str, Any]:
    """A 1 MB file alice → bob over nostr in chunks.

    INTEGRATOR: fill this in once chunked file transfer (the `files` worktree)
    is merged; until then the act reports that this build has no file API.
    """
    import kez_core.chat as chat

    if not hasattr(chat, "send_file") and not hasattr(chat.MessagingService, "send_file"):
        say("  ", ("skipped file", "yellow"), ": file transfer not available in this build")
        return {"skipped": "file transfer not available in this build"}
    say("  ", ("skipped file", "yellow"), ": the demo's file act is not written yet")
    return {"skipped": "the demo's file act is not written yet"}
