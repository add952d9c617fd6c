"""The contract suite for key algorithm plugins (`kez_register_key_algorithms`)."""

from __future__ import annotations

import pytest

from ..claim import check_claim, create_claim
from ..errors import KeyFormatError, PassphraseError, SignatureError
from ..keys import Signer, parse_key_id
from ..protocols import KeyAlgorithm, missing_members
from ..registry import Registry
from ..signed import SignedObject, sign, verify_signature
from ..status import Status
from ._support import (
    _assert_loaded,
    _expect,
    _hypothesis,
    provider,
)


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
