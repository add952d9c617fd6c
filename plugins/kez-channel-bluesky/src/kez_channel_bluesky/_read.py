"""Reading proofs from atproto over plain XRPC with httpx (no credentials).

Resolution path, each step a plain HTTP GET:

1. handle → DID: `GET {resolver}/xrpc/com.atproto.identity.resolveHandle?handle=…`
   (the resolver does the DNS `_atproto.<handle>` TXT and
   `https://<handle>/.well-known/atproto-did` lookups; this module does not).
   A DID subject skips this step.
2. DID → DID document: `GET {plc}/{did}` for did:plc;
   `GET https://<host>/.well-known/did.json` for did:web (http for `localhost`,
   as the atproto reference resolver does).
3. Starting from a handle, the document must list `at://<handle>` in
   `alsoKnownAs` (the bidirectional handle check), else: not found.
4. PDS = the `#atproto_pds` service of type `AtprotoPersonalDataServer`,
   unless the `atproto_pds` option overrides it.
5. `GET {pds}/xrpc/com.atproto.repo.getRecord` for `lat.kez.claim/self`; only
   when it is absent (or holds no claim text), the fallback
   `app.bsky.actor.profile/self`, whose `description` counts when it holds a
   `kez:z1:` token. A failed read of the record is `unreachable` (no fallback:
   the record may hold the proof).

Nothing the network or a server does makes this raise: failures become a
`FetchOutcome` with `reachable=False` (network, timeout, 5xx, 429, malformed
body) or `reachable=True` and no candidates (the services answered and
there is no proof).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import attrs
import httpx
from kez_core.plugin import COMPACT_TOKEN, ChannelContext, FetchOutcome, ProofCandidate, client_for

from .channel import COLLECTION, PROFILE_COLLECTION, PROFILE_RKEY, RKEY, option

MAX_BODY = 1024 * 1024  # no XRPC answer we read is anywhere near this
CLIENT_CONNECTIONS = 4  # per client: one to each service a fetch asks, and a spare
USER_AGENT = "kez-channel-bluesky/0.1 (+https://kez.lat)"
_DID = re.compile(r"^did:(plc:[a-z2-7]{24}|web:[a-zA-Z0-9.%:-]+)\Z")
_NOT_SERVED = {404, 405, 501}


class Unreachable(Exception):
    """The service could not be asked (network, timeout, 5xx, 429, malformed answer)."""

    def __init__(self, reason: str, *, source: str = "", retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.source = source
        self.retry_after = retry_after


class NotFound(Exception):
    """The services answered: there is no such account, or it publishes no proof."""

    def __init__(self, reason: str, *, source: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.source = source


@attrs.frozen
class Identity:
    """A resolved account: its DID, DID document and the PDS that hosts its repo."""

    did: str
    handle: str | None
    document: dict[str, Any]
    pds: str


@attrs.frozen
class Answer:
    status: int
    body: Any  # parsed JSON, or None when the body is not JSON
    url: str


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _base(url: str) -> str:
    return url.rstrip("/")


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from Retry-After, else from atproto's RateLimit-Reset (epoch seconds)."""
    value = headers.get("retry-after")
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    reset = headers.get("ratelimit-reset")
    if reset and reset.strip().isdigit():
        number = float(reset.strip())
        # Bluesky sends a Unix time; the IETF draft sends a delta. Tell them apart by size.
        return max(0.0, number - time.time()) if number > 1_000_000_000 else number
    return None


def _xrpc_error(body: Any) -> str:
    """`InvalidRequest: Unable to resolve handle` from an XRPC error body (or a PLC one)."""
    if isinstance(body, dict):
        error = body.get("error")
        message = body.get("message")
        parts = [str(p)[:200] for p in (error, message) if isinstance(p, str) and p]
        if parts:
            return ": ".join(parts)
    return "no error details"


class Http:
    """GET JSON with a size cap, mapping transport failures, 5xx and 429 to `Unreachable`."""

    def __init__(self, client: httpx.AsyncClient, timeout: float) -> None:
        self.client = client
        self.timeout = timeout
        self.pending = ""  # host of the request in flight, for the deadline message

    async def get(self, url: str, params: dict[str, str] | None = None) -> Answer:
        host = _host(url)
        self.pending = host
        if params:
            # Joined here rather than with httpx's `params=`, which parses the URL a second time.
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
        try:
            async with self.client.stream(
                "GET",
                url,
                headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                timeout=self.timeout,
                follow_redirects=True,
            ) as response:
                shown = str(response.url)
                if response.status_code == 429:
                    wait = _retry_after(response.headers)
                    when = ""
                    if wait is not None:
                        reset = datetime.fromtimestamp(time.time() + wait, UTC)
                        when = f" (resets {reset:%H:%M:%S} UTC)"
                    raise Unreachable(
                        f"{host} answered 429 rate limit{when}; retry later",
                        source=shown,
                        retry_after=wait,
                    )
                if response.status_code >= 500:
                    raise Unreachable(
                        f"{host} answered {response.status_code} {response.reason_phrase}".rstrip(),
                        source=shown,
                        retry_after=_retry_after(response.headers),
                    )
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_BODY:
                        raise Unreachable(
                            f"{host} sent more than {MAX_BODY // 1024} KiB for {response.url.path}",
                            source=shown,
                        )
        except httpx.TimeoutException:
            raise Unreachable(
                f"{host} did not answer within {self.timeout:g}s", source=url
            ) from None
        except httpx.HTTPError as exc:
            detail = str(exc) or type(exc).__name__
            raise Unreachable(f"cannot reach {host}: {detail}", source=url) from None
        try:
            body = json.loads(bytes(data))
        except (ValueError, UnicodeDecodeError):
            body = None
        return Answer(response.status_code, body, shown)


