"""The `nostr` channel: a proof is a kind-30078 event by the subject key, tagged `["d","kez"]`.

Reading asks every configured relay at once (NIP-01 `REQ` with the author,
the kind and the `d` tag; within a verification run, as subscriptions on a
few WebSockets per relay kept open for the whole run) and keeps the events whose id and BIP-340
signature verify, whose author is the subject key, whose kind is 30078 and
whose `d` tag is `kez`. Each distinct such event is one candidate, newest
first; its content is the compact claim (`kez:z1:…`).

Publishing signs that event with the subject's own nostr secret key (NIP-78
application data, a parameterized replaceable event: a newer one replaces
the older on each relay) and sends it to every relay.

This module stays cheap to import: `websockets` is loaded by `.relay`, which
is imported inside `fetch` and `publish` only.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any, ClassVar
from urllib.parse import urlsplit

import attrs
from kez_core.plugin import (
    ChannelContext,
    ChannelOption,
    FetchOutcome,
    KeyFormatError,
    ProofCandidate,
    PublishOutcome,
    normalize_subject,
    now,
)

from .errors import (
    NostrConfigError,
    NostrKeyMismatchError,
    NostrPublishError,
    NostrSecretMissingError,
)

PROOF_KIND = 30078  # NIP-78 application-specific data (parameterized replaceable)
PROOF_D_TAG = "kez"
QUERY_LIMIT = 10
DEFAULT_RELAYS: tuple[str, ...] = (
    "wss://relay.damus.io",
    "wss://nos.lol",
    "wss://relay.nostr.band",
)

RELAYS_OPTION = ChannelOption(
    name="nostr_relays",
    flag="--relay",
    env="KEZ_NOSTR_RELAYS",
    help="Nostr relay (ws:// or wss://) to read proofs from and publish them to; "
    "repeat the flag, or separate with commas in the variable.",
    default=DEFAULT_RELAYS,
    multiple=True,
)
SECRET_OPTION = ChannelOption(
    name="nostr_secret",
    flag="--nostr-secret",
    env="KEZ_NOSTR_SECRET",
    help="Secret key (nsec1… or 64 hex) of the nostr account the proof is for; needed only to publish.",
    secret=True,
)

_SECRET_HINT = "pass --nostr-secret nsec1… (or 64 hex characters) or set KEZ_NOSTR_SECRET"
_RELAY_HINT = "pass --relay wss://… (repeatable) or set KEZ_NOSTR_RELAYS=wss://a,wss://b"


def relay_urls(ctx: ChannelContext) -> list[str]:
    """The configured relay URLs, in order, without blanks and duplicates.

    `ctx.options["nostr_relays"]` may be a sequence of URLs or one string with
    commas between URLs (the form of the environment variable); when absent
    (or None) the option's default applies.
    """
    value = ctx.options.get(RELAYS_OPTION.name)
    if value is None:
        value = RELAYS_OPTION.default
    items: Iterable[Any] = [value] if isinstance(value, str) else value
    urls: list[str] = []
    for item in items:
        for part in str(item).split(","):
            url = part.strip()
            if url and url not in urls:
                urls.append(url)
    return urls


def bad_relay_url(url: str) -> str | None:
    """Why `url` cannot be a relay address, or None when it can."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() not in ("ws", "wss"):
        return "is not a ws:// or wss:// URL"
    if not host:
        return "has no host"
    return None


def _first_d_tag(tags: Any) -> str | None:
    for tag in tags:
        if isinstance(tag, list) and tag and tag[0] == "d":
            return tag[1] if len(tag) > 1 else ""
    return None


