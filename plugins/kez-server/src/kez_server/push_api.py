"""The Web Push endpoints (docs/spec.md, section 11, "Web Push"):

    GET  /v1/push/vapid-public-key            {"public_key": <base64url P-256 point>}
    POST /v1/push/subscribe/{handle}          the browser's PushSubscription JSON; X-KEZ-Auth
    POST /v1/push/unsubscribe/{handle}        {"endpoint": …}; X-KEZ-Auth
    GET  /v1/push/subscriptions/{handle}      the handle's subscriptions (self-heal check); X-KEZ-Auth

Subscribing binds the endpoint URL into the signed header
(`POST\\n/v1/push/subscribe/<handle>\\n<endpoint>\\n<ts>`), so a captured
header cannot subscribe another endpoint; the listing binds the empty
string. The endpoint must pass the SSRF rules (`push_targets`).
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import ec
from kez_core.codec import parse_json
from kez_core.errors import DecodeError
from kez_core.timefmt import format_time, now
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .errors import ApiError
from .push import PushService
from .request_auth import authorize
from .push_db import PushStore, Subscription
from .push_targets import EndpointPolicy, EndpointRefused

if TYPE_CHECKING:
    from .app import KezServer

SUBSCRIBE_BODY_CAP = 8 * 1024


def _b64url(value: object, field: str, size: int) -> str:
    """`value` when it is base64url (padding optional) of `size` bytes; ApiError 400 otherwise."""
    if not isinstance(value, str) or not value.isascii() or len(value) > 2 * size + 8:
        raise ApiError(400, "bad_subscription", f"keys.{field} must be base64url text")
    text = value.rstrip("=")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_subscription", f"keys.{field} is not base64url") from None
    if len(raw) != size or not all(c.isalnum() or c in "-_" for c in text):
        raise ApiError(400, "bad_subscription", f"keys.{field} must be base64url of {size} bytes")
    if field == "p256dh":
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        except ValueError:
            raise ApiError(
                400, "bad_subscription", "keys.p256dh is not an uncompressed P-256 point"
            ) from None
    return text


def _read_json(body: bytes) -> dict[str, Any]:
    try:
        data = parse_json(body)
    except DecodeError as exc:
        raise ApiError(400, "bad_json", f"the body is not strict JSON: {exc.message}") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "bad_subscription", "the body must be a JSON object")
    endpoint = data.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise ApiError(400, "bad_subscription", "field 'endpoint' must be the push endpoint URL")
    return data


class PushApi:
    """The push endpoints over a `KezServer` (handles, chains) and a `PushService`."""

    def __init__(
        self, server: KezServer, service: PushService, store: PushStore, policy: EndpointPolicy
    ) -> None:
        self.server = server
        self.service = service
        self.store = store
        self.policy = policy

    def routes(self) -> list[Route]:
        return [
            Route("/v1/push/vapid-public-key", self.public_key, methods=["GET"]),
            Route("/v1/push/subscribe/{handle}", self.subscribe, methods=["POST"]),
            Route("/v1/push/unsubscribe/{handle}", self.unsubscribe, methods=["POST"]),
            Route("/v1/push/subscriptions/{handle}", self.subscriptions, methods=["GET"]),
        ]

    async def public_key(self, _request: Request) -> Response:
        return JSONResponse(
            {"public_key": self.service.vapid.public_b64url},
            headers={"cache-control": "public, max-age=3600"},
        )

    async def _authorize(
        self, request: Request, handle: str, method: str, path: str, bound: str
    ) -> None:
        row = await self.server.registered(handle)
        await authorize(
            self.server, request, row, method=method, path=path, bound=bound, now=time.time()
        )

    async def _body(self, request: Request, handle: str) -> dict[str, Any]:
        from .app import _JSON_TYPES, _require_type, read_body

        await self.server.registered(handle)  # 404 before reading a body for nobody
        _require_type(request, _JSON_TYPES, "JSON")
        return _read_json(await read_body(request, SUBSCRIBE_BODY_CAP))

    async def subscribe(self, request: Request) -> Response:
        handle = request.path_params["handle"]
        data = await self._body(request, handle)
        endpoint = data["endpoint"]
        keys = data.get("keys")
        if not isinstance(keys, dict):
            raise ApiError(400, "bad_subscription", "field 'keys' must be an object {p256dh, auth}")
        p256dh = _b64url(keys.get("p256dh"), "p256dh", 65)
        auth = _b64url(keys.get("auth"), "auth", 16)
        await self._authorize(request, handle, "POST", f"/v1/push/subscribe/{handle}", endpoint)
        try:
            await self.policy.check(endpoint)
        except EndpointRefused as exc:
            raise ApiError(
                422,
                "endpoint_refused",
                exc.message,
                hint="push endpoints are https:// URLs on public addresses (a browser's "
                "PushSubscription.endpoint); an operator admits others with --push-allow",
            ) from None
        sub = Subscription(handle, endpoint, p256dh, auth, format_time(now()))
        created = await run_in_threadpool(self.store.subscribe, sub)
        return JSONResponse(
            {"handle": handle, "endpoint": endpoint, "subscribed": True}, 201 if created else 200
        )

    async def unsubscribe(self, request: Request) -> Response:
        handle = request.path_params["handle"]
        endpoint = (await self._body(request, handle))["endpoint"]
        await self._authorize(request, handle, "POST", f"/v1/push/unsubscribe/{handle}", endpoint)
        removed = await run_in_threadpool(self.store.unsubscribe, handle, endpoint)
        return JSONResponse({"handle": handle, "endpoint": endpoint, "removed": removed})

    async def subscriptions(self, request: Request) -> Response:
        handle = request.path_params["handle"]
        await self._authorize(request, handle, "GET", f"/v1/push/subscriptions/{handle}", "")
        subs = await run_in_threadpool(self.store.subscriptions, handle)
        return JSONResponse({"handle": handle, "subscriptions": [s.to_json() for s in subs]})


def build_push(server: KezServer) -> PushApi:
    """The push endpoints and service of `server` (loads or creates the VAPID key)."""
    from .vapid import default_path, load_or_create

    settings = server.settings
    policy = EndpointPolicy(settings.push_allow)
    store = PushStore(server.store)
    vapid = load_or_create(default_path(settings))
    service = PushService(store, vapid, settings.push_subject, policy)
    return PushApi(server, service, store, policy)
