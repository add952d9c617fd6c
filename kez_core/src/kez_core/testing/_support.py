"""What the contract suites share: a plugin object that registers fixed lists, the
built-in key algorithms and encodings, and helpers that name what went wrong."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

import pytest

from .. import hookimpl
from ..protocols import Encoding, KeyAlgorithm
from ..registry import Registry

try:  # hypothesis is optional: the checks that use it skip without it
    import hypothesis
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - exercised only where hypothesis is absent
    hypothesis = None  # type: ignore[assignment]
    st = None  # type: ignore[assignment]


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


def _builtin_key_algorithms() -> list[KeyAlgorithm]:
    from ..builtins.bip340 import BIP340
    from ..builtins.ed25519 import ED25519

    return [ED25519, BIP340]


def _builtin_encodings() -> list[Encoding]:
    from ..builtins import encodings

    return list(encodings.kez_register_encodings())


# what `hypothesis.given(...)` returns: a decorator that makes a test of a function
_GivenDecorator = Callable[[Callable[..., None]], Callable[..., None]]


def _hypothesis() -> tuple[Callable[..., _GivenDecorator], type[hypothesis.settings], ModuleType]:
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
