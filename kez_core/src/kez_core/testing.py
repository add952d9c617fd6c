"""Contract test suites that plugin authors reuse (pytest classes).

A plugin proves it fits an extension point by subclassing one contract and
providing one fixture; every generic check then runs against it::

    import pytest
    from kez_core.testing import EncodingContract
    from my_plugin import MyEncoding

    class TestMyEncoding(EncodingContract):
        @pytest.fixture
        def encoding(self):
            return MyEncoding()

The contracts import pytest (this module is only imported by test suites).
A few checks use hypothesis when it is installed and are skipped when it is
not. Nothing here touches the network or the installed entry points: each
contract builds its own `Registry(plugins=[...], entry_points=False)` holding
the object under test and the built-in key algorithms it needs.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from . import hookimpl
from .claim import check_claim, create_claim
from .errors import DecodeError, KeyFormatError, PassphraseError, SignatureError
from .keys import Signer, parse_key_id
from .protocols import Channel, Encoding, KeyAlgorithm, missing_members
from .registry import Registry
from .signed import SignedObject, sign, verify_signature
from .status import Status
from .subjects import normalize_subject

try:  # hypothesis is optional: the checks that use it skip without it
    import hypothesis
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - exercised only where hypothesis is absent
    hypothesis = None  # type: ignore[assignment]
    st = None  # type: ignore[assignment]

__all__ = [
    "ChannelContract",
    "closed_port",
    "EncodingContract",
    "KeyAlgorithmContract",
    "TransportContract",
    "provider",
]


class _Provider:
    """A plugin object whose hooks return fixed lists (what a plugin module does)."""

    def __init__(self, name: str, objects: dict[str, list[Any]]) -> None:
        self.__name__ = name
        self._objects = objects

    @hookimpl
    def kez_register_key_algorithms(self) -> list[Any]:
        return list(self._objects.get("key_algorithm", ()))

    @hookimpl
    def kez_register_encodings(self) -> list[Any]:
        return list(self._objects.get("encoding", ()))

    @hookimpl
    def kez_register_channels(self) -> list[Any]:
        return list(self._objects.get("channel", ()))

    @hookimpl
    def kez_register_transports(self) -> list[Any]:
        return list(self._objects.get("transport", ()))


def provider(
    name: str = "contract-under-test",
    *,
    key_algorithms: Iterable[Any] = (),
    encodings: Iterable[Any] = (),
    channels: Iterable[Any] = (),
    transports: Iterable[Any] = (),
) -> object:
    """A plugin object for `Registry(plugins=[...])` that registers the given objects."""
    return _Provider(
        name,
        {
            "key_algorithm": list(key_algorithms),
            "encoding": list(encodings),
            "channel": list(channels),
            "transport": list(transports),
        },
    )


def closed_port() -> int:
    """A TCP port on 127.0.0.1 where nothing listens (bound, then released), for unreachable contexts."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _builtin_key_algorithms() -> list[KeyAlgorithm]:
    from .builtins.bip340 import BIP340
    from .builtins.ed25519 import ED25519

    return [ED25519, BIP340]


def _builtin_encodings() -> list[Encoding]:
    from .builtins import encodings

    return list(encodings.kez_register_encodings())


def _hypothesis() -> tuple[Any, Any, Any]:
    """(given, settings, strategies), or skip the calling test when hypothesis is missing."""
    if hypothesis is None:
        pytest.skip("hypothesis is not installed")
    return hypothesis.given, hypothesis.settings, st


def _expect(error: type[Exception], function: Any, argument: Any) -> None:
    """Fail, naming the input, unless `function(argument)` raises `error`."""
    try:
        result = function(argument)
    except error:
        return
    except Exception as exc:  # noqa: BLE001 - the point is to name what was raised instead
        pytest.fail(
            f"{function.__name__}({argument!r:.120}) raised {type(exc).__name__}: {exc}, not {error.__name__}"
        )
    pytest.fail(
        f"{function.__name__}({argument!r:.120}) returned {result!r:.120}, expected {error.__name__}"
    )


