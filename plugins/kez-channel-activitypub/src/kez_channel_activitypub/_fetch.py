"""Reading proofs: WebFinger → actor → profile fields and summary (no credentials).

Which actor counts for `alice@host` (the rule, also in the README):

1. `GET https://host/.well-known/webfinger?resource=acct:alice@host`
   (redirects followed, https only). 404/410 → no such account.
2. The JRD `subject`, when it is an `acct:` URI, must name the user `alice`
   (case-insensitive; an `acct:alice@host` entry in `aliases` also counts).
3. The actor is the `links` entry with `rel: "self"` and type
   `application/activity+json` (or the ActivityStreams `application/ld+json`
   profile type); its URL must be https.
4. The actor URL's host must be one of: the handle's host, the host that
   finally answered the WebFinger request (an instance that redirects
   `/.well-known/webfinger` to its web domain), or the domain of the JRD
   `subject`. The handle's host is the authority for `acct:alice@host`, so
   whatever it names through these is its own statement; an actor anywhere
   else is refused.
5. The actor document's `id` must be on the host that served it, and its
   `preferredUsername` must equal `alice` (case-insensitive).

Candidates are the text content of every `PropertyValue` attachment whose
value or name mentions `kez`, and of the `summary` when it does. A 401 for
the actor means the instance only serves signed fetches (Mastodon's
"authorized fetch"), which this channel does not do: `unreachable`.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from kez_core.plugin import ChannelContext, FetchOutcome, ProofCandidate, now

from ._html import html_to_text
from ._http import (
    ACTIVITY_JSON,
    AS_PROFILE,
    LD_JSON_AS,
    Answer,
    Unreachable,
    json_object,
    leased_client,
    request,
    transient,
)
from .channel import option

JRD_ACCEPT = "application/jrd+json, application/json;q=0.9"
ACTOR_ACCEPT = f"{ACTIVITY_JSON}, {LD_JSON_AS}"


def webfinger_url(user: str, host: str) -> str:
    return f"https://{host}/.well-known/webfinger?" + urlencode({"resource": f"acct:{user}@{host}"})


async def fetch_proofs(user: str, host: str, ctx: ChannelContext) -> FetchOutcome:
    """FetchOutcome for `user@host`; never raises for anything the network or server does."""
    base = option(ctx, "ap_base_url")
    where = [webfinger_url(user, host)]  # the URL being read, for the outcome's source
    try:
        async with leased_client(ctx) as client, asyncio.timeout(ctx.timeout):
            return await _read(client, user, host, base, ctx.timeout, where)
    except (TimeoutError, httpx.TimeoutException):
        return FetchOutcome(
            reachable=False,
            reason=f"{urlsplit(where[-1]).hostname} did not answer within {ctx.timeout:g}s",
            source=where[-1],
        )
    except Unreachable as exc:
        return FetchOutcome(
            reachable=False, reason=exc.reason, source=where[-1], retry_after=exc.retry_after
        )
    except httpx.HTTPError as exc:
        detail = str(exc) or type(exc).__name__
        return FetchOutcome(
            reachable=False,
            reason=f"{urlsplit(where[-1]).hostname} could not be reached: {detail}",
            source=where[-1],
        )
    except Exception as exc:  # noqa: BLE001 - whatever a server sends, fetch answers, never raises
        return FetchOutcome(
            reachable=False,
            reason=f"reading {where[-1]} failed: {type(exc).__name__}: {exc}",
            source=where[-1],
        )


def _not_found(reason: str, source: str) -> FetchOutcome:
    return FetchOutcome(candidates=(), reachable=True, reason=reason, source=source)


def _status_error(answer: Answer, what: str) -> Unreachable:
    phrase = httpx.codes.get_reason_phrase(answer.status)
    return Unreachable(f"{answer.host} answered {answer.status} {phrase} to the {what}")


def _is_actor_link(link: Any) -> bool:
    if (
        not isinstance(link, dict)
        or link.get("rel") != "self"
        or not isinstance(link.get("href"), str)
    ):
        return False
    kind = link.get("type")
    if not isinstance(kind, str):
        return False
    kind = kind.replace(" ", "").lower()
    return kind == ACTIVITY_JSON or (kind.startswith("application/ld+json") and AS_PROFILE in kind)


def _has_type(item: dict[str, Any], wanted: str) -> bool:
    kinds = item.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return any(isinstance(k, str) and (k == wanted or k.endswith(f":{wanted}")) for k in kinds)


async def _read(
    client: httpx.AsyncClient,
    user: str,
    host: str,
    base: str | None,
    timeout: float,
    where: list[str],
) -> FetchOutcome:
    handle = f"{user}@{host}"
    answer = await request(
        client, "GET", where[0], base_url=base, timeout=timeout, accept=JRD_ACCEPT, follow=3
    )
    where.append(answer.url)
    if (problem := transient(answer, "WebFinger request")) is not None:
        raise problem
    if answer.status in (404, 410):
        return _not_found(
            f"{host} has no account {handle} (WebFinger answered {answer.status})", answer.url
        )
    if answer.status != 200:
        raise _status_error(answer, "WebFinger request")
    jrd = json_object(answer, "WebFinger document")

    subject_domain = None
    subject = jrd.get("subject")
    if isinstance(subject, str) and subject.lower().startswith("acct:"):
        s_user, _, s_domain = subject[5:].lstrip("@").rpartition("@")
        aliases = jrd.get("aliases") if isinstance(jrd.get("aliases"), list) else []
        aliased = f"acct:{handle}" in {a.lower() for a in aliases if isinstance(a, str)}
        if s_user.lower() != user and not aliased:
            return _not_found(
                f"WebFinger at {answer.host} answered for {subject[:120]}, not {handle}", answer.url
            )
        subject_domain = s_domain.lower() or None

    links = jrd.get("links", [])
    if not isinstance(links, list):
        raise Unreachable(
            f"{answer.host} answered a malformed WebFinger document (links is not a list)"
        )
    actor_url = next((link["href"] for link in links if _is_actor_link(link)), None)
    if actor_url is None:
        return _not_found(
            f"WebFinger for {handle} at {answer.host} lists no ActivityPub actor "
            f"(no rel=self link of type {ACTIVITY_JSON})",
            answer.url,
        )
    parts = urlsplit(actor_url)
    if parts.scheme != "https" or not parts.hostname:
        return _not_found(
            f"WebFinger for {handle} points to a non-https actor URL {actor_url[:120]}", answer.url
        )
    allowed = {host, answer.host, subject_domain} - {None}
    actor_host = parts.hostname.lower()
    if actor_host not in allowed:
        return _not_found(
            f"WebFinger for {handle} points to an actor on {actor_host}, which is neither {host} "
            f"nor the domain of the WebFinger subject; refused",
            answer.url,
        )

    where.append(actor_url)
    actor_answer = await request(
        client, "GET", actor_url, base_url=base, timeout=timeout, accept=ACTOR_ACCEPT, follow=2
    )
    where.append(actor_answer.url)
    if actor_answer.host not in allowed:
        return _not_found(
            f"the actor URL of {handle} redirected to {actor_answer.host}, another host; refused",
            actor_answer.url,
        )
    if (problem := transient(actor_answer, "actor request")) is not None:
        raise problem
    if actor_answer.status == 401:
        raise Unreachable(
            f"{actor_answer.host} answered 401 for the actor {actor_answer.url}: the instance requires "
            f"signed fetches (authorized fetch / HTTP signatures), which KEZ does not make"
        )
    if actor_answer.status in (404, 410):
        return _not_found(
            f"the actor {actor_answer.url} of {handle} is gone ({actor_answer.status})",
            actor_answer.url,
        )
    if actor_answer.status != 200:
        raise _status_error(actor_answer, "actor request")
    actor = json_object(actor_answer, "actor document")
    return _candidates(actor, actor_answer, user, handle)


def _candidates(actor: dict[str, Any], answer: Answer, user: str, handle: str) -> FetchOutcome:
    source = answer.url
    actor_id = actor.get("id")
    if (
        isinstance(actor_id, str)
        and (urlsplit(actor_id).hostname or "").lower() != answer.host.lower()
    ):
        return _not_found(
            f"the actor document at {source} names an id on another host ({actor_id[:120]})", source
        )
    username = actor.get("preferredUsername")
    if not isinstance(username, str) or username.lower() != user:
        shown = repr(username)[:60] if username is not None else "missing"
        return _not_found(
            f"the actor at {source} has preferredUsername {shown}, not {user}; it is not {handle}",
            source,
        )

    fetched_at = now()
    found: list[ProofCandidate] = []
    attachments = actor.get("attachment", [])
    if isinstance(attachments, dict):
        attachments = [attachments]
    if not isinstance(attachments, list):
        attachments = []
    fields = 0
    for item in attachments:
        if not isinstance(item, dict) or not _has_type(item, "PropertyValue"):
            continue
        fields += 1
        name = item.get("name") if isinstance(item.get("name"), str) else ""
        value = item.get("value") if isinstance(item.get("value"), str) else ""
        name_text, text = html_to_text(name), html_to_text(value)
        if "kez" in text.lower() or name_text.strip().lower() == "kez":
            found.append(
                ProofCandidate(text, f"{source} (profile field {name_text!r})", fetched_at)
            )
    summary = actor.get("summary")
    if isinstance(summary, str):
        text = html_to_text(summary)
        if "kez" in text.lower():
            found.append(ProofCandidate(text, f"{source} (summary)", fetched_at))
    if not found:
        return _not_found(
            f"no KEZ proof in the {fields} profile field(s) or the summary of {source}", source
        )
    return FetchOutcome(candidates=tuple(found), reachable=True, source=source)
