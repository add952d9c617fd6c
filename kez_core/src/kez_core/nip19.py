"""NIP-19 bech32 entities: npub, nsec, note, nprofile, nevent, naddr, ncryptsec.

The bech32 checksum and base conversion come from the `bech32` reference
library; this module only knows NIP-19's human-readable parts and its TLV
layout. Every malformed input raises `KeyFormatError`, never a library
exception or an endless loop.
"""

from __future__ import annotations

from typing import Any

import attrs
import bech32 as _bech32

from .errors import KeyFormatError

_BARE_32 = {"npub", "nsec", "note"}
_TLV_KINDS = {"nprofile", "nevent", "naddr"}
_MAX_LEN = 5000  # NIP-19 TLV entities can exceed BIP-173's 90 chars; still, bound the work

TLV_SPECIAL = 0
TLV_RELAY = 1
TLV_AUTHOR = 2
TLV_KIND = 3


@attrs.frozen
class Entity:
    """A decoded NIP-19 entity. `data` is bytes for bare entities, else a dict."""

    hrp: str
    data: Any


def _decode_raw(text: str) -> tuple[str, bytes]:
    if not isinstance(text, str):
        raise KeyFormatError("a NIP-19 entity must be text")
    text = text.strip()
    if text.startswith("nostr:"):  # NIP-21 URI form
        text = text[len("nostr:") :]
    return bech32_check(text)


def bech32_check(text: str) -> tuple[str, bytes]:
    """Check a Bech32 (BIP-173, not Bech32m) string; return its lowercase hrp and 8-bit payload.

    Follows BIP-173 (printable ASCII 33..126, one case, non-empty hrp, the
    last `1` as separator, at least 6 checksum characters from the charset,
    a valid checksum, zero padding) except for its length caps: like nostr's
    decoders, neither the 90-character total nor the 83-character hrp cap is
    applied, since nprofile/nevent/naddr are longer. The length is bounded
    by `_MAX_LEN` instead. The checksum and base conversion are the `bech32`
    library's. Raises `KeyFormatError`; the text is not stripped.
    """
    if not isinstance(text, str):
        raise KeyFormatError("a bech32 string must be text")
    if len(text) > _MAX_LEN:
        raise KeyFormatError(
            f"bech32 string is too long ({len(text)} characters, at most {_MAX_LEN})"
        )
    # `bech32.bech32_decode` also refuses an hrp longer than 83 characters, so the
    # (cap-free) string checks are here and only the checksum is delegated.
    if any(not 33 <= ord(c) <= 126 for c in text):
        raise KeyFormatError(f"{_short(text)} is not valid bech32 (character out of range)")
    if text.lower() != text and text.upper() != text:
        raise KeyFormatError(f"{_short(text)} is not valid bech32 (mixed case)")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise KeyFormatError(
            f"{_short(text)} is not valid bech32 (no hrp, no separator or too short)"
        )
    hrp, rest = text[:pos], text[pos + 1 :]
    if any(c not in _bech32.CHARSET for c in rest):
        raise KeyFormatError(f"{_short(text)} is not valid bech32 (invalid data character)")
    data = [_bech32.CHARSET.find(c) for c in rest]
    if not _bech32.bech32_verify_checksum(hrp, data):
        raise KeyFormatError(f"{_short(text)} is not valid bech32 (bad checksum)")
    raw = _bech32.convertbits(data[:-6], 5, 8, False)
    if raw is None:
        raise KeyFormatError(f"{_short(text)} has invalid bech32 padding")
    return hrp, bytes(raw)


def _short(text: str) -> str:
    return repr(text if len(text) <= 24 else text[:20] + "…")


def encode_bytes(hrp: str, payload: bytes) -> str:
    """bech32-encode raw bytes under a human-readable part (no length cap)."""
    data = _bech32.convertbits(payload, 8, 5, True)
    assert data is not None
    return _bech32.bech32_encode(hrp, data)


def encode(hrp: str, value: bytes | dict[str, Any]) -> str:
    """Encode npub/nsec/note (32 bytes), ncryptsec (bytes) or a TLV entity (dict)."""
    if hrp in _BARE_32:
        if not isinstance(value, bytes | bytearray) or len(value) != 32:
            raise KeyFormatError(f"{hrp} needs exactly 32 bytes")
        return encode_bytes(hrp, bytes(value))
    if hrp == "ncryptsec":
        if not isinstance(value, bytes | bytearray):
            raise KeyFormatError("ncryptsec needs bytes")
        return encode_bytes(hrp, bytes(value))
    if hrp in _TLV_KINDS and isinstance(value, dict):
        return encode_bytes(hrp, _encode_tlv(hrp, value))
    raise KeyFormatError(f"unknown NIP-19 prefix {hrp!r}")


