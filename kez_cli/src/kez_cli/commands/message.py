"""`kez message …`: end-to-end encrypted messages between identities (spec section 12).

Thin over the messaging service (`kez_core.chat.MessagingService`): it
resolves the peer (a handle, contact, local identity name, identity id or
chain file; a handle is pinned on first contact), keeps the history with
delivery states (`sending`, `sent`, `delivered`) and sends and reads acks.
The message is sealed once per current inbox key of the recipient's
devices. `seal` and `open` work on envelope texts (copy them anywhere);
`send` and `listen` move them through transport plugins (`--via nats`,
`--via nostr`, `--via http`: a kez-server's inbox); `conversations` and
`history` read the local store.

Receiving uses the identity's inbox secrets (`kez sigchain add-inbox`,
renewed on their last day) and its replay store
(`$KEZ_HOME/identities/<name>/replay.db`), so a message is accepted once.
The sender's signing key is checked against the sender's chain when that
chain is known locally; otherwise the output says `sender_checked: false`
and how to fix it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kez_core.errors import DecodeError, KezError, StoreError, TransportError
from kez_core.keys import Signer, normalize_key_id
from kez_core.keystore import IdentityRecord, Keystore
from kez_core.registry import default_registry

# kez_core.messaging and kez_core.sigchain load inside the commands: every
# `kez` start imports this module to build the command tree.
if TYPE_CHECKING:
    from kez_core.sigchain import ChainState

from .. import passphrase
from ..channel_options import (
    CONTEXT_SETTINGS,
    TRANSPORT,
    make_context,
    options_help,
    split_channel_args,
)
from ..io import read_input
from ..options import HandleServerOpt, IdentityOpt, JsonOpt, TimeoutOpt
from ..output import State, emit_json, emit_json_line, note, show_line, warn


ToOpt = Annotated[
    str,
    typer.Option(
        "--to", help="Recipient: a chain FILE, or an identity id whose chain is stored locally."
    ),
]
TextOpt = Annotated[str, typer.Option("--text", help="The message text.")]
ViaOpt = Annotated[
    str, typer.Option("--via", help="Transport plugin: nats, nostr, http, … (see `kez plugins`).")
]


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
                f"no local chain for {identity_id}",
                hint=f"fetch it with `kez sigchain pull {identity_id}`",
            )
    from kez_core.sigchain import read_chain_lines

    return _validated(store, read_chain_lines(path), path)


def _validated(store: Keystore, lines: list[bytes], path: Path) -> ChainState:
    """The chain in `path`, valid from its first line to its last (ChainFileError, exit 3)."""
    from kez_core.sigchain import load_chain

    return load_chain(lines, origin=str(path), registry=store.registry)


def _signer(store: Keystore, identity: str | None) -> tuple[IdentityRecord, Signer]:
    record = store.get(identity)
    return record, store.signer(record.name, passphrase.provider(f"identity {record.name!r}"))


def _sealed(
    store: Keystore, record: IdentityRecord, signer: Signer, to: str, text: str
) -> list[dict[str, str]]:
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
    """Opens envelopes for one local identity through its messaging service (kez_core.chat):
    inbox secrets, replay store, sender check, then the message is stored and its ack queued."""

    def __init__(
        self,
        store: Keystore,
        record: IdentityRecord,
        sender_chains: list[str],
        unlock: Any = None,
        save_dir: Path | None = None,
    ) -> None:
        self.store = store
        self.record = record
        self.passphrase = unlock or passphrase.provider(f"identity {record.name!r}")
        senders = {
            state.identity_id: state
            for state in (_chain(store, s, "--sender-chain") for s in sender_chains)
        }
        self.service = _service(store, record, self.passphrase, senders)
        self.service.save_dir = save_dir
        _renew_inbox(self.service)
        self.secrets = self.service.secrets()

    def signer(self) -> Signer:
        return self.service.signer()

    def open(self, envelope: str | bytes, via: str | None = None) -> dict[str, Any]:
        from kez_core.chat.receiving import received_json

        return received_json(self.service.receive(envelope, via=via))

    def close(self) -> None:
        self.service.close()


def _renew_inbox(service: Any) -> None:
    """Publish a new inbox key on the current one's last day (every receiving command does), and
    push the chain to the configured sig-servers (`KEZ_SIG_SERVERS`) so senders find the key
    (kez_core.chat.receiving.share_new_inbox_key); say what happened."""
    from kez_core.chat.receiving import share_new_inbox_key
    from kez_core.sigserver_client import configured_servers

    renewal = asyncio.run(share_new_inbox_key(service, configured_servers(), timeout=10.0))
    if renewal is None:
        return
    note(f"published a new inbox key {renewal.key} (the current one expires within a day)")
    if not renewal.servers:
        note("share your chain so senders use it: `kez sigchain publish`")
    for result in renewal.pushes:
        note(f"{result.server}: {result.message}")


def _service(
    store: Keystore, record: IdentityRecord, unlock: Any, senders: Any = None, directory: Any = None
) -> Any:
    from kez_core.chat import MessagingService

    return MessagingService(
        store, record, unlock, directory=directory, sender_chains=dict(senders or {})
    )


def _print_message(data: dict[str, Any]) -> None:
    if data.get("kind") == "ack":
        done = ", ".join(data.get("delivered") or []) or "nothing new"
        show_line(
            ("✓✓", "green"),
            " ",
            (str(data["from"]), "bold"),
            "  ",
            ("ack: delivered ", "dim"),
            done,
        )
        return
    if data.get("kind") == "sent_copy":  # our own message, sent from another of our devices
        inner = data["body"].get("body") or {}
        text = (
            inner.get("text")
            if inner.get("kind") == "text"
            else json.dumps(inner, ensure_ascii=False)
        )
        show_line(
            ("→", "green"),
            " ",
            ("sent from another device to ", "dim"),
            (str(data["body"].get("to")), "bold"),
        )
        show_line("  ", str(text).replace("\n", "\n  "), multiline=True)
        return
    if data.get("kind") in ("profile_key", "refused"):
        what = (
            "picture key stored"
            if data["kind"] == "profile_key"
            else "picture key refused (not the sender's own)"
        )
        if data["body"].get("kind") == "sent_copy":
            what = "sent copy refused (not from this identity)"
        show_line(("🔑", "green"), " ", (str(data["from"]), "bold"), "  ", (what, "dim"))
        return
    mark = ("✓", "green") if data["sender_checked"] else ("?", "yellow")
    stranger = ("  (not a contact)", "yellow") if data.get("stranger") else ""
    body = data["body"]
    text = body.get("text") if body.get("kind") == "text" else json.dumps(body, ensure_ascii=False)
    if data.get("file") is not None:
        from kez_core.chat.files import describe

        text = describe(data["file"])
    show_line(
        mark, " ", (str(data["from"]), "bold"), "  ", (str(data["created_at"]), "dim"), stranger
    )
    show_line(
        "  ", str(text).replace("\n", "\n  "), multiline=True
    )  # the body may span lines; nothing else
    if not data["sender_checked"]:
        show_line("  ", (data["sender_note"], "dim"))


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
        list[str] | None,
        typer.Argument(help="Envelope texts, files holding them (one per line), or - for stdin."),
    ] = None,
    sender_chain: Annotated[
        list[str] | None,
        typer.Option("--sender-chain", help="Chain FILE of a sender, to check their key."),
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


PeerArgs = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="PEER TEXT",
        help="PEER TEXT: a handle (alice@kez.example), contact, local identity name, identity id or chain file; then the text.",
    ),
]
ViaManyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--via",
        help="Transport plugin(s): nats, nostr, http (repeatable; default: every configured one).",
    ),
]


def configured_transports(registry: Any, flags: list[str]) -> list[str]:
    """Transports that have a setting given (kez_core.chat.routes: `send` and `listen` share the rule)."""
    from kez_core.chat.routes import configured_transports as configured

    return configured(registry, flags)


def _routes(ctx_args: list[str], store: Keystore, via: list[str], timeout: float) -> list[Any]:
    """One Route per `--via` name (or per configured transport), sharing one context."""
    from kez_core.chat import Route

    _, flags = split_channel_args(ctx_args, store.registry, TRANSPORT)
    names = [n.strip() for v in via for n in v.split(",") if n.strip()] or configured_transports(
        store.registry, flags
    )
    if not names:
        from kez_core.errors import UsageError

        raise UsageError(
            "no transport is configured",
            hint="pick one with --via nats|nostr|http and give its settings",
        )
    channel_ctx = make_context(flags, store.registry, timeout, TRANSPORT)
    return [
        Route(name, store.registry.transport(name), channel_ctx) for name in dict.fromkeys(names)
    ]


def send(
    ctx: typer.Context,
    words: PeerArgs = None,
    to: Annotated[
        str | None, typer.Option("--to", help="The recipient (the older form of PEER).")
    ] = None,
    text: Annotated[
        str | None, typer.Option("--text", help="The message text (the older form of TEXT).")
    ] = None,
    via: ViaManyOpt = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Send this file (at most 10 MiB) instead of a text."),
    ] = None,
    handle_server: HandleServerOpt = None,
    identity: IdentityOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Send a text message (or, with --file, a file) to PEER: stored as `sending`, sealed to each of their devices, sent
    through every transport; `sent` once one accepted it, `delivered` when their ack arrives.

    PEER is a handle (its server is asked, the chain pinned on first contact
    and cached), a contact, a local identity name, an identity id or a chain
    file. Transport plugins add their own flags (see `kez plugins`), e.g.
    --nats-url URL or --transport-relay URL.

    A file of at most 80 KiB goes inline when one message carries it; a
    larger one, up to 10 MiB, goes in chunks sized for the transports, then
    the pointer message. Running the same command again after an
    interruption sends only the chunks not sent yet.
    """
    from kez_core.sigserver_client import ServerDirectory

    State.json_mode = json_
    store = _store()
    positional, _ = split_channel_args([*(words or []), *ctx.args], store.registry, TRANSPORT)
    peer_text, body = to, text
    for word in positional:
        if peer_text is None:
            peer_text = word
        elif body is None:
            body = word
        else:
            raise typer.BadParameter(
                f"unexpected argument {word!r}: quote the text", param_hint="TEXT"
            )
    if file is not None:
        from kez_core.chat.files import check_sendable

        if body is not None:
            raise typer.BadParameter("give TEXT or --file, not both", param_hint="TEXT")
        if peer_text is None:
            raise typer.BadParameter(
                "give PEER (e.g. kez message send bob@kez.example --file photo.jpg)"
            )
        check_sendable(file)  # too large or unreadable: refused before anything is sent
    elif peer_text is None or body is None:
        raise typer.BadParameter("give PEER and TEXT (e.g. kez message send bob@kez.example hi)")
    routes = _routes([*(words or []), *ctx.args], store, via or [], timeout)
    record = store.get(identity)
    service = _service(
        store,
        record,
        passphrase.provider(f"identity {record.name!r}"),
        directory=ServerDirectory(handle_server, timeout),
    )
    signer = (
        service.signer()
    )  # one passphrase prompt unlocks the key, the store key and the transports' proof
    for route in routes:
        _as_identity(route.ctx, record, signer)

    async def run() -> Any:
        peer = await service.resolve_peer(peer_text)
        for line in peer.notes:
            note(line)
        if file is not None:
            return await service.send_file(peer, file, routes, bar.update if bar else None)
        return await service.send_text(peer, body, routes)

    bar = _Bar(f"sending {file.name}") if file is not None and not json_ else None
    try:
        result = asyncio.run(run())
    finally:
        if bar:
            bar.close()
        service.close()
    deliveries = result.deliveries
    if json_:
        emit_json(
            [
                {
                    "id": result.key,
                    "state": result.state,
                    "recipient": result.peer,
                    "via": d.route,
                    "inbox_key": d.inbox_key,
                    "routing_id": d.routing_id,
                    "message_id": d.message_id,
                    "sent": d.sent,
                    **({"error": d.error} if d.error else {}),
                }
                for d in deliveries
            ]
        )
    else:
        for d in deliveries:
            where = f"{d.route} {d.routing_id}"
            note(
                f"sent to {where}"
                if d.sent
                else f"not sent to {where}: {(d.error or {}).get('message')}"
            )
        copied = sum(c.sent for c in result.copies)
        if copied:
            note(
                f"a copy went to your other devices ({copied} envelope{'s' if copied > 1 else ''})"
            )
        show_line((result.state, "green" if result.state == "sent" else "yellow"), "  ", result.key)
    if not any(d.sent for d in deliveries):
        first = next((d.error for d in deliveries if d.error), None) or {
            "message": "nothing to send"
        }
        raise TransportError(
            f"the message reached no device: {first['message']}",
            hint=first.get("hint") or "it stays in the history as `sending`",
        )


