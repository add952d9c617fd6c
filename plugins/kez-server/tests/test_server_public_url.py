"""Absolute URLs in answers (`sigchain_url`, WebFinger links) and the Host header.

With `--public-url` they are built from it whatever Host a client sends;
without it, from the request's URL, and the answers say `Vary: Host` so a
cache never hands one client's Host to another. The command refuses to
listen beyond loopback without `--public-url`.
"""

from __future__ import annotations

import os

import httpx
import pytest
from kez_core.keys import Signer
from kez_server.cli import main as server_main
from kez_server.config import ConfigError, ServerSettings
from kez_server.testing import running_server
from server_helpers import new_handle, registration

FORGED = {"host": "evil.example"}


def _register(http: httpx.Client) -> tuple[str, str, httpx.Response]:
    signer, handle = Signer.generate("ed25519"), new_handle()
    response = http.post("/v1/register", json=registration(signer, handle), headers=FORGED)
    assert response.status_code == 201, response.text
    return handle, signer.key_id[len("ed25519:") :], response


def test_public_url_wins_over_a_forged_host():
    with (
        running_server(public_url="https://sig.example.org/") as server,
        httpx.Client(base_url=server.url) as http,
    ):
        handle, hexkey, created = _register(http)
        chain_url = f"https://sig.example.org/v1/sigchains/ed25519/{hexkey}"
        assert created.json()["sigchain_url"] == chain_url
        found = http.get(f"/v1/u/{handle}", headers=FORGED)
        assert found.json()["sigchain_url"] == chain_url
        jrd = http.get(
            "/.well-known/webfinger",
            params={"resource": f"acct:{handle}@example.org"},
            headers=FORGED,
        )
        assert jrd.json()["links"][0]["href"] == chain_url
        assert jrd.json()["aliases"] == [f"https://sig.example.org/v1/u/{handle}"]
        for response in (created, found, jrd):
            assert "evil" not in response.text
            assert "host" not in response.headers.get("vary", "").lower()


def test_without_public_url_answers_vary_on_host():
    with running_server() as server, httpx.Client(base_url=server.url) as http:
        handle, _hexkey, created = _register(http)
        found = http.get(f"/v1/u/{handle}", headers=FORGED)
        jrd = http.get("/.well-known/webfinger", params={"resource": f"acct:{handle}@example.org"})
        assert found.json()["sigchain_url"].startswith("http://evil.example/")
        for response in (created, found, jrd):
            assert "host" in response.headers["vary"].lower()
        # answers that hold no URL do not vary
        assert "vary" not in http.get("/v1/healthz").headers


@pytest.mark.parametrize(
    ("bind", "public_url", "ok"),
    [
        ("127.0.0.1:0", None, True),
        ("127.0.0.2:0", None, True),
        ("[::1]:0", None, True),
        ("localhost:0", None, True),
        ("0.0.0.0:7878", None, False),
        ("[::]:7878", None, False),
        ("192.0.2.7:7878", None, False),
        ("kez.example.org:7878", None, False),
        ("0.0.0.0:7878", "https://example.org", True),
    ],
)
def test_public_url_required_beyond_loopback(bind, public_url, ok):
    settings = ServerSettings(server_name="example.org", bind=bind, public_url=public_url)
    if ok:
        settings.check_public_url()
    else:
        with pytest.raises(ConfigError, match="needs --public-url"):
            settings.check_public_url()


def test_command_refuses_to_listen_beyond_loopback_without_public_url(
    capsys, monkeypatch, tmp_path
):
    for var in [v for v in os.environ if v.startswith("KEZ_SERVER_")]:
        monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    code = server_main(["--server", "example.org", "--bind", "0.0.0.0:7878"])
    err = capsys.readouterr().err
    assert code == 2
    assert "needs --public-url" in err and "hint" in err and "Traceback" not in err
    assert not (tmp_path / "kez.db").exists()  # refused before opening anything
