"""The built-in key algorithms and encodings pass the contracts plugin authors use.

Built-ins are plugins (DESIGN.md §1), so they are held to exactly the checks
in `kez_core.testing` that a third-party plugin subclasses. The small
`ExampleChannel` here exercises `ChannelContract` until the channel plugins
exist.
"""

from __future__ import annotations

import re
import subprocess
import sys

import attrs
import pytest
from kez_core.builtins.bip340 import BIP340
from kez_core.builtins.ed25519 import ED25519
from kez_core.builtins.encodings import CompactEncoding, DnsEncoding, JsonEncoding, MarkdownEncoding
from kez_core.errors import DecodeError
from kez_core.protocols import ChannelContext, FetchOutcome, PublishOutcome
from kez_core.testing import ChannelContract, EncodingContract, KeyAlgorithmContract


class TestEd25519(KeyAlgorithmContract):
    @pytest.fixture
    def key_algorithm(self):
        return ED25519


class TestNostr(KeyAlgorithmContract):
    # nostr keys are also accepted as npub; an nsec is not a public key
    garbage_public_keys = KeyAlgorithmContract.garbage_public_keys + (
        "npub1",
        "nsec1vl029mgpspedva04g90vltkh6fvh240zqtv9k0t9af8935ke9laqsnlfe5",
        "0" * 64,  # x = 0 is not on secp256k1
        "f" * 64,  # x >= p
    )

    @pytest.fixture
    def key_algorithm(self):
        return BIP340

    def test_npub_is_accepted(self, key_algorithm, secret):
        from kez_core import nip19

        public = key_algorithm.public_from_secret(secret)
        assert key_algorithm.parse_public(nip19.encode("npub", public)) == public


class TestJson(EncodingContract):
    @pytest.fixture
    def encoding(self):
        return JsonEncoding()


class TestCompact(EncodingContract):
    @pytest.fixture
    def encoding(self):
        return CompactEncoding()


class TestMarkdown(EncodingContract):
    garbage_inputs = EncodingContract.garbage_inputs + (
        "```kez\nkez:z1:AAAA",  # no closing fence
        "```python\nkez:z1:AAAA\n```",
        "~~~kez\nnot compact\n~~~",
    )

    @pytest.fixture
    def encoding(self):
        return MarkdownEncoding()


class TestDns(EncodingContract):
    garbage_inputs = EncodingContract.garbage_inputs + (
        '_kez.example.org. 3600 IN TXT "kez:z1:AAAA"',
        "_kez.example.org. 3600 IN TXT",
        '"kez:z1:AAAA" trailing',
        '"' + "A" * 256 + '"',  # a character-string longer than 255 bytes
        '"\\',
    )

    @pytest.fixture
    def encoding(self):
        return DnsEncoding()


# ------------------------------------------------------------------ channel contract

_HANDLE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")


@attrs.frozen
class ExampleChannel:
    """A minimal channel: lowercase names, an optional leading `@`."""

    name: str = "example"
    aliases: tuple[str, ...] = ("ex",)
    options: tuple = ()
    proof_encoding: str = "compact"

    def normalize_handle(self, handle: str) -> str:
        text = handle.strip().removeprefix("@").lower()
        if not _HANDLE.fullmatch(text):
            raise DecodeError(f"example handle {handle!r} is not 1-32 letters, digits or '-'")
        return text

    async def fetch(self, handle: str, ctx: ChannelContext) -> FetchOutcome:
        return FetchOutcome(reachable=False, reason="the example channel has no server")

    async def publish(self, handle: str, proof_text: str, ctx: ChannelContext) -> PublishOutcome:
        return PublishOutcome(location=f"example:{handle}")


class TestExampleChannel(ChannelContract):
    valid_handles = ("alice", "@Alice", "  bob-2 ", "x")
    invalid_handles = ("", "a b", "-bad", "bad-", "é", "a" * 40)

    @pytest.fixture
    def channel(self):
        return ExampleChannel()

    @pytest.fixture
    def unreachable_context(self):
        return ChannelContext(timeout=2)  # the example channel has no server to point anywhere


def test_contract_without_fixture_fails_with_a_sentence(tmp_path):
    """A subclass that forgets its fixture fails saying what to provide, not 'fixture not found'."""
    (tmp_path / "test_forgot.py").write_text(
        "from kez_core.testing import EncodingContract\n\n"
        "class TestForgot(EncodingContract):\n"
        "    pass\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "test_conforms_to_protocol",
            str(tmp_path / "test_forgot.py"),
        ],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "provide an `encoding` fixture" in result.stdout


def test_hypothesis_checks_skip_without_hypothesis(monkeypatch):
    """hypothesis is optional for plugin suites: its checks skip instead of failing."""
    from kez_core.testing import _support

    monkeypatch.setattr(_support, "hypothesis", None)
    with pytest.raises(pytest.skip.Exception, match="hypothesis"):
        TestJson().test_arbitrary_text_hypothesis(JsonEncoding())
