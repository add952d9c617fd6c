"""Encode and decode signed objects through the registered encodings.

`decode_any` is what every reader uses: it asks each encoding (in priority
order) whether the text looks like its form and decodes with the first that
says yes; when none does it still finds compact tokens embedded in prose,
which is how proofs in profile fields and posts are read.
"""

from __future__ import annotations

import attrs

from .builtins.encodings import CompactEncoding, JsonEncoding, MarkdownEncoding, decode_block
from .codec import COMPACT_PREFIX, COMPACT_TOKEN, check_text, compact_decode, compact_decode_plain
from .errors import DecodeError, KezError
from .protocols import Encoding
from .registry import Registry, default_registry
from .signed import SignedObject


def encode(obj: SignedObject, encoding: str = "json", registry: Registry | None = None) -> str:
    return (registry or default_registry()).encoding(encoding).encode(obj)


def detect(text: str, registry: Registry | None = None) -> str | None:
    """The name of the encoding `text` looks like, or None."""
    enc = _detect(text, registry or default_registry())
    return None if enc is None else enc.name


def _detect(text: str, registry: Registry) -> Encoding | None:
    for enc in registry._detection_order():
        try:
            if enc.detect(text):
                return enc
        except Exception:  # noqa: BLE001 - a detector must not take decoding down
            continue
    return None


def _compact_leads(order: list[Encoding]) -> bool:
    """True when the built-in compact encoding is the first whose detector can say yes
    to text that starts with `kez:z1:`: it leads the order, or follows only the
    built-in json encoding (whose detector wants a `{`)."""
    if not order:
        return False
    first: type[object] = type(order[0])
    return first is CompactEncoding or (
        first is JsonEncoding and len(order) > 1 and type(order[1]) is CompactEncoding
    )


@attrs.frozen
class Candidate:
    """One place in a text that should hold a KEZ object: what it decoded to, or why not."""

    where: str  # e.g. "compact", "```kez block 2", "token 3"
    obj: SignedObject | None = None
    error: KezError | None = None


def decode_candidates(text: str | bytes, registry: Registry | None = None) -> list[Candidate]:
    """Every candidate in `text`, each decoded on its own (issue 13: one broken block or
    token must not hide a valid proof beside it).

    ```kez blocks and compact tokens in prose are one candidate each; any
    other form (json, compact, dns, a plugin's) is one candidate holding what
    its encoding decodes. DecodeError only when the text as a whole cannot be
    read (not text, too large) or holds no candidate at all.
    """
    registry = registry or default_registry()
    text = check_text(text)
    enc = _detect(text, registry)  # indexes the encodings only: no channel or transport is built
    if enc is not None:
        if isinstance(enc, MarkdownEncoding):
            return [
                _one(f"```kez block {i}", decode_block, body)
                for i, body in enumerate(enc.blocks(text), 1)
            ]
        try:
            return [Candidate(enc.name, obj) for obj in enc.decode(text)]
        except KezError as exc:
            return [Candidate(enc.name, error=exc)]
    tokens = COMPACT_TOKEN.findall(text)
    if not tokens:
        raise DecodeError(
            "input is not a KEZ object in any known encoding",
            hint="expected JSON, kez:z1:…, a ```kez fenced block or a DNS TXT record",
        )
    return [_one(f"token {i}", compact_decode, token) for i, token in enumerate(tokens, 1)]


def _one(where: str, decode, part: str) -> Candidate:  # type: ignore[no-untyped-def]
    try:
        return Candidate(where, decode(part))
    except KezError as exc:
        return Candidate(where, error=exc)


def decode_any(text: str | bytes, registry: Registry | None = None) -> list[SignedObject]:
    """Every signed object in `text`, whatever its encoding. Raises DecodeError when any
    part fails (see `decode_candidates` to judge each part on its own)."""
    registry = registry or default_registry()
    text = check_text(text)
    order = (
        registry._detection_order()
    )  # indexes the encodings only: no channel or transport is built
    if text.startswith(COMPACT_PREFIX) and _compact_leads(order):
        # One compact token, the form of nearly every proof: what detection
        # would pick (see `_compact_leads`) without asking each detector.
        obj = compact_decode_plain(text)
        if obj is not None:
            return [obj]
    for enc in order:  # _detect, inlined: every reader comes here
        try:
            found = enc.detect(text)
        except Exception:  # noqa: BLE001 - a detector must not take decoding down
            continue
        if found:
            return enc.decode(text)
    tokens = COMPACT_TOKEN.findall(text)
    if not tokens:
        raise DecodeError(
            "input is not a KEZ object in any known encoding",
            hint="expected JSON, kez:z1:…, a ```kez fenced block or a DNS TXT record",
        )
    return [compact_decode(token) for token in tokens]