def _malformed(answer: Answer, what: str) -> Unreachable:
    return Unreachable(
        f"{_host(answer.url)} answered {answer.status} with a malformed body ({what} expected)",
        source=answer.url,
    )


def _unexpected(answer: Answer, what: str) -> Unreachable:
    hint = ""
    if answer.status in _NOT_SERVED:
        hint = "; is the URL of this service right?"
    return Unreachable(
        f"{_host(answer.url)} answered {answer.status} to {what} ({_xrpc_error(answer.body)}){hint}",
        source=answer.url,
    )


async def resolve_handle(http: Http, resolver: str, handle: str) -> str:
    url = f"{_base(resolver)}/xrpc/com.atproto.identity.resolveHandle"
    answer = await http.get(url, {"handle": handle})
    if answer.status == 200:
        did = answer.body.get("did") if isinstance(answer.body, dict) else None
        if not isinstance(did, str) or not _DID.match(did):
            raise _malformed(answer, "{did: did:plc:… | did:web:…}")
        return did
    if answer.status == 400:
        # Unknown handles: {"error": "InvalidRequest", "message": "Unable to resolve handle"}
        # (HandleNotFound in newer servers).
        raise NotFound(
            f"handle {handle} does not resolve to a DID ({_host(resolver)} answered "
            f"{_xrpc_error(answer.body)})",
            source=answer.url,
        )
    raise _unexpected(answer, "resolveHandle")


def _did_document_url(did: str, plc: str) -> str:
    if did.startswith("did:plc:"):
        return f"{_base(plc)}/{did}"
    ident = did[len("did:web:") :]
    if ":" in ident:
        raise NotFound(f"{did}: did:web with a path is not an atproto DID")
    host = unquote(ident)
    hostname = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    scheme = "http" if hostname == "localhost" else "https"
    return f"{scheme}://{host}/.well-known/did.json"


async def did_document(http: Http, did: str, plc: str) -> dict[str, Any]:
    url = _did_document_url(did, plc)
    answer = await http.get(url)
    if answer.status == 200:
        doc = answer.body
        if not isinstance(doc, dict):
            raise _malformed(answer, "a DID document")
        if doc.get("id") != did:
            raise NotFound(
                f"the DID document at {answer.url} is for {str(doc.get('id'))[:80]!r}, not {did}",
                source=answer.url,
            )
        return doc
    if answer.status in (404, 410):
        state = "is not registered" if answer.status == 404 else "is deactivated"
        raise NotFound(
            f"{did} {state} at {_host(url)} ({_xrpc_error(answer.body)})", source=answer.url
        )
    raise _unexpected(answer, "a DID document request")


def pds_endpoint(doc: dict[str, Any]) -> str | None:
    """The `#atproto_pds` service endpoint of a DID document, or None."""
    did = doc.get("id")
    services = doc.get("service")
    if not isinstance(services, list):
        return None
    for service in services:
        if not isinstance(service, dict):
            continue
        if service.get("id") not in ("#atproto_pds", f"{did}#atproto_pds"):
            continue
        if service.get("type") != "AtprotoPersonalDataServer":
            continue
        endpoint = service.get("serviceEndpoint")
        if isinstance(endpoint, str):
            parts = urlsplit(endpoint)
            if parts.scheme in ("http", "https") and parts.netloc:
                return _base(endpoint)
    return None


def lists_handle(doc: dict[str, Any], handle: str) -> bool:
    aka = doc.get("alsoKnownAs")
    if not isinstance(aka, list):
        return False
    wanted = f"at://{handle}"
    return any(isinstance(a, str) and a.strip().rstrip("/").lower() == wanted for a in aka)


