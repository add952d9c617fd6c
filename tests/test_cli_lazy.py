"""The lazy command tree (issue 16 §2): what `kez` imports to start, and plugin flags scoped to their commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from kez_cli.main import BUILTIN_COMMANDS, main

PLUGIN_PREFIXES = ("kez_channel_", "kez_transport_", "kez_server", "kez_example")

# Runs main(argv) in a fresh interpreter, then prints the plugin and command modules it imported.
_IMPORTS = """
import json, sys
from kez_cli.main import main
rc = main(sys.argv[1:])
mods = sorted(m for m in sys.modules if m.startswith(%r) or m.startswith('kez_cli.commands.') or m == 'pydantic')
sys.stderr.write('\\nIMPORTED ' + json.dumps({'rc': rc, 'modules': mods}) + '\\n')
""" % (PLUGIN_PREFIXES,)


def imported(*argv: str, env_extra: dict[str, str] | None = None) -> tuple[int, list[str], str]:
    env = {**os.environ, **(env_extra or {})}
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORTS, *argv], capture_output=True, text=True, env=env, timeout=60
    )
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("IMPORTED ")]
    assert line, proc.stderr
    found = json.loads(line[-1].removeprefix("IMPORTED "))
    return found["rc"], found["modules"], proc.stdout


@pytest.mark.parametrize(
    "argv", [["--help"], ["--version"], ["plugins"], ["plugins", "--json"], []]
)
def test_help_version_and_plugins_import_no_plugin(argv):
    rc, modules, _ = imported(*argv)
    assert rc in (0, 2)  # bare `kez` shows the help and exits 2, as click does
    assert [m for m in modules if m.startswith(PLUGIN_PREFIXES)] == []


def test_help_imports_no_command_module_and_lists_every_command():
    rc, modules, out = imported("--help")
    assert rc == 0 and modules == []
    for name in ("verify", "plugins", "demo", "identity", "claim", "sigchain", "handle", "message"):
        assert f" {name} " in out
    # kez-server's command, named by its `command.<name>` entry point, its help line the distribution's summary
    assert " server " in out and "sigchain store" in out


def test_a_command_imports_its_own_module_only():
    rc, modules, _ = imported("identity", "list", "--json")
    assert rc == 0
    assert [m for m in modules if m.startswith("kez_cli.commands.")] == [
        "kez_cli.commands.identity"
    ]


def test_claim_verify_does_not_import_pydantic(capsys):
    """typer would coerce every parameter with pydantic (60 ms); plain text and flags skip it (kez_cli.fast_params)."""
    assert main(["identity", "new", "--no-passphrase"]) == 0
    capsys.readouterr()
    assert main(["claim", "create", "github:alice", "--format", "json"]) == 0
    claim = capsys.readouterr().out
    path = Path(os.environ["KEZ_HOME"]) / "claim.json"
    path.write_text(claim)
    rc, modules, out = imported("claim", "verify", str(path))
    assert rc == 0 and out.startswith("valid")
    assert "pydantic" not in modules
    # plugin entry modules are imported (any may provide an encoding), transports are not built
    assert [m for m in modules if m.endswith(".transport")] == []
    # what the fast path leaves to typer still works: bounds on numbers, a flag's value from a string
    assert main(["verify", "--offline", "--timeout", "0.01", "github:alice"]) == 2
    assert "0.1" in capsys.readouterr().err


def test_plugins_without_load_reads_metadata_only(capsys):
    assert main(["plugins", "--json"]) == 0
    plugins = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert plugins["armor"]["distribution"] == "kez-example"
    assert {p["state"] for p in plugins.values()} <= {"not loaded", "loaded", "disabled"}
    assert plugins["server"]["distribution"] == "kez-server"
    assert plugins["server"]["provides"] == {"command": ["server"]}


def test_plugin_command_runs_from_its_entry_point(capsys):
    assert main(["server", "--help"]) == 0
    assert "--bind" in capsys.readouterr().out


def test_disabled_plugin_command_is_gone():
    rc, _, out = imported("--help", env_extra={"KEZ_DISABLE_PLUGINS": "server"})
    assert rc == 0 and " server " not in out
    proc = subprocess.run(
        [sys.executable, "-m", "kez_cli", "server", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KEZ_DISABLE_PLUGINS": "server"},
    )
    assert proc.returncode == 2 and "No such command 'server'" in proc.stderr


def _fake_dist(
    site: Path, name: str, entry_points: str, modules: dict[str, str], summary: str = ""
) -> None:
    dist = site / f"{name.replace('-', '_')}-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\nSummary: {summary}\n"
    )
    (dist / "entry_points.txt").write_text(entry_points)
    for module, text in modules.items():
        (site / f"{module}.py").write_text(text)


def test_broken_plugin_command_is_listed_and_fails_alone(tmp_path):
    site = tmp_path / "site"
    _fake_dist(
        site,
        "kez-boom",
        "[kez]\ncommand.boom = kez_boom_cmd:app\n",
        {"kez_boom_cmd": "raise ImportError('needs libboom')\n"},
        summary="Blow things up.",
    )
    env = {"PYTHONPATH": str(site), "KEZ_STRICT_PLUGINS": "0"}
    rc, modules, out = imported("--help", env_extra=env)
    assert rc == 0 and "boom" in out and "Blow things up." in out and modules == []
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "kez_cli", *a],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    boom = run("boom")
    assert boom.returncode == 6 and "needs libboom" in boom.stderr and "kez-boom 1.0" in boom.stderr
    assert "Traceback" not in boom.stderr
    assert run("identity", "new").returncode == 0
    listed = run("plugins", "--load", "--json")
    assert listed.returncode == 0
    state = {p["name"]: p for p in json.loads(listed.stdout)}["boom"]
    assert state["state"] == "broken" and "needs libboom" in state["error"]


HOOK_PLUGIN = """
import kez_core, typer

