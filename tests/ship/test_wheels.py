"""The distributions install alone, as a stranger gets them from PyPI (issue 17 §1).

Every workspace member is built into a wheel and an sdist with `uv build`;
then plain pip installs only those wheels into fresh virtualenvs with
`--isolated --no-index --find-links`, so no workspace, no path dependency
and no index can supply one of our names. Third-party wheels come from a
wheelhouse filled once from the package index (pinned by `uv export` from
uv.lock) and kept in the temp folder under the lock's hash, so later runs
reach no network.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = [
    ROOT / "kez_core",
    ROOT / "kez_cli",
    *sorted((ROOT / "plugins").iterdir()),
    *sorted((ROOT / "examples").iterdir()),
]
MEMBERS = [m for m in MEMBERS if (m / "pyproject.toml").is_file()]


def _uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def _run(
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 600,
):
    # Never from the repository root: its kez_core/ and kez_cli/ folders import as namespace packages.
    cwd = cwd or Path(tempfile.gettempdir())
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    return result


def _check(args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    result = _run(args, **kwargs)
    assert result.returncode == 0, (
        f"{args} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result


def _clean_env(home: Path) -> dict[str, str]:
    """The environment of a stranger's shell: nothing of the workspace venv, a private KEZ_HOME."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "VIRTUAL_ENV", "UV_", "PIP_", "KEZ_"))
    }
    env.update(KEZ_HOME=str(home), KEZ_STRICT_PLUGINS="1", NO_COLOR="1", COLUMNS="200")
    return env


def _version_of(member: Path) -> str:
    """The one place each distribution's version is written: `__version__` or pyproject's `version`."""
    project = tomllib.loads((member / "pyproject.toml").read_text())
    if "version" in project["project"]:
        return project["project"]["version"]
    path = member / project["tool"]["hatch"]["version"]["path"]
    return re.search(r'^__version__ = "([^"]+)"', path.read_text(), re.M).group(1)


def _name_of(member: Path) -> str:
    return tomllib.loads((member / "pyproject.toml").read_text())["project"]["name"]


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _check([*_uv(), "build", "--all-packages", "--quiet", "-o", str(out)], cwd=ROOT)
    return out


def _new_venv(path: Path) -> Path:
    _check([sys.executable, "-m", "venv", str(path)])
    return path / "bin"


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> Path:
    """Wheels of every third-party requirement of every member (extras too), pinned from uv.lock."""
    reqs = _check(
        [
            *_uv(),
            "export",
            "--all-packages",
            "--all-extras",
            "--no-dev",
            "--no-emit-workspace",
            "--no-hashes",
            "--frozen",
            "--quiet",
            "--format",
            "requirements-txt",
        ],
        cwd=ROOT,
    ).stdout
    key = hashlib.sha256(reqs.encode()).hexdigest()[:16]
    house = Path(tempfile.gettempdir()) / "kez-test-wheelhouse" / key
    if (house / "complete").exists():
        return house
    work = tmp_path_factory.mktemp("wheelhouse")
    (work / "requirements.txt").write_text(reqs)
    pip = _new_venv(work / "venv") / "pip"
    _check(
        [
            str(pip),
            "wheel",
            "--quiet",
            "-r",
            str(work / "requirements.txt"),
            "-w",
            str(work / "wheels"),
        ]
    )
    (work / "wheels" / "complete").write_text(reqs)
    house.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(work / "wheels", house)
    except OSError:  # another run filled it first
        assert (house / "complete").exists()
    return house


def _install(bindir: Path, dist: Path, wheelhouse: Path, *requirements: str) -> None:
    # --no-compile: pip's byte-compiling of every installed module (the better part of the
    # install's time) decides nothing here; Python compiles what the tests import on first use.
    _check(
        [
            str(bindir / "pip"),
            "--isolated",
            "--disable-pip-version-check",
            "install",
            "--quiet",
            "--no-compile",
            "--no-index",
            "--find-links",
            str(dist),
            "--find-links",
            str(wheelhouse),
            *requirements,
        ]
    )


