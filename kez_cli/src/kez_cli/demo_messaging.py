"""The messaging act of `kez demo`: alice writes to `bob@kez.example` over each transport.

Bob gets an identity, a sigchain with an inbox key, and the handle `bob` on
the demo's local kez-server. Alice (who has a handle there already) gets an
inbox key too, so Bob's acks can reach her. Then, for each transport (NATS,
nostr, the kez-server's HTTP inbox), both subscribe to their inboxes, Alice
sends through `kez_core.chat.MessagingService.send_text`, Bob `receive`s and
`flush_acks`, Alice `receive`s the ack, and her history gives the state.
Last, Alice sends Bob a 1 MB file (`send_file`: chunks, then the pointer)
over the transport whose local server offers a file act (nostr's relay),
with progress; Bob's saved copy is SHA-256 checked and his ack makes it
`delivered`.
Everything messaging-related is the service's; this module only wires the
local servers (offered by the transport plugins through the
`kez_demo_servers` hook), the identities and the routes together.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from kez_core.demo import DemoSetup, RunningDemo
from kez_core.keystore import Keystore
from kez_core.protocols import ChannelContext

from .demo_network import DEMO_INSTALL, LocalSigServer, demo_servers, missing_reason, start_server

STEP_WAIT = 20.0  # seconds one envelope may take on loopback before the demo calls it failed
FILE_SIZE = 1024 * 1024  # the file act's file: about 70 chunks over nostr


def _no_passphrase() -> bytes | None:
    return None


def ensure_inbox(store: Keystore, name: str) -> str:
    """Give identity `name` (created when absent) a sigchain and a fresh inbox key; returns the key."""
    from kez_core import keychange
    from kez_core.keyfiles import private_dir
    from kez_core.keystore import atomic_write

    from kez_core.sigchain import continue_chain, read_chain_lines

    if name not in {r.name for r in store.list()}:
        store.create(name, "ed25519", None)
    record = store.get(name)
    path = store.chain_path(record.identity_id)
    if not path.exists():
        private_dir(path.parent)
        atomic_write(path, b"", 0o644)
    builder = continue_chain(read_chain_lines(path, missing_ok=True), store.registry)
    change = keychange.add_inbox(
        store,
        name,
        path,
        builder,
        signer=lambda: store.signer(name, _no_passphrase),
        passphrase=_no_passphrase,
        lifetime=timedelta(days=7),
    )
    return change.key_id


def route_context(
    store: Keystore, name: str, running: RunningDemo, handle: str | None, options: Any = None
) -> ChannelContext:
    """A context carrying the identity's key (servers that want proof get it) and the peer's
    handle where the transport names it in an option (the http inbox)."""
    record = store.get(name)
    base = running.options if options is None else options
    ctx_options = {
        **base,
        "signer": store.signer(name, _no_passphrase),
        "identity": record.identity_id,
        "identity_dir": str(record.path),
    }
    if handle is not None and running.handle_option:
        ctx_options[running.handle_option] = handle
    return ChannelContext(options=ctx_options, timeout=10.0)


async def _next(inbox: Any) -> bytes:
    envelope = await asyncio.wait_for(anext(aiter(inbox)), STEP_WAIT)
    done = getattr(inbox, "done", None)  # a transport with a cursor (http) is told it was handled
    if done is not None:
        done(envelope)
    return envelope


async def _exchange(
    alice: Any,
    bob: Any,
    peer: Any,
    name: str,
    transport: Any,
    ctx: dict[str, ChannelContext],
    keys: dict[str, str],
    text: str,
) -> dict[str, Any]:
    """One message alice → bob and its ack back, over one transport; the states alice saw."""
    from kez_core.chat import Route
    from kez_core.messaging import routing_id

    async with (
        transport.subscribe(routing_id(keys["bob"]), ctx["bob_listen"]) as bob_in,
        transport.subscribe(routing_id(keys["alice"]), ctx["alice_listen"]) as alice_in,
    ):
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
    return {
        "transport": name,
        "text": text,
        "states": states,
        "state": state,
        "bob_got": got.message.body.get("text"),
        "sender_checked": got.sender_checked,
    }


def run_messaging(
    stack: contextlib.ExitStack,
    store: Keystore,
    server: LocalSigServer,
    registry: Any,
    say: Callable[..., None],
) -> dict[str, Any]:
    """The act: bob on the server, alice → bob@<server> over each transport, acks back; the report."""
    from kez_core.chat import MessagingService

    from kez_core.sigserver_client import ServerDirectory
    from kez_core.sigchain import read_chain_lines
    from kez_core.sigserver_client import push_all

    from .demo_network import share_on_server

    keys = {"alice": ensure_inbox(store, "alice"), "bob": ensure_inbox(store, "bob")}
    bob_record = store.get("bob")
    shared = asyncio.run(
        share_on_server(
            store, "bob", store.signer("bob", _no_passphrase), server, registry, handle="bob"
        )
    )
    alice_record = store.get("alice")
    alice_lines = read_chain_lines(store.chain_path(alice_record.identity_id))
    asyncio.run(push_all([server.url], alice_record.identity_id, alice_lines, 10.0))
    bob_handle = f"bob@{server.name}"
    say(
        "  ", ("registered", "green"), f" {shared['registered']['fqhn']} → {bob_record.identity_id}"
    )
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    directory = ServerDirectory(server.url, 10.0)
    alice = MessagingService(store, alice_record, _no_passphrase, directory=directory)
    bob = MessagingService(store, bob_record, _no_passphrase, directory=directory)
    try:
        peer = asyncio.run(alice.resolve_peer(bob_handle))
        file_ctx: dict[str, ChannelContext] | None = None
        file_via: tuple[str, RunningDemo] | None = None
        setup = DemoSetup(server_name=server.name, sig_server_url=server.url)
        for name, offered in demo_servers(registry, "transport").items():
            try:
                running = start_server(stack, offered, setup)
            except ImportError as exc:
                skipped.append(
                    {"transport": name, "reason": missing_reason(exc), "install": DEMO_INSTALL}
                )
                say("  ", (f"skipped {name}", "yellow"), f": {missing_reason(exc)}")
                continue
            except RuntimeError as exc:  # nats-server binary not found
                skipped.append({"transport": name, "reason": str(exc), "install": DEMO_INSTALL})
                say(
                    "  ", (f"skipped {name}", "yellow"), f": {exc}; install it with: {DEMO_INSTALL}"
                )
                continue
            ctx = {
                "alice_send": route_context(store, "alice", running, bob_handle),
                "alice_listen": route_context(store, "alice", running, "alice"),
                "bob_send": route_context(store, "bob", running, f"alice@{server.name}"),
                "bob_listen": route_context(store, "bob", running, "bob"),
            }
            transport = registry.transport(name)
            try:
                row = asyncio.run(
                    _exchange(
                        alice, bob, peer, name, transport, ctx, keys, f"hello bob, over {name}"
                    )
                )
            except TimeoutError:
                row = {
                    "transport": name,
                    "states": [],
                    "state": "timeout",
                    "text": f"hello bob, over {name}",
                }
            rows.append(row)
            colour = "green" if row["state"] == "delivered" else "red"
            say(
                "  ",
                (f"{row['state']:<9}", colour),
                f" alice → {bob_handle} over {name}: ",
                " → ".join(row["states"]),
            )
            if running.bulk_options is not None and file_via is None:  # the file act's transport
                file_via = (name, running)
                file_ctx = {
                    role: route_context(store, who, running, handle, running.bulk_options)
                    for role, who, handle in (
                        ("alice_send", "alice", bob_handle),
                        ("alice_listen", "alice", "alice"),
                        ("bob_send", "bob", f"alice@{server.name}"),
                        ("bob_listen", "bob", "bob"),
                    )
                }
        file_part = _file_act(
            alice,
            bob,
            peer,
            say,
            registry.transport(file_via[0]) if file_via else None,
            file_ctx,
            keys,
            file_via,
        )
    finally:
        alice.close()
        bob.close()
    ok = bool(rows) and all(r["state"] == "delivered" for r in rows) and file_part.get("ok", True)
    return {"ok": ok, "to": bob_handle, "messages": rows, "skipped": skipped, "file": file_part}


def _file_act(
    alice: Any,
    bob: Any,
    peer: Any,
    say: Callable[..., None],
    transport: Any,
    ctx: dict[str, ChannelContext] | None,
    keys: dict[str, str],
    via: tuple[str, RunningDemo] | None,
) -> dict[str, Any]:
    """A 1 MB file alice → bob in chunks over the transport whose server offers the file act
    (`via`: its name and running server), with progress; bob's copy SHA-256 checked.

    `ctx` is None when no such server runs here (nostr's relay was skipped): then neither does the file.
    """
    if ctx is None or via is None:
        say("  ", ("skipped file", "yellow"), ": the nostr relay is not running")
        return {"skipped": "the nostr relay is not running"}
    name, running = via
    with tempfile.TemporaryDirectory(prefix="kez-demo-file-") as tmp:
        path = Path(tmp) / "demo-1MB.bin"
        data = os.urandom(FILE_SIZE)
        path.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        say(
            "  ",
            ("file", "bold"),
            f" {path.name} ({FILE_SIZE:,} bytes, SHA-256 {digest[:16]}…) alice → bob over {name}"
            f" in chunks, {running.bulk_note}",
        )
        begin = time.perf_counter()
        try:
            row = asyncio.run(
                _file_exchange(alice, bob, peer, name, transport, ctx, keys, path, say)
            )
        except TimeoutError:
            say("  ", ("timeout  ", "red"), " the file did not arrive whole")
            return {"ok": False, "state": "timeout", "size": FILE_SIZE, "sha256": digest}
    if row["state"] == "sending":
        say(
            "  ",
            ("not sent ", "red"),
            f" {(row.get('error') or {}).get('message', 'no transport took it')}",
        )
        return {**row, "ok": False, "size": FILE_SIZE, "sha256": digest}
    elapsed = time.perf_counter() - begin
    saved = Path(row["path"]) if row.get("path") else None
    same = (
        saved is not None
        and saved.is_file()
        and hashlib.sha256(saved.read_bytes()).hexdigest() == digest
    )
    row.update(
        {
            "size": FILE_SIZE,
            "sha256": digest,
            "sha256_checked": same,
            "seconds": round(elapsed, 2),
            "rate_events": running.bulk_rate,
        }
    )
    ok = same and row["state"] == "delivered"
    colour = "green" if ok else "red"
    say(
        "  ",
        (f"{row['state']:<9}", colour),
        f" {row['count']} chunks + pointer in {elapsed:.1f} s; bob saved "
        f"{saved.name if saved else '(nothing)'}: SHA-256 ",
        ("matches" if same else "DIFFERS", colour),
    )
    row["ok"] = ok
    return row


def _receive_new(service: Any, envelope: bytes) -> Any:
    """`service.receive`, or None for an envelope seen before: a relay serves a new subscription
    the events it kept (the earlier act's message and ack among them)."""
    from kez_core.messaging import MessageRefused

    try:
        return service.receive(envelope)
    except MessageRefused as exc:
        if exc.reason == "replay":
            return None
        raise


async def _file_exchange(
    alice: Any,
    bob: Any,
    peer: Any,
    name: str,
    transport: Any,
    ctx: dict[str, ChannelContext],
    keys: dict[str, str],
    path: Path,
    say: Callable[..., None],
) -> dict[str, Any]:
    """Alice sends the file while bob receives every chunk; bob acks the finished file; alice sees `delivered`."""
    from kez_core.chat import Route
    from kez_core.messaging import routing_id

    shown: set[int] = set()

    def progress(done: int, total: int) -> None:
        step = done * 100 // max(total, 1) // 25 * 25
        if step not in shown:
            shown.add(step)
            say("    ", (f"{step:>3}%", "dim"), f" sent {done}/{total} messages")

    async with (
        transport.subscribe(routing_id(keys["bob"]), ctx["bob_listen"]) as bob_in,
        transport.subscribe(routing_id(keys["alice"]), ctx["alice_listen"]) as alice_in,
    ):

        async def bob_side() -> Any:
            while True:
                got = _receive_new(bob, await _next(bob_in))
                if (
                    got is not None
                    and got.file
                    and got.file.get("state") in ("complete", "corrupt")
                ):
                    return got

        receiving = asyncio.ensure_future(bob_side())
        try:
            sent = await alice.send_file(
                peer, path, [Route(name, transport, ctx["alice_send"])], progress
            )
            if sent.state == "sending":  # a chunk or the pointer got through no transport
                failed = [d for d in sent.deliveries if not d.sent]
                return {
                    "transport": name,
                    "state": "sending",
                    "error": failed[-1].error if failed else None,
                }
            got = await receiving
        finally:
            receiving.cancel()
        await bob.flush_acks([Route(name, transport, ctx["bob_send"])])
        while True:
            ack = _receive_new(alice, await _next(alice_in))
            if ack is not None and ack.kind == "ack" and sent.key in ack.delivered:
                break
        _, entries = await alice.history(peer.identity, mark_read=False)
        state = next(e.state for e in entries if e.key == sent.key)
    return {
        "transport": name,
        "state": state,
        "received": got.file.get("state"),
        "path": got.file.get("path"),
        "count": got.file.get("count"),
    }
