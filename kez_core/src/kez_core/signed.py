"""Signed objects: `{"kez": kind, "payload": {...}, "signature": {...}}`.

The signature covers `JCS(payload)` only; the id of an object is
`sha256(JCS(whole object))`. Parsing is strict about the envelope (unknown
top-level or signature fields are rejected, since they are not signed and
could smuggle meaning) and lenient about the payload (unknown payload fields
are signed, so they are kept byte for byte).
"""

from __future__ import annotations

import hashlib
import re
from functools import cached_property
from hashlib import sha256 as _sha256
from typing import Any

import attrs

from .errors import SchemaError, SignatureError, UnknownNameError
from .jcs import canonicalize, dumps_plain, encode_str
from .keys import Signer, _normal_key_id_cached, normal_key_id
from .registry import Registry, default_registry

PAYLOAD_VERSION = 1
_SIG_HEX = re.compile(r"^[0-9a-f]{128}\Z")
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,63}\Z")

# Which payload field names the signing key, per kind. `signature.key` must
# equal it. Kinds not listed (sigchain links) are checked by their own rules.
SIGNER_FIELDS: dict[str, str] = {
    "claim": "primary",
    "message": "sender",
    "handle_registration": "primary",
    "profile": "signer",
}


@attrs.frozen
class Signature:
    alg: str
    key: str
    sig: str

    def to_dict(self) -> dict[str, str]:
        return {"alg": self.alg, "key": self.key, "sig": self.sig}


@attrs.frozen
class SignedObject:
    """One signed KEZ object. `payload` is the exact JSON value that was signed.

    Treat `payload` as immutable: its canonical bytes are computed once and
    cached, because verifying and identifying an object both need them.
    """

    kind: str
    payload: dict[str, Any]
    signature: Signature

    def to_dict(self) -> dict[str, Any]:
        return {"kez": self.kind, "payload": self.payload, "signature": self.signature.to_dict()}

    @cached_property
    def payload_bytes(self) -> bytes:
        """JCS(payload): the bytes the signature covers."""
        return canonicalize(self.payload)

    @cached_property
    def _canonical(self) -> bytes:
        # JCS is compositional and the three top-level names sort as
        # kez < payload < signature, so the whole object's JCS is built from
        # the already-canonical payload instead of canonicalizing it again.
        return b"".join(
            (
                b'{"kez":',
                canonicalize(self.kind),
                b',"payload":',
                self.payload_bytes,
                b',"signature":',
                canonicalize(self.signature.to_dict()),
                b"}",
            )
        )

    def canonical(self) -> bytes:
        """JCS bytes of the whole object: the `json` encoding and the input of `id`."""
        return self._canonical

    @cached_property
    def id(self) -> str:
        """sha256 of the JCS of the whole object, lowercase hex."""
        return hashlib.sha256(self._canonical).hexdigest()

    @property
    def type(self) -> str:
        kind: str = self.payload["type"]
        return kind

    @classmethod
    def from_dict(cls, data: object) -> SignedObject:
        """Check the envelope shape and build the object; raises SchemaError."""
        if not isinstance(data, dict):
            raise SchemaError("a signed object must be a JSON object")
        extra = set(data) - {"kez", "payload", "signature"}
        if extra:
            raise SchemaError(
                f"unknown top-level field(s) {', '.join(sorted(map(str, extra)))}",
                hint="only kez, payload and signature are allowed; put new fields in the payload",
            )
        kind = data.get("kez")
        if not isinstance(kind, str) or not _KIND.match(kind):
            raise SchemaError("field 'kez' must name the object kind, e.g. \"claim\"")
        payload = data.get("payload")
        if not isinstance(payload, dict):
            raise SchemaError("field 'payload' must be a JSON object")
        ptype = payload.get("type")
        if ptype != f"kez.{kind}" and not _namespaced_type(ptype, kind):
            raise SchemaError(
                f"payload.type must be 'kez.{kind}' (or 'kez.<namespace>.{kind}'), got {ptype!r}"
            )
        version = payload.get("version")
        if type(version) is not int:
            raise SchemaError("payload.version must be an integer")
        if version != PAYLOAD_VERSION:
            raise SchemaError(
                f"payload.version {version} is not supported (this implementation reads {PAYLOAD_VERSION})",
                hint="upgrade kez to read newer objects",
            )
        sig = data.get("signature")
        if not isinstance(sig, dict):
            raise SchemaError("field 'signature' must be a JSON object")
        extra = set(sig) - {"alg", "key", "sig"}
        if extra:
            raise SchemaError(f"unknown signature field(s) {', '.join(sorted(map(str, extra)))}")
        alg, key, value = sig.get("alg"), sig.get("key"), sig.get("sig")
        if not isinstance(alg, str) or not isinstance(key, str) or not isinstance(value, str):
            raise SchemaError("signature.alg, signature.key and signature.sig must be strings")
        if not _SIG_HEX.match(value):
            raise SchemaError("signature.sig must be 128 lowercase hex characters")
        return cls(kind, payload, Signature(alg, key, value))


