"""Sent copies: a message one device sends also reaches the identity's other devices.

When a device sends to a peer, it seals one more message per current inbox
key of its OWN identity's other devices, with the body

    {"kind": "sent_copy", "to": <peer identity id>, "key": <history id>,
     "created_at": <the message's created_at>, "ids": [<message ids sent to the peer>],
     "body": <the history body of the message>}

(docs/spec.md §12, "Devices"). The other device stores it as an outgoing
message to `to`, state `sent`, under the same history id, with the same
message ids, so an ack from the peer (sealed to every inbox key of our
identity) marks it `delivered` there too. A sent copy is never acked.

A sent copy rewrites the local history, so it is accepted only from this
identity itself: the message's `sender_identity` is ours and its signing
key is a current primary or device of OUR chain, read from the local cache
(never a chain a caller supplied). Anything else is refused, unstored.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import attrs

from ..errors import DecodeError, SchemaError
from ..keys import Signer, normal_key_id
from ..registry import Registry
from ..sigchain.model import ChainState
from ..timefmt import parse_time

KIND = "sent_copy"
MAX_IDS = 100  # one message id per inbox key of the peer: as many as an ack may name
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")
_FIELDS = frozenset({"kind", "to", "key", "created_at", "ids", "body"})


@attrs.frozen
class SentCopy:
    """A checked sent-copy body."""

    to: str  # the peer's identity id
    key: str  # the history id on the sending device
    created_at: str
    ids: tuple[str, ...]  # the message ids the peer's envelopes carried
    body: dict[str, Any]  # what the history shows


def sent_copy_body(
    to: str, key: str, created_at: str, ids: list[str], body: dict[str, Any]
) -> dict[str, Any]:
    return {
        "kind": KIND,
        "to": to,
        "key": key,
        "created_at": created_at,
        "ids": list(ids),
        "body": body,
    }


def parse_sent_copy(body: object, registry: Registry) -> SentCopy:
    """The SentCopy a body holds; SchemaError naming what is wrong (the body came from outside)."""
    from ..messaging.message import check_body

    if not isinstance(body, dict) or body.get("kind") != KIND:
        raise SchemaError(f'a sent copy\'s body.kind must be "{KIND}"')
    extra = set(body) - _FIELDS
    if extra:
        raise SchemaError(f"a sent copy has unknown field(s) {', '.join(sorted(map(str, extra)))}")
    to = body.get("to")
    try:
        known = isinstance(to, str) and len(to) < 200 and normal_key_id(to, registry) is not None
    except DecodeError:
        known = False
    if not known or not isinstance(to, str):
        raise SchemaError("a sent copy's `to` must be an identity id in normal form")
    key = body.get("key")
    if not isinstance(key, str) or not _HEX64.match(key):
        raise SchemaError("a sent copy's `key` must be a message id (64 lowercase hex)")
    ids = body.get("ids")
    if (
        not isinstance(ids, list)
        or not 1 <= len(ids) <= MAX_IDS
        or not all(isinstance(i, str) and _HEX64.match(i) for i in ids)
        or key not in ids
    ):
        raise SchemaError(
            f"a sent copy's `ids` must list 1 to {MAX_IDS} message ids, `key` among them"
        )
    created_at = body.get("created_at")
    try:
        parse_time(created_at, field="created_at")
    except DecodeError as exc:
        raise SchemaError(f"a sent copy's `created_at` is not a time: {exc.message}") from None
    inner = body.get("body")
    check_body(inner)
    assert isinstance(inner, dict)
    if inner["kind"] in ("ack", KIND):
        raise SchemaError(f"a sent copy cannot hold a {inner['kind']!r} body")
    return SentCopy(to, key, str(created_at), tuple(ids), dict(inner))


def seal_sent_copies(
    signer: Signer,
    *,
    own_chain: ChainState,
    skip_keys: set[str],
    body: dict[str, Any],
    at: datetime,
    registry: Registry,
) -> list[tuple[str, Any, str]]:
    """One (inbox key, message, envelope) per current inbox key of our own identity, less
    `skip_keys` (this device's) and the signing device's own: our other devices."""
    from ..messaging import create_message, seal

    out = []
    for inbox in own_chain.current_inbox_keys(at):
        if inbox.key in skip_keys or inbox.device == signer.key_id:
            continue
        obj = create_message(
            signer,
            sender_identity=own_chain.identity_id,
            recipient=own_chain.identity_id,
            inbox_key=inbox.key,
            body=body,
            created_at=at,
            registry=registry,
        )
        out.append((inbox.key, obj, seal(obj.canonical(), inbox.key)))
    return out
