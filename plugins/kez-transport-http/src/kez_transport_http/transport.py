"""`HttpTransport`: envelopes through a kez-server's HTTP inbox (docs/spec.md section 11).

- `send` POSTs `{"to": <handle>, "envelope": <text>, "route": <routing id>}`
  to `/v1/messages` of the recipient's home server and returns on its 201
  (the envelope is stored; the server keeps it 7 days).
- `subscribe` opens `GET /v1/inbox/{handle}/live?since=N` (Server-Sent
  Events, signed `X-KEZ-Auth` with the reader's key: the `signer` context
  value) and returns once the server has answered 200. The server first
  sends what it holds after the cursor, then each new envelope as it is
  stored; the transport yields those whose `route` is the routing id it
  was asked for (or that name none). When the stream drops, it reconnects
  from the last seq it saw, so nothing stored is missed; the server's copy
  stays until its owner deletes it or it ages out. Without `--inbox-since`
  the catch-up starts after the last seq the caller marked handled
  (`cursor.py`, in the `identity_dir` context value's folder).

The key always names itself in the header (`<ts>:<key id>:<sig>`), which
the server accepts from the primary and from a current device alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import attrs
from kez_core.errors import DecodeError, EnvelopeTooLarge, TransportError
from kez_core.messaging.envelope import MAX_ENVELOPE_TEXT, check_envelope_size, check_routing_id
from kez_core.messaging.inbox_auth import HEADER, sign_inbox_request
from kez_core.protocols import ChannelContext, ChannelOption

from .config import OPTIONS, HttpConfigError, Target, context_value, since, target
from .cursor import Cursor, InboxEnvelopes

RECONNECTS = 3  # attempts in a row before a dropped stream is an error
_REACH_HINT = "is the kez-server up, and --inbox-server right?"


def _client(ctx: ChannelContext, *, stream: bool = False) -> Any:
    import httpx

    timeout = httpx.Timeout(ctx.timeout, read=None) if stream else httpx.Timeout(ctx.timeout)
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False)


def _error_text(response: Any) -> str:
    try:
        data = response.json()
        return str(data.get("message") or data.get("error"))[:300]
    except Exception:  # noqa: BLE001 - any body: show its status only
        return f"HTTP {response.status_code}"


async def _resolve(client: Any, where: Target, key: object, role: str) -> str:
    """The handle of `where`, or the one the server lists for identity `key`."""
    import httpx

    if where.handle is not None:
        return where.handle
    if not isinstance(key, str) or not key:
        raise HttpConfigError(
            f"the http transport needs the {role}'s handle", hint="pass --inbox-handle HANDLE"
        )
    try:
        response = await client.get(f"{where.base}/v1/by-primary/{key}")
    except httpx.HTTPError as exc:
        raise TransportError(
            f"inbox server {where.base} is unreachable: {exc!r}", hint=_REACH_HINT
        ) from None
    if response.status_code == 404:
        raise TransportError(
            f"{where.base} has no handle for the {role} ({key[:80]})",
            hint="pass --inbox-handle HANDLE, or register a handle there (kez handle register)",
        )
    if response.status_code != 200:
        raise TransportError(
            f"{where.base} answered {response.status_code}: {_error_text(response)}"
        )
    return str(response.json()["handle"])


@attrs.frozen
class HttpTransport:
    """The `http` transport (see the module docstring and the plugin README)."""

    name: str = "http"
    options: tuple[ChannelOption, ...] = OPTIONS
    max_envelope: int = MAX_ENVELOPE_TEXT
    reconnect_delay: float = 0.5

    async def send(self, routing_id: str, envelope: bytes, ctx: ChannelContext) -> None:
        """Store one envelope in the recipient's inbox; returns once the server has it."""
        import httpx

        route = check_routing_id(routing_id)
        data = check_envelope_size(bytes(envelope), self.max_envelope, "http")
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise DecodeError("an envelope is ASCII text (kez:e1:…)") from None
        where = target(ctx)
        async with _client(ctx) as client:
            handle = await _resolve(client, where, context_value(ctx, "recipient"), "recipient")
            body = {"to": handle, "envelope": text, "route": route}
            try:
                response = await client.post(f"{where.base}/v1/messages", json=body)
            except httpx.HTTPError as exc:
                raise TransportError(
                    f"inbox server {where.base} is unreachable: {exc!r}", hint=_REACH_HINT
                ) from None
        if response.status_code in (200, 201):
            return
        message = (
            f"{where.base} refused the envelope ({response.status_code}): {_error_text(response)}"
        )
        if response.status_code == 413:
            raise EnvelopeTooLarge(message)
        if response.status_code == 429:
            wait = response.headers.get("retry-after", "?")
            raise TransportError(message, hint=f"retry in {wait} s")
        if response.status_code == 400:
            raise DecodeError(message)
        raise TransportError(message)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, routing_id: str, ctx: ChannelContext
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Live envelopes for `routing_id` from the reader's inbox (catch-up first)."""
        route = check_routing_id(routing_id)
        signer = context_value(ctx, "signer")
        if signer is None or not hasattr(signer, "sign"):
            raise HttpConfigError(
                "the http transport reads an inbox with the reader's key, and none was given",
                hint="kez message listen gives the identity's key; a library caller sets "
                "ChannelContext.options['signer']",
            )
        where = target(ctx)
        client = _client(ctx, stream=True)
        try:
            handle = await _resolve(
                client, where, context_value(ctx, "identity") or signer.key_id, "reader"
            )
            cursor = Cursor(context_value(ctx, "identity_dir"), where.base, handle, route)
            start = since(ctx)
            stream = _LiveStream(
                client,
                where.base,
                handle,
                signer,
                cursor.seq if start is None else start,
                route,
                self.reconnect_delay,
            )
            await stream.open()
            try:
                yield InboxEnvelopes(stream.envelopes(), cursor)
            finally:
                await stream.close()
        finally:
            await client.aclose()


