"""Builders for the inbox tests: registered handles, envelopes, signed requests, SSE reading."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import Any

import httpx
from kez_core.keys import Signer
from kez_core.messaging.inbox_auth import sign_inbox_request
from kez_core.sigchain import SigchainBuilder
from server_helpers import NDJSON, identity_path, new_handle, registration


def envelope(bucket: int = 1024) -> str:
    """A well-formed envelope text (enc + tag + one padding bucket of random bytes)."""
    raw = os.urandom(32 + bucket + 16)
    return "kez:e1:" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def register(
    client: httpx.Client, signer: Signer | None = None, server: str = "example.org"
) -> tuple[Signer, str]:
    signer = signer or Signer.generate()
    handle = new_handle("in")
    answer = client.post("/v1/register", json=registration(signer, handle, server))
    assert answer.status_code == 201, answer.text
    return signer, handle


def with_device(client: httpx.Client) -> tuple[Signer, Signer, str]:
    """A handle whose chain (pushed to the server) adds a device key: (primary, device, handle)."""
    primary, device = Signer.generate(), Signer.generate("nostr")
    builder = SigchainBuilder()
    builder.add_device(primary, device, "laptop")
    pushed = client.post(
        identity_path(primary.key_id), content=b"".join(builder.lines), headers=NDJSON
    )
    assert pushed.status_code == 200, pushed.text
    _, handle = register(client, primary)
    return primary, device, handle


def auth(
    signer: Signer, path: str, bound: str, *, ts: int | None = None, device: bool = False
) -> dict[str, str]:
    return {
        "x-kez-auth": sign_inbox_request(
            signer,
            "GET" if not bound.startswith("through") else "DELETE",
            path,
            bound,
            ts,
            device=device,
        )
    }


def fetch(
    client: httpx.Client, signer: Signer, handle: str, since: int = 0, **params: Any
) -> httpx.Response:
    path = f"/v1/inbox/{handle}"
    return client.get(
        path, params={"since": since, **params}, headers=auth(signer, path, f"since={since}")
    )


def post(
    client: httpx.Client, handle: str, text: str | None = None, **extra: Any
) -> httpx.Response:
    return client.post(
        "/v1/messages",
        json={"to": handle, "envelope": envelope() if text is None else text, **extra},
    )


async def read_events(
    base_url: str, signer: Signer, handle: str, since: int, want: int, timeout: float = 10
) -> list[dict[str, Any]]:
    """Open the live stream, collect `want` message events (or time out), close."""
    path = f"/v1/inbox/{handle}/live"
    got: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout) as client:
        async with client.stream(
            "GET", path, params={"since": since}, headers=auth(signer, path, f"since={since}")
        ) as response:
            assert response.status_code == 200, await response.aread()

            async def collect() -> None:
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        got.append(json.loads(line[6:]))
                        if len(got) >= want:
                            return

            try:
                await asyncio.wait_for(collect(), timeout)
            except TimeoutError:
                pass
    return got
