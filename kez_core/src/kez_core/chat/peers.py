"""Who a message goes to: a peer named the way a person names them, and its pinned chain.

`kez message send <peer>` takes a handle (`alice@kez.example`), a chain file,
a contact name, a local identity name or an identity id. A handle is asked
of its server (through a `HandleDirectory`, which the caller supplies: the
CLI's kez-server client), its chain fetched, merged with the local copy and
validated; the first answer pins the handle to that identity. Later the
server is asked again when it can be reached, and the pinned chain is used
when it cannot (seeds 000, "server independence"). A handle that now names
another identity is refused (`PeerChanged`), never followed silently: an
identity id does not change when its primary rotates, so a different id is
a different person as far as this device can tell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import attrs

from ..errors import DecodeError, ExitCode, KezError, StoreError
from ..keys import normalize_key_id
from ..keystore import Keystore, atomic_write
from ..sigchain.model import ChainState


class PeerChanged(KezError):
    """A pinned handle now points at an identity its pinned chain does not explain."""

    exit_code = ExitCode.NOT_VALID
    code = "handle_changed"


class HandleChainMismatch(StoreError):
    """The chain a handle server offers is not the registered identity's (exit 4, as before)."""


@attrs.frozen
class HandleAnswer:
    """What a handle's server said: its registration (`GET /v1/u/{handle}`) and chain copies."""

    info: dict[str, Any]  # has `fqhn`, `primary`, maybe `identity`, `registered_at`
    copies: list[list[bytes]]


class HandleDirectory(Protocol):
    """Resolves handles (`kez_core.sigserver_client.ServerDirectory` asks kez-servers)."""

    def parse(self, text: str) -> tuple[str, str] | None:
        """(handle, server) when `text` is a handle, else None."""

    async def lookup(self, handle: str, server: str) -> HandleAnswer:
        """The registration and chain copies; a KezError with exit code NETWORK when unreachable."""


@attrs.frozen
class Peer:
    """A resolved conversation partner."""

    identity: str
    chain: ChainState
    handle: str | None = None  # the fqhn it was named by, or the one pinned to it
    contact: str | None = None
    notes: tuple[
        str, ...
    ] = ()  # said to the user, e.g. "server unreachable, used the pinned chain"


def check_handle_chain(info: dict[str, Any], state: ChainState) -> None:
    """The chain a handle points at must be its identity's, and the registered key one of its primaries.

    A handle registered before its key was rotated away stays good (like a
    claim signed before the rotation); one registered by a key after that key
    was rotated away, or by a key the chain never made primary, is refused.
    """
    identity = info.get("identity") or info["primary"]
    primary, fqhn = info["primary"], info["fqhn"]
    if state.identity_id != identity:
        raise HandleChainMismatch(
            f"{fqhn} is registered to {identity}, but the chain found is {state.identity_id}'s",
            hint="the handle server or a sig-server serves another identity's chain; do not trust this handle",
        )
    if primary == state.current_primary:
        return
    retired = state.retired.get(primary)
    if retired is None:
        raise HandleChainMismatch(
            f"{fqhn} is registered to {primary}, which was never the primary of {identity}",
            hint="do not trust this handle",
        )
    registered_at = info.get("registered_at")
    if not isinstance(registered_at, str) or registered_at > retired.rotated_at:
        raise HandleChainMismatch(
            f"{fqhn} was registered by {primary} after it was rotated away (seqno {retired.seqno}, "
            f"{retired.rotated_at})",
            hint="a rotated-away key signs nothing; the owner re-registers with `kez handle register`",
        )


def read_cached(keystore: Keystore, identity: str) -> list[bytes]:
    """The lines of the local chain copy of `identity`; [] when there is none."""
    from ..sigchain import iter_file_lines

    path = keystore.chain_path(identity)
    try:
        with path.open("rb") as fp:
            return list(iter_file_lines(fp))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from exc


def cached_chain(keystore: Keystore, identity: str) -> ChainState | None:
    """The validated local copy of `identity`'s chain, or None when there is none."""
    from ..sigchain import load_chain

    lines = read_cached(keystore, identity)
    if not lines:
        return None
    return load_chain(lines, origin=str(keystore.chain_path(identity)), registry=keystore.registry)


def chain_file(keystore: Keystore, path: Path) -> ChainState:
    from ..sigchain import iter_file_lines, load_chain

    try:
        with path.open("rb") as fp:
            lines = list(iter_file_lines(fp))
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from exc
    return load_chain(lines, origin=str(path), registry=keystore.registry)


def identity_of(keystore: Keystore, text: str) -> str | None:
    try:
        return normalize_key_id(text, keystore.registry)
    except DecodeError:
        return None


async def resolve_handle(
    keystore: Keystore, directory: HandleDirectory, pins: Any, handle: str, server: str
) -> Peer:
    """The peer behind `handle@server` (see the module docstring). `pins` is the ChatStore."""
    from ..sigchain import merge_copies

    fqhn = f"{handle}@{server}"
    pinned = pins.pin(fqhn)
    try:
        answer = await directory.lookup(handle, server)
    except KezError as exc:
        if exc.exit_code != ExitCode.NETWORK or pinned is None:
            raise
        chain = cached_chain(keystore, pinned)
        if chain is None:
            raise
        return Peer(
            pinned, chain, fqhn, notes=(f"{exc.message}; using the pinned chain of {fqhn}",)
        )
    raw = answer.info.get("identity") or answer.info["primary"]
    identity = identity_of(keystore, str(raw))
    if identity is None:
        raise HandleChainMismatch(f"{fqhn}'s server names {raw!r}, which is not an identity id")
    if pinned is not None and identity != pinned:
        raise PeerChanged(
            f"{fqhn} now points at {identity}, but it was pinned to {pinned} on first contact",
            hint="the handle moved to another identity (or the server lies); ask the person on another "
            "channel, then write to the new identity by its id if they confirm",
        )
    local = read_cached(keystore, identity)
    merged = merge_copies([*answer.copies, *([local] if local else [])], registry=keystore.registry)
    if merged.fork is not None:
        raise HandleChainMismatch(
            f"the copies of {fqhn}'s chain conflict (a fork)",
            hint="`kez verify` it and ask the person",
        )
    if merged.state is None:
        raise HandleChainMismatch(
            f"no valid chain for {fqhn}", hint="the person must publish their chain"
        )
    check_handle_chain({**answer.info, "identity": identity}, merged.state)
    if merged.state.identity_id != identity:  # merge_copies took another identity's copy
        raise HandleChainMismatch(
            f"the chain found for {fqhn} is {merged.state.identity_id}'s, not {identity}'s"
        )
    if len(merged.lines) > len(local):
        atomic_write(keystore.chain_path(identity), b"".join(merged.lines), 0o644)
    if pinned is None:
        pins.set_pin(fqhn, identity)
    return Peer(identity, merged.state, fqhn)
