"""The replay store's group commit: many ids, one transaction, one fsync; nothing lost, nothing twice.

`ReplayStore.accept_many` and `open_envelopes` record a batch in one
transaction; threads calling `accept` at once share a commit. The crash
test kills a receiver with SIGKILL in the middle of its batches: every id it
acknowledged (printed after `accept_many` returned) is in the store, and a
restarted receiver fed everything again accepts none of them a second time.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from kez_core.errors import SignatureError
from kez_core.keys import Signer
from kez_core.messaging import (
    InboxSecret,
    Message,
    MessageRefused,
    ReplayStore,
    create_message,
    open_envelopes,
    seal_message,
    text_body,
)

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _envelope(alice: Signer, bob: Signer, inbox: InboxSecret, text: str, at=T0) -> str:
    obj = create_message(
        alice,
        sender_identity=alice.key_id,
        recipient=bob.key_id,
        inbox_key=inbox.key_id,
        body=text_body(text),
        created_at=at,
    )
    return seal_message(obj)


def test_accept_many_answers_each_entry_like_accept(tmp_path):
    with ReplayStore(tmp_path / "r.db") as store:
        store.accept("seen", T0, T0)
        answers = store.accept_many(
            [("a", T0), ("seen", T0), ("b", T0), ("a", T0), ("old", T0 - timedelta(days=8))],
            T0,
        )
        assert answers[0] is None and answers[2] is None
        assert [a.reason for a in answers if a is not None] == ["replay", "replay", "too_old"]
        assert store.seen("a") and store.seen("b") and not store.seen("old")
        assert len(store) == 3
        assert store.accept_many([], T0) == []


def test_open_envelopes_checks_each_then_records_the_batch_once(tmp_path):
    alice, bob, inbox = Signer.generate(), Signer.generate(), InboxSecret.generate()
    first = _envelope(alice, bob, inbox, "one")
    second = _envelope(alice, bob, inbox, "two")
    forged = _envelope(Signer.generate(), bob, inbox, "forged")
    # a valid envelope whose message signature was made by another key
    other = InboxSecret.generate()
    not_ours = _envelope(alice, bob, other, "not for this inbox")
    with ReplayStore(tmp_path / "r.db") as store:
        answers = open_envelopes(
            [first, second, first, not_ours, "kez:garbage"],
            [inbox],
            identity=bob.key_id,
            replay=store,
            at=T0,
        )
        assert isinstance(answers[0], Message) and answers[0].body["text"] == "one"
        assert isinstance(answers[1], Message) and answers[1].body["text"] == "two"
        assert isinstance(answers[2], MessageRefused) and answers[2].reason == "replay"
        assert not isinstance(answers[3], Message) and not isinstance(answers[4], Message)
        assert len(store) == 2  # nothing recorded for the refused ones
        again = open_envelopes([second, forged], [inbox], identity=bob.key_id, replay=store, at=T0)
        assert isinstance(again[0], MessageRefused) and again[0].reason == "replay"
        assert isinstance(again[1], Message)  # a stranger's message is well signed by its sender
        assert len(store) == 3


def test_a_forged_message_in_a_batch_is_refused_before_the_store(tmp_path):
    alice, bob, inbox = Signer.generate(), Signer.generate(), InboxSecret.generate()
    obj = create_message(
        alice,
        sender_identity=alice.key_id,
        recipient=bob.key_id,
        inbox_key=inbox.key_id,
        body=text_body("hi"),
        created_at=T0,
    )
    data = obj.to_dict()
    data["signature"]["sig"] = "0" * 128
    from kez_core.messaging import seal
    from kez_core.signed import SignedObject

    forged = seal(SignedObject.from_dict(data).canonical(), inbox.key_id)
    with ReplayStore(tmp_path / "r.db") as store:
        (answer,) = open_envelopes([forged], [inbox], identity=bob.key_id, replay=store, at=T0)
        assert isinstance(answer, SignatureError)
        assert len(store) == 0


def test_threads_accepting_at_once_share_commits_and_accept_each_id_once(tmp_path):
    with ReplayStore(tmp_path / "r.db") as store:
        commits = []
        store._db.set_trace_callback(lambda sql: commits.append(1) if sql == "COMMIT" else None)
        accepted: list[str] = []
        refused: list[str] = []

        def worker(n: int) -> None:
            for i in range(40):
                message_id = f"id{i}" if i % 4 == 0 else f"t{n}-{i}"  # every 4th id: all threads
                try:
                    store.accept(message_id, T0, T0)
                    accepted.append(message_id)
                except MessageRefused:
                    refused.append(message_id)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(accepted) == len(set(accepted)) == len(store)
        assert sorted(set(refused)) == sorted(f"id{i}" for i in range(0, 40, 4))
        assert len(accepted) + len(refused) == 240
        assert len(commits) < 240  # some commits were shared


CHILD = """
import sys
from datetime import datetime, timedelta
from kez_core.messaging import ReplayStore
path, at, count, batch = sys.argv[1], datetime.fromisoformat(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
store = ReplayStore(path)
ids = [f"m{i:05d}" for i in range(count)]
for start in range(0, count, batch):
    part = ids[start:start + batch]
    answers = store.accept_many([(i, at) for i in part], at)
    # acknowledged: printed only after the batch is durable
    print(" ".join(i for i, a in zip(part, answers) if a is None), flush=True)
print("done", flush=True)
"""


@pytest.mark.parametrize("kill_after", [1, 5, 17])
def test_killed_receiver_loses_no_acknowledged_id_and_accepts_none_twice(tmp_path, kill_after):
    path = tmp_path / "replay.db"
    args = [sys.executable, "-c", CHILD, str(path), T0.isoformat(), "4000", "7"]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    acked: set[str] = set()
    lines = 0
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip() == "done":
            break
        acked.update(line.split())
        lines += 1
        if lines >= kill_after + random.randrange(3):
            os.kill(child.pid, signal.SIGKILL)
            break
    child.wait(timeout=60)
    acked.update((child.stdout.read() or "").split())  # anything printed before the kill
    acked.discard("done")
    assert acked
    # a restarted receiver: every acknowledged id is there, and none is accepted again
    with ReplayStore(path) as store:
        assert all(store.seen(i) for i in acked)
        again = store.accept_many([(f"m{i:05d}", T0) for i in range(4000)], T0)
        accepted_again = {f"m{i:05d}" for i, a in enumerate(again) if a is None}
        assert not accepted_again & acked
        assert len(store) == 4000  # and the rest went in exactly once
