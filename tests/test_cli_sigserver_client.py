"""The kez-server client commands without a server: usage errors and unreachable servers.

The full round trip against a real kez-server under uvicorn lives in
plugins/kez-server/tests (test_server_cli.py).
"""

from __future__ import annotations

import json
import socket

import pytest
from kez_cli.main import main
from kez_cli.sigservers import configured_servers, split_handle


def kez(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def chain(capsys):
    kez(capsys, "identity", "new", "--no-passphrase")
    assert kez(capsys, "sigchain", "init")[0] == 0
    code, out, err = kez(capsys, "sigchain", "add", "github:alice", "--json")
    assert code == 0, err
    return json.loads(out)


def test_publish_needs_a_server(capsys, chain, monkeypatch):
    monkeypatch.delenv("KEZ_SIG_SERVERS", raising=False)
    code, _, err = kez(capsys, "sigchain", "publish")
    assert code == 2 and "--sig-server" in err


def test_publish_to_an_unreachable_server_exits_5_and_keeps_the_chain(capsys, chain):
    url = closed_port_url()
    code, out, _ = kez(capsys, "sigchain", "publish", "--sig-server", url, "--timeout", "2", "--json")
    assert code == 5
    result = json.loads(out)["servers"][0]
    assert result["outcome"] == "unreachable" and url in result["message"]
    code, out, _ = kez(capsys, "sigchain", "show", "--json")
    assert code == 0 and json.loads(out)["length"] == 1


def test_verify_leaves_an_unreachable_server_out_and_says_so(capsys, chain):
    url = closed_port_url()
    code, out, _ = kez(capsys, "verify", "default", "--sig-server", url, "--timeout", "2",
                       "--github-api", url, "--retries", "0", "--json")
    result = json.loads(out)["results"][0]
    assert result["servers"][0]["status"] == "unreachable"
    assert result["chain_status"] == "valid"
    assert {c["status"] for c in result["claims"]} == {"unreachable"}
    assert code == 5


def test_bad_server_urls_are_usage_errors(capsys, chain):
    code, _, err = kez(capsys, "sigchain", "publish", "--sig-server", "ftp://x")
    assert code == 2 and "not an http(s) URL" in err
    code, _, err = kez(capsys, "handle", "register", "alice", "--server", "nope")
    assert code == 2


def test_handle_register_rejects_bad_handles_before_any_network(capsys, chain):
    code, _, err = kez(capsys, "handle", "register", "-x", "--server", closed_port_url())
    assert code != 0
    code, _, err = kez(capsys, "handle", "register", "ab", "--server", closed_port_url())
    assert code == 2 and "not a valid handle" in err


def test_handle_lookup_unreachable_exits_5(capsys):
    url = closed_port_url()
    code, _, err = kez(capsys, "handle", "lookup", "alice@example.org", "--handle-server", url, "--timeout", "2")
    assert code == 5 and "could not be reached" in err


def test_configured_servers_from_env_and_flags(monkeypatch):
    monkeypatch.setenv("KEZ_SIG_SERVERS", "https://a.example, https://b.example/  https://a.example")
    assert configured_servers(["https://c.example/"]) == ["https://c.example", "https://a.example", "https://b.example"]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("alice@example.org", ("alice", "example.org")),
        ("alice@Example.org:8443", ("alice", "example.org:8443")),
        ("alice@localhost", None),
        ("al@example.org", None),
        ("github:alice", None),
        ("_alice@example.org", None),
    ],
)
def test_split_handle(target, expected):
    assert split_handle(target) == expected


def test_publish_that_lost_a_race_is_retryable_not_a_fork(capsys, chain):
    """kez-server answers the loser of two racing appends 409 chain_changed (spec §11)."""
    from kez_core.localserver import serve_asgi
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def chain_changed(_request):
        return JSONResponse(
            {"error": "chain_changed", "seqno": 1, "stored_id": "a" * 64, "conflicting_id": "b" * 64,
             "head_seqno": 1, "message": "the chain changed while this request was appended: "
             "another request stored seqno 1 first; fetch the chain and retry"},
            409,
        )

    app = Starlette(routes=[Route("/v1/sigchains/{alg}/{hex}", chain_changed, methods=["POST"])])
    with serve_asgi(app, name="race-server") as url:
        code, out, _ = kez(capsys, "sigchain", "publish", "--sig-server", url, "--json")
    result = json.loads(out)["servers"][0]
    assert result["outcome"] == "unreachable" and "fetch the chain and retry" in result["message"]
    assert code == 5