@kez_core.hookimpl
def kez_register_commands(cli):
    @cli.command("hello")
    def hello(name: str = "world"):
        print(f"hello {name}")
"""


def test_register_commands_hook_still_adds_a_command(tmp_path):
    site = tmp_path / "site"
    _fake_dist(
        site,
        "kez-hello",
        "[kez]\nhello-plugin = kez_hello_plugin\n",
        {"kez_hello_plugin": HOOK_PLUGIN},
    )
    env = {"PYTHONPATH": str(site)}
    rc, modules, out = imported("hello", "--name", "kez", env_extra=env)
    assert rc == 0 and out.strip() == "hello kez"
    rc, modules, out = imported("--help", env_extra=env)
    assert rc == 0 and modules == []  # a hook plugin is not imported to list commands


def test_typo_suggests_a_command(capsys):
    assert main(["clam"]) == 2
    assert "Did you mean 'claim'" in capsys.readouterr().err


# ------------------------------------------------------------- scoped plugin flags


def test_transport_flag_on_verify_is_a_usage_error(capsys):
    assert main(["verify", "--nats-url", "nats://127.0.0.1:1", "github:alice"]) == 2
    err = capsys.readouterr().err
    assert "--nats-url" in err and "channel flags" in err


def test_channel_flag_on_message_send_is_a_usage_error(capsys):
    assert (
        main(
            [
                "message",
                "send",
                "--via",
                "nats",
                "--github-api",
                "http://127.0.0.1:1",
                "--to",
                "x",
                "--text",
                "hi",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "--github-api" in err and "transport flags" in err


def test_each_command_lists_only_its_own_plugin_flags(capsys):
    assert main(["verify", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--github-api" in out and "--nats-url" not in out
    assert main(["message", "send", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--nats-url" in out and "--github-api" not in out


# ------------------------------------------------------------------ CLI state


def test_cli_state_lives_in_the_click_context(monkeypatch):
    """Each run's --json mode is its ctx.obj (a CliState), not a module global (issue 16 §4)."""
    from kez_cli import main as main_module
    from kez_cli.output import State
    from kez_cli.state import CliState

    seen = []

    def probe(ctx: typer.Context, json_: bool = typer.Option(False, "--json")) -> None:
        State.json_mode = json_
        seen.append((ctx.find_object(CliState), ctx.find_object(CliState).json_mode))

    def fallback(self, ctx, name):
        app = typer.Typer()
        app.callback()(lambda: None)
        app.command("probe")(probe)
        return typer.main.get_command(app).commands.get(name)

    monkeypatch.setattr(main_module.KezGroup, "fallback_command", fallback)
    assert main(["probe", "--json"]) == 0
    assert main(["probe"]) == 0
    (first, first_json), (second, second_json) = seen
    assert first is not second and first_json is True and second_json is False
    assert "json_mode" not in vars(State)  # no copy outside the run


