"""Issue 13 §6: DNS subjects use IDNA 2008 with UTS 46 (as browsers do), nothing is dropped
silently, and handles of channels without a plugin hold no whitespace or control characters."""

from __future__ import annotations

import functools

import unicodedata

import idna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kez_core.errors import DecodeError
from kez_core.registry import Registry, default_registry
from kez_core.subjects import normalize_subject


@pytest.mark.parametrize(
    "raw, normal",
    [
        ("dns:faß.de", "dns:xn--fa-hia.de"),  # IDNA 2003 said fass.de: another domain
        ("dns:FASS.de", "dns:fass.de"),
        ("dns:xn--fa-hia.de", "dns:xn--fa-hia.de"),
        ("dns:Bücher.example", "dns:xn--bcher-kva.example"),
        (
            "dns:ＥＸＡＭＰＬＥ.org",
            "dns:example.org",
        ),  # full-width letters are mapped, as browsers do
        ("dns:bücher。example", "dns:xn--bcher-kva.example"),  # ideographic full stop
        ("ap:alice@faß.de", "ap:alice@xn--fa-hia.de"),
        ("bluesky:alice.faß.de", "bluesky:alice.xn--fa-hia.de"),
        ("dns:ශ්‍රී.lk", None),  # ZWJ kept where IDNA 2008's CONTEXTJ allows it
    ],
)
def test_dns_names_are_idna_2008_uts46(raw, normal):
    got = normalize_subject(raw, default_registry())
    if normal is None:
        assert "xn--" in got
        assert "\u200d" in idna.decode(got.split(":", 1)[1])  # not dropped
    else:
        assert got == normal
    assert normalize_subject(got, default_registry()) == got


@pytest.mark.parametrize(
    "raw",
    [
        "dns:fa\u200bss.de",  # zero-width space: IDNA's mapping would drop it
        "dns:fa\u00adss.de",  # soft hyphen
        "dns:fa\u2060ss.de",  # word joiner
        "dns:fa\ufeffss.de",  # BOM
        "dns:fa\ufe0fss.de",  # variation selector
        "dns:\u0661\u06f1.com",  # mixed Arabic-Indic digits: IDNA 2008 refuses
        "dns:xn--abc.de",  # not valid punycode for IDNA 2008
        "dns:a\u200db.com",  # ZWJ without its context
        "ap:alice@fa\u200bss.de",
    ],
)
def test_what_idna_2008_refuses_or_would_drop_is_refused(raw):
    with pytest.raises(DecodeError):
        normalize_subject(raw, default_registry())


@functools.lru_cache(maxsize=1)
def _future_registry():
    """A registry whose `futurechannel` plugin keeps handles as written: what the core checks before any plugin."""
    import attrs
    from kez_core.plugin import BaseChannel
    from kez_core.testing import provider

    @attrs.frozen
    class Passthrough(BaseChannel):
        name: str = "futurechannel"

        def normalize_handle(self, handle: str) -> str:
            return handle

    return Registry(plugins=[provider(channels=[Passthrough()])], entry_points=False, env={})


BAD_CHARS = [
    "\u0085",
    "\u00a0",
    "\u2028",
    "\u2029",
    "\u3000",
    "\u200b",
    "\u200e",
    "\u202e",
    "\t",
    "\x7f",
    "\x1b",
]


@pytest.mark.parametrize("char", BAD_CHARS)
def test_handles_of_channels_without_a_plugin_refuse_whitespace_and_controls(char):
    with pytest.raises(DecodeError) as info:
        normalize_subject(f"futurechannel:ab{char}cd", _future_registry())
    assert f"U+{ord(char):04X}" in info.value.message
    if char not in " \t\r\n":  # ASCII whitespace around a handle is trimmed, as before
        with pytest.raises(DecodeError):
            normalize_subject(f"futurechannel:abcd{char}", _future_registry())


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=12))
def test_no_handle_keeps_whitespace_or_control_characters(handle):
    try:
        got = normalize_subject(f"futurechannel:{handle}", _future_registry())
    except DecodeError:
        return
    kept = got.split(":", 1)[1]
    assert kept == handle.strip(" \t\r\n")
    assert not any(
        c.isspace() or unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zs", "Zl", "Zp") for c in kept
    )
