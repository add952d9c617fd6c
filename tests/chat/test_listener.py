"""kez_core.chat.listener: the backoff, the batched receive, and a Listener over a real nats-server
that goes down and comes back (the library API a UI uses: typed events)."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st
from kez_core.chat import Route
from kez_core.chat.listener import Listener, ListenEvent, backoff
from kez_core.protocols import ChannelContext
from kez_transport_nats.testing import running_nats_server
from kez_transport_nats.transport import NatsTransport
import pytest
from test_chat_service import Wire, send, service


@given(st.integers(min_value=0, max_value=10_000), st.floats(min_value=0, max_value=1))
def test_backoff_doubles_up_to_the_cap_with_at_most_half_taken_away(attempt, r):
    delay = backoff(attempt, base=0.5, cap=30.0, rand=lambda: r)
    ceiling = min(30.0, 0.5 * 2 ** min(attempt, 32))
    assert ceiling / 2 <= delay <= ceiling <= 30.0


@pytest.fixture
def chat(three):
    services = {name: service(p) for name, p in three.items()}
    yield services
    for s in services.values():
        s.close()


def test_receive_many_opens_a_batch_in_one_go_and_refuses_the_repeat(chat, three):
    wire = Wire()
    for text in ("a", "b", "c"):
        send(chat, "alice", three["bob"]["id"], text, wire)
    envelopes = [e for _, e in wire.sent]
    answers = chat["bob"].receive_many([*envelopes, envelopes[0]])
    assert [a.message.body["text"] for a in answers[:3]] == ["a", "b", "c"]
    assert getattr(answers[3], "reason", None) == "replay"
    assert [e.body["text"] for e in chat["bob"].store.history(three["alice"]["id"])] == [
        "a",
        "b",
        "c",
    ]


def test_a_listener_reports_down_and_up_and_receives_after_the_server_returns(three):
    bob = service(three["bob"])
    alice = service(three["alice"])

    async def scenario(server) -> list[ListenEvent]:
        ctx = ChannelContext(options=server.ctx_options(), timeout=5)
        listener = Listener(bob, [Route("nats", NatsTransport(), ctx)], base=0.2, cap=1.0)
        seen: list[ListenEvent] = []
        events = listener.events()

        async def until(test) -> ListenEvent:
            async for event in events:
                seen.append(event)
                if test(event):
                    return event
            raise AssertionError(seen)

        async with asyncio.timeout(60):
            await until(lambda e: e.kind == "up")
            server.stop()
            down = await until(lambda e: e.kind == "down")
            assert down.route == "nats" and down.error and 0 < down.retry_in <= 1.0
            await asyncio.to_thread(server.restart)
            assert (await until(lambda e: e.kind == "up")).again
            peer = await alice.resolve_peer(three["bob"]["id"])
            sent = await alice.send_text(peer, "back", [Route("nats", NatsTransport(), ctx)])
            assert sent.state == "sent"
            got = await until(lambda e: e.kind == "received")
            assert got.received.message.body["text"] == "back"
        await events.aclose()
        return seen

    try:
        with running_nats_server() as server:
            seen = asyncio.run(scenario(server))
    finally:
        bob.close()
        alice.close()
    kinds = [e.kind for e in seen if e.kind in ("up", "down")]
    assert (
        kinds[:2] == ["up", "down"] and kinds[-1] == "up"
    )  # retries while down may add more downs
