"""Publishing and reading profiles: what `kez profile set/show/preview` (and a UI) call.

One place decides what a profile means: `make_publication` scrambles the
picture under a fresh key and signs the profile naming its hash;
`read_peer_profile` fetches a handle's profile, picture and chain from its
kez-server, checks the profile against the chain and the picture against the
profile, and opens the picture when a key for it was received. HTTP goes
through httpx, imported inside the functions (kez-core does not depend on it).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import attrs

from ..errors import DecodeError, ExitCode, KezError, StoreError
from ..keys import Signer
from ..keystore import atomic_write
from ..signed import SignedObject
from ..timefmt import format_time, now
from . import visual
from .keys import ProfileKey, ProfileKeyStore, profile_key_body
from .signed_profile import Profile, check_picture, check_profile, create_profile

CACHE_MAX_AGE = 6 * 3600  # seconds: a cached peer profile is fetched again after this
OWN_DIR = "profile"


class ProfileServerError(KezError):
    """The kez-server could not be reached, or answered something unusable."""

    exit_code = ExitCode.NETWORK
    code = "server_unreachable"


class ProfileRefused(KezError):
    """The server refused what was published, or what it serves does not verify."""

    exit_code = ExitCode.NOT_VALID
    code = "profile_refused"


def picture_url(base: str, handle: str) -> str:
    return f"{base.rstrip('/')}/v1/u/{handle}/picture"


@attrs.frozen
class Publication:
    """A signed profile and the picture files that go with it."""

    profile: SignedObject
    published_png: bytes | None  # what the server serves (noise unless public)
    plain_png: bytes | None  # what contacts see
    key: bytes | None  # None: no picture, or a public one

    def key_body(self, identity: str) -> dict[str, Any] | None:
        """The `profile_key` message body for contacts and own devices (None: nothing to send)."""
        if self.key is None or self.published_png is None:
            return None
        return profile_key_body(identity, self.key, hashlib.sha256(self.published_png).hexdigest())


def make_publication(
    signer: Signer,
    identity: str,
    base: str,
    handle: str,
    *,
    name: str,
    about: str,
    picture: bytes | None = None,
    public: bool = False,
    keep: OwnProfile | None = None,
) -> Publication:
    """Sign a profile; `picture` is a picture file (any format Pillow reads), resized to
    256x256 and scrambled under a new key unless `public`. Without `picture`, the
    picture of `keep` (the last publication) stays, with its key."""
    url = picture_url(base, handle)
    key: bytes | None
    plain: bytes | None
    published: bytes | None
    ref: str | None
    if picture is not None:
        image = visual.prepare_picture(picture)
        plain = visual.encode_png(image)
        if public:
            key, published, ref = None, plain, url
        else:
            key, salt = visual.new_key(), visual.new_salt()
            published, ref = visual.scramble_png(image, key, salt), url + visual.fragment(salt)
    elif keep is not None and keep.published_png is not None and keep.picture:
        key, plain, published = keep.key, keep.plain_png, keep.published_png
        ref = url + keep.picture[len(visual.split_reference(keep.picture)[0]) :]
    else:
        key = plain = published = ref = None
    obj = create_profile(
        signer,
        identity,
        name=name,
        about=about,
        picture=ref,
        picture_sha256=hashlib.sha256(published).hexdigest() if published is not None else None,
    )
    return Publication(obj, published, plain, key)


# ------------------------------------------------------------ own profile state


@attrs.frozen
class OwnProfile:
    """What this device last published (kept so `set --name` keeps the picture and its key)."""

    handle: str
    base: str
    name: str
    about: str
    picture: str | None
    key: bytes | None
    published_png: bytes | None
    plain_png: bytes | None


class OwnProfileStore:
    """`<home>/profile/<identity>.json` and its two PNGs (mode 0600).

    The PNG files are named by their SHA-256 and written before the JSON that
    names them, which is replaced atomically: after a crash the state is the
    old publication or the new one, never a picture with another one's key.
    """

    def __init__(self, home: Path, identity: str) -> None:
        self.stem = identity.replace(":", "-")
        self.folder = Path(home) / OWN_DIR
        self.meta = self.folder / f"{self.stem}.json"

    def _png(self, data: bytes) -> Path:
        return self.folder / f"{self.stem}.{hashlib.sha256(data).hexdigest()[:32]}.png"

    def load(self) -> OwnProfile | None:
        try:
            data = json.loads(self.meta.read_bytes())
            published = (
                (self.folder / data["published"]).read_bytes() if data.get("published") else None
            )
            plain = (self.folder / data["plain"]).read_bytes() if data.get("plain") else None
            key = bytes.fromhex(data["key"]) if data.get("key") else None
            return OwnProfile(
                data["handle"],
                data["base"],
                data.get("name", ""),
                data.get("about", ""),
                data.get("picture"),
                key,
                published,
                plain,
            )
        except FileNotFoundError as exc:
            if Path(exc.filename or "") == self.meta:
                return None
            raise StoreError(
                f"your profile state in {self.meta} names a missing file: {exc.filename}"
            ) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"cannot read your profile state in {self.meta}: {exc}") from None

    def save(self, handle: str, base: str, pub: Publication) -> None:
        p = pub.profile.payload
        names: dict[str, str | None] = {"published": None, "plain": None}
        for field, png in (("published", pub.published_png), ("plain", pub.plain_png)):
            if png is not None:
                path = self._png(png)
                if not path.exists():
                    atomic_write(path, png, 0o600)
                names[field] = path.name
        data = {
            "handle": handle,
            "base": base,
            "name": p["name"],
            "about": p["about"],
            "picture": p.get("picture"),
            "key": pub.key.hex() if pub.key else None,
            **names,
        }
        atomic_write(self.meta, json.dumps(data, indent=1).encode(), 0o600)
        keep = {name for name in names.values() if name}
        for old in self.folder.glob(f"{self.stem}.*.png"):
            if old.name not in keep:
                old.unlink(missing_ok=True)


# ------------------------------------------------------------------ HTTP


def _client(timeout: float) -> Any:
    """A kez-server client (`sigserver_client.new_client`) that does not follow redirects:
    a profile is published to and read from the very server named."""
    from ..sigserver_client import new_client

    return new_client(timeout, follow_redirects=False)


def _answer_text(response: Any) -> str:
    try:
        data = response.json()
        return str(data.get("message") or data.get("error"))[:300]
    except ValueError:
        return f"HTTP {response.status_code}"


async def publish(
    base: str, handle: str, signer: Signer, pub: Publication, *, device: bool, timeout: float
) -> None:
    """Upload the picture (first) and the profile to the handle's kez-server."""
    import httpx

    from ..messaging.inbox_auth import sign_inbox_request

    async def put(client: Any, what: str, body: bytes, kind: str) -> None:
        path = f"/v1/u/{handle}/{what}"
        header = sign_inbox_request(
            signer, "PUT", path, hashlib.sha256(body).hexdigest(), device=device
        )
        try:
            answer = await client.put(
                base.rstrip("/") + path,
                content=body,
                headers={"x-kez-auth": header, "content-type": kind},
            )
        except httpx.HTTPError as exc:
            raise ProfileServerError(
                f"{base}: {type(exc).__name__}: {exc}", hint="retry later"
            ) from None
        if answer.status_code >= 500:
            raise ProfileServerError(
                f"{base} answered {answer.status_code}: {_answer_text(answer)}"
            )
        if answer.status_code != 200:
            raise ProfileRefused(f"{base} refused the {what}: {_answer_text(answer)}")

    async with _client(timeout) as client:
        if pub.published_png is not None:
            await put(client, "picture", pub.published_png, "image/png")
        await put(client, "profile", pub.profile.canonical(), "application/json")


