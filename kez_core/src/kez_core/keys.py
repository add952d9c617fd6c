"""Key ids (`ed25519:<hex>`, `nostr:<hex>`) and in-memory signers.

A key id names its algorithm by prefix; the prefix is looked up in the
Registry, so a key-algorithm plugin adds a prefix without touching this
module. `npub1…` is accepted on input and normalised to `nostr:<hex>`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, partial

import attrs

from .errors import KeyFormatError, UnknownNameError
from .protocols import KeyAlgorithm
from .registry import Registry, default_registry


@attrs.frozen
class KeyId:
    """A parsed key id: algorithm prefix and public key bytes."""

    alg: str
    public: bytes

    def __str__(self) -> str:
        return f"{self.alg}:{self.public.hex()}"


def parse_key_id(text: object, registry: Registry | None = None) -> KeyId:
    """Parse `alg:<hex>` or `npub1…`; raise KeyFormatError for anything else."""
    registry = registry or default_registry()
    if isinstance(text, str) and len(text) < 200:
        return _parse_key_id_cached(text, registry)
    return _parse_key_id(text, registry)


@lru_cache(maxsize=8192)
def _parse_key_id_cached(text: str, registry: Registry) -> KeyId:
    # Identities sign many objects with one key: parsing (and curve-checking)
    # its id once per registry saves real time when verifying in bulk.
    return _parse_key_id(text, registry)


def _parse_key_id(text: object, registry: Registry) -> KeyId:
    if not isinstance(text, str) or not text:
        raise KeyFormatError("a key id must be text like ed25519:<64 hex> or nostr:<64 hex>")
    text = text.strip()
    if text.startswith("npub1"):
        alg_name, rest = "nostr", text
    else:
        alg_name, sep, rest = text.partition(":")
        if not sep:
            raise KeyFormatError(
                f"key id {text[:40]!r} has no algorithm prefix",
                hint="write it as ed25519:<64 hex>, nostr:<64 hex> or npub1…",
            )
    try:
        alg = registry.key_algorithm(alg_name)
    except UnknownNameError as exc:
        raise KeyFormatError(f"key id {text[:40]!r}: {exc.message}", hint=exc.hint) from exc
    return KeyId(alg.name, alg.parse_public(rest))


def normalize_key_id(text: str, registry: Registry | None = None) -> str:
    """The canonical text of a key id (`npub1…` becomes `nostr:<hex>`)."""
    registry = registry or default_registry()
    if isinstance(text, str) and len(text) < 200:
        return _normalize_key_id_cached(text, registry)
    return str(_parse_key_id(text, registry))


@lru_cache(maxsize=8192)
def _normalize_key_id_cached(text: str, registry: Registry) -> str:
    return str(_parse_key_id_cached(text, registry))


def normal_key_id(text: object, registry: Registry) -> KeyId | None:
    """`parse_key_id(text)` when `text` is already in normal form, None when it parses but is
    spelled otherwise (upper case, `npub1…`); raises KeyFormatError like `parse_key_id`."""
    if isinstance(text, str) and len(text) < 200:
        return _normal_key_id_cached(text, registry)
    key = _parse_key_id(text, registry)
    return key if str(key) == text else None


@lru_cache(maxsize=8192)
def _normal_key_id_cached(text: str, registry: Registry) -> KeyId | None:
    key = _parse_key_id_cached(text, registry)
    return key if str(key) == text else None


@attrs.frozen(repr=False)
class Signer:
    """A secret key in memory with its algorithm and key id. Never printed."""

    alg: KeyAlgorithm
    secret: bytes
    # Deriving the public key from the secret costs as much as a signature
    # (~55 µs for Ed25519), and signing a message or a link asks for the key id
    # several times: derived once, on first use (a bad secret still fails there).
    _key_id: str | None = attrs.field(default=None, init=False, eq=False)
    # Parsing the secret into the library's key object costs as much as a signature
    # (~75 us for Ed25519): an algorithm offering `signing_function(secret)` is asked
    # once, on first use, and the parsed key lives here, next to the secret it is
    # made of (never in a module-level cache).
    _sign_fn: Callable[[bytes], bytes] | None = attrs.field(
        default=None, init=False, eq=False, repr=False
    )

    @property
    def key_id(self) -> str:
        key_id = self._key_id
        if key_id is None:
            key_id = f"{self.alg.name}:{self.alg.format_public(self.alg.public_from_secret(self.secret))}"
            object.__setattr__(self, "_key_id", key_id)
        return key_id

    def sign(self, message: bytes) -> bytes:
        sign = self._sign_fn
        if sign is None:
            make = getattr(self.alg, "signing_function", None)
            sign = make(self.secret) if make is not None else partial(self.alg.sign, self.secret)
            object.__setattr__(self, "_sign_fn", sign)
        return sign(message)

    def __getstate__(self) -> dict[str, object]:
        # the parsed key object does not pickle; it is made again on first use
        return {"alg": self.alg, "secret": self.secret, "_key_id": self._key_id, "_sign_fn": None}

    def __setstate__(self, state: dict[str, object]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        return f"Signer({self.key_id})"

    @classmethod
    def generate(cls, alg_name: str = "ed25519", registry: Registry | None = None) -> Signer:
        alg = (registry or default_registry()).key_algorithm(alg_name)
        return cls(alg, alg.generate_secret())
