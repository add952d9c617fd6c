"""Plaintext padding to size buckets, so an envelope's length says little about its message.

Buckets are powers of two from 1 KiB (a signed message is about 800 bytes
before its body, so a smaller bucket would never be used) to 128 KiB (an
80 KB inline file, base64 in a signed message) for a message alone, and on
to 512 KiB for a message with an attachment (a file chunk: transports that
carry larger envelopes, NATS, take fewer, larger chunks). Padding is ISO/IEC 7816-4:
one 0x80 byte, then zeros. It is unambiguous for any content and cheap to
check; the padded length is always exactly a bucket, so anything else is a
forged or damaged plaintext.
"""

from __future__ import annotations

from .errors import EnvelopeError, MessageTooLarge

MIN_BUCKET = 1024
MESSAGE_MAX_BUCKET = 128 * 1024  # the largest a message without an attachment fills
MAX_BUCKET = 512 * 1024  # the largest of all: only attachments reach past MESSAGE_MAX_BUCKET
BUCKETS: tuple[int, ...] = tuple(
    MIN_BUCKET << i for i in range((MAX_BUCKET // MIN_BUCKET).bit_length())
)
MAX_CONTENT = MAX_BUCKET - 1  # the marker byte needs one
MESSAGE_MAX_CONTENT = MESSAGE_MAX_BUCKET - 1  # a message's JSON, attachment aside


def bucket_for(size: int) -> int:
    """The padded length for `size` content bytes (content plus the 0x80 marker)."""
    need = size + 1
    for bucket in BUCKETS:
        if need <= bucket:
            return bucket
    raise MessageTooLarge(
        f"message is {size} bytes; one message holds at most {MAX_CONTENT}",
        hint="send larger files in chunks",
    )


def pad(content: bytes, *more: bytes | memoryview) -> bytes:
    """`content` (and `more` parts after it) padded to its bucket, built in one copy."""
    size = len(content) + sum(len(part) for part in more)
    bucket = bucket_for(size)
    return b"".join((content, *more, b"\x80", bytes(bucket - size - 1)))


def unpad(padded: bytes) -> bytes:
    """The content of a padded plaintext; EnvelopeError when it is not one."""
    if len(padded) not in BUCKETS:
        raise EnvelopeError(f"plaintext of {len(padded)} bytes is not a padding bucket size")
    end = len(padded.rstrip(b"\x00"))
    if end == 0 or padded[end - 1] != 0x80:
        raise EnvelopeError("plaintext padding is malformed (no 0x80 marker after the content)")
    return padded[: end - 1]