@attrs.frozen
class PeerProfile:
    """A peer's profile as checked: the fields, the published picture, and the picture
    contacts see when a key for it is held (`plain_png`, None otherwise)."""

    handle: str
    server: str
    profile: Profile
    published_png: bytes | None
    plain_png: bytes | None
    scrambled: bool
    fetched_at: str
    from_cache: bool

    @property
    def key_held(self) -> bool:
        return self.plain_png is not None and self.scrambled

    def to_json(self) -> dict[str, Any]:
        return {
            "handle": f"{self.handle}@{self.server}",
            **self.profile.to_json(),
            "scrambled": self.scrambled,
            "key_held": self.key_held,
            "fetched_at": self.fetched_at,
            "from_cache": self.from_cache,
        }


async def _get(client: Any, url: str, what: str, *, missing_ok: bool = False) -> Any:
    import httpx

    try:
        answer = await client.get(url)
    except httpx.HTTPError as exc:
        raise ProfileServerError(
            f"fetching {what} from {url}: {type(exc).__name__}: {exc}"
        ) from None
    if answer.status_code == 404 and missing_ok:
        return None
    if answer.status_code != 200:
        raise (ProfileServerError if answer.status_code >= 500 else ProfileRefused)(
            f"fetching {what} from {url}: {answer.status_code} {_answer_text(answer)}"
        )
    return answer


