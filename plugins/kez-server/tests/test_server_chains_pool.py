"""A long push has its signatures checked on the worker pool (kez_core `PooledFeed`),
with exactly the answer of the one-core path: same error (status, code, message,
line, seqno), same rows stored, same fork evidence.

A differential test on the real store (SQLite files): each scenario runs on a
fresh database once on one core and once with a pool of 2 workers, a threshold
of 0 and batches of 2 (so every push is pooled and spans many batches).
"""

from __future__ import annotations

import pytest
from kez_core.sigchain import parallel
from kez_server.chains import ChainService
from kez_server.db import Store
from kez_server.errors import ApiError
from server_helpers import body, chain, extend, fork_of


def _bad_sig(line: bytes) -> bytes:
    at = line.index(b'"sig":"') + 8
    return line[:at] + (b"0" if line[at : at + 1] != b"0" else b"1") + line[at + 1 :]


def _scenarios():
    signer, builder = chain(12)
    lines = builder.lines
    branch = fork_of(builder, 6)
    for _ in range(4):
        extend(branch, signer)
    other, other_builder = chain(3)
    return signer.key_id, [
        ("whole", [], list(lines)),
        ("bad 4", [], [*lines[:3], _bad_sig(lines[3]), *lines[4:]]),
        ("bad 3, gap after", [], [*lines[:2], _bad_sig(lines[2]), *lines[3:7], *lines[8:]]),
        ("gap, bad after", [], [*lines[:4], *lines[5:9], _bad_sig(lines[9]), *lines[10:]]),
        ("bad first", [], [_bad_sig(lines[0]), *lines[1:]]),
        ("other identity", [], list(other_builder.lines)),
        ("fork", list(lines[:8]), list(branch.lines)),
        (
            "fork after a bad signature",
            list(lines[:8]),
            [*branch.lines[:4], _bad_sig(branch.lines[4]), *branch.lines[5:]],
        ),
        ("tail with bad", list(lines[:5]), [*lines[5:8], _bad_sig(lines[8]), *lines[9:]]),
        ("re-push", list(lines), list(lines)),
    ]


def _run(tmp_path, name: str, identity: str, stored: list[bytes], posted: list[bytes]) -> tuple:
    store = Store(str(tmp_path / f"{name.replace(' ', '_')}-{parallel.THRESHOLD}.db"))
    try:
        store.migrate()
        service = ChainService(store)
        if stored:
            service.append(identity, body(stored))
        try:
            result = ("ok", service.append(identity, body(posted)).to_json())
        except ApiError as exc:
            result = (
                "error",
                exc.status,
                exc.code,
                exc.message,
                sorted(exc.extra.items(), key=str),
            )
        kept = store.chain_lines(identity, 0, 100)
        forks = [(r["seqno"], r["link_id"]) for r in store.forks(identity)]
        return result, kept, forks
    finally:
        store.close()


def test_a_pooled_push_answers_like_one_core(tmp_path, monkeypatch):
    identity, scenarios = _scenarios()
    for name, stored, posted in scenarios:
        monkeypatch.setenv("KEZ_WORKERS", "0")
        (tmp_path / "one").mkdir(exist_ok=True)
        expected = _run(tmp_path / "one", name, identity, stored, posted)
        monkeypatch.setenv("KEZ_WORKERS", "2")
        monkeypatch.setattr(parallel, "THRESHOLD", 0)
        monkeypatch.setattr(parallel, "WARM_THRESHOLD", 0)
        monkeypatch.setattr(parallel, "BATCH", 2)
        (tmp_path / "pool").mkdir(exist_ok=True)
        pooled = _run(tmp_path / "pool", name, identity, stored, posted)
        monkeypatch.undo()
        assert pooled == expected, name


@pytest.mark.parametrize("expected,workers", [(0, "0"), (40, "2")])
def test_the_pool_is_used_only_for_a_long_push(monkeypatch, expected, workers):
    from kez_core.sigchain import ChainValidator

    monkeypatch.setenv("KEZ_WORKERS", workers)
    monkeypatch.setattr(parallel, "THRESHOLD", 40)
    monkeypatch.setattr(parallel, "WARM_THRESHOLD", 40)
    assert parallel.PooledFeed(ChainValidator(), 39).batches is None
    assert (parallel.PooledFeed(ChainValidator(), 40).batches is None) == (expected == 0)
