"""Key changes that never stop half-way: rotate the primary, add a recovery key, add an inbox key.

Each of these puts a new secret on disk and a new link in the chain, and the
order of the two decides what a failure leaves behind. A rotate link
appended before its key is stored retires the only key the identity has, so
every change here follows one order (docs/sigchain.md, "Changing keys"):

1. obtain everything that can fail or ask the user: the signing key, the
   new key, passphrases (the callables passed in are called here, first);
2. build and check the link in memory (`SigchainBuilder`);
3. store the new secret, never over an existing file;
4. append the link (atomically, under the chain's lock);
5. rotate only: install the new key as the identity's primary.

A failure in 1-2 writes nothing. A failure in 3-4 removes the stored secret
again unless the chain turns out to list it. A crash after 3 leaves a state
that `Keystore.settle` (run whenever the identity is opened) finishes or
undoes by reading the chain. A CLI command is then: parse, call one of
these, render.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import attrs

from .errors import DecodeError, KezError, StoreError
from .keyfiles import exclusive_write, private_dir
from .keys import Signer
from .keystore import Keystore
from .sigchain import ChainState, Link, SigchainBuilder, append_links, read_chain
from .timefmt import now

T = TypeVar("T")
Provider = Callable[[], T]


@attrs.frozen
class KeyChange:
    """What a key change appended: the link, the chain's state after it, the key it added."""

    link: Link
    state: ChainState
    key_id: str
    signed_by: str


def rotate(
    store: Keystore,
    name: str,
    chain: Path,
    builder: SigchainBuilder,
    *,
    signer: Provider[Signer],
    successor: Provider[Signer],
    seal: Provider[bytes | None],
) -> KeyChange:
    """Replace the primary of identity `name` with `successor()`, signed by `signer()`.

    `seal()` gives the passphrase the new secret is stored under (None: unencrypted).
    """
    signing, new, passphrase = signer(), successor(), seal()
    link = builder.rotate(signing, new)
    pem = new.alg.secret_to_pem(new.secret, passphrase)
    staged = store.staged_path(name, new.key_id)
    with store.locked(name):
        state = _store_then_append(
            store,
            chain,
            link,
            save=lambda: store.stage_primary(name, new.key_id, pem),
            listed=lambda s: s.current_primary == new.key_id,
            undo=lambda: _remove_if_ours(staged, pem),
        )
        store.settle(name)  # installs the staged key: the chain now names it
    return KeyChange(link, state, new.key_id, signing.key_id)


def add_recovery(
    store: Keystore,
    name: str,
    chain: Path,
    builder: SigchainBuilder,
    *,
    primary: Provider[Signer],
    key: str | None = None,
    save_to: Path | Callable[[bytes], None] | None = None,
    seal: Provider[bytes | None] = lambda: None,
) -> KeyChange:
    """Add recovery key `key`, or generate one and store its secret with `save_to` first.

    `save_to` is a file that must not exist yet (a key file is never
    replaced: it may hold a recovery key the chain lists), or a callable
    that takes the PEM (e.g. to print it). `seal()` gives its passphrase.
    """
    if isinstance(save_to, Path) and (save_to.exists() or save_to.is_symlink()):
        raise StoreError(
            f"{save_to} already exists; a key file is never overwritten",
            hint="choose another FILE, or move that one away if it holds no key you need",
        )
    signing = primary()
    pem = b""
    if save_to is not None:
        passphrase = seal()
        recovery = Signer.generate(signing.alg.name, store.registry)
        key = recovery.key_id
        pem = recovery.alg.secret_to_pem(recovery.secret, passphrase)
    if key is None:
        raise ValueError("add_recovery needs a key id or somewhere to save a new key")
    link = builder.add_recovery(signing, key)
    private_dir(chain.parent)
    save: Callable[[], object] = lambda: None  # noqa: E731
    undo: Callable[[], None] = lambda: None  # noqa: E731
    if isinstance(save_to, Path):
        save = lambda: _create_key_file(save_to, pem)  # noqa: E731
        undo = lambda: _remove_if_ours(save_to, pem)  # noqa: E731
    elif save_to is not None:
        save = lambda: save_to(pem)  # noqa: E731
    state = _store_then_append(
        store, chain, link, save=save, listed=lambda s: key in s.recovery_keys, undo=undo
    )
    return KeyChange(link, state, key, signing.key_id)


def add_inbox(
    store: Keystore,
    name: str,
    chain: Path,
    builder: SigchainBuilder,
    *,
    signer: Provider[Signer],
    passphrase: Provider[bytes | None],
    lifetime: timedelta,
    at: datetime | None = None,
) -> KeyChange:
    """Publish a fresh X25519 inbox key; its secret is stored (sealed like the identity's key) first.

    `passphrase()` is asked only when the identity's key is encrypted.
    """
    from .messaging import InboxKeyring, InboxSecret

    record = store.get(name)
    signing = signer()
    sealed_with = passphrase() if record.encrypted else None
    at = at or now()
    try:
        expires = at + lifetime
    except OverflowError as exc:
        raise DecodeError("the inbox key's lifetime goes past the year 9999") from exc
    secret = InboxSecret.generate()
    link = builder.add_inbox(signing, secret.key_id, expires_at=expires, at=at)
    keyring = InboxKeyring(record.path)
    state = _store_then_append(
        store,
        chain,
        link,
        save=lambda: keyring.add(secret, expires_at=expires, passphrase=sealed_with, at=at),
        listed=lambda s: any(k.key == secret.key_id for k in s.inbox_keys.values()),
        undo=lambda: keyring.discard(secret.key_id),
    )
    keyring.prune(at)  # secrets no message can arrive for any more
    return KeyChange(link, state, secret.key_id, signing.key_id)


def _create_key_file(path: Path, pem: bytes) -> None:
    try:
        exclusive_write(path, pem, 0o600)
    except FileExistsError as exc:
        raise StoreError(f"{path} already exists; a key file is never overwritten") from exc
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _remove_if_ours(path: Path, data: bytes) -> None:
    """Delete `path` if it holds exactly `data` (the file this change wrote, and nothing else)."""
    try:
        if path.read_bytes() == data:
            path.unlink()
    except FileNotFoundError:
        pass


def _store_then_append(
    store: Keystore,
    chain: Path,
    link: Link,
    *,
    save: Callable[[], object],
    listed: Callable[[ChainState], bool],
    undo: Callable[[], None],
) -> ChainState:
    """`save()` the new secret, then append `link`; on any failure `undo()` unless the chain lists the key.

    (An interrupt can arrive after the chain file was renamed into place, or
    after the secret's file was linked into place; only the disk can say
    what happened, so that is what is read.)
    """
    try:
        save()
        return append_links(chain, [link], registry=store.registry)
    except BaseException:
        with contextlib.suppress(Exception):
            state = _chain_state(store, chain)
            if state is None or not listed(state):
                undo()
        raise


def _chain_state(store: Keystore, chain: Path) -> ChainState | None:
    if not chain.is_file():
        return None
    try:
        return read_chain(chain, registry=store.registry)
    except KezError:
        return None