def listen(
    ctx: typer.Context,
    via: ViaManyOpt = None,
    count: Annotated[
        int, typer.Option("--count", help="Stop after this many messages (0: never).", min=0)
    ] = 0,
    wait: Annotated[
        float, typer.Option("--wait", help="Stop after this many seconds (0: never).", min=0)
    ] = 0,
    sender_chain: Annotated[
        list[str] | None,
        typer.Option("--sender-chain", help="Chain FILE of a sender, to check their key."),
    ] = None,
    save_dir: Annotated[
        Path | None,
        typer.Option(
            "--save-dir", help="Where received files go (default: the identity's files/ folder)."
        ),
    ] = None,
    notify: Annotated[
        bool,
        typer.Option(
            "--notify", help="Raise a desktop notification per message (notify-send, else a bell)."
        ),
    ] = False,
    identity: IdentityOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Receive messages for this identity's inbox keys on every configured transport at once.

    Without `--via`, listens on every transport that has a setting given (as
    `send` sends). Prints each accepted message (with `--json`: one JSON
    object per line and event: `message`, `ack`, `file`, `up`, `down`) and
    keeps it in the history; acks each one back to its sender (acks an
    earlier run could not send go first); an ack received marks our message
    `delivered`. A transport that fails is reported on stderr and retried
    with backoff (up to 30 s), catching up from its cursor or `since`.
    Refused envelopes are reported on stderr and skipped; messages from
    blocked contacts are dropped.
    """
    from kez_core.chat.listener import Listener
    from kez_core.chat.receiving import received_json

    State.json_mode = json_
    store = _store()
    routes = _routes(ctx.args, store, via or [], timeout)
    receiver = _Receiver(store, store.get(identity), sender_chain or [], save_dir=save_dir)
    bars: dict[str, _Bar] = {}
    # one passphrase prompt unlocks the inbox secrets and the key a server may ask proof of
    signer = receiver.signer()
    for route in routes:
        _as_identity(route.ctx, receiver.record, signer)
    listener = Listener(receiver.service, routes)

    def show(data: dict[str, Any]) -> None:
        if json_:
            emit_json_line({"event": "ack" if data["kind"] == "ack" else "message", **data})
        else:
            _print_message(data)
        if notify and data["kind"] != "ack":
            from ..notify import notify as raise_notification

            body = data["body"]
            text = (
                body.get("text")
                if body.get("kind") == "text"
                else (data.get("file") or {}).get("name", "")
            )
            raise_notification(f"kez: {data['from']}", str(text or data["kind"]))

    def on_event(event: Any) -> None:
        """Render one event (what counts for --count is kez_core's `counts_as_message`)."""
        if event.kind == "up":
            if event.again:
                note(f"{event.route} is back: listening again for inbox key {event.key}")
            else:
                note(f"listening on {event.route} for inbox key {event.key}")
            if json_:
                emit_json_line(
                    {
                        "event": "up",
                        "via": event.route,
                        "inbox_key": event.key,
                        "again": event.again,
                    }
                )
            return
        if event.kind == "down":
            message = (event.error or {}).get("message", "")
            warn(
                f"{event.route} is down for inbox key {event.key}: {message}; retrying in {event.retry_in:.1f} s"
            )
            if json_:
                emit_json_line(
                    {
                        "event": "down",
                        "via": event.route,
                        "inbox_key": event.key,
                        "error": event.error,
                        "retry_in": round(event.retry_in or 0, 3),
                    }
                )
            return
        if event.kind == "note":
            note(event.text)
            return
        if event.kind == "refused":
            note(f"refused an envelope: {(event.error or {}).get('message')}")
            return
        data = {**received_json(event.received), "via": event.route}
        if data["kind"] == "dropped":
            note(f"dropped a message from {data['from']} (blocked)")
            return
        file = data.get("file")
        if file is not None and not json_:
            _file_progress(bars, file)
        if (
            data["kind"] == "file_chunk"
        ):  # plumbing: a message of its own only once the file is done
            if file["state"] in ("complete", "corrupt"):
                show(data)
                return
            if json_:
                emit_json_line(
                    {
                        "event": "file",
                        "via": event.route,
                        "from": data["from"],
                        **{
                            k: file[k]
                            for k in ("transfer", "name", "state", "received", "count")
                            if k in file
                        },
                    }
                )
            return
        show(data)

    try:
        asyncio.run(listener.run(on_event, count=count, wait=wait))
    finally:
        for bar in bars.values():
            bar.close()
        receiver.close()


def _local_service(
    identity: str | None, handle_server: str | None = None, timeout: float = 10.0
) -> Any:
    from kez_core.sigserver_client import ServerDirectory

    store = _store()
    record = store.get(identity)
    return _service(
        store,
        record,
        passphrase.provider(f"identity {record.name!r}"),
        directory=ServerDirectory(handle_server, timeout),
    )


def conversations(identity: IdentityOpt = None, json_: JsonOpt = False) -> None:
    """List conversations, latest first, with unread counts; senders who are not contacts are marked."""
    State.json_mode = json_
    service = _local_service(identity)
    try:
        rows = service.conversations()
    finally:
        service.close()
    if json_:
        emit_json(rows)
        return
    if not rows:
        note("no conversations yet")
    for row in rows:
        name = row["contact"] or row["handle"] or row["peer"]
        unread = (f"  {row['unread']} unread", "bold") if row["unread"] else ""
        stranger = ("  (not a contact)", "yellow") if row["stranger"] else ""
        show_line(
            (str(name), "bold"),
            "  ",
            (f"{row['messages']} messages, last {row['last_at']}", "dim"),
            unread,
            stranger,
        )


def history(
    peer: Annotated[
        str, typer.Argument(help="A handle, contact, local identity name or identity id.")
    ],
    handle_server: HandleServerOpt = None,
    identity: IdentityOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Show the conversation with PEER, oldest first, with each outgoing message's state
    (sending, sent, delivered, read); reading it resets its unread count."""
    State.json_mode = json_
    service = _local_service(identity, handle_server, timeout)
    try:
        _, entries = asyncio.run(service.history(peer))
    finally:
        service.close()
    if json_:
        emit_json([e.to_json() for e in entries])
        return
    for entry in entries:
        data = entry.to_json()
        arrow = ("→", "cyan") if entry.direction == "out" else ("←", "magenta")
        state = (f"  [{entry.state}]", "dim") if entry.direction == "out" else ""
        show_line(arrow, " ", (entry.created_at, "dim"), state)
        text = (
            data["text"] if data["text"] is not None else json.dumps(entry.body, ensure_ascii=False)
        )
        if isinstance(data.get("file"), dict):
            from kez_core.chat.files import describe

            text = describe(data["file"])
        show_line("  ", str(text).replace("\n", "\n  "), multiline=True)


class _Bar:
    """A rich progress bar on stderr when it is a terminal (else nothing): file chunks sent or received."""

    def __init__(self, label: str) -> None:
        from ..output import err_console

        self.progress = None
        if err_console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err_console,
                transient=False,
            )
            self.task = self.progress.add_task(label, total=None)
            self.progress.start()

    def update(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=done, total=total)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _file_progress(bars: dict[str, _Bar], file: dict[str, Any]) -> None:
    """`listen`'s bar per incoming transfer (name shown escaped: it comes from the sender)."""
    from kez_core.safetext import visible

    transfer = file.get("transfer")
    if not transfer or "count" not in file:
        return
    if transfer not in bars and file.get("state") == "receiving":
        bars[transfer] = _Bar(f"receiving {visible(str(file.get('name') or transfer[:12]))}")
    bar = bars.get(transfer)
    if bar is None:
        return
    bar.update(int(file.get("received", 0)), int(file["count"]))
    if file.get("state") != "receiving":
        bar.close()
        del bars[transfer]


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
    app.command("conversations")(conversations)
    app.command("history")(history)
    main_app.add_typer(app, name="message")
