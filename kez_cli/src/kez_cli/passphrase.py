"""Where passphrases come from, without ever hanging a pipeline.

Order: `KEZ_PASSPHRASE` (empty means "no passphrase"), then a prompt when
stdin is a terminal, else none. A new key with no passphrase is stored
unencrypted and the command says so on stderr; an encrypted key with no way
to get its passphrase is a clear error, never a blocked read.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable

from kez_core.errors import PassphraseError
from kez_core.keystore import passphrase_bytes

from .output import note

ENV = "KEZ_PASSPHRASE"


def interactive() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def for_new_key(*, no_passphrase: bool, where: str) -> bytes | None:
    """The passphrase to encrypt a new key with, or None to store it unencrypted."""
    if no_passphrase:
        return None
    env = os.environ.get(ENV)
    if env is not None:
        return passphrase_bytes(env, source=ENV) or None
    if not interactive():
        note(f"no terminal and {ENV} unset: storing the key unencrypted in {where}")
        return None
    first = getpass.getpass("Passphrase for the new key (empty for none): ")
    if not first:
        note("no passphrase given: the key is stored unencrypted")
        return None
    encoded = passphrase_bytes(first, source="the terminal")
    if getpass.getpass("Repeat the passphrase: ") != first:
        raise PassphraseError("the two passphrases differ", hint="run the command again")
    return encoded


def provider(label: str) -> Callable[[], bytes | None]:
    """A callable that obtains the passphrase of an existing key only when it is needed."""
    cache: list[bytes | None] = []

    def get() -> bytes | None:
        if cache:
            return cache[0]
        env = os.environ.get(ENV)
        if env is not None:
            value: bytes | None = passphrase_bytes(env, source=ENV)
        elif interactive():
            value = passphrase_bytes(
                getpass.getpass(f"Passphrase for {label}: "), source="the terminal"
            )
        else:
            raise PassphraseError(
                f"{label} is encrypted and there is no terminal to ask for its passphrase",
                hint=f"set {ENV}",
            )
        cache.append(value)
        return value

    return get
