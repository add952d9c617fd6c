"""`kez chat` with no server at all: a real chat store (SQLite) with pre-made history,
fixed identities and a fixed clock, so the screen is the same on every run.

Used by the snapshot tests (tests/chat/test_chat_snapshots.py) and by
`benchmarks/chat_app.py` (a 10,000-message thread). The app is given an
`OfflineSession`: it has no routes, so nothing listens and nothing is sent;
everything the app shows comes from the store through the same calls it
makes on a `MessagingService` (`conversations`, `store.history`,
`store.contact_for`, `search`, `resolve_peer`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs

from kez_core.chat.peers import Peer
from kez_core.chat.store import ChatStore
from kez_core.errors import PassphraseError

NOW = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)
ALICE = "ed25519:" + "a1" * 32
BOB = "ed25519:" + "b0" * 32
CAROL = "ed25519:" + "c4" * 32
DAVE = "ed25519:" + "d7" * 32
PASSPHRASE = "right horse"


def clock() -> datetime:
    return NOW


def _at(minutes_ago: int) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.define
class OfflineService:
    """The part of `MessagingService` the app reads, over a real `ChatStore`."""

    store: ChatStore
    identity: str = ALICE

    def conversations(self) -> list[dict[str, Any]]:
        return self.store.conversations()

    def search(self, peer: str, query: str) -> list[Any]:
        needle = query.casefold()
        return [
            e
            for e in self.store.history(peer, mark_read=False)
            if needle in str(e.body.get("text", "")).casefold()
        ]

    async def resolve_peer(self, text: str) -> Peer:
        return bob_peer()

    def close(self) -> None:
        self.store.close()


@attrs.define
class OfflineSession:
    """What `ChatApp` is given instead of a `ChatSession`: no routes, an optional passphrase."""

    service: OfflineService
    locked: bool = False
    routes: tuple[Any, ...] = ()
    timeout: float = 1.0
    record: Any = SimpleNamespace(name="alice", encrypted=True)

    @property
    def needs_passphrase(self) -> bool:
        return self.locked

    def unlock(self, passphrase: str | None = None) -> OfflineService:
        if self.locked and passphrase != PASSPHRASE:
            raise PassphraseError("wrong passphrase for identity 'alice'", hint="try again")
        return self.service

    def close(self) -> None:
        self.service.close()


def bob_peer() -> Peer:
    """Bob as a handle resolves to: his chain's keys, devices and claims (a stand-in chain)."""
    claims = [
        SimpleNamespace(subject="dns:bob.example", claim_id="c1"),
        SimpleNamespace(subject="github:bob", claim_id="c2"),
    ]
    chain = SimpleNamespace(
        current_primary="ed25519:" + "b1" * 32,
        devices={"ed25519:" + "b2" * 32: "laptop"},
        active_claims=lambda: claims,
    )
    return Peer(BOB, chain, handle="bob@kez.example")  # type: ignore[arg-type]


def bob_report() -> Any:
    """The claims' statuses as `kez verify` gives them (a stand-in report)."""

    def check(claim_id: str, status: str, ok: bool, reason: str) -> Any:
        return SimpleNamespace(
            check=SimpleNamespace(
                claim_id=claim_id, status=SimpleNamespace(value=status), ok=ok, reason=reason
            )
        )

    return SimpleNamespace(
        proofs=[
            check("c1", "verified", True, "TXT record found"),
            check("c2", "unreachable", False, "api.github.com did not answer"),
        ]
    )


def make_store(folder: Path, *, thread_size: int = 0) -> ChatStore:
    """Alice's store: Bob (a contact, a short thread or `thread_size` messages), Carol (a contact,
    unread), Dave (a stranger with 120 unread: "99+", under Requests)."""
    store = ChatStore(folder / "chat.db", b"\x07" * 32)
    store.add_contact("bob", BOB, "bob@kez.example")
    store.add_contact("carol", CAROL)
    with store.batch():
        store.add_incoming(
            "d-0", DAVE, _at(300), {"kind": "text", "text": "hello? [b]not bold[/b]"}, stranger=True
        )
        for i in range(1, 120):
            store.add_incoming(
                f"d-{i}", DAVE, _at(300 - i), {"kind": "text", "text": f"spam {i}"}, stranger=True
            )
        store.add_incoming(
            "c-1", CAROL, _at(200), {"kind": "text", "text": "lunch tomorrow?"}, stranger=False
        )
        store.add_incoming(
            "c-2", CAROL, _at(190), {"kind": "text", "text": "at noon"}, stranger=False
        )
        if thread_size:
            for i in range(thread_size):
                key = f"b-{i}"
                if i % 2:
                    store.add_incoming(
                        key,
                        BOB,
                        _at(thread_size - i),
                        {"kind": "text", "text": f"message {i} from bob"},
                        stranger=False,
                        ack=False,
                    )
                else:
                    store.add_outgoing(
                        key,
                        BOB,
                        _at(thread_size - i),
                        {"kind": "text", "text": f"message {i} to bob"},
                    )
        else:
            store.add_outgoing(
                "b-1", BOB, _at(30), {"kind": "text", "text": "hi bob, are you around?"}
            )
            store.add_incoming(
                "b-2",
                BOB,
                _at(28),
                {"kind": "text", "text": "yes!\nwhat's up?"},
                stranger=False,
                ack=False,
            )
            store.add_outgoing(
                "b-3", BOB, _at(27), {"kind": "text", "text": "sending you the photos"}
            )
            store.add_incoming(
                "b-4",
                BOB,
                _at(5),
                {
                    "kind": "file",
                    "file": {
                        "name": "holiday.jpg",
                        "size": 2400000,
                        "sha256": "0" * 64,
                        "state": "receiving",
                        "path": None,
                        "transfer": "t" * 32,
                        "count": 19,
                        "received": 0,
                    },
                },
                stranger=False,
                ack=False,
            )
            store.add_outgoing("b-5", BOB, _at(1), {"kind": "text", "text": "did it arrive?"})
    for key, state in (("b-1", "read"), ("b-3", "delivered"), ("b-5", "sent")):
        store.set_state(key, state, only_from=("sending",))
    for key, via in (
        ("b-1", "nats"),
        ("b-2", "nats"),
        ("b-3", "nostr"),
        ("b-4", "http"),
        ("b-5", "nats"),
    ):
        store.add_via(key, [via])
    store.history(BOB, mark_read=True)
    return store


def offline_app(folder: Path, *, locked: bool = False, thread_size: int = 0) -> Any:
    from kez_cli.chat_app.app import ChatApp

    service = OfflineService(make_store(folder, thread_size=thread_size))
    return ChatApp(OfflineSession(service, locked=locked), clock=clock)  # type: ignore[arg-type]
