"""HTTP plumbing shared by fetch and publish (imports httpx; imported lazily).

`ap_base_url` reroutes every request: the URL `https://H/path?q` is sent to
`<ap_base_url>/path?q` with `Host: H`, so one local server can stand in for
any number of instances while the code keeps reasoning about real hosts.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import attrs
import httpx
from kez_core.plugin import ChannelContext, client_for, new_http_client

MAX_BODY = (
    1 << 20
)  # a WebFinger document or an actor is a few KiB; refuse to buffer more than 1 MiB
USER_AGENT = "kez-channel-activitypub/0.1 (+https://kez.lat)"
ACTIVITY_JSON = "application/activity+json"
AS_PROFILE = "https://www.w3.org/ns/activitystreams"
LD_JSON_AS = f'application/ld+json; profile="{AS_PROFILE}"'
REDIRECTS = (301, 302, 303, 307, 308)


# Connections one client keeps: a fetch asks the instance (WebFinger) and the
# actor's host one after the other, so a few suffice; all are kept alive.
CLIENT_CONNECTIONS = 4


def new_client(timeout: float) -> httpx.AsyncClient:
    """A client for one fetch or publish (shared SSL context, no cookie jar, small pool)."""
    return new_http_client(timeout, connections=CLIENT_CONNECTIONS)


def leased_client(ctx: ChannelContext) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
    """The client to read with: the caller's, the run's, or one for this call (`client_for`)."""
    return client_for(ctx, "ap", connections=CLIENT_CONNECTIONS)


class Unreachable(Exception):
    """The server could not be asked (network, 429, 5xx, malformed body): report, never raise out."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@attrs.frozen
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes
    url: str  # the logical URL (https://host/…) that answered, after redirects

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""


def route(logical_url: str, base_url: str | None) -> tuple[str, dict[str, str]]:
    """The URL to connect to and the extra headers (Host) for a logical https://host/… URL."""
    if not base_url:
        return logical_url, {}
    parts = urlsplit(logical_url)
    target = base_url.rstrip("/") + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return target, {"Host": parts.netloc}


async def request(
    client: httpx.AsyncClient,
    method: str,
    logical_url: str,
    *,
    base_url: str | None,
    timeout: float,
    accept: str,
    headers: dict[str, str] | None = None,
    data: Any = None,
    follow: int = 0,
) -> Answer:
    """One request (following up to `follow` redirects), body read with a size cap."""
    for hop in range(follow + 1):
        url, extra = route(logical_url, base_url)
        sent = {"Accept": accept, "User-Agent": USER_AGENT, **extra, **(headers or {})}
        async with client.stream(
            method, url, headers=sent, data=data, timeout=timeout, follow_redirects=False
        ) as response:
            location = response.headers.get("location")
            if response.status_code in REDIRECTS and location and hop < follow:
                next_url = urljoin(logical_url, location)
                if urlsplit(next_url).scheme != "https":
                    raise Unreachable(
                        f"{urlsplit(logical_url).hostname} redirected to a non-https URL {next_url[:120]}"
                    )
                logical_url = next_url
                continue
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY:
                    raise Unreachable(
                        f"{urlsplit(logical_url).hostname} answered more than {MAX_BODY // 1024} KiB "
                        f"for {urlsplit(logical_url).path}; that is not a profile document"
                    )
            return Answer(response.status_code, response.headers, bytes(body), logical_url)
    raise Unreachable(f"{urlsplit(logical_url).hostname} redirected more than {follow} times")


def retry_info(headers: httpx.Headers) -> tuple[float | None, datetime | None]:
    """Seconds to wait and the reset time, from Retry-After or Mastodon's X-RateLimit-Reset."""
    current = datetime.now(UTC)
    value = headers.get("retry-after")
    if value:
        value = value.strip()
        if value.isdigit():
            seconds = float(value)
            return seconds, current + timedelta(seconds=seconds)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return max(0.0, (when - current).total_seconds()), when
    reset = headers.get("x-ratelimit-reset")
    if reset:
        try:
            when = datetime.fromisoformat(reset.strip().replace("Z", "+00:00"))
        except ValueError:
            return None, None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - current).total_seconds()), when
    return None, None


def transient(answer: Answer, what: str) -> Unreachable | None:
    """An Unreachable for 429 and 5xx answers (retryable), else None."""
    status = answer.status
    if status != 429 and status < 500:
        return None
    seconds, when = retry_info(answer.headers)
    resets = f" (resets {when.astimezone(UTC):%H:%M:%S} UTC)" if when is not None else ""
    if status == 429:
        return Unreachable(
            f"{answer.host} answered 429 rate limit{resets} to the {what}; retry later", seconds
        )
    phrase = httpx.codes.get_reason_phrase(status)
    return Unreachable(
        f"{answer.host} answered {status} {phrase} to the {what}; retry later", seconds
    )


def json_object(answer: Answer, what: str) -> dict[str, Any]:
    """The body as a JSON object, or Unreachable naming what was malformed."""
    try:
        value = json.loads(answer.body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Unreachable(
            f"{answer.host} answered a malformed {what} (not JSON: {str(exc)[:80]})"
        ) from exc
    if not isinstance(value, dict):
        raise Unreachable(
            f"{answer.host} answered a malformed {what} (a JSON {type(value).__name__}, not an object)"
        )
    return value
