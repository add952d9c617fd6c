"""The example `web` channel against a real HTTP server, and `kez verify` / `kez claim publish` through it."""

from __future__ import annotations

import asyncio
import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kez_core.protocols import ChannelContext
from kez_core.testing import ChannelContract
from kez_example.web import WebChannel


class _Handler(SimpleHTTPRequestHandler):
    fail_with: int | None = None

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        if type(self).fail_with:
            self.send_response(type(self).fail_with)
            self.send_header("Retry-After", "1")
            self.end_headers()
            return
        super().do_GET()


@pytest.fixture
def site(tmp_path):
    """A real HTTP server on 127.0.0.1 serving a document root."""
    root = tmp_path / "site"
    root.mkdir()
    handler = type("Handler", (_Handler,), {"fail_with": None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield root, base, handler
    server.shutdown()
    server.server_close()


class TestWebChannelContract(ChannelContract):
    valid_handles = ["example.org", "Example.ORG.", "sub.example.co.uk"]
    invalid_handles = ["", "no_dots", "-bad-.example", "a b.example"]

    @pytest.fixture
    def channel(self):
        return WebChannel()

    @pytest.fixture
    def unreachable_context(self, closed_port):
        return ChannelContext(
            options={"web_base_url": f"http://127.0.0.1:{closed_port}"}, timeout=2
        )


def test_fetch_statuses(site, closed_port):
    root, base, handler = site
    channel = WebChannel()
    ctx = ChannelContext(options={"web_base_url": base}, timeout=5)
    missing = asyncio.run(channel.fetch("example.org", ctx))
    assert missing.reachable and not missing.candidates and "404" in missing.reason
    (root / ".well-known").mkdir()
    (root / ".well-known" / "kez.txt").write_text("hello")
    found = asyncio.run(channel.fetch("example.org", ctx))
    assert found.candidates[0].text == "hello" and found.candidates[0].source.endswith(
        "/.well-known/kez.txt"
    )
    handler.fail_with = 503
    busy = asyncio.run(channel.fetch("example.org", ctx))
    assert not busy.reachable and busy.retry_after == 1.0
    down = asyncio.run(
        channel.fetch(
            "example.org",
            ChannelContext(options={"web_base_url": f"http://127.0.0.1:{closed_port}"}, timeout=2),
        )
    )
    assert not down.reachable and "ConnectError" in down.reason


def test_publish_then_verify_online_offline_and_history(site, kez, tmp_path):
    root, base, handler = site
    kez("identity", "new", "--no-passphrase")
    kez("sigchain", "init")
    code, out, err = kez("claim", "publish", "web:Example.org", "--web-root", str(root), "--json")
    assert code == 0, err
    published = json.loads(out)
    assert published["seqno"] == 1 and not published["reused"]
    assert "```kez" in (root / ".well-known" / "kez.txt").read_text()
    # Publishing again reuses the claim already in the chain.
    code, out, _ = kez("claim", "publish", "web:example.org", "--web-root", str(root), "--json")
    assert (
        json.loads(out)["reused"] is True and json.loads(out)["claim_id"] == published["claim_id"]
    )

    code, out, err = kez("verify", "default", "--web-base-url", base, "--json")
    assert code == 0, err
    result = json.loads(out)["results"][0]
    assert result["chain_status"] == "valid" and result["ok"]
    assert [c["status"] for c in result["claims"]] == ["valid"]
    assert result["claims"][0]["source"] == f"{base}/.well-known/kez.txt"
    assert result["snapshot"]

    code, out, _ = kez("verify", "web:example.org", f"--web-base-url={base}", "--json")
    assert code == 0 and json.loads(out)["results"][0]["status"] == "valid"

    handler.fail_with = (
        503  # the site goes down: online says unreachable (exit 5), offline still knows
    )
    code, out, _ = kez("verify", "default", "--web-base-url", base, "--retries", "0", "--json")
    assert code == 5 and json.loads(out)["results"][0]["claims"][0]["status"] == "unreachable"
    code, out, _ = kez("verify", "default", "--offline", "--json")
    offline = json.loads(out)["results"][0]
    assert code == 0 and offline["offline"] and offline["claims"][0]["status"] == "valid"
    handler.fail_with = None

    (root / ".well-known" / "kez.txt").write_text("nothing here")
    code, out, _ = kez("verify", "default", "--web-base-url", base, "--json")
    assert code == 1 and json.loads(out)["results"][0]["claims"][0]["status"] == "not_found"

    code, _, _ = kez("sigchain", "revoke", published["claim_id"], "--reason", "moved")
    code, out, _ = kez("verify", "default", "--web-base-url", base, "--json")
    assert code == 0 and json.loads(out)["results"][0]["claims"][0]["status"] == "revoked"

    from kez_core.keystore import Keystore
    from kez_core.verifier import SnapshotStore

    store = Keystore()
    history = SnapshotStore(store.home).history(store.get().identity_id, published["claim_id"])
    assert [h["status"] for h in history] == [
        "valid",
        "unreachable",
        "valid",
        "not_found",
        "revoked",
    ]


def test_unknown_flag_and_missing_root_are_clear_errors(kez):
    kez("identity", "new", "--no-passphrase")
    code, _, err = kez("verify", "web:example.org", "--no-such-flag", "x")
    assert code == 2 and "--web-base-url" in err
    code, _, err = kez("claim", "publish", "web:example.org")
    assert code == 2 and "--web-root" in err  # a missing setting: ChannelConfigError