def _rejection(event: Any, pubkey: str) -> str | None:
    """Why `event` is not a proof event of `pubkey`, or None when it is one."""
    from kez_core.plugin import verify_event

    if not isinstance(event, dict):
        return "not an event object"
    if not verify_event(event):
        return "bad id or signature"
    if event["pubkey"] != pubkey:
        return "by another key"
    if event["kind"] != PROOF_KIND:
        return f"of another kind than {PROOF_KIND}"
    if _first_d_tag(event["tags"]) != PROOF_D_TAG:
        return f"without the d={PROOF_D_TAG} tag"
    return None


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@attrs.frozen
class NostrChannel:
    """Identity channel `nostr`: subjects `nostr:<64 hex>` (npub1… accepted)."""

    name: str = "nostr"
    aliases: tuple[str, ...] = ()
    options: tuple[ChannelOption, ...] = (RELAYS_OPTION, SECRET_OPTION)
    proof_encoding: ClassVar[str] = "compact"

    def normalize_handle(self, handle: str) -> str:
        # The core owns the rule (64 lowercase hex; npub1… accepted) so claims
        # are byte-identical with or without this plugin.
        return normalize_subject(f"{self.name}:{handle}").split(":", 1)[1]

    # ----------------------------------------------------------------- fetch

    async def fetch(self, handle: str, ctx: ChannelContext) -> FetchOutcome:
        pubkey = self.normalize_handle(handle)
        urls = relay_urls(ctx)
        what = f"kind-{PROOF_KIND} events tagged d={PROOF_D_TAG} by {pubkey}"
        if not urls:
            return FetchOutcome(
                reachable=False, reason=f"no nostr relays configured; {_RELAY_HINT}", source=what
            )
        source = f"{what} on {', '.join(urls)}"
        from . import relay
        from .nip42 import one_time_signer

        filter_ = {
            "authors": [pubkey],
            "kinds": [PROOF_KIND],
            "#d": [PROOF_D_TAG],
            "limit": QUERY_LIMIT,
        }

        scope = ctx.scope

        async def ask(url: str) -> relay.QueryReply:
            problem = bad_relay_url(url)
            if problem:
                return relay.QueryReply(url, error=problem)
            if scope is None:
                # NIP-42: reading public proofs proves no account; a key made for it will do.
                return await relay.query(url, filter_, ctx.timeout, auth=one_time_signer())
            # A verification run: the run's few connections to this relay carry
            # every proof's subscription; they close when the run ends.
            pool = scope.get(("nostr", "relay", url), lambda: _run_pool(scope, url, ctx.timeout))
            return await pool.query(filter_, ctx.timeout)

        replies = await asyncio.gather(*(ask(url) for url in urls))
        fetched_at = now()

        found: dict[str, tuple[dict[str, Any], str]] = {}
        ignored: Counter[str] = Counter()
        for reply in replies:
            for event in reply.events:
                why = _rejection(event, pubkey)
                if why:
                    ignored[why] += 1
                elif event["id"] not in found:
                    found[event["id"]] = (event, reply.url)
        newest_first = sorted(
            found.values(), key=lambda pair: (-pair[0]["created_at"], pair[0]["id"])
        )
        candidates = tuple(
            ProofCandidate(event["content"], f"{url} event {event['id']}", fetched_at)
            for event, url in newest_first
        )

        answered = [r.url for r in replies if r.answered]
        failures = [f"{r.url} {r.error}" for r in replies if not r.answered]
        notes: list[str] = []
        if ignored:
            notes.append(
                "ignored "
                + ", ".join(f"{_plural(n, 'event')} {why}" for why, n in sorted(ignored.items()))
            )
        if failures:
            notes.append(f"{len(answered)} of {len(urls)} relays answered: " + "; ".join(failures))

        if candidates:
            reason = f"found {_plural(len(candidates), 'proof event')}"
            return FetchOutcome(
                candidates, reachable=True, reason="; ".join([reason, *notes]), source=source
            )
        if answered:
            reason = f"no {what} on {', '.join(answered)}"
            return FetchOutcome(
                (), reachable=True, reason="; ".join([reason, *notes]), source=source
            )
        retry = [r.retry_after for r in replies if r.retry_after is not None]
        reason = "no nostr relay answered: " + "; ".join(failures)
        if ignored:
            reason += "; " + notes[0]
        return FetchOutcome(
            (),
            reachable=False,
            reason=reason,
            source=source,
            retry_after=min(retry) if retry else None,
        )

    # --------------------------------------------------------------- publish

    async def publish_event(
        self, event: dict[str, Any], urls: Iterable[str], timeout: float
    ) -> list[Any]:
        """Send one event, signed already, to each relay in `urls` (`kez profile set
        --nostr-relay`: the identity's kind 0 event): one reply per relay, with `url`,
        `accepted` and `message`. Never raises: an unreachable relay is a refusal."""
        from . import relay

        return list(await asyncio.gather(*(relay.send_event(u, event, timeout) for u in urls)))

    async def publish(self, handle: str, proof_text: str, ctx: ChannelContext) -> PublishOutcome:
        from kez_core.plugin import BIP340, sign_event

        pubkey = self.normalize_handle(handle)
        secret = _secret(ctx, pubkey)
        owner = BIP340.public_from_secret(secret).hex()
        if owner != pubkey:
            raise NostrKeyMismatchError(
                f"the nostr secret given is the key of nostr:{owner}, not of the subject nostr:{pubkey}",
                hint=f"a proof for nostr:{pubkey} must be signed by that account's key; {_SECRET_HINT}",
            )
        urls = relay_urls(ctx)
        if not urls:
            raise NostrConfigError("no nostr relays configured to publish to", hint=_RELAY_HINT)
        bad = [f"{url!r} {problem}" for url in urls if (problem := bad_relay_url(url))]
        if bad:
            raise NostrConfigError("bad relay address: " + "; ".join(bad), hint=_RELAY_HINT)

        from . import relay
        from .nip42 import key_signer

        event = sign_event(secret, PROOF_KIND, proof_text, [["d", PROOF_D_TAG]], int(time.time()))
        # NIP-42 with the account's own key: relays that take an author's events
        # only after it authenticated then take the proof.
        sign = key_signer(secret)
        replies = await asyncio.gather(
            *(relay.send_event(url, event, ctx.timeout, auth=sign) for url in urls)
        )
        accepted = [r.url for r in replies if r.accepted]
        refused = [f"{r.url}: {r.message}" for r in replies if not r.accepted]
        if not accepted:
            raise NostrPublishError(
                f"no relay accepted the proof event {event['id']}: " + "; ".join(refused),
                hint="retry later, or add relays that accept kind-30078 events (--relay / KEZ_NOSTR_RELAYS)",
            )
        detail = (
            f"event {event['id']} (kind {PROOF_KIND}, d={PROOF_D_TAG}, by {pubkey}) accepted by "
            f"{len(accepted)} of {len(urls)} relays"
        )
        if refused:
            detail += "; not accepted by " + "; ".join(refused)
        return PublishOutcome(location=", ".join(accepted), detail=detail)


