"""The JCS fast path must be byte-identical to the rfc8785 library, or decline."""

from __future__ import annotations

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from kez_core.errors import CanonicalizationError
from kez_core.jcs import canonicalize

leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats()
    | st.text()
    | st.sampled_from(["\ud800", "a\udfffb", "\x7f", "\u2028", "\U0001f600", "\ue000", "é"])
)
keys = st.text() | st.sampled_from(["\U0001f600", "\ue000", "\ufb33", "a", "A", "é"])
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=30,
)


def _reference(value):
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError):
        return None


@settings(max_examples=500, deadline=None)
@given(values)
def test_canonicalize_equals_rfc8785(value):
    expected = _reference(value)
    try:
        got = canonicalize(value)
    except CanonicalizationError:
        got = None
    assert got == expected


def test_key_order_is_utf16_not_code_points():
    # U+E000 sorts after a surrogate pair in UTF-16 but before U+1F600 by code point.
    value = {"\ue000": 1, "\U0001f600": 2}
    assert canonicalize(value) == rfc8785.dumps(value)
    assert canonicalize(value).index("\U0001f600".encode()) < canonicalize(value).index(
        "\ue000".encode()
    )


def test_unsafe_integers_and_floats_take_the_library_path():
    assert canonicalize({"n": 2**53 - 1}) == b'{"n":9007199254740991}'
    assert canonicalize([1e21, 0.1, -0.0]) == rfc8785.dumps([1e21, 0.1, -0.0])
    for bad in (2**53, float("nan"), "\ud800"):
        try:
            canonicalize([bad])
        except CanonicalizationError:
            continue
        raise AssertionError(f"{bad!r} must not canonicalize")
