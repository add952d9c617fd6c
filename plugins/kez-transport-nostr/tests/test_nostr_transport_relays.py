"""The nostr transport against real relays: several relays, faults, forged events, lookback."""

from __future__ import annotations

import asyncio
import time

import pytest
from kez_channel_nostr.relay import query, send_event
from kez_channel_nostr.testing import running_relay
from kez_core.builtins.bip340 import BIP340
from kez_core.errors import DecodeError, EnvelopeTooLarge, TransportError
from kez_core.messaging.errors import EnvelopeError
from kez_core.nostr_event import sign_event, verify_event
from kez_transport_nostr.events import ENVELOPE_KIND, envelope_event
from kez_transport_nostr.transport import NostrTransport
from nostr_transport_helpers import ctx, drain, envelope, rid, take, until_live

NOSTR = NostrTransport()


# ------------------------------------------------------------------ configuration


def test_no_relay_option_means_the_default_public_set():
    from kez_core.protocols import ChannelContext
    from kez_transport_nostr.options import DEFAULT_RELAYS, RELAYS_OPTION, relay_urls

    assert relay_urls(ChannelContext()) == list(DEFAULT_RELAYS)  # no network: only the list
    assert len(DEFAULT_RELAYS) == 5 and all(url.startswith("wss://") for url in DEFAULT_RELAYS)
    assert RELAYS_OPTION.default == DEFAULT_RELAYS


def test_no_relay_configured_is_a_transport_error_with_a_hint():
    for options in (
        {"nostr_transport_relays": ()},
        {"nostr_transport_relays": " , "},
        {"nostr_transport_relays": None},
    ):
        context = ctx()
        context.options.clear()
        context.options.update(options)
        with pytest.raises(TransportError, match="no relay configured") as err:
            asyncio.run(NOSTR.send(rid(), envelope(), context))
        assert "--transport-relay" in err.value.hint and "KEZ_TRANSPORT_RELAYS" in err.value.hint

        async def listen(context=context):
            async with NOSTR.subscribe(rid(), context):
                pass

        with pytest.raises(TransportError, match="no relay configured"):
            asyncio.run(listen())


def test_a_bad_relay_address_and_bad_input_are_refused_before_any_io():
    with pytest.raises(TransportError, match="not a ws:// or wss:// URL"):
        asyncio.run(NOSTR.send(rid(), envelope(), ctx("https://relay.example")))
    with pytest.raises(EnvelopeError, match="ASCII"):
        asyncio.run(NOSTR.send(rid(), "kez:e1:é".encode(), ctx("ws://127.0.0.1:1")))
    with pytest.raises(EnvelopeTooLarge):
        asyncio.run(NOSTR.send(rid(), envelope(32 * 1024 + 1), ctx("ws://127.0.0.1:1")))

    async def listen(routing_id, context):
        async with NOSTR.subscribe(routing_id, context):
            pass

    with pytest.raises(DecodeError, match="routing id"):
        asyncio.run(listen("NOT-HEX", ctx("ws://127.0.0.1:1")))
    for since in ("soon", "0h", -5):
        with pytest.raises(DecodeError, match="transport-since"):
            asyncio.run(listen(rid(), ctx("ws://127.0.0.1:1", since=since)))


# ------------------------------------------------------------------ several relays


def test_one_relay_down_send_succeeds_and_subscribe_is_live(transport_relay, second_relay):
    context = ctx(transport_relay.refused_url, second_relay.url)
    routing_id, item = rid(), envelope()

    async def run():
        async with NOSTR.subscribe(routing_id, context) as inbox:
            assert inbox.live_relays == [second_relay.url]
            await NOSTR.send(routing_id, item, context)
            return await take(inbox), inbox

    got, inbox = asyncio.run(run())
    assert got == item
    down = inbox.subscriptions[0]
    assert down.url == transport_relay.refused_url and "refused the connection" in down.error


def test_every_relay_down_is_a_transport_error_naming_each(transport_relay):
    context = ctx(transport_relay.refused_url, transport_relay.silent_url, timeout=1)
    with pytest.raises(TransportError) as err:
        asyncio.run(NOSTR.send(rid(), envelope(), context))
    text = err.value.message
    assert f"{transport_relay.refused_url} unreachable (refused the connection)" in text
    assert f"{transport_relay.silent_url} timed out (no OK within 1 s)" in text

    async def listen():
        async with NOSTR.subscribe(rid(), context):
            pytest.fail("a subscription with no live relay must not be entered")

    with pytest.raises(TransportError, match="no nostr relay opened a subscription") as err:
        asyncio.run(listen())
    assert "refused the connection" in err.value.message
    assert "no answer within 1 s" in err.value.message


