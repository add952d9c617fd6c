"""`kez message …`: end-to-end encrypted messages between identities (spec section 12).

A recipient is named by their chain: a chain file, or an identity id whose
chain is in the local store (`kez sigchain pull ID` puts it there). The
message is sealed once per current inbox key of the recipient's devices.
`seal` and `open` work on envelope texts (copy them anywhere); `send` and
`listen` move them through a transport plugin (`--via nats`, `--via nostr`,
`--via http`: a kez-server's inbox).

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

import attrs
import typer

from kez_core.errors import DecodeError, KezError, StoreError, TransportError
from kez_core.keys import Signer, normalize_key_id
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
from ..output import State, emit_json, emit_json_line, note, show_line


KEYRING_CHECK = 1.0  # seconds between `listen`'s looks for inbox keys added meanwhile

ToOpt = Annotated[
    str,
    typer.Option("--to", help="Recipient: a chain FILE, or an identity id whose chain is stored locally."),
]
TextOpt = Annotated[str, typer.Option("--text", help="The message text.")]
ViaOpt = Annotated[str, typer.Option("--via", help="Transport plugin: nats, nostr, http, … (see `kez plugins`).")]


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
    """The chain in `path`, valid from its first line to its last (ChainFileError, exit 3)."""
    from kez_core.sigchain import load_chain

    return load_chain(lines, origin=str(path), registry=store.registry)


def _signer(store: Keystore, identity: str | None) -> tuple[IdentityRecord, Signer]:
    record = store.get(identity)
    return record, store.signer(record.name, passphrase.provider(f"identity {record.name!r}"))


def _sealed(store: Keystore, record: IdentityRecord, signer: Signer, to: str, text: str) -> list[dict[str, str]]:
    from kez_core.messaging import routing_id, seal_for_devices

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

    def __init__(
        self, store: Keystore, record: IdentityRecord, sender_chains: list[str], unlock: Any = None
    ) -> None:
        from kez_core.messaging import InboxKeyring, ReplayStore

        self.store = store
        self.record = record
        self.passphrase = unlock or passphrase.provider(f"identity {record.name!r}")
        self.keyring = InboxKeyring(record.path)
        self.secrets = self.keyring.secrets(self.passphrase)
        if not self.secrets:
            raise StoreError(
                f"identity {record.name!r} has no inbox key",
                hint="publish one with `kez sigchain add-inbox` (and share the chain)",
            )
        self.replay = ReplayStore(Path(record.path) / "replay.db")
        self.senders = {state.identity_id: state for state in (_chain(store, s, "--sender-chain") for s in sender_chains)}

    def reload(self) -> list[str]:
        """Read the keyring again when its keys changed (`kez sigchain add-inbox` meanwhile);
        the key ids that are new."""
        stored = {r.key for r in self.keyring.records()}
        held = {s.key_id for s in self.secrets}
        if stored <= held:
            return []
        self.secrets = self.keyring.secrets(self.passphrase)
        return [s.key_id for s in self.secrets if s.key_id not in held]

    def signer(self) -> Signer:
        return self.store.signer(self.record.name, self.passphrase)

    def open(self, envelope: str | bytes) -> dict[str, Any]:
        from kez_core.messaging import open_envelope

        known: list[ChainState | None] = []

        def sender_chain(message: Message) -> ChainState | None:
            known.append(self._sender_chain(message.sender_identity))
            return known[-1]

        # the sender is checked inside open_envelope, before the id is recorded
        message = open_envelope(
            envelope,
            self.secrets,
            identity=self.record.identity_id,
            replay=self.replay,
            registry=self.store.registry,
            sender_chain=sender_chain,
        )
        return self._describe(message, known[-1] if known else None)

    def _sender_chain(self, identity_id: str) -> ChainState | None:
        """The sender's chain: a --sender-chain FILE, else the local copy; None when unknown."""
        chain = self.senders.get(identity_id)
        if chain is None:
            local = self.store.chain_path(identity_id)
            lines = read_chain_file(local, missing_ok=True)
            if lines:  # none: no copy here, or the empty file `sigchain init` leaves
                chain = _validated(self.store, lines, local)
        return chain

    def _describe(self, message: Message, chain: ChainState | None) -> dict[str, Any]:
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
            out["sender_checked"] = True  # open_envelope ran check_sender
        return out

    def close(self) -> None:
        self.replay.close()


def _print_message(data: dict[str, Any]) -> None:
    mark = ("✓", "green") if data["sender_checked"] else ("?", "yellow")
    body = data["body"]
    text = body.get("text") if body.get("kind") == "text" else json.dumps(body, ensure_ascii=False)
    show_line(mark, " ", (str(data["from"]), "bold"), "  ", (str(data["created_at"]), "dim"))
    show_line("  ", str(text).replace("\n", "\n  "), multiline=True)  # the body may span lines; nothing else
    if not data["sender_checked"]:
        show_line("  ", (data["sender_note"], "dim"))