def decode(text: str) -> Entity:
    """Decode any NIP-19 entity; the result's `hrp` says which."""
    hrp, raw = _decode_raw(text)
    if hrp in _BARE_32:
        if len(raw) != 32:
            raise KeyFormatError(f"{hrp} must hold 32 bytes, this one holds {len(raw)}")
        return Entity(hrp, raw)
    if hrp == "ncryptsec":
        return Entity(hrp, raw)
    if hrp in _TLV_KINDS:
        return Entity(hrp, _decode_tlv(hrp, raw))
    raise KeyFormatError(f"unknown NIP-19 prefix {hrp!r}")


def decode_expect(text: str, hrp: str) -> bytes:
    """Decode a bare 32-byte entity and insist on its kind (e.g. `npub`)."""
    entity = decode(text)
    if entity.hrp != hrp:
        raise KeyFormatError(f"expected {hrp}…, got {entity.hrp}…")
    if not isinstance(entity.data, bytes):  # `hrp` names an entity with fields (nprofile, …)
        raise KeyFormatError(f"{hrp}… is not a bare 32-byte entity")
    return entity.data


def _decode_tlv(hrp: str, raw: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {"relays": []}
    i = 0
    while i < len(raw):
        if i + 2 > len(raw):
            raise KeyFormatError(f"{hrp}: truncated TLV header at byte {i}")
        t, length = raw[i], raw[i + 1]
        value = raw[i + 2 : i + 2 + length]
        if len(value) != length:
            raise KeyFormatError(f"{hrp}: TLV item {t} claims {length} bytes, {len(value)} remain")
        i += 2 + length
        if t == TLV_SPECIAL:
            if hrp == "naddr":
                out["identifier"] = _utf8(value, hrp)
            else:
                if length != 32:
                    raise KeyFormatError(f"{hrp}: special TLV must be 32 bytes, got {length}")
                out["pubkey" if hrp == "nprofile" else "id"] = value.hex()
        elif t == TLV_RELAY:
            out["relays"].append(_utf8(value, hrp))
        elif t == TLV_AUTHOR:
            # A malformed author (not 32 bytes) is treated as absent, as rust-nostr does.
            if length == 32:
                out["author" if hrp != "naddr" else "pubkey"] = value.hex()
        elif t == TLV_KIND:
            if length != 4:
                raise KeyFormatError(f"{hrp}: kind TLV must be 4 bytes, got {length}")
            out["kind"] = int.from_bytes(value, "big")
        # unknown TLV types are ignored, as NIP-19 requires
    required = {"nprofile": "pubkey", "nevent": "id", "naddr": "identifier"}[hrp]
    if required not in out:
        raise KeyFormatError(f"{hrp}: required TLV item ({required}) is missing")
    if hrp == "naddr" and ("pubkey" not in out or "kind" not in out):
        raise KeyFormatError("naddr: author and kind are required")
    return out


def _encode_tlv(hrp: str, value: dict[str, Any]) -> bytes:
    parts = bytearray()

    def put(t: int, data: bytes) -> None:
        if len(data) > 255:
            raise KeyFormatError(f"{hrp}: TLV value longer than 255 bytes")
        parts.extend((t, len(data)))
        parts.extend(data)

    if hrp == "naddr":
        put(TLV_SPECIAL, str(value["identifier"]).encode())
    else:
        put(TLV_SPECIAL, bytes.fromhex(value["pubkey" if hrp == "nprofile" else "id"]))
    for relay in value.get("relays", []):
        put(TLV_RELAY, relay.encode())
    author = value.get("pubkey") if hrp == "naddr" else value.get("author")
    if author:
        put(TLV_AUTHOR, bytes.fromhex(author))
    if value.get("kind") is not None:
        put(TLV_KIND, int(value["kind"]).to_bytes(4, "big"))
    return bytes(parts)


def _utf8(value: bytes, hrp: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise KeyFormatError(f"{hrp}: TLV text is not UTF-8") from exc
