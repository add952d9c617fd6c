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
  so this line measures the disk as much as the code).

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

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kez_core.keys import Signer
from kez_core.messaging import (
    InboxSecret,
    ReplayStore,
    create_message,
    open_envelope,
    seal_message,
    text_body,
)
from kez_core.messaging.envelope import INFO, SUITE
from kez_core.messaging.padding import pad
from kez_core.signed import SignedObject
from kez_core.timefmt import now


def rate(fn, seconds: float) -> float:
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            fn()
        done += 50
        current = time.perf_counter()
        if current >= deadline:
            return done / (current - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text-bytes", type=int, default=200, help="length of the text body")
    parser.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    parser.add_argument(
        "--backlog", type=int, default=2000, help="messages through the replay store"
    )
    args = parser.parse_args()

    alice, bob, inbox = Signer.generate(), Signer.generate(), InboxSecret.generate()
    body = text_body("x" * args.text_bytes)

    def send(created_at: datetime | None = None) -> tuple[SignedObject, str]:
        obj = create_message(
            alice,
            sender_identity=alice.key_id,
            recipient=bob.key_id,
            inbox_key=inbox.key_id,
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

        def kez_receive_backlog() -> float:
            start = time.perf_counter()
            for envelope_text in backlog:
                open_envelope(envelope_text, [inbox], identity=bob.key_id, replay=store)
            return len(backlog) / (time.perf_counter() - start)

        print(
            f"message: {len(content)} bytes JSON, padded to {len(padded)}, envelope {len(envelope)} characters"
        )
        print(f"{'measure':<40}{'per second':>12}{'ratio to raw':>14}")
        send_base = rate(raw_send, args.seconds)
        print(f"{'raw: Ed25519 sign + HPKE seal':<40}{send_base:>12,.0f}{1:>14.2f}")
        send = rate(kez_send, args.seconds)
        print(f"{'kez send':<40}{send:>12,.0f}{send / send_base:>14.2f}")
        receive_base = rate(raw_receive, args.seconds)
        print(f"{'raw: HPKE open + Ed25519 verify':<40}{receive_base:>12,.0f}{1:>14.2f}")
        receive = rate(kez_receive, args.seconds)
        print(f"{'kez receive':<40}{receive:>12,.0f}{receive / receive_base:>14.2f}")
        stored = kez_receive_backlog()
        label = f"kez receive + replay store ({len(backlog)})"
        print(f"{label:<40}{stored:>12,.0f}{stored / receive_base:>14.2f}")
        store.close()


if __name__ == "__main__":
    main()
