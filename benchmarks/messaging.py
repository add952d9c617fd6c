"""Message send and receive speed, as ratios against the raw primitives measured in this run.

Baseline per message: what the cryptography alone costs, i.e. one Ed25519
sign plus one HPKE seal (sending) and one HPKE open plus one Ed25519 verify
(receiving), on bytes of the same size, through the same libraries
(`cryptography`'s hpke.Suite and Ed25519). Against it:

- kez send: build the payload, JCS, sign, check the shape, pad, seal, base64url;
- kez receive: decode, open, unpad, strict JSON, shape checks, verify, inbox
  and recipient checks, time window (no replay store: that is a disk write);
- kez receive + replay store: the same plus the SQLite transaction that
  makes acceptance durable (WAL, synchronous=FULL: one fsync per message,
  so this line measures the disk as much as the code);
- the same in batches (`open_envelopes`, what a receiver draining a queue or
  an inbox page does): every check per envelope, then one transaction and
  one fsync for the batch (group commit, docs/spec.md).

A ratio near 1 means the protocol work around the cryptography is cheap.
Receiving can pass 1: kez verifies Ed25519 with libsodium first, the
baseline uses OpenSSL (cryptography).
Run: uv run python benchmarks/messaging.py [--text-bytes N] [--seconds S] [--backlog N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from kez_core.chat.listener import BATCH as LISTENER_BATCH

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kez_core.keys import Signer
from kez_core.messaging import (
    InboxSecret,
    ReplayStore,
    create_message,
    open_envelope,
    open_envelopes,
    seal_message,
    text_body,
)
from kez_core.messaging.envelope import INFO, SUITE
from kez_core.messaging.padding import pad
from kez_core.signed import SignedObject
from kez_core.timefmt import now


def paired(fast, slow, seconds: float, rounds: int = 10) -> tuple[float, float]:
    """Rates of a baseline and of the kez path, measured in alternating slices: a load
    that changes during the run (a shared machine) then weighs on both alike."""
    done = [0, 0]
    spent = [0.0, 0.0]
    for _ in range(rounds):
        for i, fn in enumerate((fast, slow)):
            start = time.perf_counter()
            deadline = start + seconds / rounds / 2
            while True:
                for _ in range(10):
                    fn()
                done[i] += 10
                current = time.perf_counter()
                if current >= deadline:
                    spent[i] += current - start
                    break
    return done[0] / spent[0], done[1] / spent[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text-bytes", type=int, default=200, help="length of the text body")
    parser.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    parser.add_argument(
        "--backlog", type=int, default=2000, help="messages through the replay store"
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=LISTENER_BATCH,
        help="envelopes per open_envelopes call (default: what `kez message listen` opens at once from a drained queue)",
    )
    args = parser.parse_args()

    alice, bob, inbox = Signer.generate(), Signer.generate(), InboxSecret.generate()
    body = text_body("x" * args.text_bytes)
    # what a sender holds: the recipient's inbox key id as text (from their chain),
    # not derived from the secret at every message
    inbox_key = inbox.key_id

    def send(created_at: datetime | None = None) -> tuple[SignedObject, str]:
        obj = create_message(
            alice,
            sender_identity=alice.key_id,
            recipient=bob.key_id,
            inbox_key=inbox_key,
            body=body,
            created_at=created_at,
        )
        return obj, seal_message(obj)

    obj, envelope = send()
    content = obj.canonical()
    padded = pad(content)
    raw_key = Ed25519PrivateKey.generate()
    raw_public = raw_key.public_key()
    public = inbox.private.public_key()
    sealed = SUITE.encrypt(padded, public, info=INFO)
    signature = raw_key.sign(content)

    def raw_send() -> None:
        raw_key.sign(content)
        SUITE.encrypt(padded, public, info=INFO)

    def raw_receive() -> None:
        SUITE.decrypt(sealed, inbox.private, info=INFO)
        raw_public.verify(signature, content)

    def kez_send() -> None:
        send()

    def kez_receive() -> None:
        open_envelope(envelope, [inbox], identity=bob.key_id, replay=None)

    backlog = [send(now() - timedelta(seconds=i % 600))[1] for i in range(args.backlog)]

    with tempfile.TemporaryDirectory() as folder:
        store = ReplayStore(Path(folder) / "replay.db")

        def kez_receive_batched(store: ReplayStore, size: int) -> float:
            """What a receiver draining a queue does: open a batch, record it with one commit."""
            start = time.perf_counter()
            for i in range(0, len(backlog), size):
                answers = open_envelopes(
                    backlog[i : i + size], [inbox], identity=bob.key_id, replay=store
                )
                assert not any(isinstance(a, Exception) for a in answers)
            return len(backlog) / (time.perf_counter() - start)

        def kez_receive_backlog(replay: ReplayStore | None) -> float:
            start = time.perf_counter()
            for envelope_text in backlog:
                open_envelope(envelope_text, [inbox], identity=bob.key_id, replay=replay)
            return len(backlog) / (time.perf_counter() - start)

        print(
            f"message: {len(content)} bytes JSON, padded to {len(padded)}, envelope {len(envelope)} characters"
        )
        print(f"{'measure':<40}{'per second':>12}{'ratio to raw':>14}")
        send_base, send = paired(raw_send, kez_send, 2 * args.seconds)
        print(f"{'raw: Ed25519 sign + HPKE seal':<40}{send_base:>12,.0f}{1:>14.2f}")
        print(f"{'kez send':<40}{send:>12,.0f}{send / send_base:>14.2f}")
        receive_base, receive = paired(raw_receive, kez_receive, 2 * args.seconds)
        print(f"{'raw: HPKE open + Ed25519 verify':<40}{receive_base:>12,.0f}{1:>14.2f}")
        print(f"{'kez receive':<40}{receive:>12,.0f}{receive / receive_base:>14.2f}")
        # the backlog without a store, then with it, then in batches: side by side, so
        # the ratios between them hold even on a machine whose load changes
        unstored = kez_receive_backlog(None)
        label = f"kez receive, backlog of {len(backlog)}, no store"
        print(f"{label:<40}{unstored:>12,.0f}{unstored / receive_base:>14.2f}")
        stored = kez_receive_backlog(store)
        label = "  + replay store, one by one"
        print(f"{label:<40}{stored:>12,.0f}{stored / receive_base:>14.2f}")
        store.close()
        store = ReplayStore(Path(folder) / "batched.db")
        batched = kez_receive_batched(store, args.batch)
        label = f"  + replay store, batches of {args.batch}"
        print(f"{label:<40}{batched:>12,.0f}{batched / receive_base:>14.2f}")
        store.close()
        receive = unstored
        print()
        print(
            f"send: {send / send_base:.2f} of raw sign + seal (target >= 0.8); receive with the "
            f"replay store: {stored / receive:.2f} of the same backlog without it, one by one (one fsync each), "
            f"{batched / receive:.2f} in batches of {args.batch} (open_envelopes: one fsync per "
            "batch; target >= 0.8)"
        )


if __name__ == "__main__":
    main()
