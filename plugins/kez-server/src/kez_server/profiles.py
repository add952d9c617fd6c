"""Profiles on kez-server (docs/spec.md §11, "Profiles"):

    PUT /v1/u/{handle}/profile   the signed profile JSON; X-KEZ-Auth bound to sha256(body)
    GET /v1/u/{handle}/profile   the stored profile (JCS bytes), ETag = its id
    PUT /v1/u/{handle}/picture   image/png, at most 512 KiB; X-KEZ-Auth bound to sha256(body)
    GET /v1/u/{handle}/picture   the published PNG, ETag = its SHA-256

A profile is accepted only when it is of the handle's identity, signed by its
current primary or an active device (judged from the chain stored here, else
the registered primary), and not older than the stored one (no replay of an
old profile). The picture is checked for the PNG signature and size only
(the server has no Pillow); it is usually scrambled noise anyway, and readers
compare its SHA-256 with the signed profile's `picture_sha256`.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from kez_core.codec import parse_json
from kez_core.errors import KezError
from kez_core.profile.signed_profile import check_profile
from kez_core.sigchain.model import ChainState
from kez_core.signed import SignedObject
from kez_core.timefmt import MAX_CLOCK_SKEW, format_time, now
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .db import Conflict, Store
from .errors import ApiError
from .request_auth import authorize
from .schema import profiles as table

if TYPE_CHECKING:
    from .app import KezServer

PROFILE_BODY_CAP = 16 * 1024
PICTURE_BODY_CAP = 512 * 1024
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_TYPES = {"image/png"}


class ProfileStore:
    """The `kez_profiles` table (sync; the endpoints call it from the thread pool)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, handle: str) -> dict[str, Any] | None:
        stmt = sa.select(table).where(table.c.handle == handle)
        with self.store._reader.connect() as conn:
            row = conn.execute(stmt).mappings().first()
        return dict(row) if row else None

    def _upsert(self, handle: str, values: dict[str, Any], newer_than: str | None = None) -> bool:
        """Set `values` on the handle's row (created when missing). With `newer_than`, only
        when the stored `updated_at` is not later (False: a newer profile is stored)."""
        values = {**values, "stored_at": format_time(now())}
        for _attempt in range(3):
            try:
                with self.store._write() as conn:
                    row = conn.execute(
                        sa.select(table.c.updated_at).where(table.c.handle == handle)
                    ).first()
                    if row is None:
                        conn.execute(table.insert(), {"handle": handle, **values})
                        return True
                    if newer_than is not None and row[0] is not None and row[0] > newer_than:
                        return False
                    conn.execute(table.update().where(table.c.handle == handle).values(**values))
                    return True
            except Conflict:  # created concurrently: update it
                continue
        return False

    def put_profile(self, handle: str, obj: SignedObject, updated_at: str) -> bool:
        return self._upsert(
            handle,
            {"profile": obj.canonical(), "profile_id": obj.id, "updated_at": updated_at},
            newer_than=updated_at,
        )

    def put_picture(self, handle: str, png: bytes, digest: str) -> None:
        self._upsert(handle, {"picture": png, "picture_sha256": digest})

    def drop(self, handle: str) -> None:
        with self.store._write() as conn:
            conn.execute(table.delete().where(table.c.handle == handle))


def _not_modified(request: Request, etag: str) -> bool:
    wanted = request.headers.get("if-none-match", "")
    return any(tag.strip() in (etag, f"W/{etag}", "*") for tag in wanted.split(","))


