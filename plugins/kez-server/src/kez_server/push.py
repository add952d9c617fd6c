"""Web Push fan-out: when a message is stored for a handle, wake each of its browsers.

`PushService.message_stored(handle)` is the one entry point (the inbox's
`POST /v1/messages` and the nostr listener call it). It only schedules the
fan-out on the server's event loop and returns at once, from the loop's
thread or any other, so a slow or dead push service never delays the
request that stored the message.

Each push is an RFC 8030 POST with an EMPTY body (the recipient's browser
learns only "something arrived"; no handle, sender or ciphertext reaches
the push service) and a VAPID (RFC 8292) token signed with the server's
key, sent with pywebpush's aiohttp client:

- `TTL: 86400` (a device offline for a day still hears of it) and
  `Topic: kez-inbox`, so a push service keeps one pending push per
  subscription rather than one per message;
- at most `CONCURRENCY` (32) pushes are in flight per server process, each
  for at most `TIMEOUT` seconds; fan-outs beyond `MAX_PENDING` queued
  pushes are dropped (a later message pushes again);
- a 404 or 410 answer deletes the subscription (every handle's row of
  that endpoint); other failures are logged and forgotten;
- the SSRF rules of `push_targets` hold at send time too: the
  connector's resolver admits only public addresses, IP literals are
  re-checked, and redirects are refused.

pywebpush fills `aud` and `exp` into the claims dict it is given, so every
push gets a fresh dict (else the first endpoint's `aud` would stick).
Logs name push services by host only, never a handle or endpoint path.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable
from typing import Any

from .push_db import PushStore, Subscription
from .push_targets import EndpointPolicy, EndpointRefused, public_resolver
from .vapid import VapidKey

log = logging.getLogger("kez_server.push")

CONCURRENCY = 32
TIMEOUT = 10.0
TTL = 86400
TOPIC = "kez-inbox"
MAX_PENDING = 10_000


class _Redirected(Exception):
    pass


class PushService:
    """Sends empty Web Pushes to a handle's subscriptions (see the module docstring)."""

    def __init__(
        self,
        store: PushStore,
        vapid: VapidKey,
        subject: str,
        policy: EndpointPolicy,
        *,
        concurrency: int = CONCURRENCY,
        timeout: float = TIMEOUT,
    ) -> None:
        from py_vapid import Vapid

        self.store = store
        self.vapid = vapid
        self.subject = subject
        self.policy = policy
        self.timeout = timeout
        self.concurrency = concurrency
        self._signer = Vapid.from_pem(vapid.pem())
        self._signer.sign(
            {"sub": subject, "aud": "https://push.example"}
        )  # a bad subject fails now
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._session: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending = 0
        self._due: list[str] = []  # SQLite: handles stored during this turn of the loop
        self._lock = threading.Lock()
        self.sent = 0  # counters, for tests and health
        self.failed = 0
        self.dropped = 0

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind to the running loop (the app's lifespan calls this)."""
        self._loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(self.concurrency)

    async def close(self) -> None:
        """Cancel pushes in flight and close the HTTP client."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> Any:
        if self._session is None:
            import aiohttp

            async def refuse_redirect(_session: Any, _ctx: Any, _params: Any) -> None:
                raise _Redirected()

            trace = aiohttp.TraceConfig()
            trace.on_request_redirect.append(refuse_redirect)
            connector = aiohttp.TCPConnector(
                resolver=public_resolver(self.policy), limit=self.concurrency, ttl_dns_cache=None
            )
            self._session = aiohttp.ClientSession(
                connector=connector, trace_configs=[trace], trust_env=False
            )
        return self._session

    # --------------------------------------------------------------- sending

    def message_stored(self, handle: str) -> None:
        """Schedule pushes to every subscription of `handle`; returns at once (any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            log.warning("push service not started; no push sent")
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._spawn(handle)
        else:
            loop.call_soon_threadsafe(self._spawn, handle)

    def _spawn(self, handle: str) -> None:
        if self.store.store.inline_reads:
            # SQLite: one local read, at the end of this turn of the loop, for every message
            # stored during it (a group commit answers many POSTs in one turn), and no task
            # for the usual handle without subscriptions: a read and a task per stored
            # message were a visible share of a POST's cost
            if not self._due:
                asyncio.get_running_loop().call_soon(self._fan_out_due)
            self._due.append(handle)
            return
        self._start(self._fan_out(handle))

    def _start(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _fan_out_due(self) -> None:
        """SQLite: the pushes of the messages stored during the last turn of the loop (one
        per message, as each would have had alone)."""
        handles, self._due = self._due, []
        try:
            found = self.store.subscriptions_of(handles)
        except Exception as exc:  # noqa: BLE001 - a database hiccup costs one fan-out, not the server
            log.warning("push fan-out: cannot read subscriptions: %r", exc)
            return
        for handle in handles:
            subs = found.get(handle)
            if subs:
                self._start(self.push_all(subs))

    def _subscriptions(self, handle: str) -> list[Subscription]:
        try:
            return self.store.subscriptions(handle)
        except Exception as exc:  # noqa: BLE001 - a database hiccup costs one fan-out, not the server
            log.warning("push fan-out: cannot read subscriptions: %r", exc)
            return []

    async def _fan_out(self, handle: str) -> None:
        """PostgreSQL: the subscriptions are read in a thread (a network round trip)."""
        try:
            subs = await asyncio.to_thread(self.store.subscriptions, handle)
        except Exception as exc:  # noqa: BLE001 - a database hiccup costs one fan-out, not the server
            log.warning("push fan-out: cannot read subscriptions: %r", exc)
            return
        await self.push_all(subs)

    async def push_all(self, subs: Iterable[Subscription]) -> None:
        """Push to each of `subs`, at most `concurrency` at a time across the process."""
        subs = list(subs)
        with self._lock:
            if self._pending + len(subs) > MAX_PENDING:
                self.dropped += len(subs)
                log.warning("push backlog full: %d pushes dropped", len(subs))
                return
            self._pending += len(subs)
        try:
            await asyncio.gather(*(self._one(sub) for sub in subs))
        finally:
            with self._lock:
                self._pending -= len(subs)

    async def _one(self, sub: Subscription) -> None:
        assert self._slots is not None
        async with self._slots:
            try:
                status = await self._send(sub)
            except EndpointRefused as exc:
                self.failed += 1
                log.warning("push not sent: %s", exc.message)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one push service's failure is logged, not raised
                self.failed += 1
                log.info("push to %s failed: %s", _host(sub.endpoint), _reason(exc))
                return
        if status in (404, 410):
            dropped = await asyncio.to_thread(self.store.drop_endpoint, sub.endpoint)
            log.info(
                "push service %s: subscription gone (%d); %d removed",
                _host(sub.endpoint),
                status,
                dropped,
            )
        elif status is None or status >= 300:
            self.failed += 1
            log.info("push to %s answered %s", _host(sub.endpoint), status)
        else:
            self.sent += 1

    async def _send(self, sub: Subscription) -> int | None:
        """One push; the push service's status code."""
        import aiohttp
        from pywebpush import WebPushException, webpush_async

        self.policy.check_url(sub.endpoint)  # IP literals bypass the resolver: check them here
        claims: dict[str, str | int] = {"sub": self.subject}  # fresh: pywebpush writes aud and exp
        try:
            response = await webpush_async(
                sub.info(),
                data=None,
                vapid_private_key=self._signer,
                vapid_claims=claims,
                ttl=TTL,
                headers={"Topic": TOPIC},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                aiohttp_session=self._client(),
            )
        except WebPushException as exc:
            return exc.response.status if exc.response is not None else None
        return getattr(response, "status", None)


def _host(endpoint: str) -> str:
    from urllib.parse import urlsplit

    try:
        return urlsplit(endpoint).hostname or "?"
    except ValueError:
        return "?"


def _reason(exc: BaseException) -> str:
    """Why a push failed, in words: the innermost useful cause (aiohttp wraps resolver errors)."""
    if isinstance(exc, _Redirected) or isinstance(exc.__cause__, _Redirected):
        return "it answered with a redirect (not followed)"
    if isinstance(exc, TimeoutError):
        return "timed out"
    cause = exc.__cause__
    if isinstance(cause, OSError) and str(cause):
        return f"{type(exc).__name__}: {cause}"
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")
