"""Claim subjects: `<channel>:<handle>` in normal form.

Two spellings of one account must give one subject, or a claim made on one
machine would not match a proof read on another. The normal forms of the
five channels the design fixes (DESIGN §3: `dns`, `github`, `nostr`,
`bluesky`, `ap`) are part of the claim format and live here, so they never
depend on which version of a plugin is installed; their plugins call back
into these rules. Every other prefix, aliases included (`mastodon:` and
`activitypub:` for `ap`, `bsky:` for `bluesky`), is resolved through the
channel plugins: the plugin declares its aliases, and a prefix no loaded
plugin provides is refused (`UnknownNameError`, with a hint pointing to
`kez plugins`) rather than kept as written, so `web:Example.ORG` can never
give one subject with the web plugin installed and another without it.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING

import idna

from .errors import DecodeError, KeyFormatError, UnknownNameError
from .registry import Registry, default_registry

if TYPE_CHECKING:
    from .protocols import Channel

_CHANNEL = re.compile(r"^[a-z][a-z0-9-]{0,31}\Z")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
_GITHUB = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,38}\Z")
_AP_USER = re.compile(r"^[a-z0-9_.~-]{1,64}\Z")
_DID = re.compile(r"^did:(plc:[a-z2-7]{24}|web:[a-z0-9.%:-]+)\Z")
MAX_HANDLE = 253
_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]").search
_TRIM = " \t\r\n"  # what is trimmed around a subject and a handle: ASCII whitespace only
# Unicode categories no handle may hold: controls, format characters (zero-width, bidi),
# surrogates, and every kind of space and line or paragraph separator (spec §5).
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})
_JOINERS = frozenset("\u200c\u200d")  # ZWNJ, ZWJ: IDNA 2008 allows them in context (CONTEXTJ)
_HOST_CHANNELS = frozenset({"dns", "bluesky", "ap"})


def _bad_char(handle: str, allowed: frozenset[str] = frozenset()) -> str | None:
    """The first whitespace or control/format character of `handle`, if any."""
    if handle.isascii():
        match = _SPACE_OR_CONTROL(handle)
        return None if match is None else match.group()
    for ch in handle:
        if (ch.isspace() or unicodedata.category(ch) in _BAD_CATEGORIES) and ch not in allowed:
            return ch
    return None


@lru_cache(maxsize=1024)
def _dropped_by_uts46(ch: str) -> bool:
    """True for a character UTS 46 maps to nothing ("ignored": U+00AD, U+200B, U+2060,
    variation selectors, …): it would vanish from the name without a word."""
    try:
        return idna.uts46_remap(ch, std3_rules=False, transitional=False) == ""
    except idna.IDNAError:
        return False  # disallowed: idna.encode refuses it with its own message


def hostname(text: str, what: str = "domain name") -> str:
    """A domain name in normal form: IDNA 2008 with UTS 46 mapping, non-transitional (as
    browsers do: `faß.de` is `xn--fa-hia.de`, not `fass.de`), A-labels, lowercase.

    What IDNA 2008 refuses is refused, and so is any character its mapping
    would drop silently: a name is never signed as a different one.
    """
    host = text.strip(_TRIM).rstrip(".")
    if host.isascii():
        host = host.lower()
        if "xn--" in host:  # A-labels must be valid IDNA 2008 (and stay as written)
            try:
                idna.decode(host)
            except (idna.IDNAError, UnicodeError) as exc:
                raise DecodeError(
                    f"{what} {text!r} is not a valid IDNA 2008 domain name: {exc}"
                ) from exc
    else:
        for ch in host:
            if ord(ch) > 0x7F and _dropped_by_uts46(ch):
                raise DecodeError(
                    f"{what} {text!r} holds U+{ord(ch):04X}, which IDNA would drop silently",
                    hint="remove invisible characters from the name",
                )
        try:
            host = idna.encode(host, uts46=True, transitional=False).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise DecodeError(
                f"{what} {text!r} is not a valid IDNA 2008 domain name: {exc}"
            ) from exc
    labels = host.split(".")
    if len(host) > MAX_HANDLE or len(labels) < 2 or not all(_HOST_LABEL.match(x) for x in labels):
        raise DecodeError(f"{what} {text!r} is not a valid domain name", hint="e.g. example.org")
    return host


_hostname = hostname  # the old private name, kept for code written before kez_core.plugin


def _dns(handle: str) -> str:
    return _hostname(handle, "dns handle")


def _github(handle: str) -> str:
    name = handle.strip().lstrip("@").lower()
    if not _GITHUB.match(name):
        raise DecodeError(f"github handle {handle!r} is not a valid GitHub user name")
    return name


def _nostr(handle: str, registry: Registry) -> str:
    from .keys import parse_key_id

    text = handle.strip()
    try:
        key = parse_key_id(text if text.startswith("npub1") else f"nostr:{text}", registry)
    except KeyFormatError as exc:
        raise DecodeError(
            f"nostr handle: {exc.message}", hint="use 64 hex characters or npub1…"
        ) from exc
    return key.public.hex()


def _bluesky(handle: str) -> str:
    text = handle.strip().lstrip("@")
    if text.startswith("did:"):
        if not _DID.match(text):
            raise DecodeError(f"bluesky DID {handle!r} is not a did:plc or did:web")
        return text
    return _hostname(text, "bluesky handle")


def _ap(handle: str) -> str:
    text = handle.strip().lstrip("@")
    user, sep, host = text.partition("@")
    if not sep or not user:
        raise DecodeError(f"fediverse handle {handle!r} must look like user@host")
    user = user.lower()
    if not _AP_USER.match(user):
        raise DecodeError(f"fediverse handle {handle!r} has an invalid user name")
    return f"{user}@{_hostname(host, 'fediverse host')}"


_BUILTIN = {"dns": _dns, "github": _github, "bluesky": _bluesky, "ap": _ap}


def normalize_subject(subject: object, registry: Registry | None = None) -> str:
    """`GitHub:Alice` → `github:alice`, `mastodon:@a@Host.org` → `ap:a@host.org`, …"""
    registry = registry or default_registry()
    if isinstance(subject, str) and len(subject) <= MAX_HANDLE + 40:
        return _normalize_cached(subject, registry)
    return _normalize(subject, registry)


@lru_cache(maxsize=8192)
def _normalize_cached(subject: str, registry: Registry) -> str:
    # Pure for a given registry; verifying many claims re-reads the same subjects.
    return _normalize(subject, registry)


def _normalize(subject: object, registry: Registry) -> str:
    if not isinstance(subject, str):
        raise DecodeError("a subject must be text like github:alice")
    channel, sep, handle = subject.strip(_TRIM).partition(":")
    channel = channel.lower()
    if not sep or not handle or not _CHANNEL.match(channel):
        raise DecodeError(
            f"subject {subject[:80]!r} is not <channel>:<handle>",
            hint="e.g. github:alice, dns:example.org, nostr:npub1…, bluesky:alice.bsky.social, ap:alice@host",
        )
    plugin = None
    if channel not in _BUILTIN and channel != "nostr":
        plugin = _channel_for(channel, subject, registry)
        if (
            plugin.name in _BUILTIN or plugin.name == "nostr"
        ):  # an alias of a design channel: the core's rule
            channel, plugin = plugin.name, None
    handle = handle.strip(_TRIM)
    if len(handle) > MAX_HANDLE:
        raise DecodeError(
            f"subject {subject[:80]!r} is too long (a handle has at most {MAX_HANDLE} characters)"
        )
    bad = _bad_char(handle, _JOINERS if channel in _HOST_CHANNELS else frozenset())
    if bad is not None:
        raise DecodeError(
            f"subject {subject[:80]!r} holds U+{ord(bad):04X} ({unicodedata.name(bad, 'a control character')}): "
            "handles have no whitespace, control or invisible characters",
        )
    if channel == "nostr":
        return f"nostr:{_nostr(handle, registry)}"
    builtin = _BUILTIN.get(channel)
    if builtin is not None:
        return f"{channel}:{builtin(handle)}"
    assert plugin is not None
    return f"{plugin.name}:{plugin.normalize_handle(handle)}"


def _channel_for(prefix: str, subject: str, registry: Registry) -> Channel:
    """The channel plugin that provides `prefix` (its name or one of its aliases)."""
    try:
        return registry.channel(prefix)
    except UnknownNameError as exc:
        raise UnknownNameError(
            f"subject {subject[:80]!r}: no installed channel provides {prefix + ':'!r}",
            hint=f"`kez plugins` lists the installed channels; install the plugin that provides {prefix + ':'!r}",
        ) from exc
