"""`kez sigchain …` and `kez verify FILE` on chains holding hostile text, in both output modes.

Two sources of hostile chain text: your own chain, through the CLI (a
device name, a revoke reason, a subject argument: once stored, `sigchain
show` used to crash from then on), and a stranger's chain file built with
the real signing code (`SigchainBuilder`, `make_link`): a device name, a
revoke reason, an unknown op, and lone surrogates that no signer can sign.
"""

from __future__ import annotations

import json
import os

import pytest
from corpus import HOSTILE, check
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from kez_cli.main import main
from kez_core.claim import create_claim
from kez_core.errors import CanonicalizationError
from kez_core.sigchain import ChainError
from kez_core.keys import Signer
from kez_core.safetext import visible
from kez_core.sigchain import SigchainBuilder, make_link
from kez_core.timefmt import format_time, now

MODES = pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
NAMES = pytest.mark.parametrize("name", sorted(HOSTILE))


def _swap(line: bytes, path: tuple[str, ...], value: str) -> bytes:
    """A link line with one field replaced after signing (its signature no longer verifies)."""
    obj = json.loads(line)
    target = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(obj).encode() + b"\n"


def stranger_chains(text: str) -> dict[str, list[bytes]]:
    """Chains with `text` in a device name and a revoke reason, and one with `text` as an op."""
    primary, device = Signer.generate(), Signer.generate()
    b = SigchainBuilder()
    claim = create_claim(primary, "github:alice")
    b.claim(primary, claim)
    try:
        b.add_device(primary, device, text)
        b.revoke(primary, claim.id, text)
        named = list(b.lines)
    except (
        CanonicalizationError,
        ChainError,
    ):  # lone surrogates, too long: refused to sign, can be sent
        b.add_device(primary, device, "phone")
        b.revoke(primary, claim.id, "moved")
        named = [
            *b.lines[:1],
            _swap(b.lines[1], ("payload", "body", "name"), text),
            _swap(b.lines[2], ("payload", "body", "reason"), text),
        ]
    try:
        odd = make_link(
            primary, seqno=1, prev=None, op=text, body={"x": text}, created_at=format_time(now())
        )
        odd_line = json.dumps(odd.to_dict()).encode() + b"\n"
    except CanonicalizationError:
        plain = make_link(
            primary, seqno=1, prev=None, op="x", body={}, created_at=format_time(now())
        )
        odd_line = _swap(json.dumps(plain.to_dict()).encode(), ("payload", "op"), text)
    return {"named": named, "odd op": [odd_line]}


@pytest.fixture(scope="module")
def own_home(tmp_path_factory):
    """One keystore with an identity and its chain, shared by the module's tests (setup is CLI calls)."""
    home = tmp_path_factory.mktemp("own")
    old = os.environ.get("KEZ_HOME")
    os.environ["KEZ_HOME"] = str(home)
    try:
        assert main(["identity", "new", "--no-passphrase"]) == 0
        assert main(["sigchain", "init"]) == 0
    finally:
        os.environ["KEZ_HOME"] = old or ""
    return home


def _device_key(tmp_path) -> str:
    """A fresh device's secret key file (PEM, as the keystore writes them)."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    path = tmp_path / "device.pem"
    path.write_bytes(pem)
    return str(path)


@MODES
@NAMES
def test_own_chain_add_device_revoke_add_and_show(
    kez, monkeypatch, tmp_path, own_home, name, json_mode
):
    monkeypatch.setenv("KEZ_HOME", str(own_home))
    text = HOSTILE[name]
    mode = ["--json"] if json_mode else []
    check(kez("sigchain", "add", f"github:{text}", *mode), json_mode=json_mode)
    added = check(
        kez(
            "sigchain",
            "add",
            f"github:a{len(HOSTILE)}{sorted(HOSTILE).index(name)}{json_mode:d}",
            "--json",
        ),
        json_mode=True,
    )
    device = kez(
        "sigchain", "add-device", "--name", text, "--device-key", _device_key(tmp_path), *mode
    )
    check(device, json_mode=json_mode)
    check(
        kez("sigchain", "revoke", added["claim_id"], "--reason", text, *mode), json_mode=json_mode
    )
    shown = kez("sigchain", "show", *mode)
    doc = check(shown, json_mode=json_mode, codes=frozenset({0}))  # stored links never break `show`
    if device.exit_code == 0 and json_mode:
        assert text in [d["name"] for d in doc["devices"]]
        assert any(text in c["reason"] for c in doc["claims"])
    if device.exit_code == 0 and not json_mode and len(text) < 100:
        assert f"({visible(text)})\n" in shown.stdout


@MODES
@NAMES
def test_stranger_chain_verify_import_and_verify_file(kez, closed_port, tmp_path, name, json_mode):
    mode = ["--json"] if json_mode else []
    closed = f"http://127.0.0.1:{closed_port}"
    for variant, lines in stranger_chains(HOSTILE[name]).items():
        path = tmp_path / f"{variant.replace(' ', '-')}.jsonl"
        path.write_bytes(b"".join(lines))
        check(kez("sigchain", "verify", str(path), *mode), json_mode=json_mode)
        check(kez("sigchain", "import", str(path), *mode), json_mode=json_mode)
        if variant == "named":  # (a chain with no valid link says only that)
            check(
                kez(
                    "verify",
                    str(path),
                    "--github-api",
                    closed,
                    "--retries",
                    "0",
                    "--timeout",
                    "1",
                    "--no-snapshot",
                    *mode,
                ),
                json_mode=json_mode,
            )