class ProfileApi:
    def __init__(self, server: KezServer) -> None:
        self.server = server
        self.store = ProfileStore(server.store)

    def routes(self) -> list[Route]:
        return [
            Route("/v1/u/{handle}/profile", self.profile, methods=["GET", "PUT"]),
            Route("/v1/u/{handle}/picture", self.picture, methods=["GET", "PUT"]),
        ]

    async def _write_auth(self, request: Request, path: str, body: bytes) -> dict[str, Any]:
        row = await self.server.registered(request.path_params["handle"])
        await authorize(
            self.server,
            request,
            row,
            method="PUT",
            path=path,
            bound=hashlib.sha256(body).hexdigest(),
            now=time.time(),
        )
        return row

    async def profile(self, request: Request) -> Response:
        handle = request.path_params["handle"]
        if request.method == "PUT":
            return await self._put_profile(request, handle)
        await self.server.registered(handle)
        row = await run_in_threadpool(self.store.get, handle)
        if row is None or row["profile"] is None:
            raise ApiError(404, "no_profile", f"{handle} has published no profile here")
        etag = f'"{row["profile_id"]}"'
        headers = {"etag": etag, "cache-control": "no-cache"}
        if _not_modified(request, etag):
            return Response(status_code=304, headers=headers)
        return Response(row["profile"], media_type="application/json", headers=headers)

    async def _put_profile(self, request: Request, handle: str) -> Response:
        from .app import _JSON_TYPES, _require_type, read_body

        await self.server.registered(handle)
        _require_type(request, _JSON_TYPES, "JSON")
        body = await read_body(request, PROFILE_BODY_CAP)
        row = await self._write_auth(request, f"/v1/u/{handle}/profile", body)
        try:
            obj = SignedObject.from_dict(parse_json(body))
            state = await run_in_threadpool(self.server.chains.state, row["identity"])
            if state is None:  # no chain here: the registration's primary is the identity
                state = ChainState(row["identity"], row["primary_key"], "", 0, "")
            profile = check_profile(obj, state, self.server.registry)
        except KezError as exc:
            raise ApiError(
                422,
                "bad_profile",
                f"the profile is refused: {exc.message}",
                **({"hint": exc.hint} if exc.hint else {}),
            ) from None
        if profile.updated_at > now() + MAX_CLOCK_SKEW:
            raise ApiError(422, "bad_profile", "the profile's updated_at is in the future")
        stored = await run_in_threadpool(
            self.store.put_profile, handle, obj, format_time(profile.updated_at)
        )
        if not stored:
            raise ApiError(
                409,
                "stale_profile",
                "a newer profile is stored for this handle",
                hint="sign the profile again (its updated_at is older than the stored one)",
            )
        return Response(
            obj.canonical(), 200, media_type="application/json", headers={"etag": f'"{obj.id}"'}
        )

    async def picture(self, request: Request) -> Response:
        handle = request.path_params["handle"]
        if request.method == "PUT":
            return await self._put_picture(request, handle)
        await self.server.registered(handle)
        row = await run_in_threadpool(self.store.get, handle)
        if row is None or row["picture"] is None:
            raise ApiError(404, "no_picture", f"{handle} has published no picture here")
        etag = f'"{row["picture_sha256"]}"'
        headers = {
            "etag": etag,
            "cache-control": "no-cache",
            "x-content-type-options": "nosniff",
            "content-security-policy": "default-src 'none'",
        }
        if _not_modified(request, etag):
            return Response(status_code=304, headers=headers)
        return Response(row["picture"], media_type="image/png", headers=headers)

    async def _put_picture(self, request: Request, handle: str) -> Response:
        from .app import _require_type, read_body

        await self.server.registered(handle)
        _require_type(request, _PNG_TYPES, "a PNG picture (image/png)")
        body = await read_body(request, PICTURE_BODY_CAP)
        if not body.startswith(PNG_MAGIC) or len(body) < 33:
            raise ApiError(422, "bad_picture", "the body is not a PNG file (no PNG signature)")
        await self._write_auth(request, f"/v1/u/{handle}/picture", body)
        digest = hashlib.sha256(body).hexdigest()
        await run_in_threadpool(self.store.put_picture, handle, body, digest)
        return Response(
            f'{{"handle":"{handle}","picture_sha256":"{digest}"}}',
            200,
            media_type="application/json",
            headers={"etag": f'"{digest}"'},
        )
