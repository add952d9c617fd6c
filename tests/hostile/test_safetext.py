"""kez_core.safetext: the one place outside text is made safe to show (and its JSON twin)."""

from __future__ import annotations

import json

import pytest
from corpus import HOSTILE, raw_controls
from hypothesis import given, settings
from hypothesis import strategies as st
from kez_core.safetext import json_text, visible

# any code point, lone surrogates included (st.text() leaves out category Cs by default)
ANY_TEXT = st.text(
    st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=()), max_size=200
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[2J", "\\x1b[2J"),
        ("a\nb\tc\rd", "a\\nb\\tc\\rd"),
        ("\x00\x7f\x9b\x85", "\\x00\\x7f\\x9b\\x85"),
        ("alice\u202egnp", "alice<U+202E>gnp"),
        ("\u2066\u2069\u200e\u200f\u061c", "<U+2066><U+2069><U+200E><U+200F><U+061C>"),
        ("\u200b\u200c\u200d\u2060\ufeff", "<U+200B><U+200C><U+200D><U+2060><U+FEFF>"),
        ("\u2028\u2029", "<U+2028><U+2029>"),
        ("a\ud800", "a<U+D800>"),
        ("\U000e0041", "<U+E0041>"),
        (
            "[/x] [bold]",
            "[/x] [bold]",
        ),  # markup is not safetext's business: the CLI never reads it as markup
        ("Zoë 日本語\u3000✓", "Zoë 日本語\u3000✓"),
    ],
)
def test_visible_escapes_controls_bidi_and_invisibles(raw, shown):
    assert visible(raw) == shown


def test_multiline_keeps_newlines_and_tabs_only():
    assert visible("a\nb\tc\rd\x1b", multiline=True) == "a\nb\tc\\rd\\x1b"


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_corpus_comes_out_clean(name):
    assert not raw_controls(visible(HOSTILE[name]))
    visible(HOSTILE[name]).encode("utf-8")
    text = json_text({"value": HOSTILE[name], HOSTILE[name]: [HOSTILE[name]]})
    assert not raw_controls(text)
    assert json.loads(text) == {"value": HOSTILE[name], HOSTILE[name]: [HOSTILE[name]]}


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_visible_never_lets_a_control_through(text):
    shown = visible(text)
    assert not raw_controls(shown) and "\n" not in shown and "\t" not in shown
    shown.encode("utf-8")
    multi = visible(text, multiline=True)
    assert not raw_controls(multi)
    assert multi.count("\n") == text.count("\n")


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp")), max_size=200))
def test_visible_leaves_ordinary_text_alone(text):
    assert visible(text) == text == visible(text, multiline=True)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, st.sampled_from([None, 2]))
def test_json_text_is_the_same_value_without_raw_controls(value, indent):
    text = json_text(value, indent=indent)
    assert not raw_controls(text)
    text.encode("utf-8")
    assert json.loads(text) == value
    if indent is None:
        assert "\n" not in text  # one line: `message listen --json` prints JSON Lines
