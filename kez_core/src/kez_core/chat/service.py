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
from .peers import HandleDirectory, Peer, cached_chain, chain_file, identity_of, read_cached, resolve_handle
from .store import DB_FILE, ChatStore, Contact, Entry, load_store_key


INBOX_LIFETIME = timedelta(days=7)  # a renewed inbox key's life, as `kez sigchain add-inbox`'s default
RENEW_MARGIN = timedelta(days=1)  # renew on the current key's last day


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


@attrs.frozen
class Received:
    """What `receive` made of one envelope."""

    kind: str  # "message", "ack", "dropped" (a blocked sender), "profile_key", "refused" (a bad profile_key)
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
    clock: Callable[[], datetime] = now  # when "now" is, for the inbox key expiry check (tests move it)
    save_dir: Path | None = None  # where received files go (default: <identity>/files/)
    _store: ChatStore | None = None
    _replay: Any = None
    _secrets: list[Any] | None = None
    _signer: Signer | None = None

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

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        if self._replay is not None:
            self._replay.close()

    def renew_inbox(self, *, margin: timedelta = RENEW_MARGIN, lifetime: timedelta = INBOX_LIFETIME) -> str | None:
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
            self.keystore, self.record.name, path, builder,
            signer=self.signer, passphrase=self.passphrase, lifetime=lifetime,
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
            return self._with_contact(await resolve_handle(self.keystore, self.directory, self.store, *parsed))
        contact = self.store.contact(text)
        if contact is not None:
            if contact.handle and self.directory is not None and (parsed := self.directory.parse(contact.handle)):
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
            raise StoreError(f"no local chain for {identity} ({text})", hint=f"fetch it with `kez sigchain pull {identity}`")
        handles = self.store.pinned_handles(identity)
        return Peer(identity, chain, handles[0] if handles else None)

    def _with_contact(self, peer: Peer) -> Peer:
        contact = self.store.contact_for(peer.identity)
        if contact is None:
            return peer
        return attrs.evolve(peer, contact=contact.name, handle=peer.handle or contact.handle)

    async def add_contact(self, name: str, peer_text: str) -> Contact:
        """Add the peer `peer_text` names (resolved, so a handle is pinned) as contact `name`."""
        if not name or name != name.strip() or "@" in name or len(name) > 64 or not name.isprintable():
            raise StoreError(f"contact name {name!r} is not usable", hint="1-64 printable characters, no '@'")
        peer = await self.resolve_peer(peer_text)
        return self.store.add_contact(name, peer.identity, peer.handle)

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

    def _seal(self, chain: ChainState, body: dict[str, Any]) -> list[tuple[str, Any, str]]:
        from ..messaging import MessageRefused, seal_for_devices

        if chain.inbox_keys and not chain.current_inbox_keys(self.clock()):
            last = max(k.expires_at for k in chain.inbox_keys.values())
            raise MessageRefused(
                f"every inbox key of {chain.identity_id} has expired (the last on {last})",
                reason="no_inbox_key",
                hint="they must publish a new one (any `kez message listen` of theirs does, or "
                f"`kez sigchain add-inbox`); then refresh their chain (`kez sigchain pull {chain.identity_id}`)",
            )
        return seal_for_devices(
            self.signer(), sender_identity=self.identity, recipient=chain, body=body, registry=self.keystore.registry
        )

    async def _deliver(
        self, peer: str, sealed: list[tuple[str, Any, str]], routes: Sequence[Route], chain: ChainState | None = None
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

    async def send_file(self, peer: Peer, path: str | Path, routes: Sequence[Route], progress: Any = None) -> SendResult:
        """Send a file: inline, or chunks then the pointer; resumes an unfinished transfer (files.py)."""
        from .files import send_file

        return await send_file(self, peer, path, routes, progress)

    async def send_body(
        self, peer: Peer, body: dict[str, Any], routes: Sequence[Route], stored: dict[str, Any] | None = None
    ) -> SendResult:
        """`send_text` for any body; `stored` is what the history keeps instead of the body."""
        if not routes:
            raise TransportError("no transport to send through", hint="pick one with --via (see `kez plugins`)")
        sealed = self._seal(peer.chain, body)
        key = sealed[0][1].id
        created_at = sealed[0][1].payload["created_at"]
        self.store.add_outgoing(key, peer.identity, created_at, stored or body)
        self.store.add_sent_ids(key, [obj.id for _, obj, _ in sealed])
        deliveries = await self._deliver(peer.identity, sealed, routes, peer.chain)
        state = "sending"
        if any(d.sent for d in deliveries) and self.store.set_state(key, "sent", only_from=("sending",)):
            state = "sent"
        elif any(d.sent for d in deliveries):
            state = self._state_of(peer.identity, key)
        return SendResult(key, peer.identity, state, tuple(deliveries))

    async def send_profile_key(self, peer: Peer, body: dict[str, Any], routes: Sequence[Route]) -> SendResult:
        """Send a `profile_key` body (see `Publication.key_body`) to every device of `peer`.
        Not stored in the history: a key that cannot be sent now goes again on the next
        `share_profile_key` (key messages are idempotent on the receiving side)."""
        from ..profile.keys import parse_profile_key_body

        if not routes:
            raise TransportError("no transport to send through", hint="pick one with --via (see `kez plugins`)")
        parse_profile_key_body(body, self.keystore.registry)
        sealed = self._seal(peer.chain, body)
        deliveries = await self._deliver(peer.identity, sealed, routes, peer.chain)
        state = "sent" if any(d.sent for d in deliveries) else "sending"
        return SendResult(sealed[0][1].id, peer.identity, state, tuple(deliveries))

    async def share_profile_key(self, body: dict[str, Any], routes: Sequence[Route]) -> list[SendResult]:
        """Send the picture key to every contact that is not blocked (on a picture change)."""
        out = []
        for contact in self.contacts():
            if contact.blocked:
                continue
            peer = await self.resolve_peer(contact.identity)
            out.append(await self.send_profile_key(peer, body, routes))
        return out

    def _state_of(self, peer: str, key: str) -> str:
        return next((e.state for e in self.store.history(peer, mark_read=False) if e.key == key), "sending")

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

    # ---------------------------------------------------------------- receiving

    def sender_chain(self, identity: str) -> ChainState | None:
        """The sender's chain: one the caller gave, else the local copy; None when unknown."""
        return self.sender_chains.get(identity) or cached_chain(self.keystore, identity)

    def receive(self, envelope: str | bytes) -> Received:
        """Open one envelope and act on it: store a message (and queue its ack), or apply an ack.

        Raises what `open_envelope` raises for an envelope that is refused.
        """
        [answer] = self.receive_many([envelope])
        if isinstance(answer, KezError):
            raise answer
        return answer

    def receive_many(self, envelopes: Sequence[str | bytes]) -> list[Received | KezError]:
        """`receive` for envelopes that arrived together: one answer each, in order, a Received
        or the typed error that refused it. Their ids go into the replay store in one transaction
        (`open_envelopes`, `ReplayStore.accept_many`), so a burst costs one fsync, not one each."""
        from ..messaging import open_envelopes

        known: dict[str, bool] = {}

        def lookup(message: Any) -> ChainState | None:
            chain = self.sender_chain(message.sender_identity)
            known[message.id] = chain is not None
            return chain

        answers = open_envelopes(
            list(envelopes),
            self.secrets(),
            identity=self.identity,
            replay=self.replay,
            registry=self.keystore.registry,
            sender_chain=lookup,
        )
        out: list[Received | KezError] = []
        for answer in answers:
            if isinstance(answer, KezError):
                out.append(answer)
                continue
            try:
                out.append(self._act(answer, known.get(answer.id, False)))
            except KezError as exc:
                out.append(exc)
        return out

    def _act(self, message: Any, checked: bool) -> Received:
        """What a message opened (and recorded as seen) does: stored, applied as an ack, dropped."""
        sender = message.sender_identity
        if message.kind == "ack":
            return Received("ack", message, checked, delivered=tuple(self._apply_ack(message, checked)))
        contact = self.store.contact_for(sender)
        if contact is not None and contact.blocked:
            return Received("dropped", message, checked)
        stranger = contact is None
        handler = self.body_handlers().get(message.kind)
        if handler is not None:
            return handler(self, message, checked, stranger)
        self.store.add_incoming(
            message.id, sender, str(message.signed.payload["created_at"]), dict(message.body), stranger=stranger
        )
        return Received("message", message, checked, stranger=stranger)

    @staticmethod
    def body_handlers() -> dict[str, Callable[..., Received]]:
        """Body kinds with their own handling (not plain chat messages):
        kind -> handler(service, message, checked, stranger)."""
        from .files import receive_chunk, receive_file

        return {"file": receive_file, "file_chunk": receive_chunk, "profile_key": _receive_profile_key}

    def _apply_ack(self, message: Any, checked: bool) -> list[str]:
        """The history ids an ack moves to `delivered` (none unless its sender was checked)."""
        if not checked:
            return []
        ids = message.body.get("ids")
        changed = []
        for message_id in ids if isinstance(ids, list) else []:
            key = self.store.outgoing_for(str(message_id), message.sender_identity)
            if key is not None and self.store.set_state(key, "delivered", only_from=("sending", "sent")):
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


def _receive_profile_key(service: MessagingService, message: Any, checked: bool, stranger: bool) -> Received:
    """Store a picture key (only from a checked sender, only for the sender's own picture);
    it is acked like any message but is not a chat message (spec §13)."""
    from ..profile.keys import ProfileKeyStore, accept_profile_key

    kind = "refused"
    if checked:
        try:
            accept_profile_key(ProfileKeyStore(service.keystore.home), dict(message.body), message.sender_identity)
            kind = "profile_key"
        except SchemaError:
            pass
    service.store.queue_ack(message.sender_identity, message.id)
    return Received(kind, message, checked)
