"""`kez message …`: end-to-end encrypted messages between identities (spec section 12).

A recipient is named by their chain: a chain file, or an identity id whose
chain is in the local store (`kez sigchain pull ID` puts it there). The
message is sealed once per current inbox key of the recipient's devices.
`seal` and `open` work on envelope texts (copy them anywhere); `send` and
`listen` move them through a transport plugin (`--via nats`, `--via nostr`).

Receiving uses the identity's inbox secrets (`kez sigchain add-inbox`) and
its replay store (`$KEZ_HOME/identities/<name>/replay.db`), so a message
is accepted once. The sender's signing key is checked against the sender's
chain when that chain is known locally; otherwise the output says
`sender_checked: false` and how to fix it.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kez_core.errors import DecodeError, KezError, StoreError, TransportError
from kez_core.keys import normalize_key_id
from kez_core.keystore import IdentityRecord, Keystore
from kez_core.registry import default_registry

# kez_core.messaging and kez_core.sigchain load inside the commands: every
# `kez` start imports this module to build the command tree.
if TYPE_CHECKING:
    from kez_core.messaging import Message
    from kez_core.sigchain import ChainState

from .. import passphrase
from ..channel_options import CONTEXT_SETTINGS, TRANSPORT, make_context, options_help, split_channel_args
from ..io import read_chain_file, read_input
from ..options import IdentityOpt, JsonOpt, TimeoutOpt
from ..output import State, emit_json, note, out_console


ToOpt = Annotated[
    str,
    typer.Option("--to", help="Recipient: a chain FILE, or an identity id whose chain is stored locally."),
]
TextOpt = Annotated[str, typer.Option("--text", help="The message text.")]
ViaOpt = Annotated[str, typer.Option("--via", help="Transport plugin: nats, nostr, … (see `kez plugins`).")]


# ------------------------------------------------------------------ helpers


def _store() -> Keystore:
    return Keystore(registry=default_registry())


def _chain(store: Keystore, source: str, what: str) -> ChainState:
    """A validated chain from a file, or from the local store by identity id."""
    path = Path(source).expanduser()
    if not path.is_file():
        try:
            identity_id = normalize_key_id(source, store.registry)
        except DecodeError:
            raise StoreError(
                f"{what} {source!r} is neither a chain file nor an identity id",
                hint="give a chain file, or an identity id after `kez sigchain pull ID`",
            ) from None
        path = store.chain_path(identity_id)
        if not path.is_file():
            raise StoreError(
                f"no local chain for {identity_id}", hint=f"fetch it with `kez sigchain pull {identity_id}`"
            )
    return _validated(store, read_chain_file(path), path)


def _validated(store: Keystore, lines: list[bytes], path: Path) -> ChainState:
    from kez_core.sigchain import merge_copies

    merged = merge_copies([lines], registry=store.registry)
    if merged.state is None or merged.fork is not None:
        raise StoreError(f"the chain in {path} is not valid", hint=f"`kez sigchain verify {path}` says why")
    return merged.state


def _sealed(store: Keystore, identity: str | None, to: str, text: str) -> list[dict[str, str]]:
    from kez_core.messaging import routing_id, seal_for_devices

    record = store.get(identity)
    signer = store.signer(record.name, passphrase.provider(f"identity {record.name!r}"))
    recipient = _chain(store, to, "--to")
    sealed = seal_for_devices(
        signer,
        sender_identity=record.identity_id,
        recipient=recipient,
        body={"kind": "text", "text": text},
        registry=store.registry,
    )
    return [
        {
            "recipient": recipient.identity_id,
            "inbox_key": key,
            "routing_id": routing_id(key),
            "message_id": obj.id,
            "envelope": envelope,
        }
        for key, obj, envelope in sealed
    ]


class _Receiver:
    """Opens envelopes for one local identity: inbox secrets, replay store, sender check."""

    def __init__(self, store: Keystore, record: IdentityRecord, sender_chains: list[str]) -> None:
        from kez_core.messaging import InboxKeyring, ReplayStore

        self.store = store
        self.record = record
        keyring = InboxKeyring(record.path)
        self.secrets = keyring.secrets(passphrase.provider(f"identity {record.name!r}"))
        if not self.secrets:
            raise StoreError(
                f"identity {record.name!r} has no inbox key",
                hint="publish one with `kez sigchain add-inbox` (and share the chain)",
            )
        self.replay = ReplayStore(Path(record.path) / "replay.db")
        self.senders = {state.identity_id: state for state in (_chain(store, s, "--sender-chain") for s in sender_chains)}

    def open(self, envelope: str | bytes) -> dict[str, Any]:
        from kez_core.messaging import open_envelope

        message = open_envelope(
            envelope,
            self.secrets,
            identity=self.record.identity_id,
            replay=self.replay,
            registry=self.store.registry,
        )
        return self._describe(message)

    def _describe(self, message: Message) -> dict[str, Any]:
        from kez_core.messaging import check_sender

        chain = self.senders.get(message.sender_identity)
        if chain is None:
            local = self.store.chain_path(message.sender_identity)
            lines = read_chain_file(local, missing_ok=True)
            if lines:  # none: no copy here, or the empty file `sigchain init` leaves
                chain = _validated(self.store, lines, local)
        out: dict[str, Any] = {
            "message_id": message.id,
            "from": message.sender_identity,
            "sender_key": message.sender,
            "created_at": message.signed.payload["created_at"],
            "body": message.body,
            "sender_checked": False,
        }
        if chain is None:
            out["sender_note"] = (
                f"the sender's chain is not known here: `kez sigchain pull {message.sender_identity}` to check"
            )
        else:
            check_sender(message, chain)  # MessageRefused when the key does not belong
            out["sender_checked"] = True
        return out

    def close(self) -> None:
        self.replay.close()


def _print_message(data: dict[str, Any]) -> None:
    mark = "[green]✓[/green]" if data["sender_checked"] else "[yellow]?[/yellow]"
    body = data["body"]
    text = body.get("text") if body.get("kind") == "text" else json.dumps(body, ensure_ascii=False)
    out_console.print(f"{mark} [bold]{data['from']}[/bold]  [dim]{data['created_at']}[/dim]")
    out_console.print(f"  {text}", markup=False, highlight=False)
    if not data["sender_checked"]:
        out_console.print(f"  [dim]{data['sender_note']}[/dim]")


def _transport_setup(ctx: typer.Context, via: str, timeout: float) -> tuple[Keystore, Any, Any]:
    """The keystore, the `--via` transport and a context from the transport flags given."""
    store = _store()
    transport = store.registry.transport(via)
    _, args = split_channel_args(ctx.args, store.registry, TRANSPORT)
    return store, transport, make_context(args, store.registry, timeout, TRANSPORT)


# ------------------------------------------------------------------ commands


def seal(to: ToOpt, text: TextOpt, identity: IdentityOpt = None, json_: JsonOpt = False) -> None:
    """Sign and seal a text message to every current inbox key of the recipient; print the envelopes.

    One envelope per recipient device, one per line (or `--json`: a list with
    each envelope's routing id, inbox key and message id).
    """
    State.json_mode = json_
    sealed = _sealed(_store(), identity, to, text)
    if json_:
        emit_json(sealed)
    else:
        for item in sealed:
            typer.echo(item["envelope"])


def open_(
    envelopes: Annotated[
        list[str] | None, typer.Argument(help="Envelope texts, files holding them (one per line), or - for stdin.")
    ] = None,
    sender_chain: Annotated[
        list[str] | None, typer.Option("--sender-chain", help="Chain FILE of a sender, to check their key.")
    ] = None,
    identity: IdentityOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Open envelopes addressed to this identity; each message is accepted once (replay store).

    Exit 0 when every envelope opened; 1 when one was refused (not for us,
    tampered, too old, a replay, a sender key its chain does not allow).
    """
    State.json_mode = json_
    texts: list[str] = []
    for source in envelopes or ["-"]:
        content = source if source.startswith("kez:e1:") else read_input(source)
        texts.extend(line.strip() for line in content.splitlines() if line.strip())
    store = _store()
    receiver = _Receiver(store, store.get(identity), sender_chain or [])
    results: list[dict[str, Any]] = []
    failed = 0
    try:
        for text in texts:
            try:
                results.append(receiver.open(text))
            except KezError as exc:
                failed += 1
                results.append({"refused": exc.to_dict()})
    finally:
        receiver.close()
    if json_:
        emit_json(results)
    else:
        for data in results:
            if "refused" in data:
                out_console.print(f"[red]refused[/red]  {data['refused']['message']}", highlight=False)
            else:
                _print_message(data)
    if failed:
        raise typer.Exit(1)


def send(
    ctx: typer.Context,
    to: ToOpt,
    text: TextOpt,
    via: ViaOpt,
    identity: IdentityOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Seal a text message to the recipient's devices and send each envelope through a transport.

    Transport plugins add their own flags (see `kez plugins`), e.g.
    --nats-url URL or --transport-relay URL.
    """
    State.json_mode = json_
    store, transport, channel_ctx = _transport_setup(ctx, via, timeout)
    sealed = _sealed(store, identity, to, text)

    async def deliver() -> list[dict[str, Any]]:
        out = []
        for item in sealed:
            try:
                await transport.send(item["routing_id"], item["envelope"].encode("ascii"), channel_ctx)
                out.append({**item, "sent": True})
            except KezError as exc:
                out.append({**item, "sent": False, "error": exc.to_dict()})
        return out

    results = asyncio.run(deliver())
    if json_:
        emit_json([{k: v for k, v in r.items() if k != "envelope"} for r in results])
    else:
        for r in results:
            where = f"{via} {r['routing_id']}"
            note(f"sent to {where}" if r["sent"] else f"not sent to {where}: {r['error']['message']}")
    if not any(r["sent"] for r in results):
        first = results[0]["error"] if results else {"message": "nothing to send"}
        raise TransportError(f"the message reached no device: {first['message']}", hint=first.get("hint"))


def listen(
    ctx: typer.Context,
    via: ViaOpt,
    count: Annotated[int, typer.Option("--count", help="Stop after this many messages (0: never).", min=0)] = 0,
    wait: Annotated[float, typer.Option("--wait", help="Stop after this many seconds (0: never).", min=0)] = 0,
    sender_chain: Annotated[
        list[str] | None, typer.Option("--sender-chain", help="Chain FILE of a sender, to check their key.")
    ] = None,
    identity: IdentityOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Receive messages for this identity's inbox keys through a transport, as they arrive.

    Prints each accepted message (with `--json`: one JSON object per line);
    refused envelopes are reported on stderr and skipped.
    """
    State.json_mode = json_
    store, transport, channel_ctx = _transport_setup(ctx, via, timeout)
    from kez_core.messaging import routing_id

    receiver = _Receiver(store, store.get(identity), sender_chain or [])
    received = 0

    async def one_key(key: str, queue: asyncio.Queue[Any]) -> None:
        async with transport.subscribe(routing_id(key), channel_ctx) as inbox:
            await queue.put(("live", key))
            async for envelope in inbox:
                await queue.put(("envelope", envelope))

    async def run() -> None:
        nonlocal received
        queue: asyncio.Queue[Any] = asyncio.Queue()
        keys = [s.key_id for s in receiver.secrets]
        tasks = [asyncio.create_task(one_key(k, queue)) for k in keys]
        live = set(tasks)
        deadline = time.monotonic() + wait if wait else None
        try:
            while not count or received < count:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return
                if not live and queue.empty():
                    raise TransportError(f"every {via} subscription ended", hint="is the server still up?")
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait([getter, *live], timeout=left, return_when=asyncio.FIRST_COMPLETED)
                for task in done - {getter}:  # a subscription ended: an error is the answer
                    live.remove(task)
                    task.result()
                if getter not in done:
                    getter.cancel()
                    continue
                kind, value = getter.result()
                if kind == "live":
                    note(f"listening on {via} for inbox key {value}")
                    continue
                try:
                    data = receiver.open(value)
                except KezError as exc:
                    note(f"refused an envelope: {exc.message}")
                    continue
                received += 1
                if json_:
                    typer.echo(json.dumps(data, ensure_ascii=False))
                else:
                    _print_message(data)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    try:
        asyncio.run(run())
    finally:
        receiver.close()


def register(main_app: typer.Typer) -> None:
    """Add `kez message` to a freshly built root app (a new group each time: `build_app`
    runs once per in-process `main()`, and a shared group would collect duplicates)."""
    app = typer.Typer(
        help="Send and receive end-to-end encrypted messages (HPKE to the recipient's inbox keys).",
        no_args_is_help=True,
    )
    epilog = options_help(default_registry(), TRANSPORT)
    app.command("seal")(seal)
    app.command("open")(open_)
    app.command("send", context_settings=CONTEXT_SETTINGS, epilog=epilog)(send)
    app.command("listen", context_settings=CONTEXT_SETTINGS, epilog=epilog)(listen)
    main_app.add_typer(app, name="message")