def test_a_refusing_relay_is_named_with_its_reason(transport_relay):
    transport_relay.refuse_next(1, "blocked: kind 4243 not allowed here")
    with pytest.raises(TransportError) as err:
        asyncio.run(NOSTR.send(rid(), envelope(), ctx(transport_relay.url)))
    assert (
        f"{transport_relay.url} refused it: blocked: kind 4243 not allowed here"
        in err.value.message
    )


def test_send_does_not_wait_out_a_silent_relay_once_another_took_it(transport_relay, second_relay):
    context = ctx(transport_relay.silent_url, second_relay.url, timeout=8)
    started = time.monotonic()
    asyncio.run(NOSTR.send(rid(), envelope(), context))
    assert time.monotonic() - started < 4  # the 2 s grace, not the 8 s timeout


def test_an_envelope_on_two_relays_is_yielded_once(transport_relay, second_relay):
    context = ctx(transport_relay.url, second_relay.url)
    routing_id, stored, live = rid(), envelope(), envelope()
    asyncio.run(NOSTR.send(routing_id, stored, context))  # stored on both relays

    async def run():
        async with NOSTR.subscribe(routing_id, context) as inbox:
            await until_live(inbox, 2)
            first = await drain(inbox)
            await NOSTR.send(routing_id, live, context)  # arrives live from both relays
            second = await drain(inbox)
            return first, second, inbox

    first, second, inbox = asyncio.run(run())
    assert first == [stored] and second == [live]
    assert inbox.received == 4 and inbox.duplicates == 2


# ------------------------------------------------------------------ what is yielded


def _signed(routing_id, content="kez:e1:AAAA", kind=ENVELOPE_KIND, tags=None, created_at=None):
    return sign_event(
        BIP340.generate_secret(),
        kind,
        content,
        [["p", routing_id]] if tags is None else tags,
        int(time.time()) if created_at is None else created_at,
    )


def test_forged_and_foreign_events_are_not_yielded(transport_relay):
    routing_id = rid()
    good = _signed(routing_id, "kez:e1:injected-but-valid")
    bad_sig = dict(_signed(routing_id), sig="00" * 64)
    bad_id = dict(_signed(routing_id), content="kez:e1:changed-after-signing")
    other_kind = _signed(routing_id, kind=1)
    other_p = _signed(routing_id, tags=[["p", rid()]])
    no_tag = _signed(routing_id, tags=[])
    not_ascii = _signed(routing_id, "kez:e1:é")
    too_big = _signed(routing_id, "kez:e1:" + "A" * (32 * 1024))
    too_old = _signed(routing_id, created_at=int(time.time()) - 3 * 3600)
    forged = [bad_sig, bad_id, other_kind, other_p, no_tag, not_ascii, too_big, too_old]
    transport_relay.inject_events(*forged, "not an event", [1, 2], good)
    context = ctx(transport_relay.url, since="1h")
    real = envelope()

    async def run():
        async with NOSTR.subscribe(routing_id, context) as inbox:
            injected = await take(inbox)
            await NOSTR.send(routing_id, real, context)
            return [injected, await take(inbox), *await drain(inbox, 0.3)], inbox

    got, inbox = asyncio.run(run())
    assert got == [b"kez:e1:injected-but-valid", real]
    assert inbox.dropped == {
        "bad id or signature": 2,
        "of another kind than 4243": 1,
        "without the p tag of this routing id": 2,
        "with content that is not ASCII": 1,
        "with content over 32768 characters": 1,
        "older than the lookback": 1,
        "not an event object": 2,
    }


def test_events_older_than_the_lookback_are_not_returned(transport_relay):
    routing_id, now = rid(), int(time.time())
    old = envelope_event(routing_id, "kez:e1:three-hours-old", now - 3 * 3600)
    recent = envelope_event(routing_id, "kez:e1:half-an-hour-old", now - 1800)
    for event in (old, recent):
        transport_relay.publish_event(event)

    async def stored(since):
        async with NOSTR.subscribe(routing_id, ctx(transport_relay.url, since=since)) as inbox:
            return sorted(await drain(inbox, 0.3)), inbox

    got, inbox = asyncio.run(stored("1h"))
    assert got == [b"kez:e1:half-an-hour-old"]
    assert inbox.received == 1  # the relay applied `since`; nothing was dropped here
    got, _ = asyncio.run(stored(None))  # default lookback: 48h
    assert got == [b"kez:e1:half-an-hour-old", b"kez:e1:three-hours-old"]
    reqs = [m for m in transport_relay.client_messages if m[0] == "REQ"]
    assert reqs[0][2] == {"kinds": [4243], "#p": [routing_id], "since": reqs[0][2]["since"]}
    assert abs(reqs[0][2]["since"] - (now - 3600)) <= 5
    assert abs(reqs[1][2]["since"] - (now - 48 * 3600)) <= 5


