"""Envelopes: a padded message sealed with HPKE to one inbox key.

RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
ChaCha20-Poly1305, through `cryptography`'s `hpke.Suite` (single shot: the
bytes are the encapsulated key `enc` then the ciphertext). The envelope
carries nothing else: no sender, no recipient, no key id. A recipient tries
its current inbox keys (a device has one, plus the previous one during a
rotation), and the inner, signed message says which key it was for.

Text form: `kez:e1:` + base64url without padding of `enc || ciphertext`, so
every transport (a NATS payload, a nostr event's content, a JSON field of
the server's inbox) carries the same ASCII string.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Sequence
from functools import lru_cache

import attrs
import pybase64
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ..errors import DecodeError
from .errors import EnvelopeError
from .errors import MessageTooLarge
from .padding import BUCKETS, MAX_BUCKET, MESSAGE_MAX_BUCKET, MESSAGE_MAX_CONTENT, pad, unpad

PREFIX = "kez:e1:"
SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
# HPKE `info`: binds every envelope to this protocol and version.
INFO = b"kez envelope v1"
ENC_BYTES = 32  # X25519 encapsulated key
TAG_BYTES = 16  # Poly1305
_SEALED_SIZES = frozenset(ENC_BYTES + b + TAG_BYTES for b in BUCKETS)
# the largest envelope of a message alone (every transport that is not size-bound carries it),
# and of a message with an attachment (transports may carry up to it; NATS does)
MAX_ENVELOPE_TEXT = len(PREFIX) + -(-(ENC_BYTES + MESSAGE_MAX_BUCKET + TAG_BYTES) * 4 // 3)
MAX_ATTACHMENT_ENVELOPE_TEXT = len(PREFIX) + -(-(ENC_BYTES + MAX_BUCKET + TAG_BYTES) * 4 // 3)
_INBOX_KEY = re.compile(r"^x25519:([0-9a-f]{64})\Z")
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def inbox_key_id(public: X25519PublicKey) -> str:
    """`x25519:<64 hex>`: how chains (`add_inbox`) and messages name an inbox key."""
    return "x25519:" + public.public_bytes(*_RAW).hex()


def parse_inbox_key(text: object) -> X25519PublicKey:
    """The public key of an `x25519:<64 lowercase hex>` id; DecodeError otherwise."""
    if type(text) is str:
        return _parse_inbox_key_cached(text)
    return _parse_inbox_key(text)


@lru_cache(maxsize=1024)
def _parse_inbox_key_cached(text: str) -> X25519PublicKey:
    # a sender writes to few inbox keys, many times: parsing one costs a tenth of a seal
    return _parse_inbox_key(text)


def _parse_inbox_key(text: object) -> X25519PublicKey:
    match = _INBOX_KEY.match(text) if isinstance(text, str) else None
    if match is None:
        raise DecodeError(
            f"inbox key {str(text)[:80]!r} is not x25519:<64 lowercase hex>",
            hint="inbox keys come from the recipient's chain (add_inbox links)",
        )
    return X25519PublicKey.from_public_bytes(bytes.fromhex(match.group(1)))


_ROUTING_ID = re.compile(r"^[0-9a-f]{64}\Z")


def check_routing_id(value: object) -> str:
    """`value` when it is a routing id (64 lowercase hex); DecodeError otherwise (for transports)."""
    if not isinstance(value, str) or not _ROUTING_ID.match(value):
        raise DecodeError(
            f"routing id {str(value)[:80]!r} is not 64 lowercase hex characters",
            hint="routing ids come from kez_core.messaging.routing_id(inbox_key)",
        )
    return value


def check_envelope_size(
    data: bytes,
    limit: int,
    transport: str,
    hint: str = "send a smaller message (large files go in chunks)",
) -> bytes:
    """`data` when it is at most `limit` bytes; EnvelopeTooLarge naming the transport otherwise
    (for transports: one message for the same refusal, whichever carries it)."""
    from ..errors import EnvelopeTooLarge

    if len(data) > limit:
        raise EnvelopeTooLarge(
            f"envelope of {len(data)} bytes is larger than the {limit} the {transport} "
            "transport carries",
            hint=hint,
        )
    return data


def routing_id(inbox_key: str) -> str:
    """Where transports deliver envelopes for an inbox key: 64 hex characters.

    The whole SHA-256, not a prefix: relays that check nostr `p` tags take
    only 64 hex, and one id serves every transport (NATS subject, `p` tag,
    the HTTP inbox's `route`).

    Derived from the (public) inbox key, so a sender who read the recipient's
    chain can address it, and it changes with every weekly inbox rotation.
    It names no identity, but anyone holding the chain can link the two.
    """
    raw = parse_inbox_key(inbox_key).public_bytes(*_RAW)
    return hashlib.sha256(b"kez route v1\n" + raw).hexdigest()


@attrs.frozen
class InboxSecret:
    """The secret half of one inbox key (held by one device; never leaves it)."""

    private: X25519PrivateKey

    @classmethod
    def generate(cls) -> InboxSecret:
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_bytes(cls, raw: bytes) -> InboxSecret:
        if len(raw) != 32:
            raise DecodeError("an X25519 secret key is 32 bytes")
        return cls(X25519PrivateKey.from_private_bytes(raw))

    def to_bytes(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    @property
    def key_id(self) -> str:
        return inbox_key_id(self.private.public_key())

    def __repr__(self) -> str:
        return f"InboxSecret({self.key_id})"


def seal(content: bytes, inbox_key: str, attachment: bytes | memoryview | None = None) -> str:
    """Pad `content` (a message's JSON, then maybe `\n` and an attachment, or the attachment
    given apart: the same plaintext, one copy fewer) and seal it to `inbox_key`; the envelope's
    text. The JSON alone is at most MESSAGE_MAX_CONTENT bytes (receivers cap their parse
    there): MessageTooLarge beyond."""
    if attachment is not None:
        if len(content) > MESSAGE_MAX_CONTENT or b"\n" in content:
            raise MessageTooLarge(
                f"message is {len(content)} bytes; one message holds at most {MESSAGE_MAX_CONTENT}"
            )
        plaintext = pad(content, b"\n", attachment)
    else:
        if (
            len(content) > MESSAGE_MAX_CONTENT
            and content.find(b"\n", 0, MESSAGE_MAX_CONTENT + 1) < 0
        ):
            raise MessageTooLarge(
                f"message is {len(content)} bytes; one message holds at most {MESSAGE_MAX_CONTENT}",
                hint="send larger files in chunks",
            )
        plaintext = pad(content)
    sealed = SUITE.encrypt(plaintext, parse_inbox_key(inbox_key), info=INFO)
    # base64url without padding, in one SIMD pass (pybase64): a 128 KiB envelope's text is
    # ten times faster than binascii's encode and a translate
    full = len(sealed) - len(sealed) % 3  # what encodes without `=` padding; the tail, unpadded
    view = memoryview(sealed)
    tail = pybase64.b64encode_as_string(view[full:], altchars=b"-_").rstrip("=")
    return "".join((PREFIX, pybase64.b64encode_as_string(view[:full], altchars=b"-_"), tail))


_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# the bits the last character of unpadded base64url leaves unused, by length % 4
_UNUSED_BITS = {2: 0x0F, 3: 0x03}


def _b64url_decode(text: bytes, start: int) -> bytes:
    """Canonical base64url without padding, strictly (EnvelopeError for anything else): the
    alphabet only, no `=`, no stray bits in the last character. The body is `text[start:]`,
    ASCII, read in place (no copy): the whole part is decoded as it stands, the 2 or 3
    characters past it with the padding they need."""
    size = len(text) - start
    if size % 4 == 1 or any(text.find(c, start) >= 0 for c in (b"+", b"/", b"=")):
        raise EnvelopeError("envelope body is not base64url without padding")
    view = memoryview(text)[start:]
    full = size - size % 4
    try:
        raw = pybase64.b64decode(view[:full], altchars=b"-_", validate=True)
        if full < size:
            raw += pybase64.b64decode(
                bytes(view[full:]) + b"=" * (4 - size + full), altchars=b"-_", validate=True
            )
    except (binascii.Error, ValueError, TypeError) as exc:
        raise EnvelopeError("envelope body is not base64url without padding") from exc
    unused = _UNUSED_BITS.get(size % 4)
    if unused is not None and _B64URL_ALPHABET.index(chr(text[-1])) & unused:
        raise EnvelopeError(
            "envelope body is not canonical base64url (stray bits in the last character)"
        )
    return raw


# what str.strip() removes from ASCII text (an envelope is judged as text, read as bytes)
_ASCII_SPACE = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
_PREFIX_BYTES = PREFIX.encode("ascii")


def envelope_bytes(envelope: str | bytes) -> bytes:
    """`enc || ciphertext` of an envelope's text form; EnvelopeError for anything else.

    Bytes (what transports deliver) are read without a copy of the text, which for a file
    chunk is 700 KB: one base64 decode, and checks that are each one pass in C."""
    if isinstance(envelope, str):
        envelope = envelope.strip()  # as text: any white space around it
        if not envelope.startswith(PREFIX):
            raise EnvelopeError(
                f"an envelope starts with {PREFIX!r}",
                hint="a newer sender may use a newer envelope version: upgrade kez",
            )
        if not envelope.isascii():
            if len(envelope) > MAX_ATTACHMENT_ENVELOPE_TEXT:
                raise EnvelopeError(
                    f"envelope is longer than the largest one ({MAX_ATTACHMENT_ENVELOPE_TEXT} characters)"
                )
            raise EnvelopeError("envelope body is not base64url without padding")
        envelope = envelope.encode("ascii")
    elif isinstance(envelope, bytearray):
        envelope = bytes(envelope)
    if not isinstance(envelope, bytes) or not envelope.isascii():
        raise EnvelopeError("an envelope is ASCII text starting with kez:e1:")
    envelope = envelope.strip(_ASCII_SPACE)
    if not envelope.startswith(_PREFIX_BYTES):
        raise EnvelopeError(
            f"an envelope starts with {PREFIX!r}",
            hint="a newer sender may use a newer envelope version: upgrade kez",
        )
    if len(envelope) > MAX_ATTACHMENT_ENVELOPE_TEXT:
        raise EnvelopeError(
            f"envelope is longer than the largest one ({MAX_ATTACHMENT_ENVELOPE_TEXT} characters)"
        )
    raw = _b64url_decode(envelope, len(_PREFIX_BYTES))
    if len(raw) not in _SEALED_SIZES:
        raise EnvelopeError(f"envelope of {len(raw)} bytes does not hold a padded message")
    return raw


_B64URL_REST = re.compile(r"[A-Za-z0-9_-]*\Z")  # `^` would not match at a pos > 0
_B64URL_INDEX = {
    c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
}


def check_envelope_text(envelope: str) -> None:
    """EnvelopeError unless `envelope` is a text `envelope_bytes` accepts, with no
    surrounding white space; the bytes are not decoded.

    A server storing envelopes for others (kez-server's inbox) only needs
    the verdict: the length of the decoded bytes follows from the length of
    the text, and canonical base64url only constrains the unused low bits
    of the last character, so this is the same decision and the same
    message as `envelope_bytes` for a fraction of its cost (no decode and
    re-encode of up to 64 KiB per POST).
    """
    if not isinstance(envelope, str):
        raise EnvelopeError("an envelope is ASCII text starting with kez:e1:")
    text = envelope
    envelope = envelope.strip()  # judged as envelope_bytes judges it, then the white space
    if not envelope.startswith(PREFIX):
        raise EnvelopeError(
            f"an envelope starts with {PREFIX!r}",
            hint="a newer sender may use a newer envelope version: upgrade kez",
        )
    if len(envelope) > MAX_ENVELOPE_TEXT:
        raise EnvelopeError(
            f"envelope is longer than the largest one ({MAX_ENVELOPE_TEXT} characters)"
        )
    size = len(envelope) - len(PREFIX)
    if size % 4 == 1 or not _B64URL_REST.match(envelope, len(PREFIX)):
        raise EnvelopeError("envelope body is not base64url without padding")
    # 2 characters left over carry 1 byte (4 spare bits), 3 carry 2 bytes (2 spare bits)
    spare = {0: 0, 2: 0x0F, 3: 0x03}[size % 4]
    if spare and _B64URL_INDEX[envelope[-1]] & spare:
        raise EnvelopeError(
            "envelope body is not canonical base64url (stray bits in the last character)"
        )
    if size * 3 // 4 not in _SEALED_SIZES:
        raise EnvelopeError(f"envelope of {size * 3 // 4} bytes does not hold a padded message")
    if envelope is not text and envelope != text:
        raise EnvelopeError("an envelope has no surrounding white space")


def open_sealed(envelope: str | bytes, secrets: Sequence[InboxSecret]) -> tuple[bytes, InboxSecret]:
    """The content and the inbox secret that opened it; EnvelopeError when none of them does."""
    raw = envelope_bytes(envelope)
    for secret in secrets:
        try:
            padded = SUITE.decrypt(raw, secret.private, info=INFO)
        except (InvalidTag, ValueError):
            continue
        return unpad(padded), secret
    raise EnvelopeError(
        "envelope does not open with any of our inbox keys (not for us, or tampered with)",
        hint="if it was for an inbox key rotated away, keep that key's secret until its messages are read",
    )