def _run_pool(scope: Any, url: str, timeout: float) -> Any:
    from . import relay
    from .nip42 import one_time_signer

    pool = relay.RelayPool(url, timeout, scope.concurrency, auth=one_time_signer())
    scope.on_close(pool.aclose)
    return pool


def _secret(ctx: ChannelContext, pubkey: str) -> bytes:
    """The 32-byte secret from `ctx.options["nostr_secret"]` (nsec1…, hex or raw bytes), else the
    subject key's own secret that `kez claim publish` hands over (`SUBJECT_SECRET`) when the
    identity's nostr key is the account."""
    from kez_core.plugin import BIP340, SUBJECT_SECRET

    value = ctx.options.get(SECRET_OPTION.name)
    if value is None or (isinstance(value, str) and not value.strip()):
        value = ctx.options.get(SUBJECT_SECRET)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise NostrSecretMissingError(
            f"publishing a proof for nostr:{pubkey} needs that account's secret key",
            hint=_SECRET_HINT,
        )
    # The secret's text never goes into a message: errors name the form, not the value.
    wrong = KeyFormatError(
        "the nostr secret given is neither an nsec1… key nor 64 hex characters of a valid key",
        hint=_SECRET_HINT,
    )
    try:
        if isinstance(value, bytes | bytearray):
            secret: bytes | None = bytes(value)
            BIP340.public_from_secret(secret)
        elif isinstance(value, str):
            secret = BIP340.import_secret(value)
        else:
            secret = None
    except (KeyFormatError, ValueError, TypeError):
        raise wrong from None
    if secret is None:
        raise wrong
    return secret
