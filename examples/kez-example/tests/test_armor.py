"""The `armor` encoding passes the encoding contract, and is found through its entry point.

This is the template for a plugin's own suite: subclass the contract from
`kez_core.testing`, provide one fixture, add tests for what is special to
the plugin.
"""

from __future__ import annotations

import pytest
from kez_core.claim import create_claim
from kez_core.encoding import decode_any, encode
from kez_core.errors import DecodeError, UnknownNameError
from kez_core.keys import Signer
from kez_core.registry import Registry
from kez_core.testing import EncodingContract
from kez_example.armor import BEGIN, END, WIDTH, ArmorEncoding


class TestArmorContract(EncodingContract):
    garbage_inputs = EncodingContract.garbage_inputs + (
        BEGIN,
        f"{BEGIN}\n{END}",
        f"{BEGIN}\nkez:z1:AAAA\n{END}",
        f"{BEGIN}\nnot base64 at all\n{END}",
        f"{END}\nkez:z1:AAAA\n{BEGIN}",
    )

    @pytest.fixture
    def encoding(self):
        return ArmorEncoding()


def test_entry_point_lists_armor_from_kez_example():
    registry = Registry(env={})
    [info] = [p for p in registry.plugins() if p.name == "armor"]
    assert info.distribution == "kez-example"
    assert info.module == "kez_example.armor"
    assert info.version
    assert not info.builtin
    assert info.core_compatible
    assert info.state == "not loaded"
    assert registry.encoding("armor").name == "armor"
    assert info.state == "loaded"
    assert info.provides == {"encoding": ["armor"]}


def test_armor_through_the_installed_registry():
    registry = Registry(env={})
    signer = Signer.generate("ed25519", registry)
    claim = create_claim(signer, "github:alice", registry=registry)
    text = encode(claim, "armor", registry)
    lines = text.strip().splitlines()
    assert lines[0] == BEGIN and lines[-1] == END
    assert all(len(line) <= WIDTH for line in lines[1:-1])
    assert decode_any(f"Here is my proof:\n\n{text}\nbye", registry) == [claim]


def test_two_blocks_and_crlf():
    registry = Registry(env={})
    signer = Signer.generate("nostr", registry)
    first = create_claim(signer, "github:alice", registry=registry)
    second = create_claim(signer, "dns:example.org", registry=registry)
    text = (encode(first, "armor", registry) + "\n" + encode(second, "armor", registry)).replace(
        "\n", "\r\n"
    )
    assert ArmorEncoding().decode(text) == [first, second]


def test_disabled_armor_is_unknown():
    registry = Registry(env={"KEZ_DISABLE_PLUGINS": "armor"})
    with pytest.raises(UnknownNameError, match="armor"):
        registry.encoding("armor")
    with pytest.raises(DecodeError):
        ArmorEncoding().decode("no block here")
