"""Backlogs through the messaging service with group commits (issue 12 §9).

`send_text`, `receive` and `flush_acks` each commit the chat store (and the
replay store) once or more per message, and every commit is an fsync: a
person typing never notices, a client working through hundreds of messages
a second spends its time waiting on the disk. These helpers do the same
work with the same checks and the same stored result, grouped:

- `send_texts`: `window` messages at a time are sealed, stored as `sending`
  in one transaction, sent concurrently (every route), and moved to `sent`
  in one transaction.
- `receive_many`: every envelope is opened and checked (`open_envelopes`),
  then every message is stored (its ack queued) or every ack applied in one
  chat store transaction (`ChatStore.batch`), and only then do their ids go
  into the replay store in one transaction, as `receive` orders it: a crash
  in between loses nothing (file chunks' ids excepted, `records_id`). One
  answer per envelope: a `Received`, or the typed error `receive` would have
  raised for it.
- `flush_acks_batched`: one ack message names up to `ACK_IDS_MAX` ids (the
  format allows 1-100, docs/spec.md §12), so a backlog is acked in a few
  messages instead of one per message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import KezError, TransportError
from ..messaging import MessageRefused

if TYPE_CHECKING:
    from .peers import Peer
    from .service import MessagingService, Received, Route, SendResult

ACK_IDS_MAX = 100  # ids one ack may name (docs/spec.md §12)


async def send_texts(
    service: MessagingService,
    peer: Peer,
    texts: Sequence[str],
    routes: Sequence[Route],
    window: int = 64,
) -> list[SendResult]:
    """A SendResult per text, in order; each text is stored and sent as `send_text` would."""
    from ..messaging import text_body
    from .service import SendResult

    if not routes:
        raise TransportError(
            "no transport to send through", hint="pick one with --via (see `kez plugins`)"
        )
    if window < 1:
        raise ValueError("window must be at least 1")
    store = service.store
    out: list[SendResult] = []
    for start in range(0, len(texts), window):
        bodies = [text_body(text) for text in texts[start : start + window]]
        sealed = [service._seal(peer.chain, body) for body in bodies]
        with store.batch():
            for body, envelopes in zip(bodies, sealed, strict=True):
                first = envelopes[0][1]
                store.add_outgoing(first.id, peer.identity, first.payload["created_at"], body)
                store.add_sent_ids(first.id, [obj.id for _, obj, _ in envelopes])
        deliveries = await asyncio.gather(
            *(
                service._deliver(peer.identity, envelopes, routes, peer.chain)
                for envelopes in sealed
            )
        )
        with store.batch():
            for envelopes, done in zip(sealed, deliveries, strict=True):
                key = envelopes[0][1].id
                state = "sending"
                if any(d.sent for d in done):
                    # an ack may have come back already (`delivered`): states only go forward
                    moved = store.set_state(key, "sent", only_from=("sending",))
                    state = "sent" if moved else (store.state_of(key) or "sent")
                out.append(SendResult(key, peer.identity, state, tuple(done)))
    return out


def receive_many(
    service: MessagingService,
    envelopes: Sequence[str | bytes],
    via: Sequence[str | None] | None = None,
) -> list[Received | KezError]:
    """`receive` for each envelope (see the module docstring); a failing store raises StoreError."""
    from ..messaging import open_envelopes

    checked: dict[str, bool] = {}
    chains: dict[str, Any] = {}  # each sender's chain read (and checked) once per batch

    def lookup(message: Any) -> Any:
        sender = message.sender_identity
        if sender not in chains:
            chains[sender] = service.sender_chain(sender)
        checked[message.id] = chains[sender] is not None
        return chains[sender]

    # every check but the replay store; as `receive`, ids are recorded only once their
    # messages are stored (one commit for the batch), so a crash in between loses nothing
    opened = open_envelopes(
        list(envelopes),
        service.secrets(),
        identity=service.identity,
        replay=None,
        registry=service.keystore.registry,
        sender_chain=lookup,
    )
    out: list[Received | KezError] = []
    taken: dict[str, int] = {}  # message id -> its index in `out`, to record once stored
    with service.store.batch():
        for index, item in enumerate(opened):
            if isinstance(item, KezError):
                out.append(item)
                continue
            if item.id in taken or service.replay.seen(item.id):
                out.append(
                    MessageRefused(f"message {item.id} was already received", reason="replay")
                )
                continue
            try:
                received = service.accept_opened(item, checked.get(item.id, False))
                service._record_via(received, via[index] if via else None)
                out.append(received)
                taken[item.id] = len(out) - 1
            except KezError as exc:  # a malformed file body, as `receive` raises it
                out.append(exc)
    messages = {m.id: m for m in opened if not isinstance(m, KezError)}
    recorded = [(mid, messages[mid].created_at) for mid in taken if records_id(messages[mid])]
    if recorded:
        service.replay.accept_many(recorded)  # one fsync
    return out


def records_id(message: Any) -> bool:
    """Whether a stored message's id goes into the replay store. A file chunk's does not: its
    transfer and index already make a repeat change nothing (a known index is not written
    again, a finished transfer takes no more), and a file's chunks arrive in a stream whose
    every batch would otherwise pay one more disk sync (docs/spec.md §12, "Files")."""
    return bool(message.kind != "file_chunk")


async def flush_acks_batched(
    service: MessagingService, routes: Sequence[Route]
) -> dict[str, list[str]]:
    """Send the queued acks, up to ACK_IDS_MAX ids per ack message; what was sent, by peer.
    As `flush_acks`, peers whose chain is unknown here, or that no route reached, stay queued."""
    from ..messaging import ack_body

    done: dict[str, list[str]] = {}
    if not routes:
        return done
    for peer, ids in service.store.pending_acks().items():
        chain = service.sender_chain(peer)
        if chain is None:
            continue
        for start in range(0, len(ids), ACK_IDS_MAX):
            group = ids[start : start + ACK_IDS_MAX]
            try:
                sealed = service._seal(chain, ack_body(group))
            except KezError:
                break  # no current inbox key: keep them queued
            if any(d.sent for d in await service._deliver(peer, sealed, routes, chain)):
                service.store.acked(peer, group)
                done.setdefault(peer, []).extend(group)
    return done
