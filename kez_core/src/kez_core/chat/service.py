"""The messaging service of one local identity (DESIGN §6): one API for the CLI and a UI.

It resolves peers (handles, contacts, names, ids, chain files), sends text
with the seeds' local echo (`sending` → `sent` → `delivered`), receives
envelopes (open, check, store, queue an ack), reads acks, keeps contacts and
conversations. It never parses flags and never prints: the caller gives it
transports (`Route`s) and renders what it returns.

Acks (docs/spec.md §12, "Delivery states"): a receiver acks each accepted
message on its own, in an encrypted message `{"kind": "ack", "ids": [id]}`
sealed to the sender's inbox keys. The ack is queued in the store in the
transaction that stores the message, and sent when a route is at hand
(`flush_acks`, at every start of a receiving command), so one that could not
be sent is retried later. An ack changes a message to `delivered` only when
it opened, its signer is a current key of the recipient's chain (known
here), it names a message this identity sent to that recipient, and it was
not seen before (the replay store); anything else changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from ..errors import KezError, SchemaError, StoreError, TransportError
from ..keys import Signer
from ..keystore import IdentityRecord, Keystore
from ..sigchain.model import ChainState
from ..timefmt import now
from .peers import (
    HandleDirectory,
    Peer,
    cached_chain,
    chain_file,
    identity_of,
    read_cached,
    resolve_handle,
)
from .held_chunks import HeldChunks
from .store import DB_FILE, ChatStore, Contact, Entry, load_store_key


INBOX_LIFETIME = timedelta(
    days=7
)  # a renewed inbox key's life, as `kez sigchain add-inbox`'s default
RENEW_MARGIN = timedelta(days=1)  # renew on the current key's last day
CHAIN_RECHECK = (
    60.0  # seconds a validated chain read from disk is reused while its file is unchanged
)


@attrs.frozen
class Route:
    """One transport to send through: its name, the plugin object and the context for its calls."""

    name: str
    transport: Any  # kez_core.protocols.Transport
    ctx: Any  # kez_core.protocols.ChannelContext


@attrs.frozen
class Delivery:
    """What one transport did with one envelope."""

    route: str
    routing_id: str
    inbox_key: str
    message_id: str
    sent: bool
    error: dict[str, str] | None = None


@attrs.frozen
class SendResult:
    key: str  # the history id of the message
    peer: str
    state: str  # `sent` when at least one transport accepted an envelope, else `sending`
    deliveries: tuple[Delivery, ...]
    copies: tuple[
        Delivery, ...
    ] = ()  # the sent copies to this identity's other devices (sent_copy.py)


@attrs.frozen
class Received:
    """What `receive` made of one envelope."""

    kind: (
        str  # "message", "ack", "dropped" (a blocked sender), "profile_key", "sent_copy" (our other
    )
    # device's outgoing message), "refused" (a bad profile_key or sent copy)
    message: Any  # kez_core.messaging.Message
    sender_checked: bool
    stranger: bool = False
    delivered: tuple[str, ...] = ()  # for an ack: the history ids now `delivered`
    file: dict[str, Any] | None = None  # for a file or file chunk: its state (kez_core.chat.files)


@attrs.define
class MessagingService:
    """See the module docstring. Create one per command run; `close()` it at the end."""

    keystore: Keystore
    record: IdentityRecord
    passphrase: Callable[[], bytes | None]
    directory: HandleDirectory | None = None
    sender_chains: dict[str, ChainState] = attrs.Factory(dict)  # chains given by the caller (files)
    clock: Callable[[], datetime] = (
        now  # when "now" is, for the inbox key expiry check (tests move it)
    )
    save_dir: Path | None = None  # where received files go (default: <identity>/files/)
    _store: ChatStore | None = None
    _replay: Any = None
    _secrets: list[Any] | None = None
    _signer: Signer | None = None
    _chains: dict[str, tuple[tuple[int, int, int], float, ChainState | None]] = attrs.field(
        factory=dict, init=False, repr=False
    )  # chains read from disk, ours and senders': identity -> (file stamp, good until, chain)
    # received file chunks held in memory until their file is assembled (held_chunks.py)
    held_chunks: HeldChunks = attrs.field(factory=HeldChunks, init=False, repr=False)

    # ---------------------------------------------------------------- parts, opened on first use

    @property
    def folder(self) -> Path:
        return Path(self.record.path)

    @property
    def identity(self) -> str:
        return self.record.identity_id or self.record.key_id

    @property
    def store(self) -> ChatStore:
        if self._store is None:
            key = load_store_key(self.folder, self.passphrase, self.record.encrypted)
            self._store = ChatStore(self.folder / DB_FILE, key)
        return self._store

    def signer(self) -> Signer:
        if self._signer is None:
            self._signer = self.keystore.signer(self.record.name, self.passphrase)
        return self._signer

    @property
    def replay(self) -> Any:
        if self._replay is None:
            from ..messaging import ReplayStore

            self._replay = ReplayStore(self.folder / "replay.db")
        return self._replay

    def secrets(self, reload: bool = False) -> list[Any]:
        """This device's inbox secrets that may still receive (StoreError when there are none)."""
        if self._secrets is None or reload:
            from ..messaging import InboxKeyring

            self._secrets = InboxKeyring(self.folder).secrets(self.passphrase)
        if not self._secrets:
            raise StoreError(
                f"identity {self.record.name!r} has no inbox key",
                hint="publish one with `kez sigchain add-inbox` (and share the chain)",
            )
        return self._secrets

    def own_chain(self) -> ChainState | None:
        """This identity's validated chain from the local cache (None when there is none): a sent
        copy is sealed and checked against it."""
        return self._chain_on_disk(self.identity)

    def _chain_on_disk(self, identity: str) -> ChainState | None:
        """The validated local copy of `identity`'s chain (None when there is none), read and
        validated again only when its file changed or a minute passed (a link dated ahead of
        the clock becomes valid with time), not for every message sent or batch opened."""
        path = self.keystore.chain_path(identity)
        try:
            info = path.stat()
        except FileNotFoundError:
            self._chains.pop(identity, None)
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror}") from exc
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        seen = self._chains.get(identity)
        if seen is not None and seen[0] == stamp and time.monotonic() < seen[1]:
            return seen[2]
        chain = cached_chain(self.keystore, identity)
        self._chains[identity] = (stamp, time.monotonic() + CHAIN_RECHECK, chain)
        return chain

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        if self._replay is not None:
            self._replay.close()

    def renew_inbox(
        self, *, margin: timedelta = RENEW_MARGIN, lifetime: timedelta = INBOX_LIFETIME
    ) -> str | None:
        """Publish a new inbox key (append `add_inbox` to the local chain, secret stored first) when
        the newest key this device holds expires within `margin`; the new key id, or None.

        Receiving commands call it, so keys renew on their own before their last day. An
        identity that never had an inbox key, or has no chain here, is left alone."""
        from ..keychange import add_inbox
        from ..messaging import InboxKeyring
        from ..sigchain import SigchainBuilder
        from ..timefmt import parse_time

        records = InboxKeyring(self.folder).records()
        if not records or max(parse_time(r.expires_at) for r in records) - self.clock() > margin:
            return None
        path = self.keystore.chain_path(self.identity)
        lines = read_cached(self.keystore, self.identity)
        if not lines:
            return None
        builder = SigchainBuilder.resume(lines, registry=self.keystore.registry, keep_lines=False)
        change = add_inbox(
            self.keystore,
            self.record.name,
            path,
            builder,
            signer=self.signer,
            passphrase=self.passphrase,
            lifetime=lifetime,
        )
        self._secrets = None
        return str(change.key_id)

    # ---------------------------------------------------------------- peers and contacts

    async def resolve_peer(self, text: str) -> Peer:
        """The peer `text` names: a chain file, a handle, a contact, a local identity, an identity id."""
        path = Path(text).expanduser()
        if path.is_file():
            chain = chain_file(self.keystore, path)
            return self._with_contact(Peer(chain.identity_id, chain))
        if self.directory is not None and (parsed := self.directory.parse(text)) is not None:
            return self._with_contact(
                await resolve_handle(self.keystore, self.directory, self.store, *parsed)
            )
        contact = self.store.contact(text)
        if contact is not None:
            if (
                contact.handle
                and self.directory is not None
                and (parsed := self.directory.parse(contact.handle))
            ):
                peer = await resolve_handle(self.keystore, self.directory, self.store, *parsed)
                return attrs.evolve(peer, contact=contact.name)
            return attrs.evolve(self._cached(contact.identity, text), contact=contact.name)
        local = self._local_identity(text)
        identity = local or identity_of(self.keystore, text)
        if identity is None:
            raise StoreError(
                f"{text!r} is no handle, chain file, contact, local identity or identity id",
                hint="e.g. alice@kez.example, a contact from `kez contact list`, or an identity id",
            )
        return self._with_contact(self._cached(identity, text))

    def _local_identity(self, name: str) -> str | None:
        if not (self.keystore.identities_dir / name).is_dir():
            return None
        try:
            record = self.keystore.get(name)
        except StoreError:
            return None
        return record.identity_id or record.key_id

    def _cached(self, identity: str, text: str) -> Peer:
        chain = self.sender_chains.get(identity) or cached_chain(self.keystore, identity)
        if chain is None:
            raise StoreError(
                f"no local chain for {identity} ({text})",
                hint=f"fetch it with `kez sigchain pull {identity}`",
            )
        handles = self.store.pinned_handles(identity)
        return Peer(identity, chain, handles[0] if handles else None)

    def _with_contact(self, peer: Peer) -> Peer:
        contact = self.store.contact_for(peer.identity)
        if contact is None:
            return peer
        return attrs.evolve(peer, contact=contact.name, handle=peer.handle or contact.handle)

    async def add_contact(self, name: str, peer_text: str) -> Contact:
        """Add the peer `peer_text` names (resolved, so a handle is pinned) as contact `name`."""
        return (await self._add_contact(name, peer_text))[0]

    async def _add_contact(self, name: str, peer_text: str) -> tuple[Contact, Peer]:
        if (
            not name
            or name != name.strip()
            or "@" in name
            or len(name) > 64
            or not name.isprintable()
        ):
            raise StoreError(
                f"contact name {name!r} is not usable", hint="1-64 printable characters, no '@'"
            )
        peer = await self.resolve_peer(peer_text)
        return self.store.add_contact(name, peer.identity, peer.handle), peer

    def contacts(self) -> list[Contact]:
        return self.store.contacts()

    def rename_contact(self, old: str, new: str) -> None:
        self.store.rename_contact(old, new)

    def remove_contact(self, name: str) -> None:
        self.store.remove_contact(name)

    async def block(self, text: str, blocked: bool = True) -> None:
        """Block (or unblock) a contact by name, or anyone a peer text names (they become a contact)."""
        if self.store.contact(text) is not None:
            self.store.set_blocked(text, blocked)
            return
        identity = identity_of(self.keystore, text)
        if identity is None:
            identity = (await self.resolve_peer(text)).identity
        if not blocked:
            raise StoreError(f"no contact named {text!r}")
        self.store.block_identity(identity, f"blocked-{identity.split(':')[-1][:12]}")

    # ---------------------------------------------------------------- sending

    def _seal(
        self,
        chain: ChainState,
        body: dict[str, Any],
        name: str | None = None,
        attachment: bytes | memoryview | None = None,
    ) -> list[tuple[str, Any, str]]:
        """One envelope per current inbox key of `chain` (every device of the peer); `name` is how
        the person knows the peer (a handle or contact), for the error when every key expired;
        `attachment`, raw bytes the body describes (a file chunk's data, spec §12 "Attachments")."""
        from ..messaging import InboxKeysExpired, seal_for_devices

        if chain.inbox_keys and not chain.current_inbox_keys(self.clock()):
            last = max(k.expires_at for k in chain.inbox_keys.values())
            who = (
                f"{name} ({chain.identity_id})"
                if name and name != chain.identity_id
                else chain.identity_id
            )
            raise InboxKeysExpired(
                f"every inbox key of {who} has expired (the last on {last}): nothing was sent",
                hint="ask them to run `kez message listen` to renew (any receiving command of theirs "
                f"publishes a new key), then refresh their chain (`kez sigchain pull {chain.identity_id}`)",
            )
        return seal_for_devices(
            self.signer(),
            sender_identity=self.identity,
            recipient=chain,
            body=body,
            registry=self.keystore.registry,
            attachment=attachment,
        )

    def _seal_copies(
        self, peer: str, key: str, created_at: str, ids: list[str], body: dict[str, Any]
    ) -> list[tuple[str, Any, str]]:
        """Sent copies of an outgoing message for this identity's other devices (sent_copy.py);
        none when the identity has no other device with a current inbox key, or it is to ourselves."""
        from ..messaging import InboxKeyring
        from .sent_copy import seal_sent_copies, sent_copy_body

        own = self.own_chain()
        if own is None or peer == self.identity:
            return []
        signer = self.signer().key_id
        if not any(k.device != signer for k in own.current_inbox_keys(now())):
            return []  # no other device (the usual case): nothing more to read
        mine = {r.key for r in InboxKeyring(self.folder).records()}
        return seal_sent_copies(
            self.signer(),
            own_chain=own,
            skip_keys=mine,
            body=sent_copy_body(peer, key, created_at, ids, body),
            at=now(),
            registry=self.keystore.registry,
        )

    async def _deliver(
        self,
        peer: str,
        sealed: list[tuple[str, Any, str]],
        routes: Sequence[Route],
        chain: ChainState | None = None,
    ) -> list[Delivery]:
        from ..messaging import routing_id

        out: list[Delivery] = []
        for route in routes:
            # transports that address identities (http: the recipient's handle) read `recipient`;
            # one that picks servers per recipient (nostr: their NIP-65 relays) says so through
            # its optional `recipient_options(chain, ctx)`; failing that, our own settings serve
            extra: dict[str, Any] = {}
            per_recipient = getattr(route.transport, "recipient_options", None)
            if per_recipient is not None and chain is not None:
                try:
                    extra = dict(await per_recipient(chain, route.ctx))
                except KezError:
                    extra = {}
            ctx = attrs.evolve(route.ctx, options={**route.ctx.options, "recipient": peer, **extra})
            for key, obj, envelope in sealed:
                rid = routing_id(key)
                try:
                    await route.transport.send(rid, envelope.encode("ascii"), ctx)
                    out.append(Delivery(route.name, rid, key, obj.id, True))
                except KezError as exc:
                    out.append(Delivery(route.name, rid, key, obj.id, False, exc.to_dict()))
        return out

    async def send_text(self, peer: Peer, text: str, routes: Sequence[Route]) -> SendResult:
        """Store the message as `sending`, seal it to every inbox key, send through every route;
        `sent` once one transport accepted an envelope. The stored message survives a failed send."""
        from ..messaging import text_body

        return await self.send_body(peer, text_body(text), routes)

    async def send_file(
        self, peer: Peer, path: str | Path, routes: Sequence[Route], progress: Any = None
    ) -> SendResult:
        """Send a file: inline, or chunks then the pointer; resumes an unfinished transfer (files.py)."""
        from .files import send_file

        result: SendResult = await send_file(self, peer, path, routes, progress)
        self.store.add_via(result.key, sorted({d.route for d in result.deliveries if d.sent}))
        return result

    async def send_body(
        self,
        peer: Peer,
        body: dict[str, Any],
        routes: Sequence[Route],
        stored: dict[str, Any] | None = None,
    ) -> SendResult:
        """`send_text` for any body; `stored` is what the history keeps instead of the body."""
        if not routes:
            raise TransportError(
                "no transport to send through", hint="pick one with --via (see `kez plugins`)"
            )
        sealed = self._seal(peer.chain, body, peer.handle or peer.contact)
        key = sealed[0][1].id
        created_at = sealed[0][1].payload["created_at"]
        ids = [obj.id for _, obj, _ in sealed]
        self.store.add_outgoing(key, peer.identity, created_at, stored or body)
        self.store.add_sent_ids(key, ids)
        deliveries = await self._deliver(peer.identity, sealed, routes, peer.chain)
        self.store.add_via(key, sorted({d.route for d in deliveries if d.sent}))
        state = "sending"
        if any(d.sent for d in deliveries) and self.store.set_state(
            key, "sent", only_from=("sending",)
        ):
            state = "sent"
        elif any(d.sent for d in deliveries):
            state = self._state_of(peer.identity, key)
        copies: tuple[Delivery, ...] = ()
        if any(d.sent for d in deliveries):  # the other devices learn of what the peer may get
            copies = await self.copy_to_devices(
                peer.identity, key, created_at, ids, stored or body, routes
            )
        return SendResult(key, peer.identity, state, tuple(deliveries), copies)

    async def copy_to_devices(
        self,
        peer: str,
        key: str,
        created_at: str,
        ids: list[str],
        body: dict[str, Any],
        routes: Sequence[Route],
    ) -> tuple[Delivery, ...]:
        """Send a sent copy of history entry `key` (to `peer`, sent as message `ids`) to this
        identity's other devices (sent_copy.py); what each route did with each copy."""
        try:
            own = self._seal_copies(peer, key, created_at, ids, body)
        except KezError:
            own = []  # too large with its wrapper, or our chain unreadable: the message itself went
        return tuple(await self._deliver(self.identity, own, routes, self.own_chain()))

    async def send_profile_key(
        self, peer: Peer, body: dict[str, Any], routes: Sequence[Route]
    ) -> SendResult:
        """Send a `profile_key` body (see `Publication.key_body`) to every device of `peer`.
        Not stored in the history: a key that cannot be sent now goes again on the next
        `share_profile_key` (key messages are idempotent on the receiving side)."""
        from ..profile.keys import parse_profile_key_body

        if not routes:
            raise TransportError(
                "no transport to send through", hint="pick one with --via (see `kez plugins`)"
            )
        parse_profile_key_body(body, self.keystore.registry)
        sealed = self._seal(peer.chain, body)
        deliveries = await self._deliver(peer.identity, sealed, routes, peer.chain)
        state = "sent" if any(d.sent for d in deliveries) else "sending"
        return SendResult(sealed[0][1].id, peer.identity, state, tuple(deliveries))

    async def share_profile_key(
        self, body: dict[str, Any], routes: Sequence[Route], *, own_devices: bool = True
    ) -> list[Any]:
        """Send the picture key to every contact that is not blocked and to this identity's
        other devices (on a picture change); one `kez_core.profile.sharing.KeyShare` per
        recipient, a failure included as `sent=False` with its error (never raised)."""
        from ..profile.sharing import share_with_everyone

        return await share_with_everyone(self, body, routes, own_devices=own_devices)

    async def add_contact_sharing(
        self, name: str, peer_text: str, routes: Sequence[Route]
    ) -> tuple[Contact, Any]:
        """`add_contact`, then send the new contact the current picture key (if this device
        published a scrambled picture): (the contact, a KeyShare or None when there is no key)."""
        from ..profile.sharing import share_with_contact

        contact, peer = await self._add_contact(name, peer_text)
        return contact, await share_with_contact(self, contact.name, peer, routes)

    def _state_of(self, peer: str, key: str) -> str:
        return next(
            (e.state for e in self.store.history(peer, mark_read=False) if e.key == key), "sending"
        )

    async def flush_acks(self, routes: Sequence[Route]) -> dict[str, list[str]]:
        """Send the queued acks (one ack per message); what was sent, by peer. Peers whose chain
        is unknown here, or that no route reached, stay queued for the next run."""
        from ..messaging import ack_body

        done: dict[str, list[str]] = {}
        if not routes:
            return done
        for peer, ids in self.store.pending_acks().items():
            chain = self.sender_chains.get(peer) or cached_chain(self.keystore, peer)
            if chain is None:
                continue
            for message_id in ids:
                try:
                    sealed = self._seal(chain, ack_body([message_id]))
                except KezError:
                    break  # no current inbox key: keep it queued
                if any(d.sent for d in await self._deliver(peer, sealed, routes, chain)):
                    self.store.acked(peer, [message_id])
                    done.setdefault(peer, []).append(message_id)
        return done

    # ---------------------------------------------------------------- backlogs (batch.py: group commits)

    async def send_texts(
        self, peer: Peer, texts: Sequence[str], routes: Sequence[Route], window: int = 64
    ) -> list[SendResult]:
        """`send_text` for many texts, `window` at a time in flight; see `batch.send_texts`."""
        from .batch import send_texts

        return await send_texts(self, peer, texts, routes, window)

    def receive_many(
        self, envelopes: Sequence[str | bytes], via: Sequence[str | None] | None = None
    ) -> list[Received | KezError]:
        """`receive` for every envelope ready at once (`via`: each one's transport); see
        `batch.receive_many`."""
        from .batch import receive_many

        return receive_many(self, envelopes, via)

    async def flush_acks_batched(self, routes: Sequence[Route]) -> dict[str, list[str]]:
        """`flush_acks` with up to 100 ids per ack; see `batch.flush_acks_batched`."""
        from .batch import flush_acks_batched

        return await flush_acks_batched(self, routes)

    # ---------------------------------------------------------------- receiving

    def sender_chain(self, identity: str) -> ChainState | None:
        """The sender's chain: one the caller gave, else the local copy (`_chain_on_disk`);
        None when unknown."""
        given = self.sender_chains.get(identity)
        return given if given is not None else self._chain_on_disk(identity)

    def receive(self, envelope: str | bytes, via: str | None = None) -> Received:
        """Open one envelope and act on it: store a message (and queue its ack), or apply an ack.
        `via` names the transport it came by, kept with a stored message ("via nats").

        Raises what `open_envelope` raises for an envelope that is refused.
        """
        received = self._receive(envelope)
        self._record_via(received, via)
        return received

    def _record_via(self, received: Received, via: str | None) -> None:
        """Keep the transport a stored message came by ("via nats")."""
        if via and received.kind == "message":
            self.store.add_via(received.message.id, [via])
        elif (
            via and received.kind == "sent_copy"
        ):  # our other device's message: the way its copy came
            self.store.add_via(str(received.message.body["key"]), [via])

    def _receive(self, envelope: str | bytes) -> Received:
        from ..messaging import MessageRefused, open_envelope
        from .batch import records_id

        known: list[ChainState | None] = []

        def lookup(message: Any) -> ChainState | None:
            known.append(self.sender_chain(message.sender_identity))
            return known[-1]

        # every check but the replay store; the id is recorded there only once the message is
        # stored, so a crash in between loses nothing (the re-read stores it, exactly once)
        message = open_envelope(
            envelope,
            self.secrets(),
            identity=self.identity,
            replay=None,
            registry=self.keystore.registry,
            sender_chain=lookup,
        )
        if self.replay.seen(message.id):  # the usual replay, refused before anything is done again
            raise MessageRefused(f"message {message.id} was already received", reason="replay")
        checked = bool(known and known[-1] is not None)
        received = self.accept_opened(message, checked)
        if records_id(message):  # a racing process took it: `replay`
            self.replay.accept(message.id, message.created_at)
        return received

    def accept_opened(self, message: Any, checked: bool) -> Received:
        """Store or apply one opened message (and queue its ack); safe to run again for a
        message stored before a crash (stores are keyed by message id, acks only move states
        forward). The caller records the id in the replay store afterwards."""
        sender = message.sender_identity
        if message.kind == "ack":
            return Received(
                "ack", message, checked, delivered=tuple(self._apply_ack(message, checked))
            )
        contact = self.store.contact_for(sender)
        if contact is not None and contact.blocked:
            return Received("dropped", message, checked)
        stranger = contact is None
        if self.store.has_message(message.id):  # stored before a crash, not yet recorded as seen
            return Received("message", message, checked, stranger=stranger)
        handler = self.body_handlers().get(message.kind)
        if handler is not None:
            return handler(self, message, checked, stranger)
        self.store.add_incoming(
            message.id,
            sender,
            str(message.signed.payload["created_at"]),
            dict(message.body),
            stranger=stranger,
        )
        return Received("message", message, checked, stranger=stranger)

    @staticmethod
    def body_handlers() -> dict[str, Callable[..., Received]]:
        """Body kinds with their own handling (not plain chat messages):
        kind -> handler(service, message, checked, stranger)."""
        from .files import receive_chunk, receive_file

        return {
            "file": receive_file,
            "file_chunk": receive_chunk,
            "profile_key": _receive_profile_key,
            "sent_copy": _receive_sent_copy,
        }

    def _apply_ack(self, message: Any, checked: bool) -> list[str]:
        """The history ids an ack moves to `delivered` (none unless its sender was checked)."""
        if not checked:
            return []
        ids = message.body.get("ids")
        changed = []
        for message_id in ids if isinstance(ids, list) else []:
            key = self.store.outgoing_for(str(message_id), message.sender_identity)
            if key is not None and self.store.set_state(
                key, "delivered", only_from=("sending", "sent")
            ):
                changed.append(key)
        return changed

    # ---------------------------------------------------------------- reading

    def conversations(self) -> list[dict[str, Any]]:
        return self.store.conversations()

    async def history(self, peer_text: str, *, mark_read: bool = True) -> tuple[str, list[Entry]]:
        """The peer's identity and its conversation, oldest first; reading resets its unread count.

        The peer is named as for sending; a known identity is looked up locally first, so the
        history of a handle opens without its server."""
        identity = self._known_identity(peer_text)
        if identity is None:
            identity = (await self.resolve_peer(peer_text)).identity
        from .files import annotate

        return identity, annotate(self, self.store.history(identity, mark_read=mark_read))

    def search(self, peer: str, query: str) -> list[Entry]:
        """The messages with `peer` (an identity id) whose text or file name holds `query`
        (case-insensitive), oldest first; reading them marks nothing read. Bodies are
        encrypted at rest, so the search runs here, on the opened bodies."""
        needle = query.casefold()
        if not needle:
            return []
        hits = []
        for entry in self.store.history(peer, mark_read=False):
            text = entry.body.get("text")
            file = entry.body.get("file")
            name = file.get("name") if isinstance(file, dict) else entry.body.get("name")
            words = " ".join(w for w in (text, name) if isinstance(w, str))
            if needle in words.casefold():
                hits.append(entry)
        return hits

    def _known_identity(self, text: str) -> str | None:
        contact = self.store.contact(text)
        if contact is not None:
            return contact.identity
        pinned = self.store.pin(text.lower()) if "@" in text else None
        if pinned is not None:
            return pinned
        if Path(text).expanduser().is_file():
            return None
        return self._local_identity(text) or identity_of(self.keystore, text)


