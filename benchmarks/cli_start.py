"""Start-up time of the `kez` command, against `python -c "import click"` measured in the same run.

Each command runs RUNS times as a fresh process (the installed console
script, as a user starts it), the commands taking turns so that a noisy
moment of a shared machine falls on all of them; the figure is the
median wall time. The
baseline is the cheapest useful Python CLI: an interpreter that imports
click and exits. Also counted: the modules each command imports (a tiny
wrapper runs `kez_cli.main.main` and reports `len(sys.modules)` minus what
a bare interpreter has), and which plugin modules were among them.

Targets (issue 16): `kez --help` median <= 150 ms; `kez claim verify` of
one claim <= 250 ms; neither `--help` nor `--version` nor `kez plugins`
imports a kez_channel_* / kez_transport_* / kez_server module. (A command
that looks anything up, like `claim verify`, imports every enabled plugin's
entry module, since any of them may provide an encoding; those modules are
light, and only the kinds the command uses are built.) The runs read cached
bytecode, as an installed `kez` does (pip compiles at install time), even
where the shell sets PYTHONDONTWRITEBYTECODE.
Run: uv run python benchmarks/cli_start.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLUGIN_PREFIXES = ("kez_channel_", "kez_transport_", "kez_server", "kez_example")

# Runs main(argv) like the console script, then prints how many modules it imported.
_COUNT = """
import sys
base = set(sys.modules)
from kez_cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
new = [m for m in sys.modules if m not in base]
plugins = sorted({m.split('.')[0] for m in new if m.startswith(%r)})
sys.stderr.write('\\nKEZ-COUNT ' + str(len(new)) + ' ' + ','.join(plugins) + '\\n')
""" % (PLUGIN_PREFIXES,)


def _kez() -> str:
    script = Path(sys.executable).with_name("kez")
    return str(script) if script.exists() else "kez"


def median_ms(cmds: list[list[str]], runs: int, env: dict[str, str]) -> list[float]:
    """Each command's median wall time in ms. The commands take turns (one run of each, then
    the next round), so a noisy second on a shared machine falls on all of them alike."""
    for cmd in cmds:  # warm the page cache (and write the bytecode)
        subprocess.run(cmd, env=env, capture_output=True, check=False)
    times: list[list[float]] = [[] for _ in cmds]
    for _ in range(runs):
        for cmd, spent in zip(cmds, times, strict=True):
            start = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, check=False)
            spent.append(time.perf_counter() - start)
            if proc.returncode not in (0, 1):
                raise SystemExit(
                    f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}"
                )
    return [statistics.median(spent) * 1000 for spent in times]


def module_count(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-c", _COUNT, *args], env=env, capture_output=True, text=True, check=False
    )
    for line in proc.stderr.splitlines():
        if line.startswith("KEZ-COUNT "):
            parts = line.split(" ", 2)
            return int(parts[1]), (parts[2] if len(parts) > 2 else "")
    raise SystemExit(f"could not count modules for {args}: {proc.stderr[-500:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=15, help="runs per command (the median is reported)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the figures as one JSON document"
    )
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kez-bench-") as home:
        env = {**os.environ, "KEZ_HOME": home}
        env.pop("KEZ_PASSPHRASE", None)
        # as after `pip install` (which compiles every module): the first run writes the
        # bytecode of the workspace's editable sources, the timed runs read it; a shell with
        # PYTHONDONTWRITEBYTECODE set would otherwise compile ~60 modules from source each run
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        kez = _kez()
        subprocess.run([kez, "identity", "new"], env=env, capture_output=True, check=True)
        claim = Path(home) / "claim.txt"
        subprocess.run(
            [kez, "claim", "create", "github:alice", "-o", str(claim)],
            env=env,
            capture_output=True,
            check=True,
        )

        commands = {
            'python -c "import click"': ([sys.executable, "-c", "import click"], None),
            "kez --help": ([kez, "--help"], ["--help"]),
            "kez --version": ([kez, "--version"], ["--version"]),
            "kez plugins": ([kez, "plugins"], ["plugins"]),
            "kez claim verify": (
                [kez, "claim", "verify", str(claim)],
                ["claim", "verify", str(claim)],
            ),
        }
        rows = []
        medians = median_ms([cmd for cmd, _ in commands.values()], options.runs, env)
        baseline = medians[0]
        for (label, (_, args)), ms in zip(commands.items(), medians, strict=True):
            count, plugins = module_count(args, env) if args is not None else (None, "")
            rows.append(
                {
                    "command": label,
                    "median_ms": round(ms, 1),
                    "x_click": round(ms / baseline, 2),
                    "modules": count,
                    "plugin_modules": plugins,
                }
            )

    if options.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'command':<28}{'median ms':>10}{'x click':>9}{'modules':>9}  plugin modules imported")
    for row in rows:
        modules = "" if row["modules"] is None else str(row["modules"])
        print(
            f"{row['command']:<28}{row['median_ms']:>10.1f}{row['x_click']:>9.2f}{modules:>9}  {row['plugin_modules'] or '-'}"
        )
    print(f"({options.runs} runs each; targets: kez --help <= 150 ms, kez claim verify <= 250 ms)")


if __name__ == "__main__":
    main()
