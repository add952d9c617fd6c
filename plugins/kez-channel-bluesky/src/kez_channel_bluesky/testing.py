"""A local fake of the atproto services the bluesky channel talks to, for tests and benchmarks.

One Starlette app under uvicorn on 127.0.0.1 plays three roles at one base URL:

* a **PDS** speaking XRPC: `com.atproto.identity.resolveHandle`,
  `com.atproto.server.createSession` / `refreshSession` / `getSession` /
  `describeServer`, `com.atproto.repo.getRecord` / `putRecord`, and
  `app.bsky.actor.getProfile`; request and response shapes and error bodies
  (`{"error": "InvalidRequest", "message": "Unable to resolve handle"}`,
  `{"error": "RecordNotFound", …}`, `{"error": "AuthMissing", …}`, …) follow
  the lexicons and the reference PDS. Access tokens are real HS256 JWTs with
  `exp`, as the atproto SDK decodes them;
* a **PLC directory**: `GET /{did}` → the DID document (content type
  `application/did+ld+json`), `404 {"message": "DID not registered: …"}`;
* a **did:web host** for accounts created with `did_web=True`:
  `GET /.well-known/did.json` (did `did:web:localhost%3a<port>`).

Usage::

    from kez_channel_bluesky.testing import running_server

    with running_server(latency=0.0) as server:
        did = server.add_account("alice.test", "app-pass-word")
        server.put_record(did, "lat.kez.claim", "self",
                          {"$type": "lat.kez.claim", "claim": compact, "createdAt": "…"})
        # or: server.seed_proof("alice.test", compact)
        ctx = ChannelContext(options=server.ctx_options())
        outcome = await BlueskyChannel().fetch("alice.test", ctx)

Faults: `fail_next(n, status, retry_after=…, path=…)`, `malformed_next(n)`,
`slow(seconds)`; `requests` logs what was asked. This module imports
starlette and uvicorn, so only tests and benchmarks import it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import attrs

from .channel import COLLECTION, PROFILE_COLLECTION, PROFILE_RKEY, RKEY

__all__ = ["FakeAtproto", "running_server"]

_NSID = re.compile(
    r"^[a-zA-Z]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)+\Z"
)
_RKEY = re.compile(r"^[A-Za-z0-9._:~-]{1,512}\Z")
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_TID_CHARS = "234567abcdefghijklmnopqrstuvwxyz"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _cid(value: Any) -> str:
    """CIDv1 (dag-cbor, sha2-256), base32 multibase: the `bafyrei…` form a PDS returns."""
    try:
        import libipld

        data = libipld.encode_dag_cbor(value)
    except Exception:  # noqa: BLE001 - values libipld refuses still get a stable CID
        data = json.dumps(value, sort_keys=True).encode()
    raw = bytes([0x01, 0x71, 0x12, 0x20]) + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(raw).decode("ascii").lower().rstrip("=")


def _tid() -> str:
    """A timestamp identifier (13 chars, sortable base32), as used for repo revisions."""
    n = (time.time_ns() // 1000) << 10 | secrets.randbelow(1024)
    return "".join(_TID_CHARS[(n >> (5 * i)) & 31] for i in reversed(range(13)))


def _iso(when: datetime | None = None) -> str:
    return (when or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@attrs.define
class Account:
    did: str
    handle: str
    password: str
    email: str
    also_known_as: list[str] | None  # None: ["at://<handle>"]
    created_at: str
    records: dict[tuple[str, str], tuple[Any, str]] = attrs.field(factory=dict)  # → (value, cid)

    def aka(self) -> list[str]:
        return [f"at://{self.handle}"] if self.also_known_as is None else list(self.also_known_as)


@attrs.define
class Fault:
    kind: str  # "status" | "malformed" | "slow"
    remaining: int | None  # None: until cleared
    path: str | None  # substring of the request path and query; None: every request
    status: int = 503
    headers: dict[str, str] = attrs.field(factory=dict)
    body: Any = None
    seconds: float = 0.0

    def matches(self, target: str) -> bool:
        return self.path is None or self.path in target


_DEFAULT_BODIES = {
    400: ("InvalidRequest", "Bad Request"),
    401: ("AuthenticationRequired", "Authentication Required"),
    403: ("Forbidden", "Forbidden"),
    404: ("NotFound", "Not Found"),
    429: ("RateLimitExceeded", "Rate Limit Exceeded"),
    500: ("InternalServerError", "Internal Server Error"),
    502: ("UpstreamFailure", "Upstream Failure"),
    503: ("NotEnoughResources", "Service Unavailable"),
}


class FakeAtproto:
    """The fake PDS + PLC directory. Build it with `running_server()`."""

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.host = "127.0.0.1"
        self.port = 0
        self._lock = threading.RLock()
        self._secret = secrets.token_bytes(32)
        self._new_state()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def _new_state(self) -> None:
        self._accounts: dict[str, Account] = {}  # by DID
        self._faults: list[Fault] = []
        self._revoked: set[str] = set()
        self.requests: list[tuple[str, str]] = []  # (method, path?query with %-escapes decoded)
        self.peers: list[
            tuple[str, int]
        ] = []  # client (host, port) of each request: its connection

    def reset(self) -> None:
        """Back to the state of a new server (no accounts, faults, revoked sessions or recorded
        requests) at the same URL: one running server can serve many tests in turn."""
        with self._lock:
            self._new_state()

    # ------------------------------------------------------------ addresses

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def server_did(self) -> str:
        return f"did:web:localhost%3a{self.port}"

    def ctx_options(self, handle: str | None = None) -> dict[str, Any]:
        """`ChannelContext.options` pointing the channel here (with `handle`'s app password if given)."""
        options: dict[str, Any] = {
            "atproto_resolver": self.base_url,
            "atproto_plc": self.base_url,
        }
        if handle is not None:
            options["bluesky_app_password"] = self.account(handle).password
        return options

    # --------------------------------------------------------------- seeding

    def add_account(
        self,
        handle: str,
        password: str | None = None,
        *,
        did: str | None = None,
        did_web: bool = False,
        also_known_as: list[str] | None = None,
    ) -> str:
        """Create an account; returns its DID (`did:plc:…`, or `did:web:localhost%3a<port>`).

        `did` hosts an existing DID here (a repo moved to this PDS); `also_known_as`
        replaces the DID document's `["at://<handle>"]` (pass `[]` for a document
        that does not confirm the handle).
        """
        handle = handle.lower()
        if did is not None:
            pass
        elif did_web:
            did = self.server_did
        else:
            digest = hashlib.sha256(f"{handle}:{secrets.token_hex(8)}".encode()).digest()
            did = "did:plc:" + base64.b32encode(digest).decode("ascii").lower()[:24]
        account = Account(
            did=did,
            handle=handle,
            password=password or "-".join(secrets.token_hex(2) for _ in range(4)),
            email=f"{handle.split('.')[0]}@example.test",
            also_known_as=also_known_as,
            created_at=_iso(),
        )
        with self._lock:
            if any(a.handle == handle for a in self._accounts.values()):
                raise ValueError(f"handle {handle} is taken")
            if did in self._accounts:
                raise ValueError(f"{did} exists (one did:web account per server)")
            self._accounts[did] = account
        return did

    def account(self, actor: str) -> Account:
        """The account with this DID or handle (KeyError when there is none)."""
        found = self._find(actor)
        if found is None:
            raise KeyError(actor)
        return found

    def password(self, handle: str) -> str:
        return self.account(handle).password

    def set_also_known_as(self, actor: str, names: list[str] | None) -> None:
        with self._lock:
            self.account(actor).also_known_as = names

    def put_record(self, actor: str, collection: str, rkey: str, value: Any) -> str:
        """Store a record as the account's own repo would; returns its at:// URI."""
        account = self.account(actor)
        with self._lock:
            account.records[(collection, rkey)] = (value, _cid(value))
        return f"at://{account.did}/{collection}/{rkey}"

    def get_record(self, actor: str, collection: str, rkey: str) -> Any | None:
        entry = self.account(actor).records.get((collection, rkey))
        return None if entry is None else entry[0]

    def delete_record(self, actor: str, collection: str, rkey: str) -> None:
        with self._lock:
            self.account(actor).records.pop((collection, rkey), None)

    def set_profile_description(self, actor: str, text: str | None) -> None:
        """Set the `description` of `app.bsky.actor.profile/self` (None removes it)."""
        current = self.get_record(actor, PROFILE_COLLECTION, PROFILE_RKEY) or {
            "$type": PROFILE_COLLECTION
        }
        profile = dict(current)
        if text is None:
            profile.pop("description", None)
        else:
            profile["description"] = text
        self.put_record(actor, PROFILE_COLLECTION, PROFILE_RKEY, profile)

    def seed_proof(self, handle: str, proof_text: str, **account_args: Any) -> str:
        """Publish `proof_text` as `lat.kez.claim/self` of `handle` (creating the account); returns the DID."""
        found = self._find(handle)
        did = found.did if found else self.add_account(handle, **account_args)
        self.put_record(
            did, COLLECTION, RKEY, {"$type": COLLECTION, "claim": proof_text, "createdAt": _iso()}
        )
        return did

    # ---------------------------------------------------------------- faults

    def fail_next(
        self,
        count: int = 1,
        status: int = 503,
        *,
        retry_after: float | str | None = None,
        rate_limit_reset: float | None = None,
        path: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next `count` requests (whose path?query contains `path`) with `status`.

        The body is the XRPC error for that status unless `body` is given.
        `retry_after` sets Retry-After; `rate_limit_reset` (seconds from now)
        sets Bluesky's RateLimit-* headers (RateLimit-Reset is a Unix time).
        """
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = str(
                retry_after if isinstance(retry_after, str) else int(retry_after)
            )
        if rate_limit_reset is not None:
            extra.update(
                {
                    "RateLimit-Limit": "3000",
                    "RateLimit-Remaining": "0",
                    "RateLimit-Reset": str(int(time.time() + rate_limit_reset)),
                    "RateLimit-Policy": "3000;w=300",
                }
            )
        with self._lock:
            self._faults.append(Fault("status", count, path, status, extra, body))

    def malformed_next(self, count: int = 1, *, path: str | None = None) -> None:
        """Answer the next `count` requests with 200 and a truncated JSON body."""
        with self._lock:
            self._faults.append(Fault("malformed", count, path))

    def slow(self, seconds: float, *, path: str | None = None, count: int | None = None) -> None:
        """Delay matching requests by `seconds` more (every one until `clear_faults`, or `count`)."""
        with self._lock:
            self._faults.append(Fault("slow", count, path, seconds=seconds))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # -------------------------------------------------------------- internals

    def _find(self, actor: str) -> Account | None:
        actor = actor.strip().lower() if not actor.startswith("did:") else actor.strip()
        with self._lock:
            if actor in self._accounts:
                return self._accounts[actor]
            for account in self._accounts.values():
                if account.handle == actor or account.email == actor:
                    return account
        return None

    def did_document(self, account: Account) -> dict[str, Any]:
        key = (
            "zQ3sh" + base64.b32encode(hashlib.sha256(account.did.encode()).digest()).decode()[:44]
        )
        return {
            "@context": [
                "https://www.w3.org/ns/did/v1",
                "https://w3id.org/security/multikey/v1",
                "https://w3id.org/security/suites/secp256k1-2019/v1",
            ],
            "id": account.did,
            "alsoKnownAs": account.aka(),
            "verificationMethod": [
                {
                    "id": f"{account.did}#atproto",
                    "type": "Multikey",
                    "controller": account.did,
                    "publicKeyMultibase": key,
                }
            ],
            "service": [
                {
                    "id": "#atproto_pds",
                    "type": "AtprotoPersonalDataServer",
                    "serviceEndpoint": self.base_url,
                }
            ],
        }

    def _jwt(self, header: dict[str, Any], payload: dict[str, Any]) -> str:
        signing = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(payload).encode())}"
        sig = hmac.new(self._secret, signing.encode(), hashlib.sha256).digest()
        return f"{signing}.{_b64url(sig)}"

    def _tokens(self, did: str) -> dict[str, str]:
        now = int(time.time())
        access = self._jwt(
            {"typ": "at+jwt", "alg": "HS256"},
            {
                "scope": "com.atproto.appPass",
                "sub": did,
                "aud": self.server_did,
                "iat": now,
                "exp": now + 7200,
            },
        )
        refresh = self._jwt(
            {"typ": "refresh+jwt", "alg": "HS256"},
            {
                "scope": "com.atproto.refresh",
                "sub": did,
                "aud": self.server_did,
                "jti": secrets.token_urlsafe(16),
                "iat": now,
                "exp": now + 90 * 86400,
            },
        )
        return {"accessJwt": access, "refreshJwt": refresh}

    def _verify(self, authorization: str | None, scopes: tuple[str, ...]) -> tuple[str | None, Any]:
        """(DID, None) for a good bearer token, else (None, error response)."""
        from starlette.responses import JSONResponse

        def error(status: int, name: str, message: str) -> Any:
            return JSONResponse({"error": name, "message": message}, status_code=status)

        if not authorization or not authorization.startswith("Bearer "):
            return None, error(401, "AuthMissing", "Authentication Required")
        token = authorization[len("Bearer ") :].strip()
        try:
            head, body, sig = token.split(".")
            expected = hmac.new(self._secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _b64url_decode(sig)):
                raise ValueError("bad signature")
            payload = json.loads(_b64url_decode(body))
        except ValueError:
            return None, error(400, "InvalidToken", "Token could not be verified")
        if payload.get("exp", 0) <= time.time():
            return None, error(400, "ExpiredToken", "Token has expired")
        if payload.get("scope") not in scopes or token in self._revoked:
            return None, error(400, "InvalidToken", "Bad token scope")
        return payload.get("sub"), None

    # ------------------------------------------------------------------- app

    def _app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route

        def xrpc_error(status: int, name: str, message: str) -> Response:
            return JSONResponse({"error": name, "message": message}, status_code=status)

        def missing(param: str) -> Response:
            return xrpc_error(
                400, "InvalidRequest", f'Error: Params must have the property "{param}"'
            )

        async def json_input(request: Request) -> tuple[dict[str, Any] | None, Response | None]:
            try:
                data = await request.json()
            except ValueError:
                return None, xrpc_error(400, "InvalidRequest", "Request body is not valid JSON")
            if not isinstance(data, dict):
                return None, xrpc_error(400, "InvalidRequest", "Input must be an object")
            return data, None

        async def resolve_handle(request: Request) -> Response:
            handle = request.query_params.get("handle")
            if not handle:
                return missing("handle")
            account = self._find(handle) if not handle.startswith("did:") else None
            if account is None:
                return xrpc_error(400, "InvalidRequest", "Unable to resolve handle")
            return JSONResponse({"did": account.did})

        def session_body(account: Account, tokens: dict[str, str] | None) -> dict[str, Any]:
            body: dict[str, Any] = {
                "did": account.did,
                "didDoc": self.did_document(account),
                "handle": account.handle,
                "email": account.email,
                "emailConfirmed": True,
                "emailAuthFactor": False,
                "active": True,
            }
            if tokens:
                body.update(tokens)
            return body

        async def create_session(request: Request) -> Response:
            data, problem = await json_input(request)
            if problem:
                return problem
            for field in ("identifier", "password"):
                if not isinstance(data.get(field), str):
                    return xrpc_error(
                        400, "InvalidRequest", f'Input must have the property "{field}"'
                    )
            account = self._find(data["identifier"])
            if account is None or not hmac.compare_digest(account.password, data["password"]):
                return xrpc_error(401, "AuthenticationRequired", "Invalid identifier or password")
            return JSONResponse(session_body(account, self._tokens(account.did)))

        async def refresh_session(request: Request) -> Response:
            did, problem = self._verify(
                request.headers.get("authorization"), ("com.atproto.refresh",)
            )
            if problem:
                return problem
            account = self._find(did or "")
            if account is None:
                return xrpc_error(400, "AccountNotFound", "Account not found")
            self._revoked.add(request.headers["authorization"][len("Bearer ") :].strip())
            body = session_body(account, self._tokens(account.did))
            for field in ("email", "emailConfirmed", "emailAuthFactor"):
                body.pop(field)
            return JSONResponse(body)

        async def get_session(request: Request) -> Response:
            did, problem = self._verify(
                request.headers.get("authorization"), ("com.atproto.appPass", "com.atproto.access")
            )
            if problem:
                return problem
            account = self._find(did or "")
            if account is None:
                return xrpc_error(400, "AccountNotFound", "Account not found")
            return JSONResponse(session_body(account, None))

        async def describe_server(request: Request) -> Response:
            return JSONResponse(
                {
                    "did": self.server_did,
                    "availableUserDomains": [".test"],
                    "inviteCodeRequired": False,
                    "phoneVerificationRequired": False,
                    "links": {},
                    "contact": {},
                }
            )

        async def get_record(request: Request) -> Response:
            params = request.query_params
            for name in ("repo", "collection", "rkey"):
                if not params.get(name):
                    return missing(name)
            if not _NSID.match(params["collection"]):
                return xrpc_error(400, "InvalidRequest", "collection must be a valid nsid")
            account = self._find(params["repo"])
            if account is None:
                return xrpc_error(400, "InvalidRequest", f"Could not find repo: {params['repo']}")
            uri = f"at://{account.did}/{params['collection']}/{params['rkey']}"
            entry = account.records.get((params["collection"], params["rkey"]))
            if entry is None or (params.get("cid") and params["cid"] != entry[1]):
                return xrpc_error(400, "RecordNotFound", f"Could not locate record: {uri}")
            value, cid = entry
            return JSONResponse({"uri": uri, "cid": cid, "value": value})

        async def put_record(request: Request) -> Response:
            did, problem = self._verify(
                request.headers.get("authorization"), ("com.atproto.appPass", "com.atproto.access")
            )
            if problem:
                return problem
            data, problem = await json_input(request)
            if problem:
                return problem
            for field in ("repo", "collection", "rkey", "record"):
                if field not in data:
                    return xrpc_error(
                        400, "InvalidRequest", f'Input must have the property "{field}"'
                    )
            collection, rkey, record = data["collection"], data["rkey"], data["record"]
            if not isinstance(collection, str) or not _NSID.match(collection):
                return xrpc_error(400, "InvalidRequest", "Input/collection must be a valid nsid")
            if not isinstance(rkey, str) or not _RKEY.match(rkey) or rkey in (".", ".."):
                return xrpc_error(400, "InvalidRequest", "Input/rkey must be a valid Record Key")
            account = self._find(str(data["repo"]))
            if account is None:
                return xrpc_error(400, "InvalidRequest", f"Could not find repo: {data['repo']}")
            if account.did != did:
                return xrpc_error(401, "AuthenticationRequired", "Authentication Required")
            if not isinstance(record, dict):
                return xrpc_error(400, "InvalidRequest", "Input/record must be an object")
            if "$type" not in record:
                return xrpc_error(400, "InvalidRequest", "Invalid record: No $type provided")
            if record["$type"] != collection:
                return xrpc_error(
                    400,
                    "InvalidRequest",
                    f"Invalid $type: expected {collection}, got {record['$type']}",
                )
            swap = data.get("swapRecord")
            current = account.records.get((collection, rkey))
            if isinstance(swap, str) and (current is None or current[1] != swap):
                return xrpc_error(400, "InvalidSwap", "Record was at a different cid")
            uri = self.put_record(account.did, collection, rkey, record)
            cid = account.records[(collection, rkey)][1]
            known = collection.startswith(("app.bsky.", "com.atproto."))
            return JSONResponse(
                {
                    "uri": uri,
                    "cid": cid,
                    "commit": {"cid": _cid({"rev": _tid(), "data": cid}), "rev": _tid()},
                    "validationStatus": "valid" if known else "unknown",
                }
            )

        async def get_profile(request: Request) -> Response:
            actor = request.query_params.get("actor")
            if not actor:
                return missing("actor")
            account = self._find(actor)
            if account is None:
                return xrpc_error(400, "InvalidRequest", "Profile not found")
            profile = self.get_record(account.did, PROFILE_COLLECTION, PROFILE_RKEY) or {}
            body = {
                "did": account.did,
                "handle": account.handle,
                "followersCount": 0,
                "followsCount": 0,
                "postsCount": 0,
                "indexedAt": account.created_at,
                "createdAt": account.created_at,
            }
            for field in ("displayName", "description"):
                if isinstance(profile.get(field), str):
                    body[field] = profile[field]
            return JSONResponse(body)

        async def not_implemented(request: Request) -> Response:
            return xrpc_error(501, "MethodNotImplemented", "Method Not Implemented")

        async def plc_document(request: Request) -> Response:
            did = request.path_params["did"]
            account = self._accounts.get(did) if did.startswith("did:plc:") else None
            if account is None:
                return JSONResponse({"message": f"DID not registered: {did}"}, status_code=404)
            return Response(
                json.dumps(self.did_document(account)), media_type="application/did+ld+json"
            )

        async def did_web(request: Request) -> Response:
            account = self._accounts.get(self.server_did)
            if account is None:
                return Response("Not Found", status_code=404, media_type="text/plain")
            return JSONResponse(self.did_document(account))

        routes = [
            Route("/xrpc/com.atproto.identity.resolveHandle", resolve_handle),
            Route("/xrpc/com.atproto.server.createSession", create_session, methods=["POST"]),
            Route("/xrpc/com.atproto.server.refreshSession", refresh_session, methods=["POST"]),
            Route("/xrpc/com.atproto.server.getSession", get_session),
            Route("/xrpc/com.atproto.server.describeServer", describe_server),
            Route("/xrpc/com.atproto.repo.getRecord", get_record),
            Route("/xrpc/com.atproto.repo.putRecord", put_record, methods=["POST"]),
            Route("/xrpc/app.bsky.actor.getProfile", get_profile),
            Route("/xrpc/{method:path}", not_implemented, methods=["GET", "POST"]),
            Route("/.well-known/did.json", did_web),
            Route("/{did}", plc_document),
        ]
        app = Starlette(routes=routes)
        return self._with_faults(app)

    def _take_faults(self, target: str) -> tuple[float, Fault | None]:
        """Extra delay and the status/malformed fault (if any) that applies to this request."""
        delay, chosen = 0.0, None
        with self._lock:
            for fault in list(self._faults):
                if not fault.matches(target):
                    continue
                if fault.kind == "slow":
                    delay += fault.seconds
                elif chosen is None:
                    chosen = fault
                else:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
        return delay, chosen

    def _with_faults(self, app: Any) -> Any:
        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            path = scope["path"]
            query = scope.get("query_string", b"").decode("latin-1")
            target = f"{path}?{unquote(query)}" if query else path
            with self._lock:
                self.requests.append((scope["method"], target))
                client = scope.get("client")
                if client:
                    self.peers.append((client[0], client[1]))
            delay, fault = self._take_faults(target)
            if self.latency or delay:
                await asyncio.sleep(self.latency + delay)
            if fault is None:
                await app(scope, receive, send)
                return
            if fault.kind == "malformed":
                status, headers, body = 200, {}, b'{"did": "did:plc:'  # cut off mid-string
            else:
                status, headers = fault.status, fault.headers
                payload = fault.body
                if payload is None:
                    name, message = _DEFAULT_BODIES.get(fault.status, ("UnknownError", "Error"))
                    payload = {"error": name, "message": message}
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            raw_headers = [(b"content-type", b"application/json; charset=utf-8")]
            raw_headers += [(k.lower().encode(), str(v).encode()) for k, v in headers.items()]
            raw_headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": raw_headers})
            await send({"type": "http.response.body", "body": body})

        return asgi

    # -------------------------------------------------------------- lifecycle

    def start(self) -> None:
        import uvicorn

        # IPPROTO_TCP, not the default 0: asyncio turns Nagle off (TCP_NODELAY) only on
        # accepted sockets whose proto says TCP. With Nagle on, the body, written after
        # the headers, waits for the client's delayed ACK: ~40 ms on every kept-alive request.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(),
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="asyncio",
            backlog=2048,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="fake-atproto", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake atproto server did not start")
            time.sleep(0.01)
        self._socket = sock

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True  # do not wait for requests held by slow()
        if self._thread is not None:
            self._thread.join(timeout=10)
        sock = getattr(self, "_socket", None)
        if sock is not None:
            sock.close()


@contextmanager
def running_server(latency: float = 0.0) -> Iterator[FakeAtproto]:
    """A started fake PDS + PLC directory on 127.0.0.1 (free port), stopped on exit.

    `latency` adds that many seconds to every response (the benchmark uses
    0.05 with 1,000 claims; the server answers requests concurrently).
    """
    server = FakeAtproto(latency=latency)
    server.start()
    try:
        yield server
    finally:
        server.stop()
