"""`X-KEZ-Auth` on the server: who may read a handle's inbox and manage its pushes.

One check for every endpoint that needs it (the inbox, its live stream,
the push subscriptions): the header rules and the signature live in
`kez_core.messaging.inbox_auth` (shared with the clients that sign); this
module adds what only the server knows, the handle's current keys, judged
from the chain stored here (spec section 11, "Inbox").
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from kez_core.messaging.inbox_auth import HEADER, InboxAuthError, verify_inbox_auth
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from .errors import ApiError
from .privacy import pseudonym

if TYPE_CHECKING:
    from .app import KezServer

log = logging.getLogger("kez_server.auth")


def current_keys(server: KezServer, row: dict[str, Any]) -> tuple[str, frozenset[str]]:
    """The handle's current primary and devices: from the chain stored here when there is
    one, else the registered primary alone."""
    state = server.chains.state(row["identity"])
    if state is None:
        return row["primary_key"], frozenset()
    return state.current_primary, frozenset(state.devices)


async def authorize(
    server: KezServer,
    request: Request,
    row: dict[str, Any],
    *,
    method: str,
    path: str,
    bound: str,
    now: float,
) -> str:
    """The key id that signed this request for the handle of `row`; ApiError 401 otherwise."""
    return await authorize_header(
        server, request.headers.get(HEADER), row, method=method, path=path, bound=bound, now=now
    )


async def authorize_header(
    server: KezServer,
    header: str | None,
    row: dict[str, Any],
    *,
    method: str,
    path: str,
    bound: str,
    now: float,
) -> str:
    """`authorize` for the value of the X-KEZ-Auth header (None: missing).

    A `row` from `Store.lookup_with_head` carries the chain's head id, so the
    cached keys are checked against it without another read.
    """
    if "head" in row:
        known, keys = server.chains.keys_at(row["identity"], row["head"])
    else:
        known, keys = await server.read(server.chains.known_keys, row["identity"])
    if known:  # no chain here, or its keys at the head are cached: no thread hop needed
        primary, devices = (row["primary_key"], frozenset()) if keys is None else keys
    else:
        primary, devices = await run_in_threadpool(current_keys, server, row)
    try:
        return verify_inbox_auth(
            header,
            method=method,
            path=path,
            bound=bound,
            primary=primary,
            devices=devices,
            now=now,
            registry=server.registry,
            verified=server.verified,
        )
    except InboxAuthError as exc:
        log.debug("refused %s %s: %s", method, pseudonym(row["handle"]), exc.reason)
        raise ApiError(
            401,
            "unauthorized",
            exc.message,
            headers={"www-authenticate": "KEZ-Auth"},
            reason=exc.reason,
            **({"hint": exc.hint} if exc.hint else {}),
        ) from None
