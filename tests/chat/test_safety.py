"""The safety number two people compare in person before trusting a new conversation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kez_core.chat.safety import safety_number
from kez_core.errors import KezError

A = "ed25519:" + "11" * 32
B = "ed25519:" + "22" * 32


def test_same_for_both_sides():
    assert safety_number(A, B) == safety_number(B, A)


def test_shape_is_twelve_groups_of_five_digits():
    groups = safety_number(A, B).split(" ")
    assert len(groups) == 12
    assert all(len(g) == 5 and g.isdigit() for g in groups)


def test_differs_per_pair():
    c = "ed25519:" + "33" * 32
    assert safety_number(A, B) != safety_number(A, c)


def test_bad_id_is_a_typed_error():
    with pytest.raises(KezError):
        safety_number("nonsense", B)


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_symmetric_property(x, y):
    a, b = "ed25519:" + x.hex(), "ed25519:" + y.hex()
    assert safety_number(a, b) == safety_number(b, a)
