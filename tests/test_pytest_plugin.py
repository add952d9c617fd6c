"""kez_core's pytest plugin: the `kez`, `kez_home`, `free_port` and `closed_port` fixtures (issue 16 §4)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from importlib import metadata

import pytest
from kez_core.testing.pytest_plugin import KezResult


def test_the_plugin_is_registered_under_pytest11(pytestconfig):
    names = {ep.name: ep.value for ep in metadata.entry_points(group="pytest11")}
    assert names.get("kez") == "kez_core.testing.pytest_plugin"
    assert pytestconfig.pluginmanager.has_plugin("kez")


def test_kez_runs_the_cli_in_process(kez, kez_home):
    result = kez("--version")
    assert (
        isinstance(result, KezResult) and result.exit_code == 0 and result.stdout.startswith("kez")
    )
    code, out, err = kez("identity", "new", "--no-passphrase", "--json")  # a tuple as well
    assert code == 0, err
    assert result.stdout not in out  # each result holds its own run's output
    assert os.environ["KEZ_HOME"] == str(kez_home) and any(kez_home.iterdir())


def test_kez_result_json_and_usage_errors(kez):
    assert kez("identity", "new", "--no-passphrase", "--json").json()["name"] == "default"
    bad = kez("no-such-command")
    assert bad.exit_code == 2 and "No such command" in bad.stderr and bad.stdout == ""


def test_each_test_gets_its_own_home(kez_home, tmp_path_factory):
    assert not any(kez_home.iterdir())
    assert "KEZ_PASSPHRASE" not in os.environ


def test_free_port_can_be_listened_on(free_port):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port))
        sock.listen(1)


def test_closed_port_refuses_connections_at_once(closed_port):
    with socket.socket() as sock:
        sock.settimeout(2)
        with pytest.raises(ConnectionRefusedError):
            sock.connect(("127.0.0.1", closed_port))


def test_a_suite_without_a_conftest_gets_the_fixtures(tmp_path):
    """What a stranger's plugin suite sees: the fixtures come from the entry point alone."""
    (tmp_path / "test_outside.py").write_text(
        "def test_it(kez, free_port, closed_port):\n"
        "    assert kez('--version').exit_code == 0\n"
        "    assert free_port > 0 and closed_port > 0 and free_port != closed_port\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "--basetemp",
            str(tmp_path / "bt"),
            str(tmp_path / "test_outside.py"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
