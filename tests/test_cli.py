"""The `kez` command end to end: real console script for the non-TTY paths, in-process otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


KEZ = [sys.executable, "-m", "kez_cli"]


def run(args, *, input_text=None, env_extra=None, timeout=60):
    """Run the real CLI in a subprocess with stdin not a terminal."""
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        KEZ + list(args),
        input=input_text if input_text is not None else "",
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def test_help_imports_no_heavy_sdk():
    code = (
        "import sys\n"
        "from kez_cli.main import main\n"
        "rc = main(['--help'])\n"
        "heavy = {'httpx', 'atproto', 'nats', 'websockets', 'dns', 'nostr_sdk', 'aiohttp', 'starlette'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
        "# the message code loads when a message command runs, not to build the command tree\n"
        "print(sorted(m for m in sys.modules if m.startswith('kez_core.messaging.') and\n"
        "             m.rsplit('.', 1)[1] in {'mailbox', 'replay', 'keyring', 'message'}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-2:] == ["[]", "[]"]


def test_new_identity_without_tty_is_stored_unencrypted_and_says_so():
    proc = run(["identity", "new"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ed25519:") and len(proc.stdout.strip()) == len("ed25519:") + 64
    assert "unencrypted" in proc.stderr
    home = Path(os.environ["KEZ_HOME"])
    secret = home / "identities" / "default" / "secret.pem"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert b"BEGIN PRIVATE KEY" in secret.read_bytes()


def test_encrypted_key_without_passphrase_fails_fast_never_hangs():
    assert (
        run(
            ["identity", "new", "--alg", "nostr"], env_extra={"KEZ_PASSPHRASE": "hunter2"}
        ).returncode
        == 0
    )
    proc = run(["claim", "create", "github:alice"], timeout=30)
    assert proc.returncode == 4
    assert "KEZ_PASSPHRASE" in proc.stderr
    assert "Traceback" not in proc.stderr
    ok = run(["claim", "create", "github:alice"], env_extra={"KEZ_PASSPHRASE": "hunter2"})
    assert ok.returncode == 0 and ok.stdout.startswith("kez:z1:")
    bad = run(["claim", "create", "github:alice"], env_extra={"KEZ_PASSPHRASE": "wrong"})
    assert bad.returncode == 4 and "wrong passphrase" in bad.stderr


@pytest.mark.parametrize("alg", ["ed25519", "nostr"])
@pytest.mark.parametrize("form", ["json", "compact", "markdown", "dns", "armor"])
def test_create_then_verify_every_encoding(kez, tmp_path, alg, form):
    assert kez("identity", "new", "--alg", alg, "--no-passphrase")[0] == 0
    code, out, _ = kez("claim", "create", "dns:Example.ORG", "--format", form, "--expires", "30d")
    assert code == 0
    path = tmp_path / "claim.txt"
    path.write_text(out)
    code, out, _ = kez("claim", "verify", str(path), "--json")
    assert code == 0
    result = json.loads(out)
    assert result["status"] == "valid"
    assert result["subject"] == "dns:example.org"
    assert result["primary"].startswith(f"{alg}:")
    assert len(result["claim_id"]) == 64
    assert result["encoding"] == form
    for key in ("status", "reason", "primary", "subject", "claim_id"):
        assert key in result


def test_verify_tampered_claim_exits_1(kez, tmp_path):
    kez("identity", "new", "--no-passphrase")
    _, out, _ = kez("claim", "create", "github:alice", "--format", "json")
    obj = json.loads(out)
    obj["payload"]["subject"] = "github:mallory"
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(obj))
    code, out, _ = kez("claim", "verify", str(path), "--json")
    assert code == 1
    assert json.loads(out)["status"] == "invalid"
    assert "signature" in json.loads(out)["reason"]


def test_verify_garbage_is_a_clear_error(kez, tmp_path):
    path = tmp_path / "garbage"
    path.write_bytes(b"\xff\xfe not a claim")
    code, out, err = kez("claim", "verify", str(path))
    assert code == 3 and "UTF-8" in err and not out
    path.write_text("hello world")
    code, out, err = kez("claim", "verify", str(path), "--json")
    assert code == 3
    assert json.loads(out)["status"] == "invalid"
    code, _, err = kez("claim", "verify", str(tmp_path / "missing"))
    assert code == 4 and "no such file" in err


def test_verify_reads_stdin_pipe():
    assert run(["identity", "new"]).returncode == 0
    claim = run(["claim", "create", "ap:Alice@Social.Example"]).stdout
    proc = run(["claim", "verify", "-"], input_text=claim)
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout and "ap:alice@social.example" in proc.stdout


def test_decode_shows_fields(kez):
    kez("identity", "new", "--alg", "nostr", "--no-passphrase")
    _, out, _ = kez("claim", "create", "mastodon:@bob@host.example", "--format", "markdown")
    claim_path = Path(os.environ["KEZ_HOME"]) / "c.md"
    claim_path.write_text("My proof:\n\n" + out + "\nthanks\n")
    code, out, _ = kez("claim", "decode", str(claim_path), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["encoding"] == "markdown" and doc["payload"]["subject"] == "ap:bob@host.example"


def test_usage_errors_exit_2(kez):
    kez("identity", "new", "--no-passphrase")
    assert kez("claim", "create", "github:alice", "--format", "nope")[0] == 2
    assert kez("identity", "new", "--alg", "rsa")[0] == 2
    assert kez("identity", "bogus-command")[0] == 2
    code, _, err = kez("claim", "create", "not a subject")
    assert code == 3 and "channel" in err


def test_several_identities_need_a_choice_or_default(kez):
    kez("identity", "new", "--no-passphrase", "--name", "one")
    kez("identity", "new", "--no-passphrase", "--name", "two", "--alg", "nostr")
    code, out, _ = kez("identity", "list", "--json")
    listed = {r["name"]: r for r in json.loads(out)}
    assert listed["one"]["default"] and not listed["two"]["default"]
    assert kez("identity", "default", "two")[0] == 0
    _, out, _ = kez("claim", "create", "github:alice", "--json")
    assert json.loads(out)["object"]["payload"]["primary"] == listed["two"]["key_id"]
    code, _, err = kez("identity", "new", "--no-passphrase", "--name", "one")
    assert code == 4 and "already exists" in err


def test_export_import_round_trips(kez, tmp_path, monkeypatch):
    kez("identity", "new", "--alg", "nostr", "--no-passphrase", "--name", "n")
    _, shown, _ = kez("identity", "show", "n", "--json")
    key_id = json.loads(shown)["key_id"]
    origin = os.environ["KEZ_HOME"]
    for form in ("nsec", "hex", "pem"):
        monkeypatch.setenv("KEZ_HOME", origin)
        code, out, _ = kez("identity", "export", "n", "--format", form)
        assert code == 0
        src = tmp_path / f"key.{form}"
        src.write_text(out)
        extra = ["--alg", "nostr"] if form == "hex" else []
        # importing the same key twice is refused, so use a fresh keystore each time
        monkeypatch.setenv("KEZ_HOME", str(tmp_path / f"home-{form}"))
        code, out, err = kez("identity", "import", str(src), "--no-passphrase", *extra)
        assert code == 0, err
        assert out.strip() == key_id
    monkeypatch.setenv("KEZ_HOME", str(tmp_path / "home-nsec"))
    monkeypatch.setenv("KEZ_PASSPHRASE", "correct horse")
    code, out, _ = kez(
        "identity", "export", "--format", "ncryptsec", "--output", str(tmp_path / "k.nc")
    )
    assert code == 0 and (tmp_path / "k.nc").stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("KEZ_HOME", str(tmp_path / "home-nc"))
    code, out, _ = kez("identity", "import", str(tmp_path / "k.nc"))
    assert code == 0 and out.strip() == key_id
    monkeypatch.setenv("KEZ_PASSPHRASE", "wrong")
    monkeypatch.setenv("KEZ_HOME", str(tmp_path / "home-nc2"))
    code, _, err = kez("identity", "import", str(tmp_path / "k.nc"))
    assert code == 4 and "wrong password" in err


def test_plugins_lists_builtins_and_the_example(kez):
    code, out, _ = kez("plugins", "--load", "--json")
    assert code == 0
    plugins = {p["name"]: p for p in json.loads(out)}
    assert plugins["armor"]["distribution"] == "kez-example"
    assert plugins["armor"]["provides"] == {"encoding": ["armor"]}
    assert plugins["ed25519"]["distribution"] == "kez-core"
    assert plugins["encodings"]["provides"]["encoding"] == ["json", "compact", "markdown", "dns"]
    assert all(p["state"] == "loaded" for p in plugins.values())


def _broken_plugin_dir(tmp_path: Path) -> Path:
    """A fake installed distribution whose entry point names a module that fails to import."""
    site = tmp_path / "site"
    dist = site / "kez_broken-9.9.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: kez-broken\nVersion: 9.9\n")
    (dist / "entry_points.txt").write_text("[kez]\nbroken = kez_broken_mod\n")
    (site / "kez_broken_mod.py").write_text("raise ImportError('needs libfoo')\n")
    return site


def test_broken_plugin_is_reported_and_the_rest_keeps_working(tmp_path):
    env = {"PYTHONPATH": str(_broken_plugin_dir(tmp_path)), "KEZ_STRICT_PLUGINS": "0"}
    proc = run(["plugins", "--load", "--json"], env_extra=env)
    assert proc.returncode == 0, proc.stderr
    broken = {p["name"]: p for p in json.loads(proc.stdout)}["broken"]
    assert broken["state"] == "broken" and broken["distribution"] == "kez-broken"
    assert broken["version"] == "9.9" and "needs libfoo" in broken["error"]
    assert "broken" in proc.stderr and "kez-broken 9.9" in proc.stderr
    assert run(["identity", "new"], env_extra=env).returncode == 0
    strict = run(["plugins", "--load"], env_extra={**env, "KEZ_STRICT_PLUGINS": "1"})
    assert strict.returncode == 6 and "needs libfoo" in strict.stderr


def test_disable_plugins_blocks_the_example(kez, monkeypatch):
    proc = run(["plugins", "--load", "--json"], env_extra={"KEZ_DISABLE_PLUGINS": "armor"})
    states = {p["name"]: p["state"] for p in json.loads(proc.stdout)}
    assert states["armor"] == "disabled" and states["ed25519"] == "loaded"


def test_demo_passes(kez):
    """The README's first command: offline part, then all five channels on local servers."""
    code, out, _ = kez("demo", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["ok"] is True
    assert {row["encoding"] for row in report["claims"]} >= {"json", "compact", "markdown", "dns"}
    network = report["network"]
    assert network["skipped"] == []
    assert {row["channel"] for row in network["verified"]} == {
        "dns",
        "github",
        "nostr",
        "bluesky",
        "ap",
    }
    assert {row["status"] for row in network["verified"]} == {"valid"}
    assert [p["seqno"] for p in network["published"]] == [1, 2, 3, 4, 5]
    server = network[
        "server"
    ]  # the chain pushed to a local kez-server, a handle, verified from there
    assert server["pushed"]["outcome"] == "ok" and server["pushed"]["appended"] == 5
    assert server["lookup"]["fqhn"] == "alice@kez.example"
    assert server["served_chain"]["same_as_local"] is True
    assert server["verified_from_server"]["counts"] == {"valid": 5}
    messaging = server["messaging"]  # alice -> bob@kez.example over each transport, bob's ack back
    assert (
        messaging["ok"] is True
        and messaging["to"] == "bob@kez.example"
        and messaging["skipped"] == []
    )
    assert {row["transport"]: row["states"] for row in messaging["messages"]} == {
        "nats": ["sent", "delivered"],
        "nostr": ["sent", "delivered"],
        "http": ["sent", "delivered"],
    }
    assert all(
        row["bob_got"] == row["text"] and row["sender_checked"] for row in messaging["messages"]
    )
    file = messaging["file"]  # 1 MB alice -> bob over nostr in chunks, bob's copy checked, acked
    assert file["ok"] is True and file["state"] == "delivered" and file["received"] == "complete"
    assert file["size"] == 1024 * 1024 and file["sha256_checked"] is True and file["count"] > 1


def test_demo_offline_starts_no_server(kez):
    code, out, _ = kez("demo", "--offline", "--json")
    assert code == 0
    assert "network" not in json.loads(out)


def test_demo_skips_unknown_channels_with_a_reason(kez):
    code, out, _ = kez("demo", "--channels", "dns,nosuch", "--json")
    network = json.loads(out)["network"]
    assert code == 0
    assert [row["channel"] for row in network["verified"]] == ["dns"]
    assert network["skipped"] == [
        {"channel": "nosuch", "reason": "the nosuch channel plugin is not installed"}
    ]


def test_demo_with_no_channel_started_fails_clearly(kez):
    code, out, _ = kez("demo", "--channels", "nosuch", "--json")
    assert code == 1
    assert json.loads(out)["network"]["ok"] is False


def test_version(kez):
    code, out, _ = kez("--version")
    assert code == 0 and out.startswith("kez 0.1.0")
