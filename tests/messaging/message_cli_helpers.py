"""Running `kez` as one of several people (each with their own KEZ_HOME), in-process and as a
listener subprocess. Shared by tests/messaging and tests/chat (tests/conftest.py puts this
folder on sys.path and builds its `two` and `three` fixtures with `make_people`)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from kez_cli.main import main

# every transport setting's variable: a listener hears only the transports its flags name
TRANSPORT_ENV = (
    "KEZ_INBOX_HANDLE",
    "KEZ_INBOX_SERVER",
    "KEZ_INBOX_SINCE",
    "KEZ_NATS_CREDS",
    "KEZ_NATS_TOKEN",
    "KEZ_NATS_URL",
    "KEZ_NOSTR_RATE",
    "KEZ_TRANSPORT_RELAYS",
    "KEZ_TRANSPORT_SINCE",
)


@contextmanager
def person(home: Path):
    old = os.environ.get("KEZ_HOME")
    os.environ["KEZ_HOME"] = str(home)
    try:
        yield
    finally:
        os.environ["KEZ_HOME"] = old if old is not None else ""


def kez(capsys, home: Path, *args: str) -> tuple[int, str, str]:
    with person(home):
        code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def kez_json(capsys, home: Path, *args: str):
    code, out, err = kez(capsys, home, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def send_args(to: object, text: str, via: str) -> list[str]:
    """`kez message send --to TO --text TEXT --via VIA`'s arguments (the transport's flags follow)."""
    return ["message", "send", "--to", str(to), "--text", text, "--via", via]


def make_people(capsys, tmp_path: Path, names, algs: dict[str, str] | None = None) -> dict:
    """People made with the real CLI, each in `tmp_path / name`: an identity (Ed25519 unless
    `algs` names another), a chain with an inbox key, exported to `tmp_path / f"{name}.jsonl"`;
    every chain imported by everyone else. Needs KEZ_PASSPHRASE="" in the environment."""
    people = {}
    for name in names:
        home = tmp_path / name
        alg = ["--alg", algs[name]] if algs and name in algs else []
        kez_json(capsys, home, "identity", "new", "--name", name, *alg, "--no-passphrase")
        kez_json(capsys, home, "sigchain", "init")
        added = kez_json(capsys, home, "sigchain", "add-inbox")
        chain = tmp_path / f"{name}.jsonl"
        kez(capsys, home, "sigchain", "export", str(chain))
        people[name] = {
            "home": home,
            "chain": chain,
            "inbox": added["inbox_key"],
            "id": added["identity_id"],
        }
    for me in names:
        for other in names:
            if other != me:
                kez_json(
                    capsys, people[me]["home"], "sigchain", "import", str(people[other]["chain"])
                )
    return people


def _listen_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in TRANSPORT_ENV}
    env.update(KEZ_HOME=str(home), KEZ_PASSPHRASE="")
    return env


def _spawn_listen(home: Path, *args: str) -> subprocess.Popen[str]:
    """`kez message listen --json ARGS` as HOME in a subprocess, its output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "kez_cli", "message", "listen", "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_listen_env(home),
    )


def listen(home: Path, *args: str) -> subprocess.Popen[str]:
    """`kez message listen --json ARGS` as HOME in a subprocess, returned once it says
    "listening on" (each subscription is live then)."""
    proc = _spawn_listen(home, *args)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "listening on" in line:
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"the listener did not start: {proc.stderr.read()}")


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> list[dict]:
    """Wait for a `listen` subprocess to end (it must exit 0): its message and ack events."""
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    return [d for d in map(json.loads, out.splitlines()) if d["event"] in ("message", "ack")]


class Lines:
    """A process's stdout and stderr read line by line in threads, so a test can wait for one."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        self.seen_out: list[str] = []
        self.seen_err: list[str] = []
        for stream, into in ((proc.stdout, self.out), (proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, into), daemon=True).start()

    @staticmethod
    def _pump(stream, into) -> None:
        for line in stream:
            into.put(line)

    def event(self, test, timeout: float = 60) -> dict:
        """The next stdout event for which `test(event)` is true (earlier ones are kept in seen_out)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.out.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen_out.append(line)
            data = json.loads(line)
            if test(data):
                return data
        raise AssertionError(f"no such event; stdout: {self.seen_out}; stderr: {self.stderr()}")

    def stderr(self) -> str:
        while not self.err.empty():
            self.seen_err.append(self.err.get_nowait())
        return "".join(self.seen_err)


def start_listen(home: Path, *args: str) -> Lines:
    """`kez message listen --json ARGS` as HOME in a subprocess, at once, its output as `Lines`."""
    return Lines(_spawn_listen(home, *args))
