"""Messages: the signed plaintext inside an envelope (`kez: "message"`).

The payload names the sender (the key that signs, and the identity whose
chain allows it), the recipient identity and the recipient inbox key the
envelope is sealed to. Because those are signed, a recipient who opens an
envelope can tell that it was meant for them and for that key: nobody can
take a message they received and re-wrap it to someone else.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import weakref
from datetime import datetime
from typing import Any

import attrs

from ..codec import parse_json
from ..errors import DecodeError, SchemaError
from ..keys import Signer, normal_key_id, normalize_key_id
from ..registry import Registry, default_registry
from ..jcs import canonicalize, encode_str
from ..signed import PAYLOAD_VERSION, SignedObject, _trusted_object
from ..timefmt import format_time, now, parse_time
from .padding import MAX_CONTENT

KIND = "message"
# The JSON of one message: the largest padding bucket less its marker byte.
MAX_MESSAGE_BYTES = 128 * 1024 - 1
MAX_ACK_IDS = 100
_NONCE = re.compile(r"^[0-9a-f]{32}\Z")
_INBOX_KEY = re.compile(r"^x25519:[0-9a-f]{64}\Z")
_BODY_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z")
_OBJECT_ID = re.compile(r"^[0-9a-f]{64}\Z")


@attrs.frozen
class Message:
    """A message's fields, read from a signed object whose shape was checked."""

    signed: SignedObject
    sender: str
    sender_identity: str
    recipient: str
    inbox_key: str
    created_at: datetime
    body: dict[str, Any]
    # raw bytes sealed after the message's JSON (a file chunk's data), checked against the
    # signed `body.attachment` ({"size", "sha256"}) before the message is accepted
    attachment: bytes | None = None

    @property
    def id(self) -> str:
        """The message id: the signed object's id (what acks and the replay store name)."""
        return self.signed.id

    @property
    def kind(self) -> str:
        return str(self.body["kind"])


def text_body(text: str) -> dict[str, Any]:
    return {"kind": "text", "text": text}


ATTACHMENT_SEPARATOR = b"\n"  # JCS never writes a raw newline, so the first one ends the JSON


def attachment_field(data: bytes | memoryview) -> dict[str, Any]:
    """The signed description of an attachment: `{"size": n, "sha256": <hex>}`.

    The signature covers this small field instead of the bytes themselves, so a large
    attachment is hashed once (SHA-256) rather than escaped into JSON, canonicalized and
    signed (base64 in a JSON string costs four passes over every byte, each slower than
    SHA-256's one)."""
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def check_attachment(body: dict[str, Any], data: bytes | memoryview | None) -> None:
    """SchemaError unless the attachment is what the signed body says (or both are absent)."""
    field = body.get("attachment")
    if field is None and data is None:
        return
    if field is None:
        raise SchemaError(
            "an envelope carries bytes after a message whose body names no attachment"
        )
    if data is None:
        raise SchemaError("a message's body names an attachment, but the envelope carries none")
    if len(data) != field["size"] or hashlib.sha256(data).hexdigest() != field["sha256"]:
        raise SchemaError(
            "an attachment's bytes are not the ones its message signed (size or SHA-256)"
        )


def ack_body(message_ids: list[str]) -> dict[str, Any]:
    """An acknowledgement of received messages: itself an encrypted message, never a public event."""
    return {"kind": "ack", "ids": list(message_ids)}


def create_message(
    signer: Signer,
    *,
    sender_identity: str,
    recipient: str,
    inbox_key: str,
    body: dict[str, Any],
    created_at: datetime | None = None,
    registry: Registry | None = None,
) -> SignedObject:
    """Sign a message to `recipient`'s inbox key `inbox_key`; the body is checked first."""
    registry = registry or default_registry()
    # What a recipient would refuse is refused here, at the sender, before signing:
    # `read_message`'s checks, less those that hold by construction (the three key
    # ids are normal forms made here, created_at and nonce are written here).
    if not isinstance(inbox_key, str) or not _INBOX_KEY.match(inbox_key):
        raise SchemaError("message inbox_key must be x25519:<64 lowercase hex>")
    check_body(body)
    payload: dict[str, Any] = {
        "type": _TYPE,
        "version": PAYLOAD_VERSION,
        "sender": signer.key_id,
        "sender_identity": normalize_key_id(sender_identity, registry),
        "recipient": normalize_key_id(recipient, registry),
        "inbox_key": inbox_key,
        "created_at": _now_text()
        if created_at is None
        else format_time(created_at.replace(microsecond=0)),
        "nonce": os.urandom(16).hex(),
        "body": body,
    }
    # JCS once: the body is canonicalized (the only part from outside; it raises what
    # canonicalize raises), the other fields are strings written here, spliced in
    # JCS's key order. tests/messaging/test_send_path_fast.py checks these bytes
    # against canonicalize() of the payload and of the whole object.
    e = encode_str
    payload_bytes = (
        b'{"body":'
        + canonicalize(body)
        + (
            f',"created_at":{e(payload["created_at"])},"inbox_key":{e(inbox_key)},'
            f'"nonce":"{payload["nonce"]}","recipient":{e(payload["recipient"])},'
            f'"sender":{e(payload["sender"])},"sender_identity":{e(payload["sender_identity"])},'
            f'"type":"{_TYPE}","version":{PAYLOAD_VERSION}}}'
        ).encode()
    )
    alg = signer.alg.signature_alg
    sig = signer.sign(payload_bytes).hex()
    canonical = b"".join(
        (
            b'{"kez":"' + KIND.encode() + b'","payload":',
            payload_bytes,
            f',"signature":{{"alg":{e(alg)},"key":{e(payload["sender"])},"sig":"{sig}"}}}}'.encode(),
        )
    )
    obj = _trusted_object(KIND, payload, alg, payload["sender"], sig, payload_bytes, canonical)
    _made[id(obj)] = obj
    return obj