def _assert_loaded(registry: Registry, what: str) -> None:
    registry.load()
    broken = [f"{p.name}: {p.error}" for p in registry.plugins() if p.state != "loaded"]
    assert not broken, f"the Registry refused {what}: {'; '.join(broken)}"


# ============================================================== key algorithms


class KeyAlgorithmContract:
    """Generic checks for a key algorithm plugin (`kez_register_key_algorithms`).

    Subclass it in your test suite and provide the `key_algorithm` fixture::

        import pytest
        from kez_core.testing import KeyAlgorithmContract
        from kez_myalg import MyAlgorithm

        class TestMyAlgorithm(KeyAlgorithmContract):
            @pytest.fixture
            def key_algorithm(self):
                return MyAlgorithm()

            # optional: more text that parse_public must refuse
            garbage_public_keys = KeyAlgorithmContract.garbage_public_keys + ("myalg-junk",)

    It checks: Protocol conformance, sign/verify through
    `kez_core.signed.sign` / `verify_signature` in a Registry holding the
    plugin, that `verify` answers False (never raises) for wrong keys,
    altered signatures and wrong lengths, public key text round trips,
    PEM round trips (with and without passphrase, wrong or missing
    passphrase → `PassphraseError`) and every `secret_formats` entry.
    """

    garbage_public_keys: tuple[str, ...] = (
        "",
        " ",
        "zz",
        "not a key",
        "00",
        "0" * 63,
        "0" * 65,
        "g" * 64,
        "0x" + "1" * 62,
        "\x00" * 64,
        "é" * 64,
    )
    passphrase: bytes = b"correct horse battery staple"

    @pytest.fixture
    def key_algorithm(self) -> KeyAlgorithm:
        pytest.fail("subclass KeyAlgorithmContract and provide a `key_algorithm` fixture")

    @pytest.fixture
    def contract_registry(self, key_algorithm: KeyAlgorithm) -> Registry:
        registry = Registry(
            plugins=[provider(key_algorithms=[key_algorithm])], entry_points=False, env={}
        )
        _assert_loaded(registry, f"key algorithm {getattr(key_algorithm, 'name', key_algorithm)!r}")
        return registry

    @pytest.fixture
    def secret(self, key_algorithm: KeyAlgorithm) -> bytes:
        return key_algorithm.generate_secret()

    def foreign_pem(self) -> bytes:
        """A PKCS#8 PEM key of a type this algorithm does not handle (override if it does)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    # ------------------------------------------------------------ shape

    def test_conforms_to_protocol(self, key_algorithm: KeyAlgorithm) -> None:
        assert missing_members("key_algorithm", key_algorithm) == []
        assert isinstance(key_algorithm, KeyAlgorithm)

    def test_names_are_non_empty_text(self, key_algorithm: KeyAlgorithm) -> None:
        assert isinstance(key_algorithm.name, str) and key_algorithm.name
        assert ":" not in key_algorithm.name, "the name is a key-id prefix; it cannot hold ':'"
        assert isinstance(key_algorithm.signature_alg, str) and key_algorithm.signature_alg
        formats = key_algorithm.secret_formats
        assert not isinstance(formats, str), "secret_formats is a sequence of names, not one string"
        assert all(isinstance(f, str) and f for f in formats)

    def test_registry_indexes_it(
        self, key_algorithm: KeyAlgorithm, contract_registry: Registry
    ) -> None:
        assert contract_registry.key_algorithm(key_algorithm.name) is key_algorithm
        found = contract_registry.key_algorithm_for_signature(key_algorithm.signature_alg)
        assert found is key_algorithm

    def test_generate_gives_fresh_secrets(self, key_algorithm: KeyAlgorithm) -> None:
        secrets = {key_algorithm.generate_secret() for _ in range(4)}
        assert len(secrets) == 4
        assert all(isinstance(s, bytes) and s for s in secrets)

    def test_public_is_deterministic(self, key_algorithm: KeyAlgorithm, secret: bytes) -> None:
        public = key_algorithm.public_from_secret(secret)
        assert isinstance(public, bytes) and public
        assert key_algorithm.public_from_secret(secret) == public

    # ------------------------------------------------------- signatures

    def test_sign_verify_round_trip(self, key_algorithm: KeyAlgorithm, secret: bytes) -> None:
        public = key_algorithm.public_from_secret(secret)
        for message in (b"", b"kez", bytes(range(256)) * 4):
            signature = key_algorithm.sign(secret, message)
            assert isinstance(signature, bytes)
            assert len(signature) == 64, (
                "signature.sig is 128 hex characters: signatures are 64 bytes"
            )
            assert key_algorithm.verify(public, message, signature) is True

    def test_signed_object_round_trip(
        self, key_algorithm: KeyAlgorithm, secret: bytes, contract_registry: Registry
    ) -> None:
        signer = Signer(key_algorithm, secret)
        assert str(parse_key_id(signer.key_id, contract_registry)) == signer.key_id, (
            "the key id of a signer must be in normal form (what parse_key_id gives back)"
        )
        obj = sign("claim", {"primary": signer.key_id, "note": "contract ☃"}, signer)
        assert obj.signature.alg == key_algorithm.signature_alg
        verify_signature(obj, contract_registry)
        tampered = SignedObject(obj.kind, {**obj.payload, "note": "changed"}, obj.signature)
        with pytest.raises(SignatureError):
            verify_signature(tampered, contract_registry)

    def test_claim_checks_valid(
        self, key_algorithm: KeyAlgorithm, secret: bytes, contract_registry: Registry
    ) -> None:
        signer = Signer(key_algorithm, secret)
        claim = create_claim(signer, "github:Contract-Test", registry=contract_registry)
        result = check_claim(claim, registry=contract_registry)
        assert result.status is Status.VALID, result.reason
        assert result.primary == signer.key_id

    def test_verify_false_for_wrong_key(self, key_algorithm: KeyAlgorithm, secret: bytes) -> None:
        other = key_algorithm.public_from_secret(key_algorithm.generate_secret())
        signature = key_algorithm.sign(secret, b"message")
        assert key_algorithm.verify(other, b"message", signature) is False

    def test_verify_false_for_changed_message(
        self, key_algorithm: KeyAlgorithm, secret: bytes
    ) -> None:
        public = key_algorithm.public_from_secret(secret)
        signature = key_algorithm.sign(secret, b"message")
        assert key_algorithm.verify(public, b"messagf", signature) is False
        assert key_algorithm.verify(public, b"", signature) is False

    def test_verify_false_for_flipped_bits(
        self, key_algorithm: KeyAlgorithm, secret: bytes
    ) -> None:
        public = key_algorithm.public_from_secret(secret)
        signature = key_algorithm.sign(secret, b"message")
        for index in (0, len(signature) // 2, len(signature) - 1):
            for bit in (0, 7):
                flipped = bytearray(signature)
                flipped[index] ^= 1 << bit
                assert key_algorithm.verify(public, b"message", bytes(flipped)) is False
        for index in (0, len(public) - 1):
            flipped_key = bytearray(public)
            flipped_key[index] ^= 1
            assert key_algorithm.verify(bytes(flipped_key), b"message", signature) is False

    def test_verify_false_for_wrong_lengths(
        self, key_algorithm: KeyAlgorithm, secret: bytes
    ) -> None:
        public = key_algorithm.public_from_secret(secret)
        signature = key_algorithm.sign(secret, b"message")
        bad_signatures = [
            b"",
            signature[:-1],
            signature + b"\x00",
            signature * 2,
            b"\x00" * len(signature),
        ]
        bad_publics = [
            b"",
            public[:-1],
            public + b"\x00",
            public * 2,
            b"\x00" * len(public),
            b"\xff" * len(public),
        ]
        for bad in bad_signatures:
            assert key_algorithm.verify(public, b"message", bad) is False
        for bad in bad_publics:
            assert key_algorithm.verify(bad, b"message", signature) is False
        assert key_algorithm.verify(b"", b"", b"") is False

    def test_verify_never_raises_hypothesis(
        self, key_algorithm: KeyAlgorithm, secret: bytes
    ) -> None:
        given, settings, strategies = _hypothesis()
        public = key_algorithm.public_from_secret(secret)

        @settings(max_examples=50, deadline=None, database=None)
        @given(
            key=strategies.one_of(strategies.just(public), strategies.binary(max_size=80)),
            message=strategies.binary(max_size=64),
            signature=strategies.binary(max_size=80),
        )
        def check(key: bytes, message: bytes, signature: bytes) -> None:
            assert key_algorithm.verify(key, message, signature) in (True, False)

        check()

    # ------------------------------------------------------- public keys

    def test_public_text_round_trip(self, key_algorithm: KeyAlgorithm, secret: bytes) -> None:
        public = key_algorithm.public_from_secret(secret)
        text = key_algorithm.format_public(public)
        assert isinstance(text, str)
        assert text == public.hex(), "the key id is `<name>:<lowercase hex of the public key>`"
        assert key_algorithm.parse_public(text) == public

    def test_parse_public_refuses_garbage(self, key_algorithm: KeyAlgorithm) -> None:
        for text in self.garbage_public_keys:
            _expect(KeyFormatError, key_algorithm.parse_public, text)

    # -------------------------------------------------------------- PEM

    def test_pem_round_trip_plain(self, key_algorithm: KeyAlgorithm, secret: bytes) -> None:
        pem = key_algorithm.secret_to_pem(secret, None)
        assert isinstance(pem, bytes) and pem.startswith(b"-----BEGIN PRIVATE KEY-----")
        assert key_algorithm.secret_from_pem(pem, None) == secret

    def test_pem_round_trip_encrypted(self, key_algorithm: KeyAlgorithm, secret: bytes) -> None:
        pem = key_algorithm.secret_to_pem(secret, self.passphrase)
        assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert secret.hex().encode() not in pem
        assert key_algorithm.secret_from_pem(pem, self.passphrase) == secret

    def test_pem_wrong_passphrase(self, key_algorithm: KeyAlgorithm, secret: bytes) -> None:
        pem = key_algorithm.secret_to_pem(secret, self.passphrase)
        with pytest.raises(PassphraseError):
            key_algorithm.secret_from_pem(pem, b"wrong " + self.passphrase)

    def test_pem_missing_passphrase(self, key_algorithm: KeyAlgorithm, secret: bytes) -> None:
        pem = key_algorithm.secret_to_pem(secret, self.passphrase)
        with pytest.raises(PassphraseError):
            key_algorithm.secret_from_pem(pem, None)

    def test_pem_of_another_key_type_is_none(self, key_algorithm: KeyAlgorithm) -> None:
        assert key_algorithm.secret_from_pem(self.foreign_pem(), None) is None

    def test_pem_garbage_is_key_format_error(self, key_algorithm: KeyAlgorithm) -> None:
        for garbage in (
            b"",
            b"not a pem",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ):
            with pytest.raises(KeyFormatError):
                key_algorithm.secret_from_pem(garbage, None)

    # ----------------------------------------------------- secret forms

    def test_secret_formats_round_trip(self, key_algorithm: KeyAlgorithm, secret: bytes) -> None:
        for form in key_algorithm.secret_formats:
            text = key_algorithm.export_secret(secret, form)
            assert isinstance(text, str) and text
            assert key_algorithm.import_secret(text) == secret, f"form {form!r} does not round trip"
            assert key_algorithm.import_secret(f"  {text}\n") == secret, (
                f"form {form!r}: surrounding space"
            )

    def test_export_unknown_form_is_key_format_error(
        self, key_algorithm: KeyAlgorithm, secret: bytes
    ) -> None:
        with pytest.raises(KeyFormatError):
            key_algorithm.export_secret(secret, "no-such-form")

    def test_import_foreign_text(self, key_algorithm: KeyAlgorithm) -> None:
        for text in ("", "hello world", "kez:z1:AAAA", "-----BEGIN PRIVATE KEY-----"):
            try:
                result = key_algorithm.import_secret(text)
            except KeyFormatError:
                continue
            assert result is None, (
                f"import_secret({text!r}) should be None (not ours) or KeyFormatError"
            )


# ==================================================================== encodings


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
        from .encoding import decode_any

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


# ===================================================================== channels


class ChannelContract:
    """Generic offline checks for an identity channel plugin (`kez_register_channels`).

    Subclass it, provide the `channel` fixture and list example handles::

        import pytest
        from kez_core.testing import ChannelContract
        from kez_channel_example import ExampleChannel

        class TestExampleChannel(ChannelContract):
            valid_handles = ("alice", "@Alice", "bob-2")
            invalid_handles = ("", "a b", "-bad")

            @pytest.fixture
            def channel(self):
                return ExampleChannel()

    and an `unreachable_context`: a `ChannelContext` whose options point the
    channel at a port on 127.0.0.1 where nothing listens::

            @pytest.fixture
            def unreachable_context(self):
                url = f"http://127.0.0.1:{closed_port()}"  # kez_core.testing.closed_port
                return ChannelContext(options={"example_api": url}, timeout=2)

    It checks: Protocol conformance (`fetch` and `publish` are coroutines),
    that `proof_encoding` names an encoding registered beside the channel
    (the built-ins, plus `extra_encodings` when the channel brings its own),
    that `normalize_handle` is idempotent on `valid_handles`, agrees with
    `kez_core.subjects.normalize_subject`, refuses `invalid_handles` with
    `DecodeError` and raises nothing else on arbitrary text, and that `fetch`
    against a dead server reports `reachable=False` (`unreachable`) with a
    reason, never raising. Fetching real proofs and publishing need live
    servers and are tested by the channel's own suite.
    """

    valid_handles: Sequence[str] = ()
    invalid_handles: Sequence[str] = ()
    extra_encodings: Sequence[Encoding] = ()  # encodings the channel's plugin registers itself

    @pytest.fixture
    def channel(self) -> Channel:
        pytest.fail("subclass ChannelContract and provide a `channel` fixture")

    @pytest.fixture
    def unreachable_context(self) -> Any:
        pytest.fail(
            "provide an `unreachable_context` fixture: a ChannelContext whose options point "
            "the channel at a closed port on 127.0.0.1"
        )

    @pytest.fixture
    def contract_registry(self, channel: Channel) -> Registry:
        registry = Registry(
            plugins=[provider(key_algorithms=_builtin_key_algorithms(), channels=[channel])],
            entry_points=False,
            env={},
        )
        _assert_loaded(registry, f"channel {getattr(channel, 'name', channel)!r}")
        return registry

    def test_conforms_to_protocol(self, channel: Channel) -> None:
        assert missing_members("channel", channel) == []

    def test_options_are_declared_well(self, channel: Channel) -> None:
        from .protocols import ChannelOption

        names = [o.name for o in channel.options]
        assert len(names) == len(set(names)), "option names must be unique"
        for option in channel.options:
            assert isinstance(option, ChannelOption), "options are kez_core.protocols.ChannelOption"
            assert option.flag.startswith("--") and option.flag == option.flag.lower()
            assert option.env and option.env == option.env.upper()
            assert option.help
        assert isinstance(channel, Channel)
        assert inspect.iscoroutinefunction(channel.fetch), "fetch must be `async def`"
        assert inspect.iscoroutinefunction(channel.publish), "publish must be `async def`"

    def test_proof_encoding_is_registered(self, channel: Channel) -> None:
        encoding = getattr(channel, "proof_encoding", None)
        assert isinstance(encoding, str) and encoding, "proof_encoding names an encoding, e.g. 'compact'"
        registry = Registry(
            plugins=[provider(encodings=[*_builtin_encodings(), *self.extra_encodings], channels=[channel])],
            entry_points=False,
            env={},
        )
        known = sorted(e.name for e in registry.encodings())
        assert encoding in known, (
            f"proof_encoding {encoding!r} is not registered (known: {', '.join(known)}); "
            "list your plugin's own encodings in `extra_encodings`"
        )

    def test_fetch_from_a_dead_server_is_unreachable(self, channel: Channel, unreachable_context: Any) -> None:
        import asyncio

        from .protocols import FetchOutcome

        if not self.valid_handles:
            pytest.fail("set `valid_handles` on the subclass")
        handle = channel.normalize_handle(self.valid_handles[0])
        try:
            outcome = asyncio.run(channel.fetch(handle, unreachable_context))
        except Exception as exc:  # noqa: BLE001 - the contract is that nothing escapes
            pytest.fail(f"fetch raised {type(exc).__name__}: {exc}; report FetchOutcome(reachable=False) instead")
        assert isinstance(outcome, FetchOutcome)
        assert outcome.reachable is False, "a dead server is `unreachable` (retryable), never `invalid`"
        assert outcome.reason, "say why it was unreachable (the address and the error)"
        assert outcome.candidates == ()

    def test_names(self, channel: Channel, contract_registry: Registry) -> None:
        assert isinstance(channel.name, str) and channel.name and ":" not in channel.name
        assert not isinstance(channel.aliases, str), (
            "aliases is a sequence of names, not one string"
        )
        assert all(isinstance(a, str) and a and ":" not in a for a in channel.aliases)
        assert channel.name not in channel.aliases
        for name in (channel.name, *channel.aliases):
            assert contract_registry.channel(name) is channel

    def test_example_handles_given(self) -> None:
        if not self.valid_handles or not self.invalid_handles:
            pytest.fail("set `valid_handles` and `invalid_handles` on the subclass")

    def test_normalize_is_idempotent(self, channel: Channel) -> None:
        for handle in self.valid_handles:
            normal = channel.normalize_handle(handle)
            assert isinstance(normal, str) and normal
            assert channel.normalize_handle(normal) == normal, (
                f"{handle!r} → {normal!r} is not stable"
            )

    def test_normalize_agrees_with_subjects(
        self, channel: Channel, contract_registry: Registry
    ) -> None:
        for handle in self.valid_handles:
            expected = f"{channel.name}:{channel.normalize_handle(handle)}"
            for prefix in (channel.name, *channel.aliases):
                assert normalize_subject(f"{prefix}:{handle}", contract_registry) == expected

    def test_invalid_handles_are_decode_errors(self, channel: Channel) -> None:
        for handle in self.invalid_handles:
            _expect(DecodeError, channel.normalize_handle, handle)

    def test_arbitrary_text_hypothesis(self, channel: Channel) -> None:
        given, settings, strategies = _hypothesis()

        @settings(max_examples=50, deadline=None, database=None)
        @given(text=strategies.text(max_size=80))
        def check(text: str) -> None:
            try:
                normal = channel.normalize_handle(text)
            except DecodeError:
                return
            assert isinstance(normal, str)
            assert channel.normalize_handle(normal) == normal

        check()


class TransportContract:
    """Live checks for a message transport plugin (`kez_register_transports`).

    Subclass it and provide three fixtures: `transport`, `transport_context`
    (a `ChannelContext` whose options point at a real server your suite
    started on 127.0.0.1: a NATS server, a nostr relay) and
    `unreachable_context` (the same options pointing at a port where nothing
    listens)::

        class TestNatsTransport(TransportContract):
            @pytest.fixture
            def transport(self):
                return NatsTransport()

            @pytest.fixture
            def transport_context(self, nats_url):
                return ChannelContext(options={"nats_url": nats_url}, timeout=5)

            @pytest.fixture
            def unreachable_context(self, free_port):
                return ChannelContext(options={"nats_url": f"nats://127.0.0.1:{free_port}"}, timeout=2)

    It checks: Protocol conformance and options; that an envelope sent after
    a subscription is live arrives byte for byte, only at its routing id; that
    a real message sealed by `kez_core.messaging` arrives and opens once;
    that a burst of envelopes all arrive; that the largest envelope the
    transport claims to carry does, and one byte more is refused with
    `EnvelopeTooLarge` before anything is sent; that a bad routing id is a
    `DecodeError`; and that an unreachable server is a `TransportError`
    (for sending and for subscribing), never another exception.
    """

    burst = 20
    receive_timeout = 10.0

    @pytest.fixture
    def transport(self) -> Any:
        pytest.fail("subclass TransportContract and provide a `transport` fixture")

    @pytest.fixture
    def transport_context(self) -> Any:
        pytest.fail("provide a `transport_context` fixture (options pointing at a live server)")

    @pytest.fixture
    def unreachable_context(self) -> Any:
        pytest.fail("provide an `unreachable_context` fixture (options pointing at a closed port)")

    # ------------------------------------------------------------ helpers

    @staticmethod
    def routing_id() -> str:
        import secrets

        return secrets.token_hex(32)

    @staticmethod
    def envelope(size: int = 1437) -> bytes:
        """An envelope-shaped ASCII text of `size` bytes (transports never look inside)."""
        import base64
        import os

        body = base64.urlsafe_b64encode(os.urandom(size)).rstrip(b"=")
        return (b"kez:e1:" + body)[:size]

    def exchange(
        self, transport: Any, ctx: Any, routing_id: str, envelopes: list[bytes]
    ) -> list[bytes]:
        """Subscribe, send `envelopes`, and collect as many as were sent (or time out)."""
        import asyncio

        async def run() -> list[bytes]:
            got: list[bytes] = []
            async with transport.subscribe(routing_id, ctx) as inbox:
                for envelope in envelopes:
                    await transport.send(routing_id, envelope, ctx)

                async def collect() -> None:
                    async for envelope in inbox:
                        got.append(envelope)
                        if len(got) >= len(envelopes):
                            return

                try:
                    await asyncio.wait_for(collect(), self.receive_timeout)
                except TimeoutError:
                    pass
            return got

        return asyncio.run(run())

    # -------------------------------------------------------------- checks

    def test_conforms_to_protocol(
        self, transport: Any, contract_registry_transport: Registry
    ) -> None:
        from .protocols import ChannelOption, Transport

        assert missing_members("transport", transport) == []
        assert isinstance(transport, Transport)
        assert isinstance(transport.name, str) and transport.name.isidentifier()
        assert isinstance(transport.max_envelope, int) and transport.max_envelope >= 2048
        assert inspect.iscoroutinefunction(transport.send), "send must be `async def`"
        names = [o.name for o in transport.options]
        assert len(names) == len(set(names)), "option names must be unique"
        for option in transport.options:
            assert isinstance(option, ChannelOption)
            assert option.flag.startswith("--") and option.env == option.env.upper() and option.help
        assert contract_registry_transport.transport(transport.name) is transport

    @pytest.fixture
    def contract_registry_transport(self, transport: Any) -> Registry:
        registry = Registry(plugins=[provider(transports=[transport])], entry_points=False, env={})
        _assert_loaded(registry, f"transport {getattr(transport, 'name', transport)!r}")
        return registry

    def test_an_envelope_arrives_byte_for_byte(
        self, transport: Any, transport_context: Any
    ) -> None:
        envelope = self.envelope()
        assert self.exchange(transport, transport_context, self.routing_id(), [envelope]) == [
            envelope
        ]

    def test_routing_ids_are_kept_apart(self, transport: Any, transport_context: Any) -> None:
        import asyncio

        mine, other = self.routing_id(), self.routing_id()
        envelope, stray = self.envelope(), self.envelope()

        async def run() -> list[bytes]:
            got: list[bytes] = []
            async with transport.subscribe(mine, transport_context) as inbox:
                await transport.send(other, stray, transport_context)
                await transport.send(mine, envelope, transport_context)

                async def collect() -> None:
                    async for item in inbox:
                        got.append(item)
                        if item == envelope:
                            return

                await asyncio.wait_for(collect(), self.receive_timeout)
            return got

        assert asyncio.run(run()) == [envelope]

    def test_a_burst_all_arrives(self, transport: Any, transport_context: Any) -> None:
        envelopes = [self.envelope(1437 + i) for i in range(self.burst)]
        got = self.exchange(transport, transport_context, self.routing_id(), envelopes)
        assert sorted(got) == sorted(envelopes)

    def test_the_largest_envelope_arrives_and_one_byte_more_is_refused(
        self, transport: Any, transport_context: Any
    ) -> None:
        import asyncio

        from .errors import EnvelopeTooLarge

        largest = self.envelope(transport.max_envelope)
        routing_id = self.routing_id()
        assert self.exchange(transport, transport_context, routing_id, [largest]) == [largest]
        with pytest.raises(EnvelopeTooLarge):
            asyncio.run(
                transport.send(
                    routing_id, self.envelope(transport.max_envelope + 1), transport_context
                )
            )

    def test_a_real_sealed_message_opens_after_the_trip(
        self, transport: Any, transport_context: Any, tmp_path: Any
    ) -> None:
        """A message signed, padded and sealed by kez_core.messaging arrives and opens, once."""
        from .messaging import (
            InboxSecret,
            MessageRefused,
            ReplayStore,
            create_message,
            open_envelope,
            routing_id,
            seal_message,
            text_body,
        )

        alice, bob, inbox = Signer.generate(), Signer.generate(), InboxSecret.generate()
        message = create_message(
            alice,
            sender_identity=alice.key_id,
            recipient=bob.key_id,
            inbox_key=inbox.key_id,
            body=text_body("hello over " + transport.name),
        )
        envelope = seal_message(message).encode("ascii")
        got = self.exchange(transport, transport_context, routing_id(inbox.key_id), [envelope])
        assert got == [envelope]
        with ReplayStore(tmp_path / "replay.db") as replay:
            opened = open_envelope(got[0], [inbox], identity=bob.key_id, replay=replay)
            assert opened.id == message.id and opened.sender == alice.key_id
            with pytest.raises(MessageRefused):  # a second delivery is a replay
                open_envelope(got[0], [inbox], identity=bob.key_id, replay=replay)

    def test_a_bad_routing_id_is_a_decode_error(
        self, transport: Any, transport_context: Any
    ) -> None:
        import asyncio

        for bad in ("", "ABC", "0" * 32, "0" * 63, "g" * 64, "0" * 64 + ".>", "*"):
            with pytest.raises(DecodeError):
                asyncio.run(transport.send(bad, self.envelope(), transport_context))

    def test_an_unreachable_server_is_a_transport_error(
        self, transport: Any, unreachable_context: Any
    ) -> None:
        import asyncio

        from .errors import TransportError

        with pytest.raises(TransportError):
            asyncio.run(transport.send(self.routing_id(), self.envelope(), unreachable_context))

        async def listen() -> None:
            async with transport.subscribe(self.routing_id(), unreachable_context) as inbox:
                async for _ in inbox:
                    break

        with pytest.raises(TransportError):
            asyncio.run(listen())
