"""The kez-server client commands without a server: usage errors and unreachable servers.

The full round trip against a real kez-server under uvicorn lives in
plugins/kez-server/tests (test_server_cli.py).
"""

from __future__ import annotations

import json

import pytest
from kez_core.sigserver_client import configured_servers, split_handle


@pytest.fixture
def closed_url(closed_port) -> str:
    """An http URL on 127.0.0.1 where connections are refused (kez_core's `closed_port`)."""
    return f"http://127.0.0.1:{closed_port}"


@pytest.fixture
def chain(kez):
    kez("identity", "new", "--no-passphrase")
    assert kez("sigchain", "init")[0] == 0
    code, out, err = kez("sigchain", "add", "github:alice", "--json")
    assert code == 0, err
    return json.loads(out)


def test_publish_needs_a_server(kez, chain, monkeypatch):
    monkeypatch.delenv("KEZ_SIG_SERVERS", raising=False)
    code, _, err = kez("sigchain", "publish")
    assert code == 2 and "--sig-server" in err


def test_publish_to_an_unreachable_server_exits_5_and_keeps_the_chain(kez, chain, closed_url):
    url = closed_url
    code, out, _ = kez("sigchain", "publish", "--sig-server", url, "--timeout", "2", "--json")
    assert code == 5
    result = json.loads(out)["servers"][0]
    assert result["outcome"] == "unreachable" and url in result["message"]
    code, out, _ = kez("sigchain", "show", "--json")
    assert code == 0 and json.loads(out)["length"] == 1


def test_verify_leaves_an_unreachable_server_out_and_says_so(kez, chain, closed_url):
    url = closed_url
    code, out, _ = kez(
        "verify",
        "default",
        "--sig-server",
        url,
        "--timeout",
        "2",
        "--github-api",
        url,
        "--retries",
        "0",
        "--json",
    )
    result = json.loads(out)["results"][0]
    assert result["servers"][0]["status"] == "unreachable"
    assert result["chain_status"] == "valid"
    assert {c["status"] for c in result["claims"]} == {"unreachable"}
    assert code == 5


def test_bad_server_urls_are_usage_errors(kez, chain):
    code, _, err = kez("sigchain", "publish", "--sig-server", "ftp://x")
    assert code == 2 and "not an http(s) URL" in err
    code, _, err = kez("handle", "register", "alice", "--server", "nope")
    assert code == 2


def test_handle_register_rejects_bad_handles_before_any_network(kez, chain, closed_url):
    code, _, err = kez("handle", "register", "-x", "--server", closed_url)
    assert code != 0
    code, _, err = kez("handle", "register", "ab", "--server", closed_url)
    assert code == 2 and "not a valid handle" in err


def test_handle_lookup_unreachable_exits_5(kez, closed_url):
    url = closed_url
    code, _, err = kez(
        "handle", "lookup", "alice@example.org", "--handle-server", url, "--timeout", "2"
    )
    assert code == 5 and "could not be reached" in err


def test_configured_servers_from_env_and_flags(monkeypatch):
    monkeypatch.setenv(
        "KEZ_SIG_SERVERS", "https://a.example, https://b.example/  https://a.example"
    )
    assert configured_servers(["https://c.example/"]) == [
        "https://c.example",
        "https://a.example",
        "https://b.example",
    ]


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


def test_publish_that_lost_a_race_is_retryable_not_a_fork(kez, chain):
    """kez-server answers the loser of two racing appends 409 chain_changed (spec §11)."""
    from kez_core.localserver import serve_asgi
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def chain_changed(_request):
        return JSONResponse(
            {
                "error": "chain_changed",
                "seqno": 1,
                "stored_id": "a" * 64,
                "conflicting_id": "b" * 64,
                "head_seqno": 1,
                "message": "the chain changed while this request was appended: "
                "another request stored seqno 1 first; fetch the chain and retry",
            },
            409,
        )

    app = Starlette(routes=[Route("/v1/sigchains/{alg}/{hex}", chain_changed, methods=["POST"])])
    with serve_asgi(app, name="race-server") as url:
        code, out, _ = kez("sigchain", "publish", "--sig-server", url, "--json")
    result = json.loads(out)["servers"][0]
    assert result["outcome"] == "unreachable" and "fetch the chain and retry" in result["message"]
    assert code == 5
