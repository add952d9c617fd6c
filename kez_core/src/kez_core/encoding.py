"""Encode and decode signed objects through the registered encodings.

`decode_any` is what every reader uses: it asks each encoding (in priority
order) whether the text looks like its form and decodes with the first that
says yes; when none does it still finds compact tokens embedded in prose,
which is how proofs in profile fields and posts are read.
"""

from __future__ import annotations

from .codec import COMPACT_TOKEN, check_text, compact_decode
from .errors import DecodeError
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


def decode_any(text: str | bytes, registry: Registry | None = None) -> list[SignedObject]:
    """Every signed object in `text`, whatever its encoding. Raises DecodeError."""
    registry = registry or default_registry()
    text = check_text(text)
    registry.load()
    for enc in registry._encodings_in_order:  # _detect, inlined: every reader comes here
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
