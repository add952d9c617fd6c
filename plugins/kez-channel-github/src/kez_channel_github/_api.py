"""HTTP side of the github channel: the REST calls behind `fetch` and `publish`.

Imported lazily by `GitHubChannel.fetch` / `.publish` (it imports httpx).

Reading (no credentials needed; the token is sent when configured, for the
higher rate limit):

1. `GET {api}/users/{user}/gists?per_page=100`, following `Link: rel="next"`
   for at most `MAX_PAGES` pages. Only gists that are public and whose
   `owner.login` is the user (case-insensitively) are considered.
2. The list response carries no file content, so the gists that may hold a
   proof are read with `GET {api}/gists/{id}` (all files with `content`);
   a file marked `truncated` is read in full from its `raw_url`.
   Gists with a file named `*.md` / `*.markdown` or with `kez` in its name
   are read first; the other gists are read only when those hold no proof,
   which keeps the usual check at two requests without missing a proof kept
   in an oddly named file.
3. Every file whose text contains "```kez" or "kez:z1:" is one candidate.

Every failure of the network or the server becomes
`FetchOutcome(reachable=False, reason=..., retry_after=...)`; nothing raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import attrs
import httpx
from kez_core.plugin import ChannelContext, FetchOutcome, ProofCandidate, PublishOutcome, client_for

from .channel import DEFAULT_API, PROOF_DESCRIPTION, PROOF_FILENAME
from .errors import GitHubAuthError, GitHubPublishError

USER_AGENT = "kez-python"
API_VERSION = "2022-11-28"
MAX_PAGES = 10
PER_PAGE = 100
MAX_BODY_BYTES = 8 * 1024 * 1024  # one API response; GitHub caps file content at 1 MB each
MAX_RAW_BYTES = 4 * 1024 * 1024  # one raw file: decoders refuse text over 1 Mi characters anyway
MIN_PROOF_BYTES = 64  # a compact claim alone is several hundred bytes
CONCURRENCY = 8  # gists read at once for one user
MARKERS = ("```kez", "kez:z1:")
TOKEN_HINT = "set GITHUB_TOKEN or retry later"
_RETRY_SECONDARY = 60.0  # GitHub: without retry-after, wait at least a minute


class ApiFailure(Exception):
    """The API could not be asked or answered with something other than what we need."""

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        message: str = "",
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.message = message  # GitHub's own `message` field, when there was one


class UserNotFound(Exception):
    """`GET /users/{user}/gists` answered 404."""


# ------------------------------------------------------------------ settings


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


class GitHubAPI:
    """A thin client for the few REST calls the channel makes.

    Uses `ctx.http_client` when the caller shares one, else a client leased
    from the verification run (`ctx.scope`), else its own client, closed on
    exit. The token (when set) is sent only to the API's own origin,
    never to `raw_url` hosts or anywhere a `Link` header points elsewhere.
    """

    def __init__(self, ctx: ChannelContext) -> None:
        options = ctx.options or {}
        base = str(options.get("github_api") or DEFAULT_API).strip().rstrip("/")
        scheme, netloc = _origin(base)
        if scheme not in ("http", "https") or not netloc:
            raise ApiFailure(
                f"github_api {base!r} is not an http(s) URL (set --github-api / KEZ_GITHUB_API)"
            )
        self.base = base
        self.origin = (scheme, netloc)
        self.host = netloc
        token = options.get("github_token")
        self.token: str | None = str(token).strip() if token else None
        self.token_refused = False
        self.timeout = float(ctx.timeout)
        self._ctx = ctx
        self._client: httpx.AsyncClient | None = ctx.http_client
        self._exit = contextlib.AsyncExitStack()

    async def __aenter__(self) -> GitHubAPI:
        if self._client is None:
            # room for one fetch's requests (the gists read at once), all kept alive
            lease = client_for(
                self._ctx, "github", connections=CONCURRENCY + 1, follow_redirects=True
            )
            self._client = await self._exit.enter_async_context(lease)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._exit.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        return self._client  # type: ignore[return-value]

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def headers(self, url: str, *, raw: bool = False) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT}
        if not raw:
            headers["Accept"] = "application/vnd.github+json"
            headers["X-GitHub-Api-Version"] = API_VERSION
        if self.token and _origin(url) == self.origin:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        raw: bool = False,
        limit: int = MAX_BODY_BYTES,
        read: bool = False,
    ) -> tuple[httpx.Response, bytes]:
        """Send one request; the whole exchange (body included) is bounded by the timeout.

        Raises ApiFailure for network errors, timeouts and bodies over `limit`;
        HTTP statuses are left to the caller. A `read` that GitHub answers 401
        because of a bad token is sent again without it: public gists need none.
        """
        response, data = await self._request(method, url, body=body, raw=raw, limit=limit)
        if read and response.status_code == 401 and self.token and _origin(url) == self.origin:
            self.token = None
            self.token_refused = True
            response, data = await self._request(method, url, body=body, raw=raw, limit=limit)
        return response, data

    async def _request(
        self, method: str, url: str, *, body: Any, raw: bool, limit: int
    ) -> tuple[httpx.Response, bytes]:
        try:
            async with asyncio.timeout(self.timeout):
                request = self.client.build_request(
                    method,
                    url,
                    headers=self.headers(url, raw=raw),
                    json=body,
                    timeout=self.timeout,
                )
                response = await self.client.send(request, stream=True)
                try:
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > limit:
                            mib = limit // (1024 * 1024)
                            raise ApiFailure(
                                f"{_host(url)} sent more than {mib} MiB for {_path(url)}",
                                status=response.status_code,
                            )
                        chunks.append(chunk)
                finally:
                    await response.aclose()
        except ApiFailure:
            raise
        except (TimeoutError, httpx.TimeoutException):
            raise ApiFailure(f"{_host(url)} did not answer within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise ApiFailure(f"could not reach {_host(url)}: {_describe(exc)}") from None
        except OSError as exc:  # pragma: no cover - transports normally wrap these in httpx errors
            raise ApiFailure(f"could not reach {_host(url)}: {exc}") from None
        return response, b"".join(chunks)


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ----------------------------------------------------------- status handling


def _json(response: httpx.Response, body: bytes, url: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise ApiFailure(
            f"{_host(url)} answered {response.status_code} with a body that is not JSON "
            f"for {_path(url)}",
            status=response.status_code,
        ) from None


def _message(body: bytes) -> str:
    """GitHub's error `message` field, or '' when the body has none."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    message = data.get("message") if isinstance(data, dict) else None
    return str(message)[:200] if isinstance(message, str | int) else ""


