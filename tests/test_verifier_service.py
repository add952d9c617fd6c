"""A library caller (no CLI) gets the same verdicts as `kez verify` and `kez sigchain verify`.

The trust rules live in kez_core (`Verifier`, `chain_verdict`), so the
verdicts here are computed twice, once through the CLI and once through the
service, and must agree: a valid chain, a chain broken at its last link, a
damaged copy that a valid copy overrides, and a handle whose server points
at another identity's chain (a real HTTP server on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from kez_core.chat.peers import HandleChainMismatch
from kez_core.claim import create_claim
from kez_core.keys import Signer
from kez_core.keystore import Keystore
from kez_core.protocols import PluginContext
from kez_core.registry import default_registry
from kez_core.sigchain import SigchainBuilder, chain_verdict, merge_copies
from kez_core.status import Status
from kez_core.verifier import FetchPolicy, Verifier


def _chain(signer: Signer, subjects: list[str]) -> list[bytes]:
    builder = SigchainBuilder()
    for subject in subjects:
        builder.claim(signer, create_claim(signer, subject))
    return list(builder.lines)


def _verifier(closed_url: str, **kwargs) -> Verifier:
    registry = default_registry()
    return Verifier(
        registry,
        Keystore(registry=registry),
        ctx=PluginContext(options={"github_api": closed_url}, timeout=2.0),
        policy=FetchPolicy(timeout=2.0, retries=0),
        **kwargs,
    )


def _cli_verify(kez, *targets: str) -> tuple[int, dict]:
    code, out, err = kez("verify", *targets, "--retries", "0", "--timeout", "2", "--json")
    return code, json.loads(out) if out.strip() else {"error": err}


@pytest.fixture
def closed_url(closed_port: int, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"http://127.0.0.1:{closed_port}"
    monkeypatch.setenv(
        "KEZ_GITHUB_API", url
    )  # the CLI reads it; the library gets it in its context
    return url


def test_a_valid_chain_gets_the_same_verdict(kez, tmp_path: Path, closed_url: str) -> None:
    path = tmp_path / "chain.jsonl"
    path.write_bytes(b"".join(_chain(Signer.generate("ed25519"), ["github:alice"])))
    code, cli = _cli_verify(kez, str(path))
    [lib] = asyncio.run(_verifier(closed_url).verify([str(path)]))
    assert code == 5  # the proof could not be fetched: unreachable, not invalid
    assert lib.identity is not None and lib.identity.chain_status is Status.VALID
    mine = lib.to_json()
    theirs = cli["results"][0]
    for key in ("kind", "identity_id", "chain_status", "chain_reason", "length", "head", "ok"):
        assert mine[key] == theirs[key], key
    assert (
        [c["status"] for c in mine["claims"]]
        == [c["status"] for c in theirs["claims"]]
        == ["unreachable"]
    )
    sig_code, sig_out, _ = kez("sigchain", "verify", str(path), "--json")
    assert sig_code == 0 and json.loads(sig_out)["status"] == "valid"


def test_a_chain_broken_at_its_last_link_is_invalid_everywhere(
    kez, tmp_path: Path, closed_url: str
) -> None:
    lines = _chain(Signer.generate("ed25519"), ["github:alice", "github:bob"])
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(lines[0] + lines[1].replace(b"github:bob", b"github:eve"))
    code, cli = _cli_verify(kez, str(broken))
    [lib] = asyncio.run(_verifier(closed_url).verify([str(broken)]))
    verdict = chain_verdict(merge_copies([broken.read_bytes().splitlines(keepends=True)]))
    sig_code, sig_out, _ = kez("sigchain", "verify", str(broken), "--json")
    assert code == 1 and cli["results"][0]["chain_status"] == "invalid"
    assert lib.identity is not None and lib.identity.chain_status is Status.INVALID
    assert verdict.status is Status.INVALID and verdict.reason.startswith("copy 1: ")
    assert sig_code == 1 and json.loads(sig_out)["status"] == "invalid"
    assert lib.to_json()["chain_reason"] == cli["results"][0]["chain_reason"] == verdict.reason


def test_a_damaged_copy_that_a_valid_copy_overrides_does_not_decide(kez, tmp_path: Path) -> None:
    lines = _chain(Signer.generate("ed25519"), ["github:alice", "github:bob"])
    good, damaged = tmp_path / "good.jsonl", tmp_path / "damaged.jsonl"
    good.write_bytes(b"".join(lines))
    damaged.write_bytes(lines[0] + lines[1].replace(b"github:bob", b"github:eve"))
    merged = merge_copies(
        [
            good.read_bytes().splitlines(keepends=True),
            damaged.read_bytes().splitlines(keepends=True),
        ]
    )
    verdict = chain_verdict(merged)
    assert merged.status is verdict.status is Status.VALID
    assert [c.index for c in verdict.damaged] == [1]
    code, out, _ = kez("sigchain", "verify", str(good), str(damaged), "--json")
    data = json.loads(out)
    assert code == 0 and data["status"] == "valid" and data["errors"][0]["copy"] == 1


class _LyingHandleServer(BaseHTTPRequestHandler):
    """Says alice@example.org is identity A, and serves identity B's chain as hers."""

    answer: bytes = b""
    chain: bytes = b""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body, kind = (
            (self.answer, "application/json")
            if self.path == "/v1/u/alice"
            else (self.chain, "application/x-ndjson")
        )
        if self.path not in ("/v1/u/alice", "/chain"):
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def lying_server() -> Iterator[tuple[str, str]]:
    """(base URL, identity id the handle names) of a handle server on 127.0.0.1."""
    named, other = Signer.generate("ed25519"), Signer.generate("ed25519")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LyingHandleServer)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    _LyingHandleServer.answer = json.dumps(
        {
            "fqhn": "alice@example.org",
            "primary": named.key_id,
            "sigchain_url": f"{base}/chain",
            "registered_at": "2026-01-01T00:00:00Z",
        }
    ).encode()
    _LyingHandleServer.chain = b"".join(_chain(other, ["github:mallory"]))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base, named.key_id
    finally:
        server.shutdown()
        server.server_close()


def test_a_handle_pointing_at_another_identity_is_refused_the_same_way(
    kez, lying_server: tuple[str, str], closed_url: str
) -> None:
    base, named = lying_server
    code, out, err = kez("verify", "alice@example.org", "--handle-server", base, "--json")
    with pytest.raises(HandleChainMismatch) as caught:
        asyncio.run(_verifier(closed_url, handle_server=base).verify(["alice@example.org"]))
    assert code == caught.value.exit_code == 4
    assert json.loads(out) == caught.value.to_dict()
    assert named in caught.value.message
