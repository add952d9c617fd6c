"""Chunks held in memory until their file is assembled (kez_core.chat.held_chunks): the pieces and
the SHA-256 they give are those of the spool path, in any arrival order, and the bound holds."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kez_core.chat.held_chunks import HeldChunks


def pieces_of(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


@settings(max_examples=200, deadline=None)
@given(
    st.binary(min_size=1, max_size=3000),
    st.integers(1, 700),
    st.randoms(use_true_random=False),
    st.integers(0, 3),
)
def test_any_order_with_repeats_gives_the_file_and_its_digest(data, size, rnd, repeats):
    pieces = pieces_of(data, size)
    order = list(range(len(pieces))) + [rnd.randrange(len(pieces)) for _ in range(repeats)]
    rnd.shuffle(order)
    held = HeldChunks()
    for n, index in enumerate(order):
        if len(set(order[: n + 1])) < len(pieces):
            assert held.take("p", "t", len(pieces)) is None  # not all here yet: nothing taken
        held.add("p", "t", index, len(pieces), pieces[index])
    got = held.take("p", "t", len(pieces))
    assert got == (pieces, len(data), hashlib.sha256(data).hexdigest())
    assert held.total == 0 and held.take("p", "t", len(pieces)) is None


def test_the_first_copy_of_an_index_is_kept():
    held = HeldChunks()
    held.add("p", "t", 0, 2, b"first")
    held.add("p", "t", 0, 2, b"other")
    held.add("p", "t", 1, 2, b"!")
    assert held.take("p", "t", 2) == ([b"first", b"!"], 6, hashlib.sha256(b"first!").hexdigest())


def test_transfers_and_peers_are_kept_apart_and_a_wrong_count_is_not_taken():
    held = HeldChunks()
    held.add("p", "t", 0, 1, b"a")
    held.add("q", "t", 0, 1, b"b")
    held.add("p", "u", 0, 2, b"c")
    held.add("p", "u", 1, 3, b"d")  # another count than the transfer's first chunk said: ignored
    assert held.take("p", "u", 2) is None
    assert held.take("p", "t", 2) is None  # the pointer says otherwise: not these pieces
    assert held.take("q", "t", 1) == ([b"b"], 1, hashlib.sha256(b"b").hexdigest())
    assert held.take("p", "t", 1) == ([b"a"], 1, hashlib.sha256(b"a").hexdigest())


def test_a_transfer_past_the_bound_is_not_held_and_frees_what_it_held():
    held = HeldChunks(limit=10)
    held.add("p", "small", 0, 1, b"12345")
    held.add("p", "big", 0, 3, b"1234")
    assert held.total == 9
    held.add("p", "big", 1, 3, b"1234")  # past 10 bytes: the whole transfer is let go
    held.add("p", "big", 2, 3, b"1")  # and stays let go (the spool has it)
    assert held.total == 5 and held.take("p", "big", 3) is None
    assert held.take("p", "small", 1) is not None
    held.forget("p", "big")
    held.add("p", "big", 0, 1, b"x")  # forgotten: a new start may be held again
    assert held.take("p", "big", 1) == ([b"x"], 1, hashlib.sha256(b"x").hexdigest())


@pytest.mark.parametrize("index", [-1, 2])
def test_an_index_outside_the_count_is_ignored(index):
    held = HeldChunks()
    held.add("p", "t", index, 2, b"x")
    assert held.total == 0


def test_forget_drops_what_is_held():
    held = HeldChunks()
    for i in range(3):
        held.add("p", "t", i, 4, random.Random(i).randbytes(10))
    assert held.total == 30
    held.forget("p", "t")
    assert held.total == 0 and held.take("p", "t", 4) is None
