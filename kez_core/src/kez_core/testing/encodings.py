"""The contract suite for wire encoding plugins (`kez_register_encodings`)."""

from __future__ import annotations

import pytest

from ..claim import check_claim, create_claim
from ..errors import DecodeError
from ..keys import Signer
from ..protocols import Encoding, missing_members
from ..registry import Registry
from ..signed import SignedObject, sign
from ..status import Status
from ._support import (
    _assert_loaded,
    _builtin_encodings,
    _builtin_key_algorithms,
    _expect,
    _hypothesis,
    provider,
)


class EncodingContract:
    """Generic checks for a wire encoding plugin (`kez_register_encodings`).

    Subclass it in your test suite and provide the `encoding` fixture::

        import pytest
        from kez_core.testing import EncodingContract
        from kez_myenc import MyEncoding

        class TestMyEncoding(EncodingContract):
            @pytest.fixture
            def encoding(self):
                return MyEncoding()

            # optional: more text your decoder must refuse with DecodeError
            garbage_inputs = EncodingContract.garbage_inputs + ("my-format-but-broken",)

    It checks: Protocol conformance, encode → decode round trips of claims
    signed with each built-in key algorithm (and of a non-claim object with
    unusual payload text), that the object id survives, that `detect`
    recognises its own output and never raises, that auto-detection among
    the built-in encodings picks it up, and that garbage, truncated and
    empty input raise `DecodeError`.
    """

    garbage_inputs: tuple[str, ...] = (
        "",
        " ",
        "\n\n",
        "garbage",
        "kez:z1:",
        "kez:z1:!!!!",
        "kez:z1:AAAA",
        "{",
        "{}",
        "[]",
        '"just a string"',
        "```kez\n```",
        "```kez\nkez:z1:AAAA\n```",
        '"kez:z1:AAAA"',
        "\x00\x01\x02",
    )

    @pytest.fixture
    def encoding(self) -> Encoding:
        pytest.fail("subclass EncodingContract and provide an `encoding` fixture")

    @pytest.fixture
    def contract_registry(self, encoding: Encoding) -> Registry:
        registry = Registry(
            plugins=[provider(key_algorithms=_builtin_key_algorithms(), encodings=[encoding])],
            entry_points=False,
            env={},
        )
        _assert_loaded(registry, f"encoding {getattr(encoding, 'name', encoding)!r}")
        return registry

    @pytest.fixture
    def signed_objects(self, contract_registry: Registry) -> list[SignedObject]:
        objects = []
        for alg in ("ed25519", "nostr"):
            signer = Signer.generate(alg, contract_registry)
            objects.append(create_claim(signer, "github:alice", registry=contract_registry))
            objects.append(create_claim(signer, "dns:Example.ORG", registry=contract_registry))
            objects.append(
                sign(
                    "note",
                    {"text": 'héllo ☃ \u2028 "quoted" \\ `ticks` ```', "n": [1, -2.5, None, True]},
                    signer,
                )
            )
        return objects

    # ------------------------------------------------------------ shape

    def test_conforms_to_protocol(self, encoding: Encoding) -> None:
        assert missing_members("encoding", encoding) == []
        assert isinstance(encoding, Encoding)
        assert isinstance(encoding.name, str) and encoding.name
        assert isinstance(encoding.priority, int) and not isinstance(encoding.priority, bool)

    def test_registry_indexes_it(self, encoding: Encoding, contract_registry: Registry) -> None:
        assert contract_registry.encoding(encoding.name) is encoding

    # ----------------------------------------------------- round trips

    @pytest.mark.parametrize("alg", ["ed25519", "nostr"])
    def test_claim_round_trip(
        self, encoding: Encoding, contract_registry: Registry, alg: str
    ) -> None:
        signer = Signer.generate(alg, contract_registry)
        claim = create_claim(signer, "github:alice", registry=contract_registry)
        text = encoding.encode(claim)
        assert isinstance(text, str) and text
        decoded = encoding.decode(text)
        assert decoded == [claim]
        assert decoded[0].id == claim.id
        result = check_claim(decoded[0], registry=contract_registry)
        assert result.status is Status.VALID, result.reason

    def test_round_trip_keeps_every_object(
        self, encoding: Encoding, signed_objects: list[SignedObject]
    ) -> None:
        for obj in signed_objects:
            decoded = encoding.decode(encoding.encode(obj))
            assert len(decoded) == 1
            assert decoded[0] == obj
            assert decoded[0].id == obj.id
            assert decoded[0].canonical() == obj.canonical()

    def test_encode_is_stable(self, encoding: Encoding, signed_objects: list[SignedObject]) -> None:
        for obj in signed_objects:
            assert encoding.encode(obj) == encoding.encode(obj)

    def test_detect_own_output(
        self, encoding: Encoding, signed_objects: list[SignedObject]
    ) -> None:
        for obj in signed_objects:
            assert encoding.detect(encoding.encode(obj)) is True

    def test_auto_detection_among_builtins(
        self, encoding: Encoding, signed_objects: list[SignedObject]
    ) -> None:
        from ..encoding import decode_any

        others = [e for e in _builtin_encodings() if e.name != encoding.name]
        registry = Registry(
            plugins=[
                provider(key_algorithms=_builtin_key_algorithms(), encodings=[encoding, *others])
            ],
            entry_points=False,
            env={},
        )
        _assert_loaded(registry, "the encoding next to the built-in encodings")
        for obj in signed_objects:
            assert decode_any(encoding.encode(obj), registry) == [obj]

    # ------------------------------------------------------- bad input

    def test_detect_never_raises(self, encoding: Encoding) -> None:
        for text in (*self.garbage_inputs, "x" * 100_000):
            assert encoding.detect(text) in (True, False)

    def test_garbage_is_decode_error(self, encoding: Encoding) -> None:
        for text in self.garbage_inputs:
            _expect(DecodeError, encoding.decode, text)

    def test_truncated_is_decode_error(
        self, encoding: Encoding, signed_objects: list[SignedObject]
    ) -> None:
        for obj in signed_objects:
            text = encoding.encode(obj)
            for cut in (1, 10, len(text) // 3, len(text) // 2, (2 * len(text)) // 3):
                _expect(DecodeError, encoding.decode, text[:cut])

    def test_oversized_is_decode_error(
        self, encoding: Encoding, signed_objects: list[SignedObject]
    ) -> None:
        huge = encoding.encode(signed_objects[0]) + "x" * (2 * 1024 * 1024)
        with pytest.raises(DecodeError):
            encoding.decode(huge)

    def test_arbitrary_text_hypothesis(self, encoding: Encoding) -> None:
        given, settings, strategies = _hypothesis()

        @settings(max_examples=50, deadline=None, database=None)
        @given(text=strategies.text(max_size=300))
        def check(text: str) -> None:
            assert encoding.detect(text) in (True, False)
            with pytest.raises(DecodeError):
                encoding.decode(text)

        check()

    def test_mutated_output_hypothesis(
        self, encoding: Encoding, signed_objects: list[SignedObject]
    ) -> None:
        given, settings, strategies = _hypothesis()
        text = encoding.encode(signed_objects[0])

        @settings(max_examples=50, deadline=None, database=None)
        @given(
            position=strategies.integers(0, len(text)),
            insert=strategies.text(max_size=3),
            delete=strategies.integers(0, 3),
        )
        def check(position: int, insert: str, delete: int) -> None:
            mutated = text[:position] + insert + text[position + delete :]
            try:
                decoded = encoding.decode(mutated)
            except DecodeError:
                return
            assert isinstance(decoded, list)
            assert all(isinstance(obj, SignedObject) for obj in decoded)

        check()
