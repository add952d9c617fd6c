"""A local stand-in for the GitHub REST API's gist endpoints, for tests and benchmarks.

It speaks the request and response shapes of the public API (checked against
docs.github.com "REST API endpoints for gists", "Using pagination in the REST
API" and "Rate limits for the REST API", API version 2022-11-28), so the
channel reaches it only through its `github_api` option and cannot tell::

    from kez_channel_github.testing import running_server

    with running_server(latency=0.05) as github:
        github.add_gist("alice", {"kez-proof.md": markdown_text})
        ctx = ChannelContext(options=github.ctx_options(), timeout=5)
        outcome = await GitHubChannel().fetch("alice", ctx)

Endpoints (JSON with GitHub's field names; errors as GitHub's
`{"message", "documentation_url", "status"}`):

- `GET /users/{username}/gists?since=&per_page=&page=`: 200 array of gists
  (files without `content`), newest first, `Link` header with
  `prev`/`next`/`last`/`first`; 404 for an unknown user. Secret gists are
  listed only to their owner's token.
- `GET /gists/{gist_id}`: 200 gist with `files[*].content`, `truncated`,
  `history`, `forks`; 404.
- `POST /gists` (token): `{"description", "public", "files": {name: {"content"}}}`
  → 201 with `Location`; 401, 400 (bad JSON), 422 (no files, empty content).
- `PATCH /gists/{gist_id}` (owner's token): `description`, `files: {name:
  {"content", "filename"} | null}` → 200; 404 for another user's gist; 422.
- `GET /user` (token): the authenticated user.
- `GET /raw/{login}/{gist_id}/raw/{revision}/{filename}`: the file's text at
  that revision (every file's `raw_url`).

Every response carries `x-ratelimit-limit/-remaining/-reset/-used/-resource`
(60 an hour unauthenticated, 5,000 with a token; counted per client and
enforced only after `enforce_rate_limits = True`). A token that is not known
answers 401 `Bad credentials`, on reads too, as GitHub does.

Only tests import this module, so starlette and uvicorn are imported here at
the top.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import attrs
from kez_core.plugin import serve_asgi
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["FakeGitHub", "RecordedRequest", "running_server"]

DOCS = "https://docs.github.com/rest"
RATE_LIMIT_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
SUPPORTED_VERSIONS = ("2022-11-28", "2026-03-10")
RATE_LIMIT_MESSAGE = (
    "API rate limit exceeded for {who}. (But here's the good news: Authenticated requests get a "
    "higher rate limit. Check out the documentation for more details.)"
)
_TYPES = {
    ".md": ("text/markdown", "Markdown"),
    ".markdown": ("text/markdown", "Markdown"),
    ".txt": ("text/plain", "Text"),
    ".json": ("application/json", "JSON"),
    ".py": ("application/x-python", "Python"),
}


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.define
class RecordedRequest:
    """One request the fake received (for assertions in tests)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]  # lowercase names
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


@attrs.define
class _User:
    login: str
    id: int


@attrs.define
class _Gist:
    id: str
    owner: _User
    files: dict[str, str]
    public: bool
    description: str | None
    created_at: datetime
    updated_at: datetime
    seq: int
    revision: str
    revisions: dict[str, dict[str, str]] = attrs.field(factory=dict)


@attrs.define
class _Fault:
    remaining: int
    path: str | None
    method: str | None
    status: int = 200
    headers: dict[str, str] = attrs.field(factory=dict)
    body: bytes | None = None
    content_type: str = "application/json; charset=utf-8"
    delay: float = 0.0
    passthrough: bool = False  # only delay, then answer normally


