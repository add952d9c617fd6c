"""`kez plugin new` writes distributions that install, list and pass their own tests (issue 17 §2).

Each kind is generated, built and installed (not editable) into a throwaway
venv layered over the workspace venv (a `.pth` adds the workspace's
site-packages), so the workspace venv itself is never changed; then
`kez plugins --load` must show each plugin loaded from its distribution,
and each generated test suite, run from its own folder with its own
pytest settings, must pass as generated.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from kez_cli.main import main

KINDS = {
    "channel": "channel",
    "transport": "transport",
    "encoding": "encoding",
    "key": "key_algorithm",
}


def _uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


@pytest.fixture(scope="module")
def overlay(tmp_path_factory) -> Path:
    """A venv that sees every workspace package and gets the generated distributions installed."""
    venv = tmp_path_factory.mktemp("overlay") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    target = Path(
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    workspace = sysconfig.get_paths()["purelib"]
    (target / "kez_workspace.pth").write_text(f"import site; site.addsitedir({workspace!r})\n")
    return venv / "bin" / "python"


@pytest.fixture(scope="module")
def generated(tmp_path_factory, overlay) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("generated")
    out = {}
    for kind in KINDS:
        folder = root / kind
        assert main(["plugin", "new", kind, f"my{kind}", "--dir", str(folder), "--json"]) in (
            None,
            0,
        )
        out[kind] = folder
    result = subprocess.run(
        [
            *_uv(),
            "pip",
            "install",
            "--quiet",
            "--python",
            str(overlay),
            "--no-deps",
            *map(str, out.values()),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return out


def test_generated_plugins_are_listed_loaded(overlay, generated, tmp_path):
    result = subprocess.run(
        [str(overlay), "-m", "kez_cli", "plugins", "--load", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    for kind, provides in KINDS.items():
        info = plugins[f"my{kind}"]
        assert info["distribution"] == f"kez-{kind}-my{kind}"
        assert info["state"] == "loaded" and info["core_compatible"], info
        assert info["provides"] == {provides: [f"my{kind}"]}


@pytest.mark.parametrize("kind", list(KINDS))
def test_generated_suite_passes_as_generated(overlay, generated, kind):
    result = subprocess.run(
        [str(overlay), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        cwd=generated[kind],
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout


def test_generated_files(tmp_path):
    assert main(["plugin", "new", "channel", "web2", "--dir", str(tmp_path / "d")]) in (None, 0)
    files = sorted(
        str(p.relative_to(tmp_path / "d")) for p in (tmp_path / "d").rglob("*") if p.is_file()
    )
    assert files == [
        "README.md",
        "pyproject.toml",
        "src/kez_channel_web2/__init__.py",
        "src/kez_channel_web2/plugin.py",
        "tests/test_kez_channel_web2.py",
    ]
    pyproject = (tmp_path / "d" / "pyproject.toml").read_text()
    assert '[project.entry-points.kez]\nweb2 = "kez_channel_web2.plugin"' in pyproject
    assert '"kez-core>=0.1,<0.2"' in pyproject


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["plugin", "new", "widget", "x"], 2, "no plugin kind 'widget'"),
        (["plugin", "new", "channel", "Bad-Name"], 2, "not a usable plugin name"),
        (["plugin", "new", "channel", "9lives"], 2, "not a usable plugin name"),
    ],
)
def test_bad_arguments_are_usage_errors(kez, tmp_path, args, code, words):
    got, out, err = kez(*args, "--dir", str(tmp_path / "x"))
    assert got == code and words in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_never_overwrites(kez, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "pyproject.toml").write_text("precious")
    got, out, err = kez("plugin", "new", "channel", "web", "--dir", str(folder))
    assert got == 4 and "already exists" in err
    assert (folder / "pyproject.toml").read_text() == "precious"
    assert sorted(p.name for p in folder.iterdir()) == ["pyproject.toml"]