def _transport_setup(ctx: typer.Context, via: str, timeout: float) -> tuple[Keystore, Any, Any]:
    """The keystore, the `--via` transport and a context from the transport flags given."""
    store = _store()
    transport = store.registry.transport(via)
    _, args = split_channel_args(ctx.args, store.registry, TRANSPORT)
    return store, transport, make_context(args, store.registry, timeout, TRANSPORT)


def _as_identity(channel_ctx: Any, record: IdentityRecord, signer: Signer) -> None:
    """Hand the transport our key: a server that wants proof of identity gets it without a flag
    (the NATS transport signs the server's nonce for a kez-server auth callout, spec §12.5; the
    http transport signs its inbox reads). The option names are in docs/plugins.md."""
    channel_ctx.options["signer"] = signer
    channel_ctx.options["identity"] = record.identity_id
    channel_ctx.options["identity_dir"] = str(record.path)  # where a transport keeps its cursor


# ------------------------------------------------------------------ commands


def seal(to: ToOpt, text: TextOpt, identity: IdentityOpt = None, json_: JsonOpt = False) -> None:
    """Sign and seal a text message to every current inbox key of the recipient; print the envelopes.

    One envelope per recipient device, one per line (or `--json`: a list with
    each envelope's routing id, inbox key and message id).
    """
    State.json_mode = json_
    store = _store()
    sealed = _sealed(store, *_signer(store, identity), to, text)
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
                show_line(("refused", "red"), f"  {data['refused']['message']}")
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
    record, signer = _signer(store, identity)
    _as_identity(channel_ctx, record, signer)
    sealed = _sealed(store, record, signer, to, text)

    # transports that address identities, not routing ids (http: the recipient's handle), read `recipient`
    send_ctx = attrs.evolve(channel_ctx, options={**channel_ctx.options, "recipient": sealed[0]["recipient"]}) if sealed else channel_ctx

    async def deliver() -> list[dict[str, Any]]:
        out = []
        for item in sealed:
            try:
                await transport.send(item["routing_id"], item["envelope"].encode("ascii"), send_ctx)
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
    # one passphrase prompt unlocks the inbox secrets and the key a server may ask proof of
    _as_identity(channel_ctx, receiver.record, receiver.signer())
    received = 0

    async def one_key(key: str, queue: asyncio.Queue[Any]) -> None:
        async with transport.subscribe(routing_id(key), channel_ctx) as inbox:
            await queue.put(("live", key))
            async for envelope in inbox:
                await queue.put(("envelope", (envelope, inbox)))

    async def run() -> None:
        nonlocal received
        queue: asyncio.Queue[Any] = asyncio.Queue()
        # key -> its subscription; keys added while listening (`kez sigchain add-inbox`)
        # get one at the next keyring check, and again after a failure (the server
        # may not hold the new chain yet): only the first keys' failures end the run
        tasks = {s.key_id: asyncio.create_task(one_key(s.key_id, queue)) for s in receiver.secrets}
        first = set(tasks)
        retry: set[str] = set()
        deadline = time.monotonic() + wait if wait else None
        next_check = time.monotonic() + KEYRING_CHECK
        try:
            while not count or received < count:
                now_ = time.monotonic()
                if now_ >= next_check:
                    next_check = now_ + KEYRING_CHECK
                    for key in [*receiver.reload(), *sorted(retry)]:
                        retry.discard(key)
                        if key not in tasks:
                            tasks[key] = asyncio.create_task(one_key(key, queue))
                left = None if deadline is None else deadline - now_
                if left is not None and left <= 0:
                    return
                live = set(tasks.values())
                if not live and queue.empty():
                    raise TransportError(f"every {via} subscription ended", hint="is the server still up?")
                step = max(0.0, next_check - now_) if left is None else min(left, max(0.0, next_check - now_))
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait([getter, *live], timeout=step, return_when=asyncio.FIRST_COMPLETED)
                for key, task in list(tasks.items()):  # a subscription ended: an error is the answer
                    if task in done:
                        del tasks[key]
                        if key in first:
                            task.result()
                        elif not task.cancelled() and task.exception() is not None:
                            note(f"no {via} subscription for inbox key {key} yet: {task.exception()}")
                            retry.add(key)
                if getter not in done:
                    getter.cancel()
                    continue
                kind, value = getter.result()
                if kind == "live":
                    note(f"listening on {via} for inbox key {value}")
                    continue
                envelope, inbox = value
                try:
                    data = receiver.open(envelope)
                except KezError as exc:
                    note(f"refused an envelope: {exc.message}")
                    _handled(inbox, envelope)
                    continue
                received += 1
                if json_:
                    emit_json_line(data)
                else:
                    _print_message(data)
                _handled(inbox, envelope)
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)

    try:
        asyncio.run(run())
    finally:
        receiver.close()


def _handled(inbox: Any, envelope: bytes) -> None:
    """Tell a transport that keeps a cursor (http) that this envelope was shown or refused."""
    done = getattr(inbox, "done", None)
    if done is not None:
        done(envelope)


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
