"""docs/spec.md section 12 states the constants the code uses (kept true here)."""

from __future__ import annotations

import re

import pytest
from datetime import timedelta
from pathlib import Path

from kez_core.messaging import BUCKETS, MAX_AGE, MAX_AHEAD, MAX_MESSAGE_BYTES, PREFIX
from kez_core.messaging.envelope import INFO, routing_id
from kez_core.messaging.padding import MESSAGE_MAX_BUCKET
from kez_core.messaging.message import MAX_ACK_IDS

SPEC = (Path(__file__).resolve().parents[2] / "docs" / "spec.md").read_text()
SECTION = SPEC[SPEC.index("## 12. Messages") :]


def test_the_spec_states_the_envelope_constants():
    assert f"`{INFO.decode()}`" in SECTION
    assert f"`{PREFIX}`" in SECTION
    assert "48 + a bucket" in SECTION
    assert "1 KiB to 128 KiB" in SECTION and "on to 512 KiB" in SECTION
    assert BUCKETS[0] == 1024 and BUCKETS[-1] == 512 * 1024 and MESSAGE_MAX_BUCKET == 128 * 1024
    assert all(b == 2 * a for a, b in zip(BUCKETS, BUCKETS[1:], strict=False))
    assert f"{MAX_MESSAGE_BYTES:,}" in SECTION


def test_the_spec_states_the_window_and_ack_limits():
    assert MAX_AGE == timedelta(days=7) and "7 days" in SECTION
    assert MAX_AHEAD == timedelta(minutes=5) and "5 minutes" in SECTION
    assert f"1 to {MAX_ACK_IDS} message ids" in SECTION


def test_the_routing_id_is_the_one_the_spec_gives():
    import hashlib

    key = "x25519:" + "11" * 32
    prefix = re.search(r'SHA-256\("([^"]+)" \|\| raw public key\)', SECTION).group(1)
    expected = hashlib.sha256(
        prefix.encode().decode("unicode_escape").encode() + bytes([0x11] * 32)
    )
    assert routing_id(key) == expected.hexdigest()
    assert "all 64 hex characters" in SECTION  # one id everywhere: nostr `p` tags need 64 hex


def test_a_routing_id_is_64_hex_so_strict_relays_take_it_as_a_p_tag():
    from kez_core.errors import DecodeError
    from kez_core.messaging import check_routing_id

    rid = routing_id("x25519:" + "22" * 32)
    assert re.fullmatch(r"[0-9a-f]{64}", rid) and check_routing_id(rid) == rid
    for bad in (rid[:32], rid + "0", rid.upper(), rid[:-1] + "g", None):
        with pytest.raises(DecodeError):
            check_routing_id(bad)
