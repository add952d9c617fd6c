"""Sending and receiving: seal a signed message (pad, HPKE); open + check + accept one envelope.

The order of the receiving checks matters. The envelope must open with one
of our inbox keys; the message inside must be well formed and its signature
valid; it must name us and the very key that opened it (so it was not
re-wrapped from someone else's inbox); it must be dated inside the window;
its signing key must belong to the sender's identity when the sender's
chain is known (`check_sender`, against a validated `ChainState`); only
then, after every check, is its id recorded in the replay store. So garbage
and forgeries never fill that store, and a message refused because our copy
of the sender's chain was stale opens once that copy is updated. Recording
is one INSERT in one transaction that fails on a known id, so two processes
opening the same envelope at once cannot both accept it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from ..errors import KezError, SchemaError
from ..keys import Signer
from ..registry import Registry, default_registry
from ..sigchain.model import ChainState
from ..signed import SignedObject, verify_signature
from ..timefmt import now
from .envelope import InboxSecret, open_sealed, seal
from .errors import MessageRefused
from .message import (
    Message,
    attachment_field,
    check_attachment,
    create_message,
    made_here,
    message_from_json,
    read_message,
)
from .replay import ReplayStore, check_window


def seal_message(obj: SignedObject, registry: Registry | None = None) -> str:
    """The envelope of a signed message (`create_message`), sealed to the inbox key it names."""
    if made_here(obj):  # create_message checked it a moment ago
        return seal(obj.canonical(), obj.payload["inbox_key"])
    message = read_message(obj, registry)
    return seal(obj.canonical(), message.inbox_key)


def seal_for_devices(
    signer: Signer,
    *,
    sender_identity: str,
    recipient: ChainState,
    body: dict[str, Any],
    at: datetime | None = None,
    registry: Registry | None = None,
    attachment: bytes | memoryview | None = None,
) -> list[tuple[str, SignedObject, str]]:
    """One (inbox key, message, envelope) per current inbox key of the recipient's devices.

    Each device has its own inbox key and opens only its own envelope; an
    identity with no current inbox key cannot be written to (MessageRefused).
    `attachment`: raw bytes sealed after the message's JSON. A body without an
    `attachment` field gets it here (`attachment_field(data)`: the bytes are hashed
    once); a body that has one must describe these bytes, SchemaError otherwise.
    """
    if attachment is not None:
        if "attachment" in body:
            check_attachment(body, attachment)
        else:
            body = {**body, "attachment": attachment_field(attachment)}
    elif "attachment" in body:
        raise SchemaError("a body that names an attachment is sealed with its bytes")
    at = at or now()
    keys = recipient.current_inbox_keys(at)
    if not keys:
        raise MessageRefused(
            f"{recipient.identity_id} has no current inbox key",
            reason="no_inbox_key",
            hint="the recipient must publish one (add_inbox), or their keys have expired",
        )
    out = []
    for inbox in keys:
        obj = create_message(
            signer,
            sender_identity=sender_identity,
            recipient=recipient.identity_id,
            inbox_key=inbox.key,
            body=body,
            created_at=at,
            registry=registry,
        )
        out.append((inbox.key, obj, seal(obj.canonical(), inbox.key, attachment)))
    return out


def open_envelope(
    envelope: str | bytes,
    secrets: Sequence[InboxSecret],
    *,
    identity: str,
    replay: ReplayStore | None,
    at: datetime | None = None,
    registry: Registry | None = None,
    sender_chain: Callable[[Message], ChainState | None] | None = None,
) -> Message:
    """Open an envelope for `identity` and accept its message once (see the module docstring).

    Raises EnvelopeError (not ours, tampered), DecodeError/SchemaError (a
    malformed message), SignatureError, or MessageRefused. With `replay` None
    the window is still checked but repeats are not (for tools that only look).

    `sender_chain(message)` gives the sender's validated chain, or None when
    it is not known here (the caller then says the sender is unchecked); a
    known chain must allow the signing key (`check_sender`) before the
    message is accepted. Any error it raises refuses the message unrecorded.
    """
    registry = registry or default_registry()
    at = at or now()
    message = _open_checked(envelope, secrets, identity, at, registry, sender_chain)
    if replay is not None:  # the last step: nothing is recorded for a refused message
        replay.accept(message.id, message.created_at, at)
    return message


def open_envelopes(
    envelopes: Sequence[str | bytes],
    secrets: Sequence[InboxSecret],
    *,
    identity: str,
    replay: ReplayStore | None,
    at: datetime | None = None,
    registry: Registry | None = None,
    sender_chain: Callable[[Message], ChainState | None] | None = None,
) -> list[Message | KezError]:
    """`open_envelope` for several envelopes at once (a drained queue, a page of an inbox).

    One answer per envelope, in order: its Message, or the typed error
    `open_envelope` would raise for it. Every check runs first, then the ids
    of the messages that passed go into the replay store in one transaction
    (`ReplayStore.accept_many`: one fsync for the batch). A Message in the
    answer is durable in the store when this returns; the same message twice
    in one call opens once, the other copy is refused as a replay. A failing
    store (StoreError) is raised, and then nothing of the batch was recorded.
    """
    registry = registry or default_registry()
    at = at or now()
    answers: list[Message | KezError] = []
    for envelope in envelopes:
        try:
            answers.append(_open_checked(envelope, secrets, identity, at, registry, sender_chain))
        except KezError as exc:
            answers.append(exc)
    if replay is not None:
        messages = [(i, a) for i, a in enumerate(answers) if isinstance(a, Message)]
        opened = [i for i, _ in messages]
        refused = replay.accept_many([(m.id, m.created_at) for _, m in messages], at)
        for i, error in zip(opened, refused, strict=True):
            if error is not None:
                answers[i] = error
    return answers


def _open_checked(
    envelope: str | bytes,
    secrets: Sequence[InboxSecret],
    identity: str,
    at: datetime,
    registry: Registry,
    sender_chain: Callable[[Message], ChainState | None] | None,
) -> Message:
    """Every check of `open_envelope` but the replay store, in its order."""
    content, secret = open_sealed(envelope, secrets)
    message = message_from_json(content, registry)
    verify_signature(message.signed, registry)
    if message.inbox_key != secret.key_id:
        raise MessageRefused(
            f"message names inbox key {message.inbox_key}, but {secret.key_id} opened it",
            reason="wrong_inbox_key",
            hint="someone re-wrapped a message meant for another inbox",
        )
    if message.recipient != identity:
        raise MessageRefused(
            f"message is for {message.recipient}, not {identity}",
            reason="wrong_recipient",
            hint="someone re-wrapped a message meant for another identity",
        )
    check_window(message.created_at, at)
    if sender_chain is not None:
        chain = sender_chain(message)
        if chain is not None:
            check_sender(message, chain)
    return message


def check_sender(message: Message, sender_chain: ChainState) -> None:
    """MessageRefused unless `sender_chain` is the sender's and allows its signing key now.

    The key must be the chain's current primary or one of its current
    devices. A rotated-away primary or a removed device is refused even for
    a message dated before the change: its secret may be what was lost.
    """
    if sender_chain.identity_id != message.sender_identity:
        raise MessageRefused(
            f"message says it is from {message.sender_identity}, the chain given is {sender_chain.identity_id}",
            reason="sender_not_allowed",
        )
    role = sender_chain.role_of(message.sender)
    if role not in ("primary", "device"):
        what = {"retired": "a rotated-away primary", "recovery": "a recovery key"}.get(
            role or "", "not a key of this identity"
        )
        raise MessageRefused(
            f"message is signed by {message.sender}, {what}",
            reason="sender_not_allowed",
            hint="refresh the sender's chain; if it is current, the message is not from them",
        )