class FakeGitHub:
    """The state and the ASGI app of the fake; use `running_server()` to serve it."""

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.base_url = "http://127.0.0.1:0"
        self.truncate_bytes = 1_000_000  # GitHub returns at most 1 MB of each file's content
        self.rate_limits = {"unauthenticated": 60, "authenticated": 5000}
        self.enforce_rate_limits = False
        self.requests: list[RecordedRequest] = []
        self._lock = threading.RLock()
        self._users: dict[str, _User] = {}
        self._tokens: dict[str, _User] = {}
        self._gists: dict[str, _Gist] = {}
        self._faults: list[_Fault] = []
        self._windows: dict[str, list[int]] = {}  # client key -> [used, reset epoch]
        self._seq = 0
        self.app = Starlette(
            routes=[
                Route(
                    "/users/{username}/gists", self._wrap(self._list_user_gists), methods=["GET"]
                ),
                Route("/gists", self._wrap(self._create_gist), methods=["POST"]),
                Route("/gists/{gist_id}", self._wrap(self._get_gist), methods=["GET"]),
                Route("/gists/{gist_id}", self._wrap(self._update_gist), methods=["PATCH"]),
                Route("/user", self._wrap(self._authenticated_user), methods=["GET"]),
                Route(
                    "/raw/{login}/{gist_id}/raw/{revision}/{filename:path}",
                    self._wrap(self._raw, api=False),
                    methods=["GET"],
                ),
            ],
            exception_handlers={HTTPException: self._http_exception},
        )

    # ------------------------------------------------------------- seeding

    def add_user(self, login: str) -> str:
        """Create a user (kept with its spelling, found case-insensitively); returns the login."""
        with self._lock:
            return self._user(login, create=True).login  # type: ignore[union-attr]

    def token_for(self, login: str) -> str:
        """A new personal access token of `login` (created if needed) for writes and reads."""
        token = "ghp_" + secrets.token_urlsafe(27).replace("-", "a").replace("_", "b")[:36]
        with self._lock:
            self._tokens[token] = self._user(login, create=True)  # type: ignore[assignment]
        return token

    def add_gist(
        self,
        user: str,
        files: dict[str, str],
        public: bool = True,
        description: str | None = None,
    ) -> dict[str, Any]:
        """Store a gist of `user` (created if needed).

        Returns the gist as `GET /gists/{id}` shows it (with `id` and `html_url`).
        """
        if not files:
            raise ValueError("a gist needs at least one file")
        with self._lock:
            owner = self._user(user, create=True)
            assert owner is not None
            gist = self._new_gist(owner, dict(files), public, description)
            return self._gist_json(gist, full=True)

    def seed_proof(
        self, user: str, proof_text: str, filename: str = "kez-proof.md"
    ) -> dict[str, Any]:
        """A public gist of `user` holding `proof_text` in `filename` (what `kez` publishes)."""
        files = {filename: proof_text}
        return self.add_gist(user, files, public=True, description="KEZ identity proof")

    def gists_of(self, user: str) -> list[dict[str, Any]]:
        """Every gist of `user`, secret ones included, newest first, with file contents."""
        with self._lock:
            owner = self._user(user)
            if owner is None:
                return []
            return [self._gist_json(g, full=True) for g in self._sorted(owner, include_secret=True)]

    def clear(self) -> None:
        """Forget users, tokens, gists, faults, rate-limit counters and recorded requests."""
        with self._lock:
            self._users.clear()
            self._tokens.clear()
            self._gists.clear()
            self._faults.clear()
            self._windows.clear()
            self.requests.clear()

    # -------------------------------------------------------------- faults

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        *,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
        message: str | None = None,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """The next `n` requests (whose path starts with `path`, if given) answer `status`.

        The body is GitHub's error shape; `retry_after` adds a `Retry-After` header.
        """
        extra = dict(headers or {})
        if retry_after is not None:
            extra["retry-after"] = f"{retry_after:g}"
        body = {
            "message": message or _reason(status),
            "documentation_url": DOCS,
            "status": str(status),
        }
        self._add_fault(_Fault(n, path, method, status, extra, json.dumps(body).encode()))

    def rate_limit_next(
        self, n: int = 1, *, status: int = 403, reset_in: float = 600.0, path: str | None = None
    ) -> int:
        """The next `n` requests hit the primary rate limit: `status`, `x-ratelimit-remaining: 0`.

        Returns the `x-ratelimit-reset` epoch second it announces.
        """
        reset = int(time.time() + reset_in)
        headers = {
            "x-ratelimit-limit": "60",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-used": "60",
            "x-ratelimit-reset": str(reset),
            "x-ratelimit-resource": "core",
        }
        body = {
            "message": RATE_LIMIT_MESSAGE.format(who="127.0.0.1"),
            "documentation_url": RATE_LIMIT_DOCS,
        }
        self._add_fault(_Fault(n, path, None, status, headers, json.dumps(body).encode()))
        return reset

    def delay_next(self, n: int = 1, seconds: float = 5.0, *, path: str | None = None) -> None:
        """The next `n` requests wait `seconds` (beyond `latency`) before answering normally."""
        self._add_fault(_Fault(n, path, None, delay=seconds, passthrough=True))

    def malformed_next(
        self, n: int = 1, *, path: str | None = None, body: bytes | None = None
    ) -> None:
        """The next `n` requests answer 200 `application/json` with a body that is not JSON."""
        broken = body if body is not None else b'[{"id": "1", "files": {"kez-proof.md": {"con'
        self._add_fault(_Fault(n, path, None, 200, {}, broken))

    def _add_fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path is not None and not path.startswith(fault.path):
                    continue
                if fault.method is not None and fault.method.upper() != method:
                    continue
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    # ------------------------------------------------------------- options

    def ctx_options(self, token: str | None = None) -> dict[str, Any]:
        """`ChannelContext.options` pointing the github channel at this server."""
        options: dict[str, Any] = {"github_api": self.base_url}
        if token is not None:
            options["github_token"] = token
        return options

    @property
    def host(self) -> str:
        return self.base_url.split("://", 1)[1]

    # ------------------------------------------------------------ internals

    def _user(self, login: str, create: bool = False) -> _User | None:
        key = login.lower()
        user = self._users.get(key)
        if user is None and create:
            user = _User(login, 1000 + len(self._users) + 1)
            self._users[key] = user
        return user

    def _new_gist(
        self, owner: _User, files: dict[str, str], public: bool, description: str | None
    ) -> _Gist:
        self._seq += 1
        now = datetime.now(UTC).replace(microsecond=0)
        revision = secrets.token_hex(20)
        gist = _Gist(
            secrets.token_hex(16), owner, files, public, description, now, now, self._seq, revision
        )
        gist.revisions[revision] = dict(files)
        self._gists[gist.id] = gist
        return gist

    def _sorted(self, owner: _User, include_secret: bool) -> list[_Gist]:
        gists = [
            g for g in self._gists.values() if g.owner is owner and (g.public or include_secret)
        ]
        return sorted(gists, key=lambda g: (g.created_at, g.seq), reverse=True)

    def _owner_json(self, user: _User) -> dict[str, Any]:
        api = self.base_url
        return {
            "login": user.login,
            "id": user.id,
            "node_id": f"U_fake{user.id}",
            "avatar_url": f"{api}/avatars/u/{user.id}?v=4",
            "gravatar_id": "",
            "url": f"{api}/users/{user.login}",
            "html_url": f"{api}/_html/{user.login}",
            "followers_url": f"{api}/users/{user.login}/followers",
            "following_url": f"{api}/users/{user.login}/following{{/other_user}}",
            "gists_url": f"{api}/users/{user.login}/gists{{/gist_id}}",
            "starred_url": f"{api}/users/{user.login}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/users/{user.login}/subscriptions",
            "organizations_url": f"{api}/users/{user.login}/orgs",
            "repos_url": f"{api}/users/{user.login}/repos",
            "events_url": f"{api}/users/{user.login}/events{{/privacy}}",
            "received_events_url": f"{api}/users/{user.login}/received_events",
            "type": "User",
            "user_view_type": "public",
            "site_admin": False,
        }

    def _gist_json(self, gist: _Gist, full: bool) -> dict[str, Any]:
        api = self.base_url
        files: dict[str, Any] = {}
        for name, content in gist.files.items():
            data = content.encode("utf-8")
            suffix = "." + name.rsplit(".", 1)[1].lower() if "." in name else ""
            mime, language = _TYPES.get(suffix, ("text/plain", None))
            entry: dict[str, Any] = {
                "filename": name,
                "type": mime,
                "language": language,
                "raw_url": (
                    f"{api}/raw/{gist.owner.login}/{gist.id}/raw/{gist.revision}/{quote(name)}"
                ),
                "size": len(data),
            }
            if full:
                truncated = len(data) > self.truncate_bytes
                entry["truncated"] = truncated
                if truncated:
                    content = data[: self.truncate_bytes].decode("utf-8", errors="ignore")
                entry["content"] = content
                entry["encoding"] = "utf-8"
            files[name] = entry
        out: dict[str, Any] = {
            "url": f"{api}/gists/{gist.id}",
            "forks_url": f"{api}/gists/{gist.id}/forks",
            "commits_url": f"{api}/gists/{gist.id}/commits",
            "id": gist.id,
            "node_id": f"G_fake{gist.seq}",
            "git_pull_url": f"{api}/_html/{gist.id}.git",
            "git_push_url": f"{api}/_html/{gist.id}.git",
            "html_url": f"{api}/_html/{gist.id}",
            "files": files,
            "public": gist.public,
            "created_at": _iso(gist.created_at),
            "updated_at": _iso(gist.updated_at),
            "description": gist.description,
            "comments": 0,
            "comments_enabled": True,
            "user": None,
            "comments_url": f"{api}/gists/{gist.id}/comments",
            "owner": self._owner_json(gist.owner),
            "truncated": False,
        }
        if full:
            out["forks"] = []
            out["history"] = [
                {
                    "user": self._owner_json(gist.owner),
                    "version": gist.revision,
                    "committed_at": _iso(gist.updated_at),
                    "change_status": {"total": len(files), "additions": len(files), "deletions": 0},
                    "url": f"{api}/gists/{gist.id}/{gist.revision}",
                }
            ]
        return out

    # ------------------------------------------------------- request plumbing

    def _wrap(
        self, handler: Callable[[Request, _User | None], Awaitable[Response]], api: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._dispatch(request, handler, api)

        return endpoint

    async def _dispatch(
        self,
        request: Request,
        handler: Callable[[Request, _User | None], Awaitable[Response]],
        api: bool,
    ) -> Response:
        path = request.url.path
        body = await request.body() if request.method in ("POST", "PATCH", "PUT") else b""
        with self._lock:
            recorded = RecordedRequest(
                request.method, path, request.url.query, dict(request.headers), body
            )
            self.requests.append(recorded)
        if self.latency:
            await asyncio.sleep(self.latency)
        fault = self._take_fault(request.method, path)
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and not fault.passthrough:
            headers = {**self._rate_headers(self._client_key(request, None)), **fault.headers}
            return Response(
                fault.body or b"", fault.status, headers=headers, media_type=fault.content_type
            )
        user: _User | None = None
        auth = request.headers.get("authorization")
        if auth:
            scheme, _, token = auth.partition(" ")
            with self._lock:
                if scheme.lower() in ("bearer", "token"):
                    user = self._tokens.get(token.strip())
            if user is None:
                return self._error(401, "Bad credentials", request)
        if api:
            version = request.headers.get("x-github-api-version")
            if version is not None and version not in SUPPORTED_VERSIONS:
                return self._error(400, f"API version {version} is not supported.", request, user)
        key = self._client_key(request, user)
        limited = self._spend(key, user)
        if limited is not None:
            return limited
        response = await handler(request, user)
        for name, value in self._rate_headers(key).items():
            response.headers[name] = value
        if api:
            response.headers["x-github-api-version-selected"] = "2022-11-28"
            response.headers["x-github-media-type"] = "github.v3; format=json"
        return response

    def _client_key(self, request: Request, user: _User | None) -> str:
        if user is not None:
            return f"user:{user.login.lower()}"
        return f"ip:{request.client.host if request.client else '?'}"

    def _limit(self, key: str) -> int:
        return self.rate_limits["authenticated" if key.startswith("user:") else "unauthenticated"]

    def _spend(self, key: str, user: _User | None) -> Response | None:
        """Count one request; the 403 GitHub answers when the window is used up (if enforced)."""
        now = int(time.time())
        limit = self._limit(key)
        with self._lock:
            window = self._windows.get(key)
            spent = window is not None and window[0] >= limit
            if window is None or now >= window[1] or (spent and not self.enforce_rate_limits):
                window = [0, now + 3600]
                self._windows[key] = window
            if window[0] >= limit:
                body = {
                    "message": RATE_LIMIT_MESSAGE.format(who=key.split(":", 1)[1]),
                    "documentation_url": RATE_LIMIT_DOCS,
                }
                headers = self._rate_headers_locked(key)
                return JSONResponse(body, 403, headers=headers)
            window[0] += 1
        return None

    def _rate_headers(self, key: str) -> dict[str, str]:
        with self._lock:
            return self._rate_headers_locked(key)

    def _rate_headers_locked(self, key: str) -> dict[str, str]:
        limit = self._limit(key)
        used, reset = self._windows.get(key, [0, int(time.time()) + 3600])
        return {
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": str(max(0, limit - used)),
            "x-ratelimit-reset": str(reset),
            "x-ratelimit-used": str(min(used, limit)),
            "x-ratelimit-resource": "core",
        }

    def _error(
        self, status: int, message: str, request: Request, user: _User | None = None, **extra: Any
    ) -> Response:
        body = {"message": message, **extra, "documentation_url": DOCS, "status": str(status)}
        headers = self._rate_headers(self._client_key(request, user))
        return JSONResponse(body, status, headers=headers)

    async def _http_exception(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return self._error(status, _reason(status), request)

    def _json(
        self, data: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        return JSONResponse(
            data, status, headers=headers, media_type="application/json; charset=utf-8"
        )

    async def _body(self, request: Request) -> tuple[Any, Response | None]:
        try:
            return json.loads(await request.body()), None
        except ValueError:
            return None, self._error(400, "Problems parsing JSON", request)

    # ------------------------------------------------------------ endpoints

    async def _list_user_gists(self, request: Request, auth: _User | None) -> Response:
        params = request.query_params
        per_page = _int(params.get("per_page"), 30, 1, 100)
        page = _int(params.get("page"), 1, 1, 10**6)
        since: datetime | None = None
        if params.get("since"):
            try:
                since = datetime.fromisoformat(params["since"].replace("Z", "+00:00"))
            except ValueError:
                message = 'Invalid request.\n\n"since" is not a timestamp.'
                return self._error(422, message, request, auth)
        with self._lock:
            owner = self._user(request.path_params["username"])
            if owner is None:
                return self._error(404, "Not Found", request, auth)
            gists = self._sorted(owner, include_secret=auth is owner)
            if since is not None:
                gists = [g for g in gists if g.updated_at >= since]
            last = max(1, -(-len(gists) // per_page))
            chunk = gists[(page - 1) * per_page : page * per_page]
            body = [self._gist_json(g, full=False) for g in chunk]
        headers = {}
        link = _link(str(request.url.replace(query="")), dict(params), page, last)
        if link:
            headers["link"] = link
        return self._json(body, headers=headers)

    async def _get_gist(self, request: Request, auth: _User | None) -> Response:
        with self._lock:
            gist = self._gists.get(request.path_params["gist_id"])
            if gist is None:
                return self._error(404, "Not Found", request, auth)
            return self._json(self._gist_json(gist, full=True))

    async def _authenticated_user(self, request: Request, auth: _User | None) -> Response:
        if auth is None:
            return self._error(401, "Requires authentication", request)
        with self._lock:
            public = sum(1 for g in self._gists.values() if g.owner is auth and g.public)
        user = {
            **self._owner_json(auth),
            "name": None,
            "public_gists": public,
            "created_at": "2011-01-25T18:44:36Z",
        }
        return self._json(user)

    async def _create_gist(self, request: Request, auth: _User | None) -> Response:
        if auth is None:
            return self._error(401, "Requires authentication", request)
        data, problem = await self._body(request)
        if problem is not None:
            return problem
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, dict) or not files:
            return self._invalid(request, auth, "missing_field", "files")
        contents: dict[str, str] = {}
        for name, entry in files.items():
            content = entry.get("content") if isinstance(entry, dict) else None
            if not isinstance(name, str) or not name.strip() or "/" in name:
                return self._invalid(request, auth, "invalid", "files")
            if not isinstance(content, str) or not content.strip():
                return self._invalid(request, auth, "missing_field", "files")
            contents[name] = content
        public = data.get("public", False)
        if isinstance(public, str):
            public = public.lower() == "true"
        description = data.get("description")
        if description is not None and not isinstance(description, str):
            return self._invalid(request, auth, "invalid", "description")
        with self._lock:
            gist = self._new_gist(auth, contents, bool(public), description)
            body = self._gist_json(gist, full=True)
        return self._json(body, 201, headers={"location": body["url"]})

    async def _update_gist(self, request: Request, auth: _User | None) -> Response:
        if auth is None:
            return self._error(401, "Requires authentication", request)
        data, problem = await self._body(request)
        if problem is not None:
            return problem
        if not isinstance(data, dict) or ("files" not in data and "description" not in data):
            return self._invalid(request, auth, "missing_field", "files")
        files = data.get("files", {})
        if files is not None and not isinstance(files, dict):
            return self._invalid(request, auth, "invalid", "files")
        with self._lock:
            gist = self._gists.get(request.path_params["gist_id"])
            if gist is None or gist.owner is not auth:
                return self._error(404, "Not Found", request, auth)
            updated = dict(gist.files)
            for name, entry in (files or {}).items():
                if entry is None:
                    updated.pop(name, None)
                    continue
                if not isinstance(entry, dict):
                    return self._invalid(request, auth, "invalid", "files")
                content = entry.get("content", updated.get(name))
                new_name = entry.get("filename") or name
                if not isinstance(content, str) or not isinstance(new_name, str):
                    return self._invalid(request, auth, "missing_field", "files")
                updated.pop(name, None)
                updated[new_name] = content
            if not updated:
                return self._invalid(request, auth, "missing_field", "files")
            if "description" in data:
                gist.description = data["description"]
            gist.files = updated
            gist.revision = secrets.token_hex(20)
            gist.revisions[gist.revision] = dict(updated)
            gist.updated_at = datetime.now(UTC).replace(microsecond=0)
            body = self._gist_json(gist, full=True)
        return self._json(body)

    def _invalid(self, request: Request, auth: _User | None, code: str, field: str) -> Response:
        return self._error(
            422,
            "Validation Failed",
            request,
            auth,
            errors=[{"resource": "Gist", "code": code, "field": field}],
        )

    async def _raw(self, request: Request, auth: _User | None) -> Response:
        p = request.path_params
        with self._lock:
            gist = self._gists.get(p["gist_id"])
            files = gist.revisions.get(p["revision"]) if gist is not None else None
            content = files.get(p["filename"]) if files is not None else None
            if gist is None or gist.owner.login.lower() != p["login"].lower() or content is None:
                return Response(b"404: Not Found", 404, media_type="text/plain; charset=utf-8")
        return Response(content.encode("utf-8"), 200, media_type="text/plain; charset=utf-8")


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        number = default
    return min(max(number, low), high)


def _link(base: str, params: dict[str, str], page: int, last: int) -> str:
    """GitHub's `Link` header: prev, next, last, first (only the ones that apply)."""
    if last <= 1 and page <= 1:
        return ""

    def url(number: int) -> str:
        return f"{base}?{urlencode({**params, 'page': str(number)})}"

    parts = []
    if page > 1:
        parts.append(f'<{url(min(page - 1, last))}>; rel="prev"')
    if page < last:
        parts.append(f'<{url(page + 1)}>; rel="next"')
        parts.append(f'<{url(last)}>; rel="last"')
    if page > 1:
        parts.append(f'<{url(1)}>; rel="first"')
    return ", ".join(parts)


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


@contextmanager
def running_server(latency: float = 0.0) -> Iterator[FakeGitHub]:
    """Serve a fresh `FakeGitHub` on 127.0.0.1 (a free port) in a background thread.

    `latency` seconds are added to every response. The server stops when the
    block ends, even on error.
    """
    fake = FakeGitHub(latency=latency)
    with serve_asgi(fake.app, name="the fake GitHub server", keep_alive=30) as url:
        fake.base_url = url
        yield fake
