"""The live receive side of `kez chat`: every route x every inbox key, as events for the app.

A small adapter until `kez_core.chat.listener` (an async supervisor over every
transport) lands: it subscribes like `kez message listen` does, hands each
envelope to `MessagingService.receive`, sends the queued acks, and reports
connection loss and recovery. A subscription that ends or fails is retried
with a growing pause (at most `MAX_PAUSE`), so a restarted server comes back
on its own. It never renders: the app gets `FeedEvent`s through `emit`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from kez_core.chat import MessagingService, Received, Route
from kez_core.errors import KezError

MAX_PAUSE = 10.0


@attrs.frozen
class FeedEvent:
    """One thing the receive side saw. kind: "live" | "lost" | "received" | "refused"."""

    kind: str
    route: str
    received: Received | None = None
    detail: str = ""


def _handled(inbox: Any, envelope: bytes) -> None:
    done = getattr(inbox, "done", None)  # transports with a cursor (http) move it on
    if done is not None:
        done(envelope)


@attrs.define
class Feed:
    """Run with `await feed.run()` in a worker; cancel the task to stop."""

    service: MessagingService
    routes: Sequence[Route]
    emit: Callable[[FeedEvent], None]
    first_pause: float = 0.5

    async def run(self) -> None:
        from kez_core.messaging import routing_id

        await self._flush()
        keys = [s.key_id for s in self.service.secrets()]
        tasks = [
            asyncio.create_task(self._one(route, routing_id(key)))
            for route in self.routes
            for key in keys
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _flush(self) -> None:
        try:
            await self.service.flush_acks(self.routes)
        except KezError:
            pass  # they stay queued; the next message tries again

    async def _one(self, route: Route, rid: str) -> None:
        pause = self.first_pause
        while True:
            try:
                async with route.transport.subscribe(rid, route.ctx) as inbox:
                    self.emit(FeedEvent("live", route.name))
                    pause = self.first_pause
                    async for envelope in inbox:
                        await self._envelope(route, inbox, envelope)
                detail = "the subscription ended"
            except asyncio.CancelledError:
                raise
            except KezError as exc:
                detail = exc.message
            except Exception as exc:  # a transport's own failure: show it, retry
                detail = f"{type(exc).__name__}: {exc}"
            self.emit(FeedEvent("lost", route.name, detail=detail))
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE)

    async def _envelope(self, route: Route, inbox: Any, envelope: bytes) -> None:
        try:
            received = self.service.receive(envelope, via=route.name)
        except KezError as exc:
            _handled(inbox, envelope)
            self.emit(FeedEvent("refused", route.name, detail=exc.message))
            return
        except ValueError as exc:
            _handled(inbox, envelope)
            self.emit(FeedEvent("refused", route.name, detail=str(exc)))
            return
        if received.kind != "ack":
            await self._flush()
        _handled(inbox, envelope)
        self.emit(FeedEvent("received", route.name, received=received))
