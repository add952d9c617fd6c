"""Helpers for tests of code that uses the http transport: register a handle on a kez-server."""

from __future__ import annotations

import secrets
from typing import Any

__all__ = ["register_handle"]


def register_handle(base_url: str, signer: Any, server_name: str, handle: str | None = None) -> str:
    """Register `handle` (default: a new random one) for `signer` on the server at `base_url`."""
    import httpx
    from kez_core.signed import sign
    from kez_core.timefmt import format_time, now

    handle = handle or f"h{secrets.token_hex(6)}"
    payload = {
        "handle": handle,
        "primary": signer.key_id,
        "server": server_name,
        "created_at": format_time(now()),
    }
    envelope = sign("handle_registration", payload, signer, namespace="chat").to_dict()
    answer = httpx.post(base_url.rstrip("/") + "/v1/register", json=envelope, timeout=10)
    if answer.status_code != 201:
        raise RuntimeError(
            f"registering {handle!r} failed: {answer.status_code} {answer.text[:200]}"
        )
    return handle