def test_json_errors_do_not_leak_into_the_next_run(capsys, tmp_path):
    missing = str(tmp_path / "missing.txt")
    assert main(["claim", "verify", "--json", missing]) == 4
    assert json.loads(capsys.readouterr().out)["error"]
    assert main(["claim", "decode", missing]) == 4
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error:")


#: Groups whose module another change rewrites; they still keep a module-level `app` (issue 16 §4).
_GROUPS_NOT_YET_BUILT_BY_A_FUNCTION: set[str] = set()


@pytest.mark.parametrize("module", sorted({m for _, m, _ in BUILTIN_COMMANDS}))
def test_every_group_is_built_by_a_function(module):
    """A module-level group would be shared by every in-process `main()` and collect state;
    `register(app)` builds a fresh one per run (issue 16 §4)."""
    import importlib

    if module in _GROUPS_NOT_YET_BUILT_BY_A_FUNCTION:
        pytest.skip(f"kez_cli.commands.{module} is rewritten elsewhere")
    mod = importlib.import_module(f"kez_cli.commands.{module}")
    assert callable(getattr(mod, "register", None)), module
    assert not [name for name, value in vars(mod).items() if isinstance(value, typer.Typer)], module
    first, second = typer.Typer(), typer.Typer()
    mod.register(first)
    mod.register(second)
    built = [typer.main.get_command(app) for app in (first, second)]
    assert built[0] is not built[1]


def test_in_process_runs_reuse_a_built_command_until_the_registry_is_new(capsys):
    """`main()` run again in one process (the `kez` fixture) reuses each built-in command it
    built, unchanged (no command added to it by a later run); a new Registry builds anew."""
    from kez_cli import lazy
    from kez_core.registry import default_registry, reset_default_registry

    assert main(["message", "conversations", "--help"]) == 0
    registry, built = lazy._BUILT["message"]
    names = sorted(built.commands)
    for _ in range(3):
        assert main(["message", "conversations", "--help"]) == 0
    assert lazy._BUILT["message"] == (registry, built) and sorted(built.commands) == names
    assert registry is default_registry()
    reset_default_registry()
    assert main(["message", "conversations", "--help"]) == 0
    again = lazy._BUILT["message"]
    assert again[0] is default_registry() and again[0] is not registry and again[1] is not built
    assert sorted(again[1].commands) == names
    capsys.readouterr()


def test_an_in_process_run_lists_a_plugin_command_installed_meanwhile(
    tmp_path, monkeypatch, capsys
):
    """The plugin commands read from metadata are kept between in-process runs only while
    sys.path and its folders are unchanged."""
    assert main(["--help"]) == 0
    assert "zap-it" not in capsys.readouterr().out
    site = tmp_path / "site"
    _fake_dist(
        site,
        "kez-zap",
        "[kez]\ncommand.zap-it = kez_zap_cmd:app\n",
        {"kez_zap_cmd": "import typer\napp = typer.Typer()\n"},
        summary="Zap things.",
    )
    monkeypatch.syspath_prepend(str(site))
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "zap-it" in out and "Zap things." in out
