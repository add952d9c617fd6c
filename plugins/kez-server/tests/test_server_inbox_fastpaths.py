"""The inbox's fast paths give what the plain paths gave: JSON text, grouped stores."""

from __future__ import annotations

import asyncio
import json

from hypothesis import given
from hypothesis import strategies as st
from inbox_helpers import envelope
from kez_server.db import Store
from kez_server.inbox import _json_string, _message, _message_json, _messages_json
from kez_server.inbox_writer import InboxWriter

# text near the edges of what JSON writes as it is: controls, quote, backslash, DEL, non-ASCII
edgy = st.text(alphabet=st.sampled_from('\x00\x1f "\\~\x7f\x80éA-_='))
rows = st.tuples(
    st.integers(min_value=0, max_value=10**18),
    st.one_of(st.text(), edgy, st.text(alphabet="abcXYZ019-_:"), st.just("kez:e1:" + "A" * 40)),
    st.one_of(st.text(), edgy),
    st.one_of(st.none(), st.text(), st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)),
)


@given(rows)
def test_message_json_is_what_json_dumps_writes(row):
    for ascii_only in (False, True):
        expected = json.dumps(_message(row), ensure_ascii=ascii_only, separators=(",", ":"))
        assert _message_json(row, ascii_only) == expected


@given(st.lists(rows, max_size=6))
def test_messages_json_is_the_joined_message_json(some):
    assert _messages_json(some) == ",".join(_message_json(r) for r in some)


@given(st.lists(rows, max_size=5), st.integers(min_value=0, max_value=10**18))
def test_get_body_is_what_json_response_wrote(some, since):
    messages = [_message(r) for r in some]
    expected = json.dumps(
        {"messages": messages, "next": messages[-1]["seq"] if messages else since},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    body = (
        '{"messages":['
        + ",".join(_message_json(r) for r in some)
        + (f'],"next":{int(some[-1][0]) if some else since}}}')
    )
    assert body == expected


def test_concurrent_stores_commit_together_and_each_gets_its_own_seq(tmp_path):
    store = Store(str(tmp_path / "kez.db"))
    store.migrate()
    writer = InboxWriter(store, max_batch=16)
    texts = [envelope() for _ in range(100)]

    async def main() -> list[int]:
        return await asyncio.gather(
            *(
                writer.store_message(f"h{i % 3}", None, text, "2026-01-01T00:00:00Z", 1)
                for i, text in enumerate(texts)
            )
        )

    try:
        seqs = asyncio.run(main())
        assert len(set(seqs)) == 100
        # answered after the commit: every row is readable, with its own text
        stored = {
            seq: env for h in ("h0", "h1", "h2") for seq, env, _, _ in store.inbox(h, 0, 1000, 0)
        }
        assert {seq: stored[seq] for seq in seqs} == dict(zip(seqs, texts, strict=True))
        # one handle's seqs increase in the order its stores were asked for
        for h in ("h0", "h1", "h2"):
            mine = [seq for i, seq in enumerate(seqs) if f"h{i % 3}" == h]
            assert mine == sorted(mine)
    finally:
        store.close()


def test_a_failed_batch_fails_its_posts_and_the_next_batch_still_runs(tmp_path):
    store = Store(str(tmp_path / "kez.db"))
    store.migrate()
    writer = InboxWriter(store)
    calls = []
    real = store.store_messages

    def flaky(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("disk on fire")
        return real(batch)

    store.store_messages = flaky  # type: ignore[method-assign]

    async def main():
        first = await asyncio.gather(
            writer.store_message("h", None, envelope(), "2026-01-01T00:00:00Z", 1),
            return_exceptions=True,
        )
        second = await writer.store_message("h", None, envelope(), "2026-01-01T00:00:00Z", 1)
        return first, second

    try:
        first, second = asyncio.run(main())
        assert isinstance(first[0], RuntimeError)
        assert second >= 1
    finally:
        store.close()


@given(
    st.one_of(
        st.text(alphabet=st.sampled_from("A~ -\x7f")),  # as-is text with DEL in it
        st.text(alphabet=st.sampled_from('A~"\\\x00\x1f')),
        st.text(),
    )
)
def test_json_string_is_what_json_dumps_writes(value):
    assert _json_string(value) == json.dumps(value, ensure_ascii=False)
    assert _json_string(value, True) == json.dumps(value)


def test_lookup_with_head_is_lookup_and_head_in_one_read(tmp_path):
    from kez_core.keys import Signer
    from kez_core.sigchain import SigchainBuilder

    store = Store(str(tmp_path / "kez.db"))
    store.migrate()
    try:
        assert store.lookup_with_head("nobody") is None
        alone = Signer.generate()
        store.register("alone", alone.key_id, "e1", b"x", "2026-01-01T00:00:00Z")
        assert store.lookup_with_head("alone") == {**store.lookup("alone"), "head": None}
        primary, device = Signer.generate(), Signer.generate()
        builder = SigchainBuilder()
        builder.add_device(primary, device, "laptop")
        builder.remove_device(primary, device.key_id)
        rows = [(n + 1, f"id{n}", line) for n, line in enumerate(builder.lines)]
        store.insert_links(primary.key_id, rows, "2026-01-01T00:00:00Z")
        store.register("chained", primary.key_id, "e2", b"x", "2026-01-01T00:00:00Z")
        row = store.lookup_with_head("chained")
        assert row == {**store.lookup("chained"), "head": store.head(primary.key_id)[1]}
        assert row["head"] == f"id{len(rows) - 1}"
    finally:
        store.close()


def test_freeze_gc_freezes_the_startup_objects_once_started(tmp_path):
    """`kez-server` freezes what its startup allocated, so a full collection under load
    no longer walks ~100k objects (60-200 ms pauses: the POST p99); embedding apps do not."""
    import gc

    from kez_server.app import create_app
    from kez_server.config import ServerSettings

    settings = ServerSettings(
        server_name="example.org", db=str(tmp_path / "kez.db"), vapid_key=str(tmp_path / "v.pem")
    )

    async def started(app) -> int:
        async with app.router.lifespan_context(app):
            return gc.get_freeze_count()

    gc.unfreeze()
    try:
        assert asyncio.run(started(create_app(settings))) == 0
        assert asyncio.run(started(create_app(settings, freeze_gc=True))) > 1000
    finally:
        gc.unfreeze()