_SIG_HEX_MATCH = _SIG_HEX.match
_KIND_MATCH = _KIND.match

# Pieces of canonical text that repeat from object to object, bounded since
# they come from input: `{"kez":"<kind>","payload":` for kinds that passed
# `_KIND` (no escapes needed), `,"signature":{"alg":…,"key":…,"sig":"` per
# (alg, key), exact str keys only.
_HEADS: dict[str, bytes] = {}
_SIGNERS: dict[tuple[str, str], bytes] = {}
_BOUND = 256

_new = object.__new__
_set = object.__setattr__  # what attrs' own __init__ of a frozen class calls


def _trusted_signature(alg: str, key: str, sig: str) -> Signature:
    """`Signature(alg, key, sig)` without the generated __init__'s per-field bound setter.

    Same object: the class has no validators, converters or post-init (a test
    pins its fields, so a new one shows up there).
    """
    obj = _new(Signature)
    _set(obj, "alg", alg)
    _set(obj, "key", key)
    _set(obj, "sig", sig)
    return obj


def _trusted_object(
    kind: str,
    payload: dict[str, Any],
    alg: str,
    key: str,
    sig: str,
    payload_bytes: bytes,
    canonical: bytes,
) -> SignedObject:
    """`SignedObject(kind, payload, Signature(alg, key, sig))` with its cached
    properties' slots filled (JCS(payload), JCS(object), id), built without the
    generated __init__ (see `_trusted_signature`)."""
    obj = _new(SignedObject)
    _set(obj, "kind", kind)
    _set(obj, "payload", payload)
    _set(obj, "signature", _trusted_signature(alg, key, sig))
    _set(obj, "payload_bytes", payload_bytes)
    _set(obj, "_canonical", canonical)
    _set(obj, "id", _sha256(canonical).hexdigest())
    return obj


def object_if_canonical(data: Any, text: bytes) -> SignedObject | None:
    """`SignedObject.from_dict(data)` when `text` is exactly the object's JCS, else None.

    For decoders, on the common path: the caller vouches that `data` was parsed
    from `text` and is plain (`jcs._plain`: ASCII names, no floats, integers
    within ±(2**53 - 1)), so the C encoder writes its JCS without a walk. Only
    objects `from_dict` accepts are returned; their JCS(payload), canonical
    bytes (`text` itself) and id are kept, never computed again. None means
    "not shown here": the caller runs the strict path, which gives the
    verdict and the precise error.
    """
    if type(data) is not dict:
        return None
    try:
        kind, payload, sig = data["kez"], data["payload"], data["signature"]
        alg, key, value = sig["alg"], sig["key"], sig["sig"]
    except (KeyError, TypeError):  # missing names, a non-object signature
        return None
    if type(kind) is not str or type(payload) is not dict or type(sig) is not dict:
        return None
    if type(value) is not str or not _SIG_HEX_MATCH(value):  # then "<value>" is its JSON string
        return None
    if type(alg) is not str or type(key) is not str:
        return None
    head = _HEADS.get(kind)
    if head is None:
        if not _KIND_MATCH(kind):
            return None
        head = f'{{"kez":"{kind}","payload":'.encode("ascii")
        if len(_HEADS) < _BOUND:
            _HEADS[kind] = head
    signer = _SIGNERS.get((alg, key))
    if signer is None:
        try:
            signer = (
                f',"signature":{{"alg":{encode_str(alg)},"key":{encode_str(key)},"sig":"'.encode(
                    "ascii"
                )
            )
        except ValueError:  # non-ASCII text: not this path's
            return None
        if len(_SIGNERS) < _BOUND:
            _SIGNERS[(alg, key)] = signer
    try:
        payload_bytes = dumps_plain(payload).encode("ascii")
    except (TypeError, ValueError, RecursionError):  # non-JSON or non-ASCII values, …
        return None
    if type(text) is not bytes:
        text = bytes(text)
    # The object's JCS is head + payload_bytes + signer + value + '"}}'; `text`
    # equal to it means the object and its signature member have exactly these
    # three names each (JCS writes every name). The rest is from_dict's checks.
    if b"".join((head, payload_bytes, signer, value.encode("ascii"), b'"}}')) != text:
        return None
    version = payload.get("version")
    if type(version) is not int or version != PAYLOAD_VERSION:
        return None
    ptype = payload.get("type")
    if ptype != "kez." + kind and not _namespaced_type(ptype, kind):
        return None
    return _trusted_object(kind, payload, alg, key, value, payload_bytes, text)


# Control characters: JSON forbids them raw in strings, JCS escapes them.
_CONTROL = bytes(range(0x20))


