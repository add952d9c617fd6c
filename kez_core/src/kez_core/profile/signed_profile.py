"""The signed profile object (`kez: "profile"`, docs/spec.md §12).

A profile is a display name, an about text and a picture reference, signed by
the identity's current primary or one of its devices. kez-server stores it
beside the handle; readers check it against the identity's chain, like a
claim, so neither the server nor a relay can put words in someone's mouth.
The picture itself is not inside: `picture_sha256` (of the published PNG
bytes) pins it, so a swapped or damaged picture file is detected.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import KezError, SchemaError, SignatureError
from ..keys import Signer, normalize_key_id
from ..registry import Registry, default_registry
from ..signed import SignedObject, sign, verify_signature
from ..timefmt import format_time, now, parse_time

if TYPE_CHECKING:  # pragma: no cover
    from ..sigchain.model import ChainState

KIND = "profile"
MAX_NAME = 100  # characters
MAX_ABOUT = 2000
MAX_PICTURE_REF = 2000
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")


class PictureMismatch(KezError):
    """The picture file is not the one the signed profile names (its SHA-256 differs)."""

    code = "picture_mismatch"


@attrs.frozen
class Profile:
    """A profile's fields, read from a signed object whose shape was checked."""

    signed: SignedObject
    identity: str
    signer: str
    name: str
    about: str
    picture: str | None  # URL, with `#kez-visual-v1:<salt hex>` when scrambled
    picture_sha256: str | None
    updated_at: datetime

    def to_json(self) -> dict[str, object]:
        return {
            "identity": self.identity,
            "signer": self.signer,
            "name": self.name,
            "about": self.about,
            "picture": self.picture,
            "picture_sha256": self.picture_sha256,
            "updated_at": format_time(self.updated_at),
        }


def create_profile(
    signer: Signer,
    identity: str,
    *,
    name: str = "",
    about: str = "",
    picture: str | None = None,
    picture_sha256: str | None = None,
    updated_at: datetime | None = None,
) -> SignedObject:
    """Sign a profile of `identity` with `signer` (its primary or a device key)."""
    payload: dict[str, object] = {
        "identity": identity,
        "signer": signer.key_id,
        "name": name,
        "about": about,
        "updated_at": format_time((updated_at or now()).replace(microsecond=0)),
    }
    if picture is not None:
        payload["picture"] = picture
        payload["picture_sha256"] = picture_sha256
    obj = sign(KIND, payload, signer)
    read_profile(obj)  # refuse to sign what readers would refuse
    return obj


def _text(payload: dict[str, Any], field: str, cap: int) -> str:
    value = payload.get(field, "")
    if not isinstance(value, str):
        raise SchemaError(f"profile {field} must be a string")
    if len(value) > cap:
        raise SchemaError(f"profile {field} is {len(value)} characters, more than {cap}")
    return value


def read_profile(obj: SignedObject, registry: Registry | None = None) -> Profile:
    """Check that `obj` is a well-formed profile and return its fields (no signature check)."""
    registry = registry or default_registry()
    if obj.kind != KIND:
        raise SchemaError(f"expected a profile, got a {obj.kind!r} object")
    p = obj.payload
    keys = {}
    for field in ("identity", "signer"):
        value = p.get(field)
        if (
            not isinstance(value, str)
            or len(value) > 200
            or normalize_key_id(value, registry) != value
        ):
            raise SchemaError(
                f"profile {field} must be a key id in normal form (alg:<lowercase hex>)"
            )
        keys[field] = value
    name = _text(p, "name", MAX_NAME)
    about = _text(p, "about", MAX_ABOUT)
    picture = p.get("picture")
    digest = p.get("picture_sha256")
    if picture is None:
        if digest is not None:
            raise SchemaError("profile picture_sha256 without a picture")
    else:
        if not isinstance(picture, str) or not 0 < len(picture) <= MAX_PICTURE_REF:
            raise SchemaError(
                f"profile picture must be a URL of at most {MAX_PICTURE_REF} characters"
            )
        if not picture.startswith(("https://", "http://")):
            raise SchemaError("profile picture must be an http(s) URL")
        if not isinstance(digest, str) or not _HEX64.match(digest):
            raise SchemaError("profile picture_sha256 must be 64 lowercase hex characters")
        from .visual import split_reference

        try:
            split_reference(picture)  # a kez-visual-v1 fragment must be well-formed
        except KezError as exc:
            raise SchemaError(f"profile {exc.message}") from None
    updated = parse_time(p.get("updated_at"), field="updated_at")
    return Profile(obj, keys["identity"], keys["signer"], name, about, picture, digest, updated)


def check_profile(
    obj: SignedObject, state: ChainState, registry: Registry | None = None
) -> Profile:
    """The profile, when it is well formed, its signature verifies and `state` (the
    identity's chain) says its signer is the current primary or an active device.

    Raises SchemaError or SignatureError otherwise.
    """
    registry = registry or default_registry()
    profile = read_profile(obj, registry)
    if profile.identity != state.identity_id:
        raise SignatureError(
            f"the profile is of identity {profile.identity}, not of {state.identity_id}"
        )
    role = state.role_of(profile.signer)
    if role not in ("primary", "device"):
        raise SignatureError(
            f"the profile is signed by {profile.signer}, which is not the identity's current "
            "primary or an active device",
            hint="sign the profile again with the current primary or a device key",
        )
    verify_signature(obj, registry)
    return profile


def check_picture(profile: Profile, data: bytes) -> None:
    """PictureMismatch unless `data` is the picture file the profile signed."""
    import hashlib

    if profile.picture_sha256 is None:
        raise PictureMismatch("the profile names no picture")
    got = hashlib.sha256(data).hexdigest()
    if got != profile.picture_sha256:
        raise PictureMismatch(
            f"the picture file has SHA-256 {got[:16]}…, the signed profile names "
            f"{profile.picture_sha256[:16]}…: it was changed or damaged",
        )
