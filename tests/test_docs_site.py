"""The docs site builds with `mkdocs build --strict`, and strict means strict (issue 17 §3).

The site is mkdocs-material + mkdocstrings over docs/ (mkdocs.yml). The
build runs offline: no web fonts or CDN assets are fetched. A broken link,
a page missing from the nav or a public plugin-API name without a
docstring is a warning, and `--strict` makes it a failed build.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import typer

from kez_cli.main import build_app

ROOT = Path(__file__).resolve().parents[1]
PAGES = (
    "index",
    "install",
    "tutorial",
    "spec",
    "sigchain",
    "cli",
    "cli-reference",
    "plugins",
    "api",
    "changelog",
)


def _build(config: Path, site: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "NO_COLOR": "1"}
    mkdocs = Path(sys.executable).with_name("mkdocs")
    return subprocess.run(
        [str(mkdocs), "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def _hooks() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(
        "kez_docs_hooks", ROOT / "docs" / "hooks" / "cli_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = _build(ROOT / "mkdocs.yml", out, ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def _text(site: Path, page: str) -> str:
    path = site / ("index.html" if page == "index" else f"{page}/index.html")
    import html

    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text()))


def test_every_page_is_built(site):
    for page in PAGES:
        assert _text(site, page).strip(), page
    assert "Keep a Changelog" in _text(site, "changelog")
    assert "kez identity new" in _text(site, "tutorial") and "kez message open" in _text(
        site, "tutorial"
    )


def test_no_page_fetches_fonts_or_cdn_assets(site):
    for page in site.rglob("*.html"):
        text = page.read_text()
        assert "fonts.googleapis.com" not in text and "fonts.gstatic.com" not in text, page


def test_cli_reference_is_generated_from_the_command_tree(site):
    text = _text(site, "cli-reference")
    root = typer.main.get_command(build_app())
    hooks = _hooks()
    paths = [
        path
        for path, _cmd, _ctx in hooks._commands(
            root, typer._click.Context(root, info_name="kez"), "kez"
        )
    ]
    assert "kez plugin new" in paths and "kez claim create" in paths
    for path in paths:
        assert f"Usage: {path}" in text, path


def test_api_reference_renders_the_plugin_api(site):
    text = _text(site, "api")
    for name in (
        "kez_register_channels",
        "ChannelContract",
        "TransportContract",
        "FetchOutcome",
        "KezError",
    ):
        assert name in text, name


def test_every_public_plugin_api_name_has_a_docstring():
    hooks = _hooks()
    assert {m: hooks.undocumented(m) for m in hooks.API_MODULES} == {
        m: [] for m in hooks.API_MODULES
    }


def test_an_undocumented_public_name_is_found(monkeypatch):
    hooks = _hooks()
    module = types.ModuleType("kez_fake_api")
    exec(
        "class Documented:\n    '''Yes.'''\n    def method(self):\n        pass\n"
        "def bare():\n    pass\ndef _private():\n    pass\n",
        module.__dict__,
    )
    monkeypatch.setitem(sys.modules, "kez_fake_api", module)
    assert hooks.undocumented("kez_fake_api") == [
        "kez_fake_api.Documented.method",
        "kez_fake_api.bare",
    ]


def test_a_broken_link_fails_the_strict_build(tmp_path):
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "CHANGELOG.md", tmp_path)
    config = (ROOT / "mkdocs.yml").read_text()
    (tmp_path / "mkdocs.yml").write_text(config)
    index = tmp_path / "docs" / "index.md"
    index.write_text(index.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    result = _build(tmp_path / "mkdocs.yml", tmp_path / "site", tmp_path)
    assert result.returncode != 0
    assert "no-such-page.md" in result.stdout + result.stderr