def claim_if_canonical(text: str, raw: bytes) -> SignedObject | None:
    """The claim that `text` is, when it is the JCS of a claim with exactly the
    claim fields and strings that need no escape; else None (not shown here).

    `raw` is `text` as bytes (ASCII). Every proof a KEZ writer makes has this
    form, and for it no JSON parse is needed: the text splits at its quotes
    into the claim's skeleton and values, and rebuilding it from those values
    gives `text` back exactly when it had that form (no value holds a quote,
    a backslash or a control character, so each is its own JSON string and
    its own JCS). The object is the one `object_if_canonical(json.loads(text),
    raw)` returns; a test holds the two together.
    """
    parts = text.split('"')
    count = len(parts)
    if count == 43:
        shift, expires = 0, None
    elif count == 47:
        shift, expires = 4, parts[13]
    else:
        return None
    if "\\" in text or len(raw.translate(None, _CONTROL)) != len(raw):
        return None
    created, nonce, primary = parts[9], parts[13 + shift], parts[17 + shift]
    subject, ptype = parts[21 + shift], parts[25 + shift]
    alg, key, value = parts[33 + shift], parts[37 + shift], parts[41 + shift]
    if not _SIG_HEX_MATCH(value) or (ptype != "kez.claim" and not _namespaced_type(ptype, "claim")):
        return None
    payload_text = (
        f'{{"created_at":"{created}",'
        + ("" if expires is None else f'"expires_at":"{expires}",')
        + f'"nonce":"{nonce}","primary":"{primary}","subject":"{subject}","type":"{ptype}",'
        f'"version":{PAYLOAD_VERSION}}}'
    )
    if (
        f'{{"kez":"claim","payload":{payload_text},"signature":{{"alg":"{alg}","key":"{key}","sig":"{value}"}}}}'
        != text
    ):
        return None
    # the names in text order, as a JSON parse inserts them
    if expires is None:
        payload = {
            "created_at": created,
            "nonce": nonce,
            "primary": primary,
            "subject": subject,
            "type": ptype,
            "version": PAYLOAD_VERSION,
        }
    else:
        payload = {
            "created_at": created,
            "expires_at": expires,
            "nonce": nonce,
            "primary": primary,
            "subject": subject,
            "type": ptype,
            "version": PAYLOAD_VERSION,
        }
    return _trusted_object("claim", payload, alg, key, value, payload_text.encode("ascii"), raw)


def _namespaced_type(ptype: object, kind: str) -> bool:
    """True for `kez.<namespace>.<kind>`: the seeds' `kez.chat.handle_registration` form."""
    if not isinstance(ptype, str) or not ptype.startswith("kez.") or not ptype.endswith("." + kind):
        return False
    namespace = ptype[4 : -len(kind) - 1]
    return bool(_KIND.match(namespace))


def sign(
    kind: str, payload: dict[str, Any], signer: Signer, *, namespace: str | None = None
) -> SignedObject:
    """Sign `payload` as an object of `kind` (`type` and `version` are filled in).

    `namespace` gives the type `kez.<namespace>.<kind>` that an application
    layer uses for its own objects (the chat server's `kez.chat.handle_registration`).
    """
    type_name = f"kez.{namespace}.{kind}" if namespace else f"kez.{kind}"
    body = {"type": type_name, "version": PAYLOAD_VERSION, **payload}
    payload_bytes = canonicalize(body)
    signature = signer.sign(payload_bytes)
    obj = SignedObject(
        kind, body, Signature(signer.alg.signature_alg, signer.key_id, signature.hex())
    )
    _set(obj, "payload_bytes", payload_bytes)  # just computed: the id needs it again
    return obj


def verify_signature(obj: SignedObject, registry: Registry | None = None) -> None:
    """Raise SignatureError unless the signature verifies and the key is the declared signer."""
    registry = registry or default_registry()
    sig = obj.signature
    value = sig.sig
    try:
        # bytes.fromhex alone would accept spaces and upper case: one signature, one
        # spelling. Reading back the same text is `_SIG_HEX` without a second pass.
        raw = bytes.fromhex(value)
    except (TypeError, ValueError):
        raw = None
    if raw is None or len(raw) != 64 or raw.hex() != value:
        raise SignatureError("signature.sig must be 128 lowercase hex characters")
    try:
        alg = registry.key_algorithm_for_signature(sig.alg)
    except UnknownNameError as exc:
        raise SignatureError(exc.message, hint=exc.hint) from exc
    key_text = sig.key
    # normal_key_id, its cached core called directly for the texts it would pass to it
    key = (
        _normal_key_id_cached(key_text, registry)
        if isinstance(key_text, str) and len(key_text) < 200
        else normal_key_id(key_text, registry)
    )
    if key is None or key.alg != alg.name:
        raise SignatureError(
            f"signature.key {sig.key[:80]!r} is not a normal-form {alg.name} key for alg {sig.alg}"
        )
    field = SIGNER_FIELDS.get(obj.kind)
    if field is not None and obj.payload.get(field) != sig.key:
        raise SignatureError(
            f"signature.key does not equal payload.{field}: the object was signed by another key"
        )
    if not alg.verify(key.public, obj.payload_bytes, raw):
        raise SignatureError(
            "the signature does not verify: the payload was changed or the key is wrong"
        )