def _receive_profile_key(
    service: MessagingService, message: Any, checked: bool, stranger: bool
) -> Received:
    """Store a picture key (only from a checked sender, only for the sender's own picture);
    it is acked like any message but is not a chat message (spec §13)."""
    from ..profile.keys import ProfileKeyStore, accept_profile_key

    kind = "refused"
    if checked:
        try:
            accept_profile_key(
                ProfileKeyStore(service.keystore.home), dict(message.body), message.sender_identity
            )
            kind = "profile_key"
        except SchemaError:
            pass
    service.store.queue_ack(message.sender_identity, message.id)
    return Received(kind, message, checked)


def _receive_sent_copy(
    service: MessagingService, message: Any, checked: bool, stranger: bool
) -> Received:
    """Store another device's outgoing message (sent_copy.py): only from this identity itself,
    its signing key checked against OUR cached chain; never acked."""
    from ..messaging import check_sender
    from .sent_copy import parse_sent_copy

    own = service.own_chain()
    if message.sender_identity != service.identity or own is None:
        return Received("refused", message, checked)
    try:
        check_sender(message, own)
        copy = parse_sent_copy(dict(message.body), service.keystore.registry)
    except KezError:
        return Received("refused", message, checked)
    service.store.add_sent_copy(copy.key, copy.to, copy.created_at, copy.body, list(copy.ids))
    return Received("sent_copy", message, True)
