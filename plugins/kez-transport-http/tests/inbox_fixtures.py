"""Small builders of the http transport tests."""

from __future__ import annotations

import base64
import os
import secrets


def envelope(bucket: int = 1024) -> bytes:
    raw = os.urandom(48 + bucket)
    return b"kez:e1:" + base64.urlsafe_b64encode(raw).rstrip(b"=")


def routing() -> str:
    return secrets.token_hex(32)