# What test_kez_core_alone_is_minimal_and_imports_only_its_dependencies checks, run in a venv
# that holds kez-core and nothing else: every installed distribution is one kez-core declares,
# and every kez_core module imports.
_CORE_PROBE = r"""
import importlib, importlib.metadata as md, json, pkgutil, re, sys
import kez_core
from packaging.requirements import Requirement
declared = set()
todo = ["kez-core"]
while todo:
    dist = md.distribution(todo.pop())
    name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
    if name in declared:
        continue
    declared.add(name)
    for line in dist.requires or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            todo.append(req.name)
installed = {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower() for d in md.distributions()}
failed = {}
for mod in pkgutil.walk_packages(kez_core.__path__, "kez_core."):
    if mod.name == "kez_core.testing" or mod.name.startswith("kez_core.testing."):
        continue  # the contract suites need the `testing` extra (pytest)
    try:
        importlib.import_module(mod.name)
    except Exception as exc:
        failed[mod.name] = repr(exc)
print(json.dumps({"extra": sorted(installed - declared - {"pip", "setuptools"}), "failed": failed}))
"""


@pytest.fixture(scope="module")
def core_alone(tmp_path_factory, dist, wheelhouse) -> tuple[Path, dict]:
    """`pip install kez-core` from the built wheels into a fresh venv, and what was found there
    before anything else was installed: the probe's answer, whether `import kez_cli` failed,
    whether a `kez` script exists. kez_venv then installs `kez` into this same venv (one venv
    and one install of kez-core's dependencies fewer), so the findings are taken first."""
    root = tmp_path_factory.mktemp("kez-venv")
    bindir = _new_venv(root / "venv")
    _install(bindir, dist, wheelhouse, "kez-core")
    env = _clean_env(root / "home")
    found = {
        "probe": json.loads(_check([str(bindir / "python"), "-c", _CORE_PROBE], env=env).stdout),
        "kez_cli_imports": _run(
            [str(bindir / "python"), "-c", "import kez_cli"], env=env
        ).returncode
        == 0,
        "kez_script": (bindir / "kez").exists(),
    }
    return bindir, found


@pytest.fixture(scope="module")
def kez_venv(core_alone, dist, wheelhouse) -> Path:
    """`pip install kez` from the built wheels, nothing else (over kez-core alone, see above)."""
    bindir, _ = core_alone
    _install(bindir, dist, wheelhouse, "kez")
    return bindir


def test_every_distribution_builds_a_wheel_and_an_sdist_with_pypi_metadata(dist):
    for member in MEMBERS:
        name, version = _name_of(member), _version_of(member)
        stem = f"{name.replace('-', '_')}-{version}"
        assert (dist / f"{stem}.tar.gz").is_file(), f"no sdist for {name}"
        wheel = dist / f"{stem}-py3-none-any.whl"
        with zipfile.ZipFile(wheel) as zf:
            meta = Parser().parsestr(zf.read(f"{stem}.dist-info/METADATA").decode())
            assert any(n.endswith("LICENSE") for n in zf.namelist()), (
                f"{name}: no licence file in the wheel"
            )
        assert meta["Name"] == name and meta["Version"] == version
        assert meta["Summary"], name
        assert meta["Requires-Python"] == ">=3.11", name
        assert meta["License-Expression"] == "MIT", name
        assert (
            meta["Description-Content-Type"] == "text/markdown" and len(meta.get_payload()) > 100
        ), name
        assert any(
            c.startswith("Programming Language :: Python :: 3.11")
            for c in meta.get_all("Classifier")
        ), name
        urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
        assert {"Homepage", "Documentation", "Source", "Changelog"} <= set(urls), name


def test_version_is_written_in_one_place_per_distribution():
    for member in MEMBERS:
        project = tomllib.loads((member / "pyproject.toml").read_text())
        src = member / "src"
        inits = [p for p in src.glob("*/__init__.py") if "__version__ =" in p.read_text()]
        if inits:
            assert project["project"].get("dynamic") == ["version"], (
                f"{member.name}: version written twice"
            )
            assert "version" not in project["project"]
        else:
            assert "version" in project["project"], member.name