def _float_header(response: httpx.Response, name: str) -> float | None:
    value = response.headers.get(name)
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from `Retry-After` (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    seconds = _float_header(response, "retry-after")
    if seconds is None:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(0.0, seconds)


def failure_for(response: httpx.Response, body: bytes, url: str) -> ApiFailure:
    """The ApiFailure that a non-success status means (rate limits named as such)."""
    status = response.status_code
    host = _host(url)
    message = _message(body)
    phrase = f"{status} {response.reason_phrase}".strip() if response.reason_phrase else str(status)
    remaining = response.headers.get("x-ratelimit-remaining", "").strip()
    retry_after = _retry_after(response)
    if status in (403, 429) and remaining == "0":
        reset = _float_header(response, "x-ratelimit-reset")
        if reset is not None:
            when = datetime.fromtimestamp(reset, UTC).strftime("%H:%M")
            wait = max(0.0, reset - time.time())
            retry = retry_after if retry_after is not None else wait
            return ApiFailure(
                f"{host} answered {status} rate limit (resets {when} UTC); {TOKEN_HINT}",
                status=status,
                retry_after=retry,
                message=message,
            )
        return ApiFailure(
            f"{host} answered {status} rate limit; {TOKEN_HINT}",
            status=status,
            retry_after=retry_after,
            message=message,
        )
    secondary = status == 403 and (retry_after is not None or "rate limit" in message.lower())
    if status == 429 or secondary:
        if retry_after is not None:
            when = f"retry after {retry_after:.0f} s"
        else:
            retry_after = _RETRY_SECONDARY if status == 403 else None
            when = "secondary rate limit" if status == 403 else "no retry time given"
        return ApiFailure(
            f"{host} answered {status} rate limit ({when}); {TOKEN_HINT}",
            status=status,
            retry_after=retry_after,
            message=message,
        )
    detail = f": {message}" if message else ""
    return ApiFailure(
        f"{host} answered {phrase} for {_path(url)}{detail}",
        status=status,
        retry_after=retry_after if status >= 500 else None,
        message=message,
    )


# ------------------------------------------------------------------- reading


def _login(gist: dict[str, Any]) -> str:
    owner = gist.get("owner")
    login = owner.get("login") if isinstance(owner, dict) else None
    return login.lower() if isinstance(login, str) else ""


def _is_proof_gist(gist: object, user: str) -> bool:
    return isinstance(gist, dict) and gist.get("public") is True and _login(gist) == user


def _files(gist: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    files = gist.get("files")
    if not isinstance(files, dict):
        return []
    out = []
    for key, meta in files.items():
        if isinstance(meta, dict):
            name = meta.get("filename") if isinstance(meta.get("filename"), str) else key
            out.append((str(name), meta))
    return out


def _preferred(filename: str) -> bool:
    name = filename.lower()
    return name.endswith((".md", ".markdown")) or "kez" in name


def _may_hold_proof(meta: dict[str, Any]) -> bool:
    size = meta.get("size")
    return not isinstance(size, int) or size >= MIN_PROOF_BYTES


async def list_gists(api: GitHubAPI, user: str) -> tuple[list[dict[str, Any]], int, bool]:
    """(gist objects, pages read, whether pages were left unread).

    Raises UserNotFound, ApiFailure.
    """
    url = api.url(f"/users/{quote(user)}/gists?per_page={PER_PAGE}")
    gists: list[dict[str, Any]] = []
    pages = 0
    while url and pages < MAX_PAGES:
        response, body = await api.request("GET", url, read=True)
        pages += 1
        if response.status_code == 404 and pages == 1:
            raise UserNotFound(user)
        if response.status_code != 200:
            raise failure_for(response, body, url)
        data = _json(response, body, url)
        if not isinstance(data, list):
            raise ApiFailure(
                f"{_host(url)} answered a malformed gist list for {_path(url)} (not a JSON array)",
                status=200,
            )
        gists.extend(g for g in data if isinstance(g, dict))
        following = response.links.get("next", {}).get("url")
        url = urljoin(url, following) if following else ""
    return gists, pages, bool(url)


async def _read_gist(
    api: GitHubAPI, gist_id: str, user: str
) -> tuple[list[ProofCandidate], list[ApiFailure]]:
    """Candidates in one gist, and failures met while reading it (a deleted gist gives neither)."""
    url = api.url(f"/gists/{quote(gist_id, safe='')}")
    response, body = await api.request("GET", url, read=True)
    fetched_at = datetime.now(UTC).replace(microsecond=0)
    if response.status_code == 404:
        return [], []  # deleted between the list and this read
    if response.status_code != 200:
        return [], [failure_for(response, body, url)]
    gist = _json(response, body, url)
    if not isinstance(gist, dict) or not isinstance(gist.get("files"), dict):
        failure = ApiFailure(f"{_host(url)} answered a malformed gist for {_path(url)}", status=200)
        return [], [failure]
    if not _is_proof_gist(gist, user):
        return [], []
    html_url = gist.get("html_url") if isinstance(gist.get("html_url"), str) else url
    candidates: list[ProofCandidate] = []
    failures: list[ApiFailure] = []
    for filename, meta in _files(gist):
        content = meta.get("content")
        raw_url = meta.get("raw_url")
        partial = meta.get("truncated") is True or not isinstance(content, str)
        if partial and isinstance(raw_url, str):
            try:
                content = await _read_raw(api, urljoin(url, raw_url))
            except ApiFailure as exc:
                failures.append(exc)
                continue
            fetched_at = datetime.now(UTC).replace(microsecond=0)
        if isinstance(content, str) and any(marker in content for marker in MARKERS):
            source = f"{html_url}#{quote(filename)}"
            candidates.append(ProofCandidate(text=content, source=source, fetched_at=fetched_at))
    return candidates, failures


async def _read_raw(api: GitHubAPI, url: str) -> str:
    response, body = await api.request("GET", url, raw=True, limit=MAX_RAW_BYTES, read=True)
    if response.status_code != 200:
        raise failure_for(response, body, url)
    return body.decode("utf-8", errors="replace")


async def _read_gists(
    api: GitHubAPI, gist_ids: Iterable[str], user: str
) -> tuple[list[ProofCandidate], list[ApiFailure]]:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one(gist_id: str) -> tuple[list[ProofCandidate], list[ApiFailure]]:
        async with semaphore:
            try:
                return await _read_gist(api, gist_id, user)
            except ApiFailure as exc:
                return [], [exc]

    results = await asyncio.gather(*(one(g) for g in gist_ids))
    candidates = [c for found, _ in results for c in found]
    failures = [f for _, failed in results for f in failed]
    return candidates, failures


def _unreachable(failures: list[ApiFailure], source: str) -> FetchOutcome:
    first = failures[0]
    retries = [f.retry_after for f in failures if f.retry_after is not None]
    reason = first.reason
    if len(failures) > 1:
        reason += f" (and {len(failures) - 1} more failed reads)"
    return FetchOutcome(
        reachable=False, reason=reason, source=source, retry_after=max(retries) if retries else None
    )


async def fetch_proofs(user: str, ctx: ChannelContext) -> FetchOutcome:
    """What `GitHubChannel.fetch` returns; never raises for anything the network or server does."""
    source = ""
    try:
        api = GitHubAPI(ctx)
        source = api.url(f"/users/{quote(user)}/gists")
        budget = 2 * api.timeout  # a few sequential requests; the caller's own bound is larger
        try:
            async with api, asyncio.timeout(budget):
                outcome = await _fetch(api, user, source)
        except TimeoutError:
            raise ApiFailure(f"{api.host} did not finish answering within {budget:g} s") from None
        if api.token_refused:
            note = "GitHub refused the token in --github-token / GITHUB_TOKEN; read without it"
            reason = f"{outcome.reason} ({note})" if outcome.reason else note
            outcome = attrs.evolve(outcome, reason=reason)
        return outcome
    except ApiFailure as exc:
        return FetchOutcome(
            reachable=False, reason=exc.reason, source=source, retry_after=exc.retry_after
        )
    except Exception as exc:  # noqa: BLE001 - a server must never turn into a traceback here
        reason = f"reading {source or 'GitHub'} failed: {_describe(exc)}"
        return FetchOutcome(reachable=False, reason=reason, source=source)


async def _fetch(api: GitHubAPI, user: str, source: str) -> FetchOutcome:
    try:
        gists, pages, more = await list_gists(api, user)
    except UserNotFound:
        return FetchOutcome(reachable=True, reason=f"no GitHub user {user}", source=source)
    ours = [g for g in gists if _is_proof_gist(g, user) and isinstance(g.get("id"), str)]
    if not ours:
        reason = f"GitHub user {user} has no public gists"
        if more:
            reason += f" in the first {pages} pages"
        return FetchOutcome(reachable=True, reason=reason, source=source)
    first: list[str] = []
    rest: list[str] = []
    for gist in ours:
        files = [(name, meta) for name, meta in _files(gist) if _may_hold_proof(meta)]
        if not files:
            continue
        (first if any(_preferred(name) for name, _ in files) else rest).append(gist["id"])
    failures: list[ApiFailure] = []
    for tier in (first, rest):
        if not tier:
            continue
        candidates, failed = await _read_gists(api, tier, user)
        failures += failed
        if candidates:
            reason = ""
            if failures:
                reason = f"{len(failures)} gist file(s) could not be read: {failures[0].reason}"
            return FetchOutcome(
                candidates=tuple(candidates), reachable=True, reason=reason, source=source
            )
    if failures:
        return _unreachable(failures, source)
    read = len(first) + len(rest)
    capped = f"; stopped after {pages} pages" if more else ""
    return FetchOutcome(
        reachable=True,
        reason=(
            f"none of the {len(ours)} public gists of GitHub user {user} has a file with a "
            f"```kez block or a kez:z1: token ({read} read){capped}"
        ),
        source=source,
    )


# ----------------------------------------------------------------- publishing


def _publish_error(exc: ApiFailure, what: str) -> GitHubPublishError:
    hint = "check the network and --github-api / KEZ_GITHUB_API, then retry"
    if exc.retry_after is not None:
        hint = f"retry in {exc.retry_after:.0f} s, or set GITHUB_TOKEN"
    elif exc.status in (403, 404):
        hint = (
            "the token needs the `gist` scope (classic token) or the gists read/write "
            "permission (fine-grained token)"
        )
    elif exc.status == 422:
        hint = "GitHub refused the gist content; check the proof text"
    return GitHubPublishError(f"could not {what}: {exc.reason}", hint=hint)


def _auth_error(url: str) -> GitHubAuthError:
    return GitHubAuthError(
        f"GitHub rejected the token ({_host(url)} answered 401 Bad credentials)",
        hint="check --github-token / GITHUB_TOKEN: it must be a valid token with the gist scope",
    )


async def _call(
    api: GitHubAPI,
    method: str,
    path: str,
    what: str,
    body: Any = None,
    ok: tuple[int, ...] = (200,),
) -> tuple[int, Any]:
    url = api.url(path)
    try:
        response, raw = await api.request(method, url, body=body)
        if response.status_code == 401:
            raise _auth_error(url)
        if response.status_code not in ok:
            raise failure_for(response, raw, url)
        data = _json(response, raw, url) if response.status_code != 404 else None
    except ApiFailure as exc:
        raise _publish_error(exc, what) from None
    return response.status_code, data


def _html_url(data: Any, api: GitHubAPI, what: str) -> tuple[str, str]:
    if isinstance(data, dict):
        html_url, gist_id = data.get("html_url"), data.get("id")
        if isinstance(html_url, str) and isinstance(gist_id, str):
            return html_url, gist_id
    raise GitHubPublishError(
        f"could not {what}: {api.host} answered without a gist html_url", hint="retry later"
    )


async def publish_proof(user: str, proof_text: str, ctx: ChannelContext) -> PublishOutcome:
    """What `GitHubChannel.publish` returns. Raises GitHubAuthError / GitHubPublishError."""
    if not isinstance(proof_text, str) or not proof_text.strip():
        raise GitHubPublishError(
            "the proof text to publish is empty", hint="pass the encoded claim"
        )
    try:
        api = GitHubAPI(ctx)
    except ApiFailure as exc:
        hint = "e.g. --github-api https://api.github.com"
        raise GitHubPublishError(exc.reason, hint=hint) from None
    if not api.token:
        raise GitHubAuthError(
            f"publishing to GitHub needs a token for {user}",
            hint="pass --github-token or set GITHUB_TOKEN (a token with the gist scope)",
        )
    async with api:
        _, me = await _call(api, "GET", "/user", "check the token's account")
        login = me.get("login") if isinstance(me, dict) else None
        if not isinstance(login, str):
            raise GitHubPublishError(
                f"{api.host} answered /user without a login", hint="retry later"
            )
        if login.lower() != user:
            raise GitHubAuthError(
                f"the token belongs to GitHub user {login}, not {user}",
                hint=(
                    f"use a token of {user}: a gist made with this one "
                    f"would not prove github:{user}"
                ),
            )
        try:
            gists, _, _ = await list_gists(api, user)
        except UserNotFound:
            gists = []
        except ApiFailure as exc:
            raise _publish_error(exc, f"list the gists of {user}") from None
        existing = next(
            (
                g
                for g in gists
                if _is_proof_gist(g, user)
                and isinstance(g.get("id"), str)
                and any(name == PROOF_FILENAME for name, _ in _files(g))
            ),
            None,
        )
        files = {PROOF_FILENAME: {"content": proof_text}}
        if existing is not None:
            gist_id = existing["id"]
            status, data = await _call(
                api,
                "PATCH",
                f"/gists/{quote(gist_id, safe='')}",
                f"update gist {gist_id}",
                body={"description": PROOF_DESCRIPTION, "files": files},
                ok=(200, 404),
            )
            if status == 200:
                location, gist_id = _html_url(data, api, f"update gist {gist_id}")
                detail = f"updated gist {gist_id} ({PROOF_FILENAME})"
                return PublishOutcome(location=location, detail=detail)
            # deleted since we listed it: create a new one below
        _, data = await _call(
            api,
            "POST",
            "/gists",
            "create the proof gist",
            body={"description": PROOF_DESCRIPTION, "public": True, "files": files},
            ok=(201, 200),
        )
        location, gist_id = _html_url(data, api, "create the proof gist")
        detail = f"created gist {gist_id} ({PROOF_FILENAME})"
        return PublishOutcome(location=location, detail=detail)
