"""`kez sigchain` key changes interrupted at the passphrase prompt leave a working identity.

The three ways a terminal user stops a key change half-way (issue 13 §2): the
passphrase typed differently twice, Ctrl-C at the prompt, and a passphrase
from a terminal that is not UTF-8 (Python hands it over as lone surrogates).
After each, the identity must still sign (`kez sigchain add` works), its
chain must validate with the old primary, and no key file may be replaced.
"""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path

import pytest
from kez_cli import passphrase


def kez_json(kez, *args):
    code, out, err = kez(*args, "--json")
    assert code == 0, err
    return json.loads(out)


def home() -> Path:
    return Path(os.environ["KEZ_HOME"])


def snapshot() -> dict[str, bytes]:
    return {
        str(p.relative_to(home())): p.read_bytes() for p in sorted(home().rglob("*")) if p.is_file()
    }


def typed(monkeypatch, answers):
    """A terminal where the user types `answers` (an exception in the list is raised at that prompt)."""
    queue = list(answers)

    def prompt(text=""):
        answer = queue.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    monkeypatch.setattr(passphrase, "interactive", lambda: True)
    monkeypatch.setattr(getpass, "getpass", prompt)


FAILURES = {
    "mismatch": (["one", "two"], 4, "differ"),
    "ctrl-c": ([KeyboardInterrupt()], 130, ""),  # typer turns Ctrl-C into exit 130
    "not-utf8": (["pass\udcff", "pass\udcff"], 4, "not valid UTF-8"),
}


@pytest.fixture
def identity(kez, tmp_path):
    kez("identity", "new", "--no-passphrase")
    recovery = tmp_path / "recovery.pem"
    init = kez_json(kez, "sigchain", "init", "--new-recovery", str(recovery))
    return init["identity_id"], recovery


def still_signs(kez, identity_id):
    shown = kez_json(kez, "sigchain", "show")
    assert shown["current_primary"] == identity_id
    kez_json(kez, "sigchain", "add", "dns:example.org")
    chain = home() / "chains" / f"{identity_id.replace(':', '-')}.jsonl"
    assert kez("sigchain", "verify", str(chain))[0] == 0


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize(
    "command",
    [
        ["sigchain", "rotate", "--generate"],
        ["sigchain", "add-recovery", "--generate", "{tmp}/second.pem"],
    ],
)
def test_key_change_stopped_at_the_prompt(kez, tmp_path, monkeypatch, identity, failure, command):
    identity_id, recovery = identity
    answers, code, message = FAILURES[failure]
    before = snapshot()
    kept = recovery.read_bytes()
    typed(monkeypatch, answers)
    got, _, err = kez(*[part.format(tmp=tmp_path) for part in command])
    assert (got, message in err) == (code, True), err
    assert "Traceback" not in err
    assert snapshot() == before  # nothing was written
    assert recovery.read_bytes() == kept
    assert not (tmp_path / "second.pem").exists()
    monkeypatch.setattr(passphrase, "interactive", lambda: False)
    still_signs(kez, identity_id)


@pytest.mark.parametrize("failure", FAILURES)
def test_init_with_a_new_recovery_key_stopped_at_the_prompt(kez, tmp_path, monkeypatch, failure):
    kez("identity", "new", "--no-passphrase")
    answers, code, message = FAILURES[failure]
    typed(monkeypatch, answers)
    got, _, err = kez("sigchain", "init", "--new-recovery", str(tmp_path / "r.pem"))
    assert (got, message in err) == (code, True), err
    assert not (tmp_path / "r.pem").exists()
    assert not (home() / "chains").exists() or not list((home() / "chains").glob("*.jsonl"))
    monkeypatch.setattr(passphrase, "interactive", lambda: False)
    kez_json(kez, "sigchain", "init")  # init can simply be run again
    kez_json(kez, "sigchain", "add", "dns:example.org")


@pytest.mark.parametrize("failure", ["ctrl-c", "not-utf8"])
def test_add_inbox_stopped_at_the_identity_passphrase(kez, monkeypatch, failure):
    monkeypatch.setenv("KEZ_PASSPHRASE", "pw")
    identity_id = kez_json(kez, "identity", "new")["key_id"]
    kez_json(kez, "sigchain", "init")
    kez_json(kez, "sigchain", "add", "dns:example.org")
    monkeypatch.delenv("KEZ_PASSPHRASE")
    before = snapshot()
    answers, code, message = FAILURES[failure]
    typed(monkeypatch, answers)
    got, _, err = kez("sigchain", "add-inbox")
    assert (got, message in err) == (code, True), err
    assert snapshot() == before
    monkeypatch.setenv("KEZ_PASSPHRASE", "pw")
    still_signs(kez, identity_id)


def test_rotate_after_a_failed_rotate_works_and_keeps_the_old_key(
    kez, tmp_path, monkeypatch, identity
):
    identity_id, _ = identity
    typed(monkeypatch, ["one", "two"])
    assert kez("sigchain", "rotate", "--generate")[0] == 4
    typed(monkeypatch, ["new pass", "new pass"])
    rotated = kez_json(kez, "sigchain", "rotate", "--generate")
    monkeypatch.setenv("KEZ_PASSPHRASE", "new pass")
    shown = kez_json(kez, "sigchain", "show")
    assert shown["current_primary"] == rotated["new_primary"] != identity_id
    folder = home() / "identities" / "default"
    assert (folder / f"retired-{identity_id.split(':', 1)[1]}.pem").exists()
    assert not list(folder.glob("pending-*"))
    kez_json(kez, "sigchain", "add", "dns:example.org")


@pytest.mark.parametrize(
    "command", [["sigchain", "add-recovery", "--generate"], ["sigchain", "init", "--new-recovery"]]
)
def test_a_recovery_key_file_is_never_overwritten(kez, identity, command):
    identity_id, recovery = identity
    kept = recovery.read_bytes()
    before = snapshot()
    code, _, err = kez(*command, str(recovery))
    assert code == 4 and ("never overwritten" in err or "already has a sigchain" in err), err
    assert recovery.read_bytes() == kept
    assert snapshot() == before
    still_signs(kez, identity_id)


def test_init_refuses_an_existing_recovery_file_before_writing_the_chain(kez, tmp_path):
    kez("identity", "new", "--no-passphrase")
    taken = tmp_path / "taken.pem"
    taken.write_text("my other key\n")
    code, _, err = kez("sigchain", "init", "--new-recovery", str(taken))
    assert code == 4 and "never overwritten" in err, err
    assert taken.read_text() == "my other key\n"
    kez_json(kez, "sigchain", "init")


@pytest.mark.parametrize("failure", ["ctrl-c", "not-utf8"])
def test_add_device_stopped_at_the_device_passphrase(kez, monkeypatch, identity, failure):
    identity_id, _ = identity
    monkeypatch.setenv("KEZ_PASSPHRASE", "device pw")
    kez_json(kez, "identity", "new", "--name", "laptop")
    monkeypatch.delenv("KEZ_PASSPHRASE")
    before = snapshot()
    answers, code, message = FAILURES[failure]
    typed(monkeypatch, answers)
    got, _, err = kez("sigchain", "add-device", "--name", "laptop", "--device-identity", "laptop")
    assert (got, message in err) == (code, True), err
    assert snapshot() == before
    monkeypatch.setattr(passphrase, "interactive", lambda: False)
    still_signs(kez, identity_id)