_TYPE = f"kez.{KIND}"
_last_second: tuple[int, str] = (-1, "")


def _now_text() -> str:
    """format_time(now()), written once per second (a sender writes many messages a second)."""
    global _last_second
    second = int(time.time())
    last = _last_second
    if last[0] == second:
        return last[1]
    text = format_time(now())
    _last_second = (second, text)
    return text


# Messages `create_message` made (and checked) in this process, by identity: sealing
# one does not read it again. Weak, so an object gone is forgotten.
_made: weakref.WeakValueDictionary[int, SignedObject] = weakref.WeakValueDictionary()


def made_here(obj: SignedObject) -> bool:
    """True for an object `create_message` returned (checked already, payload treated as
    immutable like every SignedObject's)."""
    return _made.get(id(obj)) is obj


def message_from_json(data: bytes, registry: Registry | None = None) -> Message:
    """A message from the content an envelope held: strict parse, shape checks (no signature check).

    The content is the message's JSON, optionally followed by `\n` and an attachment
    (docs/spec.md §12, "Attachments"); the attachment is checked against the body here."""
    cut = data.find(ATTACHMENT_SEPARATOR)
    attachment = None
    if cut >= 0:
        data, attachment = data[:cut], data[cut + 1 :]
    message = read_message(
        SignedObject.from_dict(parse_json(data, max_bytes=MAX_MESSAGE_BYTES)), registry
    )
    check_attachment(message.body, attachment)
    return message if attachment is None else attrs.evolve(message, attachment=attachment)


def read_message(obj: SignedObject, registry: Registry | None = None) -> Message:
    """Check that `obj` is a well-formed message and return its fields (no signature check)."""
    registry = registry or default_registry()
    if obj.kind != KIND:
        raise SchemaError(f"expected a message, got a {obj.kind!r} object")
    p = obj.payload
    for field in (
        "sender",
        "sender_identity",
        "recipient",
        "inbox_key",
        "created_at",
        "nonce",
        "body",
    ):
        if field not in p:
            raise SchemaError(f"message payload has no {field!r}")
    keys = {
        name: _key(p[name], name, registry) for name in ("sender", "sender_identity", "recipient")
    }
    inbox_key = p["inbox_key"]
    if not isinstance(inbox_key, str) or not _INBOX_KEY.match(inbox_key):
        raise SchemaError("message inbox_key must be x25519:<64 lowercase hex>")
    nonce = p["nonce"]
    if not isinstance(nonce, str) or not _NONCE.match(nonce):
        raise SchemaError("message nonce must be 32 lowercase hex characters (16 bytes)")
    created = parse_time(p["created_at"], field="created_at")
    body = p["body"]
    check_body(body)
    return Message(
        obj, keys["sender"], keys["sender_identity"], keys["recipient"], inbox_key, created, body
    )


def _key(value: object, field: str, registry: Registry) -> str:
    try:
        ok = (
            isinstance(value, str)
            and len(value) < 200
            and normal_key_id(value, registry) is not None
        )
    except DecodeError:
        ok = False
    if not ok:
        raise SchemaError(f"message {field} must be a key id in normal form (alg:<lowercase hex>)")
    return str(value)


def check_body(body: object) -> None:
    """Known body kinds are checked; other kinds pass (a newer sender's), the app decides."""
    if not isinstance(body, dict):
        raise SchemaError("message body must be a JSON object")
    kind = body.get("kind")
    if not isinstance(kind, str) or not _BODY_KIND.match(kind):
        raise SchemaError('message body.kind must be a short lowercase name, e.g. "text"')
    if "attachment" in body:
        field = body["attachment"]
        if (
            not isinstance(field, dict)
            or set(field) != {"size", "sha256"}
            or type(field["size"]) is not int
            or not 0 <= field["size"] <= MAX_CONTENT
            or not isinstance(field["sha256"], str)
            or not _OBJECT_ID.match(field["sha256"])
        ):
            raise SchemaError(
                'a body\'s attachment is {"size": <bytes>, "sha256": <64 lowercase hex>}'
            )
    if kind == "text" and not isinstance(body.get("text"), str):
        raise SchemaError("a text message's body.text must be a string")
    if kind == "ack":
        ids = body.get("ids")
        if (
            not isinstance(ids, list)
            or not 1 <= len(ids) <= MAX_ACK_IDS
            or not all(isinstance(i, str) and _OBJECT_ID.match(i) for i in ids)
        ):
            raise SchemaError(
                f"an ack's body.ids must list 1 to {MAX_ACK_IDS} message ids (64 lowercase hex)"
            )