async def fetch_peer(
    base: str, handle: str, timeout: float
) -> tuple[bytes, bytes | None, list[bytes], dict[str, Any]]:
    """(profile JSON, picture PNG or None, chain lines, lookup body) of `handle` on `base`."""
    base = base.rstrip("/")
    async with _client(timeout) as client:
        lookup = (await _get(client, f"{base}/v1/u/{handle}", "the handle")).json()
        profile = await _get(
            client, f"{base}/v1/u/{handle}/profile", "the profile", missing_ok=True
        )
        if profile is None:
            raise ProfileRefused(f"{handle} has published no profile on {base}")
        chain_url = lookup.get("sigchain_url")
        lines: list[bytes] = []
        if isinstance(chain_url, str) and chain_url.startswith(("http://", "https://")):
            chain = await _get(client, chain_url, "the sigchain", missing_ok=True)
            if chain is not None:
                lines = [line for line in chain.content.split(b"\n") if line.strip()]
        picture = None
        obj = _parse_profile(profile.content)
        ref = obj.payload.get("picture")
        if isinstance(ref, str):
            url, _ = visual.split_reference(ref)
            if not url.startswith(("http://", "https://")):
                raise ProfileRefused("the profile's picture is not an http(s) URL")
            answer = await _get(client, url, "the picture", missing_ok=True)
            picture = answer.content if answer is not None else None
    return profile.content, picture, lines, lookup


def _parse_profile(data: bytes) -> SignedObject:
    from ..codec import parse_json

    try:
        return SignedObject.from_dict(parse_json(data))
    except DecodeError as exc:
        raise ProfileRefused(
            f"the server's profile is not a signed object: {exc.message}"
        ) from None


def judge_peer(
    handle: str,
    server: str,
    profile_json: bytes,
    picture: bytes | None,
    chain_lines: list[bytes],
    lookup: dict[str, Any],
    keys: ProfileKeyStore,
    *,
    fetched_at: str,
    from_cache: bool,
) -> PeerProfile:
    """Check a fetched profile against the chain (or the registered primary when the server
    holds no chain) and the picture against the profile; open the picture when a key is held."""
    from ..sigchain import ChainState, validate_lines
    from ..sigchain.errors import ChainError

    obj = _parse_profile(profile_json)
    try:
        if chain_lines:
            state = validate_lines(chain_lines)
        else:
            primary = str(lookup.get("primary"))
            state = ChainState(primary, primary, "", 0, "")
        if state.identity_id != lookup.get("identity", state.identity_id):
            raise ProfileRefused("the server's chain is not of the handle's identity")
        profile = check_profile(obj, state)
    except (KezError, ChainError) as exc:
        raise ProfileRefused(f"the profile of {handle}@{server} does not verify: {exc}") from None
    plain = None
    scrambled = False
    if profile.picture is not None and picture is not None:
        check_picture(profile, picture)
        _, salt = visual.split_reference(profile.picture)
        scrambled = salt is not None
        if salt is None:
            plain = picture
        else:
            key = keys.get(profile.identity, profile.picture_sha256 or "")
            if key is not None:
                plain = visual.unscramble_png(picture, key, salt)
    return PeerProfile(handle, server, profile, picture, plain, scrambled, fetched_at, from_cache)


