"""The offline contract suite for identity channel plugins (`kez_register_channels`)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import pytest

from ..errors import DecodeError
from ..protocols import Channel, Encoding, missing_members
from ..registry import Registry
from ..subjects import normalize_subject
from ._support import (
    _assert_loaded,
    _builtin_encodings,
    _builtin_key_algorithms,
    _expect,
    _hypothesis,
    provider,
)


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

    and an `unreachable_context`: a context whose options point the channel
    at a port on 127.0.0.1 where nothing listens (the `closed_port` fixture
    of kez_core's pytest plugin)::

            @pytest.fixture
            def unreachable_context(self, closed_port):
                url = f"http://127.0.0.1:{closed_port}"
                return PluginContext(options={"example_api": url}, timeout=2)

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
            "provide an `unreachable_context` fixture: a PluginContext whose options point "
            "the channel at a closed port on 127.0.0.1 (the `closed_port` fixture)"
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

    def test_proof_encoding_is_registered(self, channel: Channel) -> None:
        encoding = getattr(channel, "proof_encoding", None)
        assert isinstance(encoding, str) and encoding, (
            "proof_encoding names an encoding, e.g. 'compact'"
        )
        registry = Registry(
            plugins=[
                provider(
                    encodings=[*_builtin_encodings(), *self.extra_encodings], channels=[channel]
                )
            ],
            entry_points=False,
            env={},
        )
        known = sorted(e.name for e in registry.encodings())
        assert encoding in known, (
            f"proof_encoding {encoding!r} is not registered (known: {', '.join(known)}); "
            "list your plugin's own encodings in `extra_encodings`"
        )

    def test_fetch_from_a_dead_server_is_unreachable(
        self, channel: Channel, unreachable_context: Any
    ) -> None:
        import asyncio

        from ..protocols import FetchOutcome

        if not self.valid_handles:
            pytest.fail("set `valid_handles` on the subclass")
        handle = channel.normalize_handle(self.valid_handles[0])
        try:
            outcome = asyncio.run(channel.fetch(handle, unreachable_context))
        except Exception as exc:  # noqa: BLE001 - the contract is that nothing escapes
            pytest.fail(
                f"fetch raised {type(exc).__name__}: {exc}; report FetchOutcome(reachable=False) instead"
            )
        assert isinstance(outcome, FetchOutcome)
        assert outcome.reachable is False, (
            "a dead server is `unreachable` (retryable), never `invalid`"
        )
        assert outcome.reason, "say why it was unreachable (the address and the error)"
        assert outcome.candidates == ()

    def test_options_are_declared_well(self, channel: Channel) -> None:
        from ..protocols import ChannelOption

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