def test_kez_core_alone_is_minimal_and_imports_only_its_dependencies(core_alone):
    _, found = core_alone
    assert found["probe"] == {"extra": [], "failed": {}}
    # the CLI and the plugins are not part of it
    assert not found["kez_cli_imports"] and not found["kez_script"]


def test_pip_install_kez_lists_every_plugin_loaded(kez_venv, tmp_path):
    out = _check(
        [str(kez_venv / "kez"), "plugins", "--load", "--json"], env=_clean_env(tmp_path)
    ).stdout
    plugins = {p["name"]: p for p in json.loads(out)}
    assert set(plugins) == {
        "ed25519",
        "bip340",
        "encodings",
        "dns",
        "github",
        "nostr",
        "bluesky",
        "ap",
        "nats",
        "nostr-transport",
        "http",
    }
    for name, plugin in plugins.items():
        assert plugin["state"] == "loaded" and plugin["core_compatible"], (name, plugin)


def test_claim_create_and_verify_from_the_wheels(kez_venv, tmp_path):
    env = _clean_env(tmp_path / "home")
    kez = str(kez_venv / "kez")
    _check([kez, "identity", "new", "--no-passphrase"], env=env)
    claim = tmp_path / "claim.txt"
    _check([kez, "claim", "create", "github:alice", "-o", str(claim)], env=env)
    out = _check([kez, "claim", "verify", str(claim), "--json"], env=env).stdout
    assert '"valid"' in out


def test_offline_demo_runs_from_the_wheels(kez_venv, tmp_path):
    result = _check(
        [str(kez_venv / "kez"), "demo", "--offline", "--json"], env=_clean_env(tmp_path)
    )
    assert json.loads(result.stdout)["ok"] is True


def test_demo_without_the_extra_names_the_install_command(kez_venv, tmp_path):
    result = _run([str(kez_venv / "kez"), "demo"], env=_clean_env(tmp_path))
    assert result.returncode == 6, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "pip install 'kez[demo]'" in result.stderr
    assert "skipped dns: its local server needs the module dnslib" in result.stdout


def test_plugin_new_templates_ship_in_the_wheel(kez_venv, tmp_path):
    _check(
        [str(kez_venv / "kez"), "plugin", "new", "encoding", "pem2", "--dir", str(tmp_path / "p")],
        env=_clean_env(tmp_path / "home"),
    )
    assert (
        "kez_register_encodings"
        in (tmp_path / "p" / "src" / "kez_encoding_pem2" / "plugin.py").read_text()
    )


def test_a_channel_contract_suite_runs_against_the_installed_wheels(
    kez_venv, dist, wheelhouse, tmp_path
):
    _install(kez_venv, dist, wheelhouse, "kez-core[testing]")
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copy(ROOT / "plugins" / "kez-channel-dns" / "tests" / "test_dns_contract.py", suite)
    # kez-core's pytest plugin (entry point pytest11 `kez`) gives its fixtures without a conftest
    (suite / "test_fixtures.py").write_text(
        "def test_fixtures(kez, free_port, closed_port):\n"
        "    assert kez('identity', 'new', '--no-passphrase').exit_code == 0\n"
        "    assert kez('plugins', '--json').json()\n"
        "    assert free_port != closed_port\n"
    )
    result = _run(
        [
            str(kez_venv / "python"),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(suite),
            str(suite),
        ],
        env=_clean_env(tmp_path / "home"),
        cwd=suite,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\d+ passed", result.stdout) and "failed" not in result.stdout


def test_demo_with_the_extra_publishes_and_verifies(kez_venv, dist, wheelhouse, tmp_path):
    _install(kez_venv, dist, wheelhouse, "kez[demo]")
    result = _run([str(kez_venv / "kez"), "demo", "--json"], env=_clean_env(tmp_path), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["network"]["skipped"] == []
    assert {row["channel"] for row in report["network"]["verified"]} == {
        "dns",
        "github",
        "nostr",
        "bluesky",
        "ap",
    }
