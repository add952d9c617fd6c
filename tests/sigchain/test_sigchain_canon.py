"""The fast JCS path gives exactly the bytes of the reference (rfc8785), or the same error."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kez_core.errors import CanonicalizationError, DecodeError
from kez_core.jcs import canonicalize
from kez_core.sigchain.canon import LineParser, jcs, jcs_trusted

surrogates = st.text(
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=2
)
texts = st.one_of(
    st.text(max_size=12),
    st.text(st.characters(max_codepoint=0x7F), max_size=12),
    st.text(st.characters(min_codepoint=0xE000, max_codepoint=0x1F9FF), max_size=4),
    st.builds(lambda a, s: a + s, st.text(max_size=3), surrogates),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.integers(min_value=2**53 - 3, max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(texts, inner, max_size=4),
    ),
    max_leaves=12,
)


def reference(value):
    try:
        return canonicalize(value)
    except CanonicalizationError:
        return CanonicalizationError


def fast(fn, *args):
    try:
        return fn(*args)
    except CanonicalizationError:
        return CanonicalizationError


@settings(max_examples=400, deadline=None)
@given(values)
def test_jcs_equals_reference(value):
    assert fast(jcs, value) == reference(value)


@settings(max_examples=400, deadline=None)
@given(values, st.booleans())
def test_parsed_values_canonicalize_like_the_reference(value, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only)
    try:
        parsed, simple = LineParser().parse(text)
    except DecodeError:
        return  # e.g. a duplicate key after normalisation; refusing is always allowed
    assert fast(jcs_trusted, parsed, simple) == reference(parsed)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 1, "a": [True, None, "x"]}, b'{"a":[true,null,"x"],"b":1}'),
        ('\u0000\b\t\n\f\r\u001f\u007f"\\/', b'"\\u0000\\b\\t\\n\\f\\r\\u001f\x7f\\"\\\\/"'),
        ({"\ue000": 1, "\U0001f600": 2}, '{"\U0001f600":2,"\ue000":1}'.encode()),
        (1.0, b"1"),
        (1e21, b"1e+21"),
    ],
)
def test_known_forms(value, expected):
    assert jcs(value) == expected


@pytest.mark.parametrize("value", [2**53, float("nan"), "\ud800", {"k": "\udfff"}])
def test_refused_like_the_reference(value):
    with pytest.raises(CanonicalizationError):
        jcs(value)


def test_parser_is_strict():
    parser = LineParser()
    for bad in [b'{"a":1,"a":2}', b"NaN", b"[Infinity]", b"\xff", b"{", "x" * 70_000]:
        with pytest.raises(DecodeError):
            parser.parse(bad)
    assert parser.parse(b'{"a":1.5}') == ({"a": 1.5}, False)
    assert parser.parse(b'{"a":9007199254740992}')[1] is False
    assert parser.parse('{"a":"\u00e9"}') == ({"a": "\u00e9"}, False)  # non-ASCII: walk it
    assert parser.parse(b'{"a":"\\u00e9"}') == ({"a": "\u00e9"}, False)
    assert parser.parse(b'{"\\ud83d\\ude00":1}')[1] is False
