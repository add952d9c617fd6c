"""Builders for the kez-server tests: chains, registrations, a few HTTP helpers."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from kez_core.claim import create_claim
from kez_core.keys import Signer
from kez_core.sigchain import SigchainBuilder
from kez_core.signed import sign
from kez_core.timefmt import format_time, now

NDJSON = {"content-type": "application/x-ndjson"}


def chain(links: int = 3, alg: str = "ed25519") -> tuple[Signer, SigchainBuilder]:
    """A valid chain of `links` links (claims on dns:uN.example.org) by a new key."""
    signer = Signer.generate(alg)
    builder = SigchainBuilder()
    for i in range(links):
        extend(builder, signer, i)
    return signer, builder


def extend(builder: SigchainBuilder, signer: Signer, i: int | None = None) -> bytes:
    """Append one claim link; returns its line."""
    i = secrets.randbelow(10**9) if i is None else i
    claim = create_claim(signer, f"dns:u{i}-{secrets.token_hex(3)}.example.org")
    return builder.claim(signer, claim).line


def fork_of(builder: SigchainBuilder, upto: int) -> SigchainBuilder:
    """A builder holding the first `upto` links of `builder`, to grow a conflicting branch."""
    return SigchainBuilder.resume(builder.lines[:upto])


def body(lines: list[bytes]) -> bytes:
    return b"".join(lines)


def identity_path(identity: str) -> str:
    alg, _, hexkey = identity.partition(":")
    return f"/v1/sigchains/{alg}/{hexkey}"


def new_handle(prefix: str = "u") -> str:
    return f"{prefix}{secrets.token_hex(5)}"


def registration(
    signer: Signer,
    handle: str,
    server: str = "example.org",
    *,
    created_at: datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A signed handle_registration envelope, as a dict."""
    payload = {
        "handle": handle,
        "primary": signer.key_id,
        "server": server,
        "created_at": format_time(created_at or now()),
        **extra,
    }
    return sign("handle_registration", payload, signer, namespace="chat").to_dict()


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is `status` with a typed JSON error body; returns the body."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    data = response.json()
    assert isinstance(data, dict) and isinstance(data.get("error"), str), data
    assert isinstance(data.get("message"), str) and data["message"], data
    if code is not None:
        assert data["error"] == code, data
    return data


def pretty(line: bytes) -> bytes:
    """The same link in another JSON spelling (indented, keys reordered)."""
    return (
        json.dumps(json.loads(line), indent=1, sort_keys=False).replace("\n", " ").encode() + b"\n"
    )


def new_database(cluster) -> str:
    """A fresh, empty database on the session's cluster; its postgresql:// URL."""
    import psycopg

    name = f"kez_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(cluster.get_uri(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return cluster.get_uri(name)


def head_revision() -> str:
    """The newest schema revision shipped in kez_server/migrations (what `migrate` brings a database to)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", "kez_server:migrations")
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head
