"""Commands that read a kez-server, against a hostile one, in both output modes.

The server is a real HTTP server on 127.0.0.1 (Starlette under uvicorn)
that speaks the kez-server API shapes (docs/spec.md, "Server API") and puts
a corpus string in every field and error message it can: handle lookups
(`/v1/u/{handle}`), chain reads and pushes (`/v1/sigchains/…`), its name
(`/v1/healthz`) and registrations (`/v1/register`). The CLI reaches it only
through its configurable URLs (`--handle-server`, `--sig-server`, `--server`).
"""

from __future__ import annotations

import json
import os

import pytest
from corpus import HOSTILE, check
from kez_cli.main import main
from kez_core.localserver import serve_asgi
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

NAMES = sorted(HOSTILE)
SAY: dict[str, object] = {
    "text": "",
    "push_ok": False,
}  # what the server says now (one server for the module, one test at a time)


def _json(value, status: int = 200) -> Response:
    # ASCII JSON: its escapes carry lone surrogates too
    return Response(json.dumps(value), status_code=status, media_type="application/json")


async def user(request: Request) -> Response:
    handle = request.path_params["handle"]
    text = SAY["text"]
    if handle.startswith("err"):
        return _json({"error": text, "message": text}, 500)
    if handle.startswith("bad"):  # answers for another handle
        return _json({"fqhn": text, "primary": text})
    return _json(
        {
            "fqhn": f"{handle}@example.org",
            "primary": text,
            "identity": text,
            "sigchain_url": text,
            "registered_at": text,
        }
    )


async def chain(request: Request) -> Response:
    if request.method == "POST":
        if SAY.get("push_ok"):
            return _json({"appended": 0, "head_seqno": 1})
        return _json({"error": SAY["text"], "message": SAY["text"], "link_ids": [SAY["text"]]}, 409)
    return _json({"error": SAY["text"], "message": SAY["text"]}, 500)


async def healthz(request: Request) -> Response:
    return _json({"server": "example.org"})


async def register(request: Request) -> Response:
    text = SAY["text"]
    if (await request.json())["payload"]["handle"] == "taken":
        return _json({"error": text, "message": text}, 409)
    return _json(
        {
            "fqhn": text,
            "primary": text,
            "identity": text,
            "sigchain_url": text,
            "registered_at": text,
        },
        201,
    )


APP = Starlette(
    routes=[
        Route("/v1/u/{handle}", user),
        Route("/v1/sigchains/{alg}/{key}", chain, methods=["GET", "POST"]),
        Route("/v1/healthz", healthz),
        Route("/v1/register", register, methods=["POST"]),
    ]
)


@pytest.fixture(scope="module")
def server():
    with serve_asgi(APP, name="hostile kez-server") as url:
        yield url


@pytest.fixture(scope="module")
def own_home(tmp_path_factory):
    """One keystore with an identity and its chain for the module (setup is CLI calls)."""
    home = tmp_path_factory.mktemp("own")
    old = os.environ.get("KEZ_HOME")
    os.environ["KEZ_HOME"] = str(home)
    try:
        assert main(["identity", "new", "--no-passphrase"]) == 0
        assert main(["sigchain", "init"]) == 0
    finally:
        os.environ["KEZ_HOME"] = old or ""
    return home


@pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("name", NAMES)
def test_hostile_server_answers(kez, monkeypatch, server, own_home, name, json_mode):
    monkeypatch.setenv("KEZ_HOME", str(own_home))
    SAY.update(text=HOSTILE[name], push_ok=False)
    mode = ["--json"] if json_mode else []
    net = ["--timeout", "5"]
    i = NAMES.index(name)
    for who in (f"ok{i:02d}", f"err{i:02d}", f"bad{i:02d}"):
        check(
            kez("handle", "lookup", f"{who}@example.org", "--handle-server", server, *net, *mode),
            json_mode=json_mode,
        )
    check(
        kez(
            "verify",
            f"ok{i:02d}@example.org",
            "--handle-server",
            server,
            "--no-snapshot",
            *net,
            *mode,
        ),
        json_mode=json_mode,
    )
    check(kez("sigchain", "publish", "--sig-server", server, *net, *mode), json_mode=json_mode)
    check(
        kez("verify", "default", "--sig-server", server, "--no-snapshot", *net, *mode),
        json_mode=json_mode,
    )
    SAY["push_ok"] = True  # `handle register` pushes the chain first
    refused = kez("handle", "register", "taken", "--server", server, *net, *mode)
    check(refused, json_mode=json_mode)
    assert refused.exit_code == 3
    done = kez("handle", "register", "alice", "--server", server, *net, *mode)  # hostile fields
    doc = check(done, json_mode=json_mode, codes=frozenset({0}))
    assert doc["fqhn"] == HOSTILE[name] if json_mode else done.stdout.startswith("registered ")