def test_a_listener_subscribing_again_asks_only_from_shortly_before_it_was_left(transport_relay):
    """`resume_after` (a Listener reconnecting): since = that time - RESUME_MARGIN, not the lookback."""
    import attrs
    from kez_transport_nostr.transport import RESUME_MARGIN

    routing_id, now = rid(), int(time.time())
    for event in (
        envelope_event(routing_id, "kez:e1:an-hour-old", now - 3600),
        envelope_event(routing_id, "kez:e1:a-minute-old", now - 60),
    ):
        transport_relay.publish_event(event)
    base = ctx(transport_relay.url)

    async def stored(options):
        async with NOSTR.subscribe(
            routing_id, attrs.evolve(base, options={**base.options, **options})
        ) as inbox:
            return sorted(await drain(inbox, 0.3))

    assert asyncio.run(stored({"resume_after": now})) == [b"kez:e1:a-minute-old"]
    assert asyncio.run(stored({"resume_after": "garbage"})) == [
        b"kez:e1:a-minute-old",
        b"kez:e1:an-hour-old",
    ]
    reqs = [
        m
        for m in transport_relay.client_messages
        if m[0] == "REQ" and m[2].get("#p") == [routing_id]
    ]
    assert abs(reqs[0][2]["since"] - (now - RESUME_MARGIN)) <= 5


def test_each_event_is_signed_by_its_own_one_time_key(transport_relay):
    routing_id, items = rid(), [envelope(100 + i) for i in range(3)]
    context = ctx(transport_relay.url)

    async def run():
        for item in items:
            await NOSTR.send(routing_id, item, context)
        return await query(transport_relay.relay_url, {"kinds": [4243], "#p": [routing_id]}, 5)

    reply = asyncio.run(run())
    assert reply.answered and len(reply.events) == 3
    assert len({event["pubkey"] for event in reply.events}) == 3
    assert sorted(e["content"].encode() for e in reply.events) == sorted(items)
    for event in reply.events:
        assert verify_event(event) and event["kind"] == 4243
        assert event["tags"] == [["p", routing_id]]
        assert abs(event["created_at"] - time.time()) <= 5


def test_when_every_relay_goes_away_the_inbox_says_so():
    routing_id = rid()

    async def run(relay):
        async with NOSTR.subscribe(routing_id, ctx(relay.url)) as inbox:
            await asyncio.to_thread(relay.stop)
            with pytest.raises(TransportError, match="every nostr relay closed the subscription"):
                await take(inbox, 10)

    with running_relay() as relay:
        asyncio.run(run(relay))


def test_publish_replies_tell_a_refusal_from_a_failure_to_talk(transport_relay, second_relay):
    """`PublishReply.answered`: an OK came back (a refusal names the relay's reason)."""
    event = envelope_event(rid(), "kez:e1:twice")

    async def run():
        return (
            await send_event(second_relay.url, event, 5),
            await send_event(second_relay.url, event, 5),
            await send_event(transport_relay.refused_url, event, 5),
        )

    first, again, down = asyncio.run(run())
    assert first.accepted and first.answered
    assert not again.accepted and again.answered and again.message.startswith("duplicate:")
    assert not down.accepted and not down.answered


def test_more_stored_envelopes_than_the_queue_holds_all_arrive(transport_relay):
    """Entering must not wait for EOSE behind a full queue (a flooded routing id)."""
    from kez_transport_nostr.inbox import RelayInbox

    routing_id, now = rid(), int(time.time())
    contents = sorted(f"kez:e1:stored-{i:02d}".encode() for i in range(12))
    for i, content in enumerate(contents):
        transport_relay.publish_event(envelope_event(routing_id, content.decode(), now - 60 + i))

    async def run():
        inbox = RelayInbox([transport_relay.url], routing_id, now - 3600, 5, queue_size=4)
        try:
            await asyncio.wait_for(inbox.open(), 5)
            got = await drain(inbox, 0.5)
            return got, inbox.live_relays
        finally:
            await inbox.aclose()

    got, live = asyncio.run(run())
    assert sorted(got) == contents and live == [transport_relay.url]