class _LiveStream:
    """One SSE connection to an inbox at a time, reopened from the last seq when it drops."""

    def __init__(
        self,
        client: Any,
        base: str,
        handle: str,
        signer: Any,
        cursor: int,
        route: str,
        delay: float,
    ):
        self.client = client
        self.base = base
        self.handle = handle
        self.signer = signer
        self.cursor = cursor
        self.route = route
        self.delay = delay
        self._response: Any = None
        self._lines: AsyncIterator[str] | None = None

    async def open(self) -> None:
        import httpx

        path = f"/v1/inbox/{self.handle}/live"
        bound = f"since={self.cursor}"
        header = sign_inbox_request(self.signer, "GET", path, bound, device=True)
        request = self.client.build_request(
            "GET",
            self.base + path,
            params={"since": self.cursor},
            headers={HEADER: header, "accept": "text/event-stream"},
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise TransportError(
                f"inbox server {self.base} is unreachable: {exc!r}", hint=_REACH_HINT
            ) from None
        if response.status_code != 200:
            await response.aread()
            text = _error_text(response)
            await response.aclose()
            hint = (
                "the key must be the handle's current primary or a current device"
                if response.status_code == 401
                else None
            )
            raise TransportError(
                f"{self.base} refused the live inbox ({response.status_code}): {text}", hint=hint
            )
        self._response = response
        self._lines = response.aiter_lines()

    async def close(self) -> None:
        if self._response is not None:
            with contextlib.suppress(Exception):
                await self._response.aclose()
            self._response = None

    async def envelopes(self) -> AsyncIterator[tuple[int, bytes]]:
        import httpx

        failures = 0
        while True:
            try:
                assert self._lines is not None
                async for line in self._lines:
                    failures = 0
                    if not line.startswith("data:"):
                        continue
                    item = self._parse(line[5:].strip())
                    if item is None:
                        continue
                    seq, envelope, route = item
                    self.cursor = max(self.cursor, seq)
                    if route is None or route == self.route:
                        yield seq, envelope
                ended: Exception | None = None
            except (httpx.HTTPError, TransportError) as exc:
                ended = exc
            await self.close()
            failures += 1
            if failures > RECONNECTS:
                raise TransportError(
                    f"the live inbox at {self.base} keeps closing ({ended!r})", hint=_REACH_HINT
                )
            await asyncio.sleep(self.delay * failures)
            await self.open()

    @staticmethod
    def _parse(data: str) -> tuple[int, bytes, str | None] | None:
        try:
            item = json.loads(data)
            seq, envelope, route = item["seq"], item["envelope"], item.get("route")
        except (ValueError, KeyError, TypeError):
            return None
        if type(seq) is not int or not isinstance(envelope, str) or not envelope.isascii():
            return None
        return seq, envelope.encode("ascii"), route if isinstance(route, str) else None
