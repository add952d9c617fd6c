"""Key changes fail at every step and leave an identity that can still sign (docs/sigchain.md §12).

Each change (rotate, add a recovery key, add an inbox key) is run again and
again with the k-th file-system call failing, for every k until the change
runs through. Three kinds of failure: an OSError (the change's own clean-up
runs), a KeyboardInterrupt, and a crash (that call and every later one
fails, as when the process is killed or the power goes: no clean-up can
run). After each, a fresh keystore opens the identity (which settles a
half-done change) and the identity must sign a new link, its chain must
validate, its state must be the old one or the new one, and no key file the
chain lists may have changed.
"""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta
from pathlib import Path

import pytest
from kez_core import keychange
from kez_core.builtins import bip340, ed25519, encodings
from kez_core.claim import create_claim
from kez_core.errors import PassphraseError, StoreError
from kez_core.keys import Signer
from kez_core.keystore import Keystore
from kez_core.messaging import InboxKeyring
from kez_core.registry import Registry
from kez_core.sigchain import SigchainBuilder, append_links, iter_file_lines, read_chain

FS_CALLS = ("open", "replace", "rename", "link", "unlink", "fsync", "mkdir", "chmod")


class Crash(BaseException):
    """The process died at this call."""


@pytest.fixture(scope="module")
def registry():
    return Registry(plugins=[ed25519, bip340, encodings], entry_points=False, env={})


@contextlib.contextmanager
def failing(k: int, kind: str):
    """Make the k-th file-system call fail (`error`, `interrupt`), or it and all later ones (`crash`)."""
    originals = {name: getattr(os, name) for name in FS_CALLS}
    count = [0]
    hit = [False]

    def wrap(name):
        original = originals[name]

        def call(*args, **kwargs):
            if name == "open" and not (args[1] & (os.O_CREAT | os.O_WRONLY | os.O_RDWR)):
                return original(*args, **kwargs)  # reads and directory fsync handles
            count[0] += 1
            if count[0] == k or (kind == "crash" and count[0] > k):
                hit[0] = True
                if kind == "error":
                    raise OSError(28, "No space left on device (injected)")
                if kind == "interrupt":
                    raise KeyboardInterrupt
                raise Crash(f"killed at {name}")
            return original(*args, **kwargs)

        return call

    for name in FS_CALLS:
        setattr(os, name, wrap(name))
    try:
        yield hit
    finally:
        for name, original in originals.items():
            setattr(os, name, original)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def builder_for(store: Keystore, chain: Path) -> SigchainBuilder:
    with open(chain, "rb") as fp:
        return SigchainBuilder.resume(
            list(iter_file_lines(fp)), registry=store.registry, keep_lines=False
        )


def setup_identity(tmp_path, registry):
    store = Keystore(tmp_path / "home", registry)
    record = store.create("alice", "ed25519", None)
    chain = store.chain_path(record.identity_id)
    recovery_file = tmp_path / "recovery.pem"
    keychange.add_recovery(
        store,
        "alice",
        chain,
        SigchainBuilder(registry=registry, keep_lines=False),
        primary=lambda: store.signer("alice", lambda: None),
        save_to=recovery_file,
    )
    return store, chain, recovery_file


def still_works(
    tmp_path, registry, chain: Path, before: dict[str, bytes], recovery_file: Path, recovery: bytes
):
    """A fresh start: the identity settles, signs a new link, and nothing listed was overwritten."""
    store = Keystore(tmp_path / "home", registry)
    record = store.get("alice")  # settles a half-done change
    state = read_chain(chain, registry=registry)
    assert record.key_id == state.current_primary
    signer = store.signer("alice", lambda: b"new pass")
    builder = builder_for(store, chain)
    claim = create_claim(signer, "dns:example.org", registry=registry)
    after = append_links(chain, [builder.claim(signer, claim)], registry=registry)
    assert after.length == state.length + 1
    assert recovery_file.read_bytes() == recovery
    folder = Path(record.path)
    assert not list(folder.glob("pending-*")), "a settled identity keeps no staged key"
    for name, data in before.items():  # key files are never overwritten (retired ones included)
        if name.endswith(".pem") and (folder / name).exists() and name != "secret.pem":
            assert (folder / name).read_bytes() == data, name
    return state


def run_every_failure(tmp_path, registry, change, kind, check=None):
    """Run `change(store, chain)` with the k-th call failing, for k = 1, 2, … until it runs through."""
    for k in range(1, 200):
        case = tmp_path / f"{kind}-{k}"
        case.mkdir()
        store, chain, recovery_file = setup_identity(case, registry)
        recovery = recovery_file.read_bytes()
        before = snapshot(store.home / "identities" / "alice")
        old_primary = read_chain(chain, registry=registry).current_primary
        with failing(k, kind) as hit:
            try:
                result = change(store, chain)
            except (OSError, StoreError, KeyboardInterrupt, Crash):
                result = None
        state = still_works(case, registry, chain, before, recovery_file, recovery)
        if check:
            check(case, store, state, old_primary, result)
        if not hit[0]:
            assert result is not None
            return k
    raise AssertionError("the change never ran through")


