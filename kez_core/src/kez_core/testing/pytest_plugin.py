"""The KEZ pytest plugin: `kez`, `kez_home`, `free_port` and `closed_port` fixtures.

Installed with the `testing` extra (`pip install 'kez-core[testing]'`), it
is found through the `pytest11` entry point `kez`, so a plugin's test suite
gets the fixtures without a conftest::

    def test_my_channel_from_the_cli(kez):
        result = kez("claim", "verify", "myproof.md", "--json")
        assert result.exit_code == 0, result.stderr
        assert result.json()["status"] == "valid"

`kez` runs the CLI in-process (what most suites did with their own copy):
fast, and a traceback that escapes the CLI fails the test loudly. It gives
every test a private `KEZ_HOME` so no test touches the user's keystore.
Importing this module costs nothing beyond pytest: the CLI is imported only
when a test asks for `kez`, so suites without the `kez` distribution load it
unharmed.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from .ports import free_port as _free_port
from .ports import held_closed_port

__all__ = ["KezResult", "KezRunner"]


class KezResult(NamedTuple):
    """One CLI run: its exit code and what it printed.

    A named tuple so that `code, out, err = kez(...)` works as well as
    `result.exit_code`.
    """

    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout parsed as one JSON document (for `--json` runs)."""
        return json.loads(self.stdout)


class KezRunner:
    """Calls `kez` in-process with the given arguments and captures its output."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    def __call__(self, *args: str) -> KezResult:
        # the CLI is optional for plugin suites (and kez-core's types do not depend on it)
        main = importlib.import_module("kez_cli.main").main

        self._capsys.readouterr()  # the result holds this run's output only
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # main returns a code; a stray exit is still a result
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = self._capsys.readouterr()
        return KezResult(int(code or 0), out, err)


@pytest.fixture
def kez_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty `KEZ_HOME` for this test; no passphrase comes from the environment."""
    home = tmp_path_factory.mktemp("kez-home")
    monkeypatch.setenv("KEZ_HOME", str(home))
    monkeypatch.delenv("KEZ_PASSPHRASE", raising=False)
    return home


@pytest.fixture
def kez(kez_home: Path, capsys: pytest.CaptureFixture[str]) -> KezRunner:
    """The `kez` CLI, in-process: `kez("claim", "verify", path)` returns a `KezResult`."""
    pytest.importorskip(
        "kez_cli", reason="the `kez` fixture needs the `kez` distribution (the CLI)"
    )
    return KezRunner(capsys)


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on, to start a test server on."""
    return _free_port()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 where connections are refused until the test ends."""
    with held_closed_port() as port:
        yield port
