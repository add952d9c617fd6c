"""A nostr account's kind 0 (profile metadata) and kind 10002 (NIP-65 relay list).

Seeds 000 publish both on first unlock: a minimal kind 0 because some
relays refuse writes from keys they have never seen a profile of, and a
NIP-65 relay list so others know where to reach the account. This module
builds, reads and exchanges those two events; what goes into the profile
(name, about, picture) is the caller's business (the profiles work
builds on `metadata_event`).

Reading is careful: every event is verified (NIP-01 id and signature),
must be by the asked key and of the asked kind, and the newest wins
(replaceable events; ties go to the lowest id, as NIP-01 says). Relay
lists are capped and only ws:// / wss:// URLs count.

`websockets` is imported only by the I/O functions (through `relay`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from kez_core.plugin import BIP340, sign_event, verify_event

from .channel import bad_relay_url

METADATA_KIND = 0
RELAY_LIST_KIND = 10002
# NIP-65 asks for small lists (2-4 per category); a list beyond this is cut.
MAX_LIST_RELAYS = 16
MAX_METADATA_CHARS = 16 * 1024


@attrs.frozen
class RelayList:
    """An account's NIP-65 relays: where it reads (its inbox) and where it writes."""

    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()


def relay_list_event(
    secret: bytes,
    read: Iterable[str] = (),
    write: Iterable[str] = (),
    created_at: int | None = None,
) -> dict[str, Any]:
    """The signed kind-10002 event: `["r", url]` for a relay in both lists, else with a marker.

    ValueError for a URL that is not ws:// or wss://, or more than
    `MAX_LIST_RELAYS` relays.
    """
    reads, writes = _urls(read), _urls(write)
    order = list(dict.fromkeys([*reads, *writes]))
    bad = [f"{url!r} {problem}" for url in order if (problem := bad_relay_url(url))]
    if bad:
        raise ValueError("bad relay address: " + "; ".join(bad))
    if len(order) > MAX_LIST_RELAYS:
        raise ValueError(f"a relay list holds at most {MAX_LIST_RELAYS} relays, not {len(order)}")
    tags = []
    for url in order:
        marker = None if url in reads and url in writes else "read" if url in reads else "write"
        tags.append(["r", url] if marker is None else ["r", url, marker])
    return sign_event(secret, RELAY_LIST_KIND, "", tags, created_at)


def parse_relay_list(event: Any) -> RelayList:
    """The read and write relays of a (checked) kind-10002 event; bad or extra entries are skipped."""
    read: list[str] = []
    write: list[str] = []
    tags = event.get("tags") if isinstance(event, dict) else None
    for tag in tags if isinstance(tags, list) else ():
        if not (
            isinstance(tag, list) and len(tag) >= 2 and tag[0] == "r" and isinstance(tag[1], str)
        ):
            continue
        url = tag[1].strip()
        if bad_relay_url(url) or len(url) > 512:
            continue
        marker = tag[2] if len(tag) >= 3 else None
        if marker not in (None, "read", "write"):
            continue
        if marker != "write" and url not in read and len(read) < MAX_LIST_RELAYS:
            read.append(url)
        if marker != "read" and url not in write and len(write) < MAX_LIST_RELAYS:
            write.append(url)
    return RelayList(tuple(read), tuple(write))


def metadata_event(
    secret: bytes,
    name: str = "",
    about: str = "",
    extra: dict[str, Any] | None = None,
    created_at: int | None = None,
) -> dict[str, Any]:
    """The signed kind-0 event: content is the JSON object `{name, about, **extra}` (empty fields left out)."""
    fields = {k: v for k, v in {"name": name, "about": about}.items() if v}
    fields.update(extra or {})
    content = json.dumps(fields, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return sign_event(secret, METADATA_KIND, content, [], created_at)


def parse_metadata(event: Any) -> dict[str, Any]:
    """The profile fields of a (checked) kind-0 event; {} when its content is not a JSON object."""
    content = event.get("content") if isinstance(event, dict) else None
    if not isinstance(content, str) or len(content) > MAX_METADATA_CHARS:
        return {}
    try:
        fields = json.loads(content)
    except (ValueError, RecursionError):
        return {}
    return fields if isinstance(fields, dict) else {}


def newest(events: Iterable[Any], pubkey: str, kind: int) -> dict[str, Any] | None:
    """The newest valid event of `kind` by `pubkey` among `events` (ties: the lowest id), or None."""
    best: dict[str, Any] | None = None
    for event in events:
        if not (isinstance(event, dict) and verify_event(event)):
            continue
        if event["pubkey"] != pubkey or event["kind"] != kind:
            continue
        if best is None or (event["created_at"], _neg(event["id"])) > (
            best["created_at"],
            _neg(best["id"]),
        ):
            best = event
    return best


def _neg(event_id: str) -> tuple[int, ...]:
    return tuple(-b for b in bytes.fromhex(event_id))


def _urls(urls: Iterable[str]) -> list[str]:
    return list(
        dict.fromkeys(u.strip() for u in ([urls] if isinstance(urls, str) else urls) if u.strip())
    )


# ------------------------------------------------------------ relays


async def publish(
    urls: Sequence[str], event: dict[str, Any], timeout: float, secret: bytes
) -> list[Any]:
    """Send `event` to every relay at once, authenticating (NIP-42) as its author; the `PublishReply`s."""
    from . import relay
    from .nip42 import key_signer

    sign = key_signer(secret)
    return list(
        await asyncio.gather(*(relay.send_event(url, event, timeout, auth=sign) for url in urls))
    )


async def fetch_newest(
    urls: Sequence[str], pubkey: str, kind: int, timeout: float
) -> dict[str, Any] | None:
    """The newest valid event of `kind` by `pubkey` on any of the relays, or None (nothing, or no relay answered)."""
    from . import relay
    from .nip42 import one_time_signer

    filter_ = {"kinds": [kind], "authors": [pubkey], "limit": 1}
    replies = await asyncio.gather(
        *(relay.query(url, filter_, timeout, auth=one_time_signer()) for url in urls)
    )
    return newest((event for reply in replies for event in reply.events), pubkey, kind)


async def fetch_relay_list(urls: Sequence[str], pubkey: str, timeout: float) -> RelayList | None:
    """`pubkey`'s NIP-65 relay list from the relays, or None when none was found."""
    event = await fetch_newest(urls, pubkey, RELAY_LIST_KIND, timeout)
    return None if event is None else parse_relay_list(event)


async def fetch_metadata(urls: Sequence[str], pubkey: str, timeout: float) -> dict[str, Any] | None:
    """`pubkey`'s kind-0 profile fields from the relays, or None when none was found."""
    event = await fetch_newest(urls, pubkey, METADATA_KIND, timeout)
    return None if event is None else parse_metadata(event)


def public_key(secret: bytes) -> str:
    """The hex x-only public key of a nostr secret (the `pubkey` of the events it signs)."""
    return BIP340.public_from_secret(secret).hex()
