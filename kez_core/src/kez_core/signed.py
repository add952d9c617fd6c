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
from typing import Any

import attrs

from .errors import SchemaError, SignatureError, UnknownNameError
from .jcs import canonicalize, dumps_plain, encode_str
from .keys import Signer, normal_key_id
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
        return self.payload["type"]

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


def object_if_canonical(data: Any, text: bytes) -> SignedObject | None:
    """`SignedObject.from_dict(data)` when `text` is exactly the object's JCS, else None.

    For decoders, on the common path: the caller vouches that `data` was parsed
    from `text` and is plain (`jcs._plain`: ASCII names, no floats, integers
    within ±(2**53 - 1)), so the C encoder writes its JCS without a walk. Only
    objects `from_dict` accepts are returned; their JCS(payload), canonical
    bytes and id are kept, never computed again. None means "not shown here":
    the caller runs the strict path, which gives the verdict and the precise
    error.
    """
    if type(data) is not dict:
        return None
    try:
        kind, payload, sig = data["kez"], data["payload"], data["signature"]
        alg, key, value = sig["alg"], sig["key"], sig["sig"]
        payload_bytes = dumps_plain(payload).encode("ascii")
        canonical = b"".join(
            (
                f'{{"kez":{encode_str(kind)},"payload":'.encode("ascii"),
                payload_bytes,
                f',"signature":{{"alg":{encode_str(alg)},"key":{encode_str(key)},"sig":'
                f"{encode_str(value)}}}}}".encode("ascii"),
            )
        )
    except (KeyError, TypeError, ValueError, RecursionError):  # missing names, non-str, non-dict, …
        return None
    # Equal bytes mean the object and its signature member have exactly these
    # three names each (JCS writes every name), and kind, alg, key and sig are
    # strings (encode_str takes nothing else). The rest is from_dict's checks.
    if (
        canonical != text
        or type(payload) is not dict
        or type(sig) is not dict
        or not _KIND_MATCH(kind)
        or not _SIG_HEX_MATCH(value)
    ):
        return None
    version = payload.get("version")
    if type(version) is not int or version != PAYLOAD_VERSION:
        return None
    ptype = payload.get("type")
    if ptype != "kez." + kind and not _namespaced_type(ptype, kind):
        return None
    obj = SignedObject(kind, payload, Signature(alg, key, value))
    setattr_ = object.__setattr__  # the cached properties' slots
    setattr_(obj, "payload_bytes", payload_bytes)
    setattr_(obj, "_canonical", canonical)
    setattr_(obj, "id", hashlib.sha256(canonical).hexdigest())
    return obj


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
    signature = signer.sign(canonicalize(body))
    return SignedObject(kind, body, Signature(signer.alg.signature_alg, signer.key_id, signature.hex()))


def verify_signature(obj: SignedObject, registry: Registry | None = None) -> None:
    """Raise SignatureError unless the signature verifies and the key is the declared signer."""
    registry = registry or default_registry()
    sig = obj.signature
    value = sig.sig
    if not isinstance(value, str) or not _SIG_HEX_MATCH(value):
        # bytes.fromhex would accept spaces and upper case: one signature, one spelling
        raise SignatureError("signature.sig must be 128 lowercase hex characters")
    try:
        alg = registry.key_algorithm_for_signature(sig.alg)
    except UnknownNameError as exc:
        raise SignatureError(exc.message, hint=exc.hint) from exc
    key = normal_key_id(sig.key, registry)
    if key is None or key.alg != alg.name:
        raise SignatureError(
            f"signature.key {sig.key[:80]!r} is not a normal-form {alg.name} key for alg {sig.alg}"
        )
    field = SIGNER_FIELDS.get(obj.kind)
    if field is not None and obj.payload.get(field) != sig.key:
        raise SignatureError(
            f"signature.key does not equal payload.{field}: the object was signed by another key"
        )
    if not alg.verify(key.public, obj.payload_bytes, bytes.fromhex(value)):
        raise SignatureError("the signature does not verify: the payload was changed or the key is wrong")
