"""Suite-wide settings: strict plugin loading and a private KEZ_HOME per test."""

from __future__ import annotations

import os

import pytest

# CI must fail on a plugin that does not load, not skip it (DESIGN.md §1).
os.environ.setdefault("KEZ_STRICT_PLUGINS", "1")


@pytest.fixture(autouse=True)
def _private_kez_home(kez_home):
    """Never touch the real user's keystore; no passphrase prompts.

    `kez_home` comes from kez_core's pytest plugin (`kez_core.testing.pytest_plugin`),
    so this home and the one the `kez` fixture runs in are the same directory.
    """
    return kez_home