@pytest.mark.parametrize("kind", ["error", "interrupt", "crash"])
def test_rotate_fails_at_every_step(tmp_path, registry, kind):
    def change(store, chain):
        return keychange.rotate(
            store,
            "alice",
            chain,
            builder_for(store, chain),
            signer=lambda: store.signer("alice", lambda: None),
            successor=lambda: Signer.generate("ed25519", registry),
            seal=lambda: b"new pass",
        )

    def check(case, store, state, old_primary, result):
        fresh = Keystore(case / "home", registry)
        folder = Path(fresh.get("alice").path)
        if state.current_primary != old_primary:  # the new state: the old key is kept, retired
            retired = folder / f"retired-{old_primary.split(':', 1)[1]}.pem"
            assert retired.exists()
            assert fresh.get("alice").encrypted

    steps = run_every_failure(tmp_path, registry, change, kind, check)
    assert steps > 5  # the change has that many file-system steps, each one was failed


@pytest.mark.parametrize("kind", ["error", "interrupt", "crash"])
def test_generated_recovery_key_fails_at_every_step(tmp_path, registry, kind):
    def change(store, chain):
        return keychange.add_recovery(
            store,
            "alice",
            chain,
            builder_for(store, chain),
            primary=lambda: store.signer("alice", lambda: None),
            save_to=chain.parent.parent / "second-recovery.pem",
            seal=lambda: b"pw",
        )

    def check(case, store, state, old_primary, result):
        saved = store.home / "second-recovery.pem"
        listed = len(state.recovery_keys) == 2
        if listed:
            assert saved.exists()  # a listed recovery key's secret is never lost
        elif kind != "crash":
            assert not saved.exists()  # rolled back: no key file the chain does not list

    run_every_failure(tmp_path, registry, change, kind, check)


@pytest.mark.parametrize("kind", ["error", "interrupt", "crash"])
def test_inbox_key_fails_at_every_step(tmp_path, registry, kind):
    def change(store, chain):
        return keychange.add_inbox(
            store,
            "alice",
            chain,
            builder_for(store, chain),
            signer=lambda: store.signer("alice", lambda: None),
            passphrase=lambda: None,
            lifetime=timedelta(days=7),
        )

    def check(case, store, state, old_primary, result):
        stored = {r.key for r in InboxKeyring(store.identities_dir / "alice").records()}
        listed = {k.key for k in state.inbox_keys.values()}
        assert listed <= stored  # a published inbox key always has its secret
        if kind != "crash":
            assert stored == listed  # an unpublished one was removed again

    run_every_failure(tmp_path, registry, change, kind, check)


@pytest.mark.parametrize("step", ["signer", "successor", "seal"])
@pytest.mark.parametrize(
    "failure", [PassphraseError("the two passphrases differ"), KeyboardInterrupt()]
)
def test_rotate_writes_nothing_until_every_input_is_in_hand(tmp_path, registry, step, failure):
    store, chain, _ = setup_identity(tmp_path, registry)
    before = snapshot(store.home)

    def provider(name, value):
        def get():
            if name == step:
                raise failure
            return value()

        return get

    with pytest.raises(type(failure)):
        keychange.rotate(
            store,
            "alice",
            chain,
            builder_for(store, chain),
            signer=provider("signer", lambda: store.signer("alice", lambda: None)),
            successor=provider("successor", lambda: Signer.generate("ed25519", registry)),
            seal=provider("seal", lambda: b"pw"),
        )
    assert snapshot(store.home) == before


def test_recovery_key_file_is_never_overwritten(tmp_path, registry):
    store, chain, recovery_file = setup_identity(tmp_path, registry)
    before = snapshot(store.home)
    kept = recovery_file.read_bytes()
    with pytest.raises(StoreError, match="never overwritten"):
        keychange.add_recovery(
            store,
            "alice",
            chain,
            builder_for(store, chain),
            primary=lambda: store.signer("alice", lambda: None),
            save_to=recovery_file,
        )
    assert recovery_file.read_bytes() == kept
    assert snapshot(store.home) == before


def test_a_staged_key_the_chain_names_is_installed_at_the_next_open(tmp_path, registry):
    """The crash between "link appended" and "key installed": the record still names the old key."""
    store, chain, _ = setup_identity(tmp_path, registry)
    old = store.signer("alice", lambda: None)
    new = Signer.generate("nostr", registry)
    link = builder_for(store, chain).rotate(old, new)
    with store.locked("alice"):
        store.stage_primary("alice", new.key_id, new.alg.secret_to_pem(new.secret, None))
        append_links(chain, [link], registry=registry)
    # killed here: nothing installed yet
    fresh = Keystore(store.home, registry)
    record = fresh.get("alice")
    assert record.key_id == new.key_id and record.alg == "nostr" and not record.encrypted
    assert fresh.signer("alice", lambda: None).secret == new.secret
    folder = Path(record.path)
    assert (folder / f"retired-{old.key_id.split(':', 1)[1]}.pem").exists()


def test_a_staged_key_the_chain_does_not_name_is_removed(tmp_path, registry):
    store, chain, _ = setup_identity(tmp_path, registry)
    new = Signer.generate("ed25519", registry)
    staged = store.stage_primary(
        "alice", new.key_id, new.alg.secret_to_pem(new.secret, None)
    )  # killed before the link was appended
    assert staged.exists()
    fresh = Keystore(store.home, registry)
    assert fresh.get("alice").key_id == store.signer("alice", lambda: None).key_id
    assert not staged.exists()


def test_a_staged_key_is_kept_while_the_chain_cannot_be_read(tmp_path, registry):
    store, chain, _ = setup_identity(tmp_path, registry)
    new = Signer.generate("ed25519", registry)
    staged = store.stage_primary("alice", new.key_id, new.alg.secret_to_pem(new.secret, None))
    saved = chain.read_bytes()
    chain.write_bytes(b"not a chain\n")
    Keystore(store.home, registry).get("alice")
    assert staged.exists()  # nothing is deleted on the word of a chain that cannot be read
    chain.write_bytes(saved)