async def resolve_identity(http: Http, normal: str, ctx: ChannelContext) -> Identity:
    """handle or DID → DID, DID document (handle checked both ways) and PDS."""
    resolver = option(ctx, "atproto_resolver") or ""
    plc = option(ctx, "atproto_plc") or ""
    if normal.startswith("did:"):
        did, handle = normal, None
    else:
        did, handle = await resolve_handle(http, resolver, normal), normal
    doc = await did_document(http, did, plc)
    if handle is not None and not lists_handle(doc, handle):
        raise NotFound(
            f"{handle} resolves to {did}, but the DID document does not list at://{handle} "
            "in alsoKnownAs, so the handle is not verified",
            source=_did_document_url(did, plc),
        )
    pds = option(ctx, "atproto_pds") or pds_endpoint(doc)
    if pds is None:
        raise NotFound(
            f"the DID document of {did} names no #atproto_pds service",
            source=_did_document_url(did, plc),
        )
    return Identity(did, handle, doc, _base(pds))


def record_url(pds: str, did: str, collection: str, rkey: str) -> str:
    return f"{pds}/xrpc/com.atproto.repo.getRecord?repo={did}&collection={collection}&rkey={rkey}"


async def get_record(http: Http, pds: str, did: str, collection: str, rkey: str) -> Any | None:
    """The record's value, or None when the PDS says there is no such record."""
    url = f"{pds}/xrpc/com.atproto.repo.getRecord"
    answer = await http.get(url, {"repo": did, "collection": collection, "rkey": rkey})
    if answer.status == 200:
        if not isinstance(answer.body, dict) or "value" not in answer.body:
            raise _malformed(answer, "{uri, cid, value}")
        return answer.body["value"]
    if answer.status == 400:
        # {"error": "RecordNotFound" | "InvalidRequest", "message": "Could not locate record: …"}
        # RepoNotFound / RepoTakendown / RepoDeactivated: no readable record either.
        return None
    raise _unexpected(answer, "getRecord")


def _now() -> datetime:
    return datetime.now(UTC)


async def _read_proofs(http: Http, normal: str, ctx: ChannelContext) -> FetchOutcome:
    identity = await resolve_identity(http, normal, ctx)
    did, pds = identity.did, identity.pds
    source = record_url(pds, did, COLLECTION, RKEY)
    looked: list[str] = []

    value = await get_record(http, pds, did, COLLECTION, RKEY)
    if isinstance(value, dict) and isinstance(value.get("claim"), str):
        candidate = ProofCandidate(value["claim"], f"at://{did}/{COLLECTION}/{RKEY}", _now())
        return FetchOutcome((candidate,), reachable=True, source=source)
    looked.append(
        f"no {COLLECTION}/{RKEY} record"
        if value is None
        else f"the {COLLECTION}/{RKEY} record has no claim text"
    )

    # Fallback: a compact claim in the profile description.
    profile = await get_record(http, pds, did, PROFILE_COLLECTION, PROFILE_RKEY)
    description = profile.get("description") if isinstance(profile, dict) else None
    if isinstance(description, str) and COMPACT_TOKEN.search(description):
        profile_uri = f"at://{did}/{PROFILE_COLLECTION}/{PROFILE_RKEY}"
        candidate = ProofCandidate(description, profile_uri, _now())
        return FetchOutcome(
            (candidate,),
            reachable=True,
            source=record_url(pds, did, PROFILE_COLLECTION, PROFILE_RKEY),
        )
    looked.append("no kez:z1: claim in the profile description")

    subject = did if identity.handle is None else f"{identity.handle} ({did})"
    return FetchOutcome(
        reachable=True,
        reason=f"{'; '.join(looked)} in the repo of {subject} at {_host(pds)}",
        source=source,
    )


def _client(ctx: ChannelContext) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
    """The client to read with: the caller's, the run's, or one for this call (`client_for`).

    One fetch asks up to three services (resolver, PLC, PDS) one after the
    other: a connection kept alive to each is all a client needs.
    """
    return client_for(ctx, "bluesky", connections=CLIENT_CONNECTIONS)


async def fetch_proofs(normal: str, ctx: ChannelContext) -> FetchOutcome:
    """The whole read path under one deadline of `ctx.timeout` seconds; never raises."""
    http = Http(None, ctx.timeout)  # type: ignore[arg-type] - the client is set below
    try:
        async with _client(ctx) as client, asyncio.timeout(ctx.timeout):
            http.client = client
            return await _read_proofs(http, normal, ctx)
    except TimeoutError:
        return FetchOutcome(
            reachable=False,
            reason=f"{http.pending or 'atproto'} did not answer within {ctx.timeout:g}s",
        )
    except Unreachable as exc:
        return FetchOutcome(
            reachable=False, reason=exc.reason, source=exc.source, retry_after=exc.retry_after
        )
    except NotFound as exc:
        return FetchOutcome(reachable=True, reason=exc.reason, source=exc.source)
    except Exception as exc:  # noqa: BLE001 - fetch never raises for what a server does
        return FetchOutcome(
            reachable=False, reason=f"reading bluesky:{normal} failed: {type(exc).__name__}: {exc}"
        )