class ProfileCache:
    """Fetched peer profiles, `<home>/profiles/<handle>@<server>.{json,png}`; fresh for 6 hours."""

    def __init__(self, home: Path) -> None:
        self.folder = Path(home) / "profiles"

    def _paths(self, handle: str, server: str) -> tuple[Path, Path]:
        stem = re.sub(r"[^a-z0-9_.@-]", "_", f"{handle}@{server}")
        return self.folder / f"{stem}.json", self.folder / f"{stem}.png"

    def get(
        self, handle: str, server: str, max_age: float = CACHE_MAX_AGE
    ) -> dict[str, Any] | None:
        meta, png = self._paths(handle, server)
        try:
            data: dict[str, Any] = json.loads(meta.read_bytes())
            if time.time() - float(data["fetched_unix"]) > max_age:
                return None
            data["picture"] = png.read_bytes() if png.exists() else None
            return data
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or damaged: fetch again

    def put(
        self,
        handle: str,
        server: str,
        profile: bytes,
        picture: bytes | None,
        lines: list[bytes],
        lookup: dict[str, Any],
    ) -> str:
        meta, png = self._paths(handle, server)
        fetched = format_time(now())
        if picture is not None:
            atomic_write(png, picture, 0o600)
        else:
            png.unlink(missing_ok=True)
        data = {
            "fetched_at": fetched,
            "fetched_unix": time.time(),
            "profile": profile.decode(),
            "chain": [line.decode() for line in lines],
            "lookup": lookup,
        }
        atomic_write(meta, json.dumps(data).encode(), 0o600)
        return fetched


async def read_peer_profile(
    home: Path, base: str, handle: str, server: str, *, refresh: bool = False, timeout: float = 10.0
) -> PeerProfile:
    """A peer's checked profile: from the cache when fresh (and not `refresh`), else fetched."""
    cache = ProfileCache(home)
    keys = ProfileKeyStore(home)
    cached = None if refresh else cache.get(handle, server)
    if cached is not None:
        try:
            return judge_peer(
                handle,
                server,
                cached["profile"].encode(),
                cached["picture"],
                [line.encode() for line in cached["chain"]],
                cached["lookup"],
                keys,
                fetched_at=cached["fetched_at"],
                from_cache=True,
            )
        except (KezError, KeyError, TypeError, AttributeError):
            pass  # a cache that no longer verifies is fetched again
    profile, picture, lines, lookup = await fetch_peer(base, handle, timeout)
    result = judge_peer(
        handle, server, profile, picture, lines, lookup, keys, fetched_at="", from_cache=False
    )
    fetched = cache.put(handle, server, profile, picture, lines, lookup)
    return attrs.evolve(result, fetched_at=fetched)


# ---------------------------------------------------------------- preview


def side_by_side(left_png: bytes, right_png: bytes, gap: int = 8) -> bytes:
    """One PNG: `left` (what the world sees), a gap, `right` (what contacts see)."""
    _, Image = visual._deps()
    left, right = visual.open_png(left_png), visual.open_png(right_png)
    width = left.width + gap + right.width
    out = Image.new("RGBA", (width, max(left.height, right.height)), (255, 255, 255, 0))
    out.paste(left.convert("RGBA"), (0, 0))
    out.paste(right.convert("RGBA"), (left.width + gap, 0))
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()


# ------------------------------------------------------------- nostr kind 0


def kind0_event(
    nostr_secret: bytes, profile: Profile, created_at: int | None = None
) -> dict[str, Any]:
    """The NIP-01 kind 0 (metadata) event of a profile, signed by the identity's nostr key.

    Content: `{"name", "about", "picture"}`, the picture reference with its
    `#kez-visual-v1:` fragment (the picture itself is too large for an event).
    """
    from ..nostr_event import sign_event

    content: dict[str, str] = {"name": profile.name, "about": profile.about}
    if profile.picture is not None:
        content["picture"] = profile.picture
    return sign_event(
        nostr_secret,
        0,
        json.dumps(content, ensure_ascii=False, separators=(",", ":")),
        created_at=created_at if created_at is not None else int(profile.updated_at.timestamp()),
    )


__all__ = [
    "CACHE_MAX_AGE",
    "OwnProfile",
    "OwnProfileStore",
    "PeerProfile",
    "ProfileCache",
    "ProfileKey",
    "Publication",
    "fetch_peer",
    "judge_peer",
    "kind0_event",
    "make_publication",
    "publish",
    "read_peer_profile",
    "side_by_side",
]
