"""Offline claim verification speed, as ratios against baselines measured in this run.

For each key algorithm it prints:
- raw: the signature library's own verify rate on pre-built bytes
  (cryptography's Ed25519, coincurve's BIP-340), the baseline; for Ed25519
  also libsodium's (PyNaCl), which kez asks first (OpenSSL decides only
  when libsodium refuses), so the kez lines also give their share of it;
- kez: full offline claim checks per second from encoded text
  (decode the encoding, strict JSON, shape and subject checks, JCS,
  signature, claim id), for the `json` and `compact` encodings;
- for BIP-340, the pure-Python reference verifier of BIP-340.

Targets (issue #3): kez/raw >= 60 %; kez/pure-Python BIP-340 well over 500x.
Run: uv run python benchmarks/verify.py [--claims N] [--seconds S]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bip340_reference import schnorr_verify as reference_verify  # noqa: E402

from kez_core.claim import check_claim, create_claim  # noqa: E402
from kez_core.encoding import decode_any, encode  # noqa: E402
from kez_core.jcs import canonicalize  # noqa: E402
from kez_core.keys import Signer  # noqa: E402
from kez_core.registry import default_registry  # noqa: E402


def rate(fn, items, seconds: float) -> float:
    """Calls per second of fn over items, cycling until `seconds` have passed."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for item in items:
            fn(item)
        done += len(items)
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=200, help="distinct claims per algorithm")
    parser.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    args = parser.parse_args()
    registry = default_registry()

    print(f"{'alg':<10}{'measure':<34}{'per second':>14}{'ratio':>12}")
    for alg_name in ("ed25519", "nostr"):
        registry.key_algorithm(alg_name)  # unknown names fail here, before any work
        signer = Signer.generate(alg_name, registry)
        claims = [
            create_claim(signer, f"github:user{i}", registry=registry) for i in range(args.claims)
        ]
        public = bytes.fromhex(signer.key_id.split(":", 1)[1])
        prepared = [(canonicalize(c.payload), bytes.fromhex(c.signature.sig)) for c in claims]

        if alg_name == "ed25519":
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
            from kez_core.builtins.ed25519 import sodium_accepts

            key = Ed25519PublicKey.from_public_bytes(public)
            raw = rate(lambda item, key=key: key.verify(item[1], item[0]), prepared, args.seconds)
            sodium = rate(
                lambda item, public=public: sodium_accepts(public, item[0], item[1]),
                prepared,
                args.seconds,
            )
        else:
            import coincurve

            key = coincurve.PublicKeyXOnly(public)
            digests = [(hashlib.sha256(m).digest(), s) for m, s in prepared]
            raw = rate(lambda item, key=key: key.verify(item[1], item[0]), digests, args.seconds)
        print(f"{alg_name:<10}{'raw library verify':<34}{raw:>14,.0f}{'1.00':>12}")
        if alg_name == "ed25519":
            # kez verifies with libsodium first, OpenSSL only on refusal (same verdicts)
            print(
                f"{alg_name:<10}{'raw libsodium verify (PyNaCl)':<34}{sodium:>14,.0f}{sodium / raw:>12.2f}"
            )

        for form in ("json", "compact"):
            texts = [encode(c, form, registry) for c in claims]

            def check(text: str) -> None:
                result = check_claim(decode_any(text, registry)[0], registry=registry)
                assert result.ok, result.reason

            ours = rate(check, texts, args.seconds)
            also = f" ({ours / sodium:.0%} of libsodium)" if alg_name == "ed25519" else ""
            print(
                f"{alg_name:<10}{f'kez claim verify ({form})':<34}{ours:>14,.0f}{ours / raw:>11.0%} of raw{also}"
            )
            if alg_name == "nostr":
                last_ours = ours
        if alg_name == "nostr":
            sample = digests[: max(3, min(10, len(digests)))]
            assert reference_verify(sample[0][0], public, sample[0][1])
            pure = rate(
                lambda item, public=public: reference_verify(item[0], public, item[1]),
                sample,
                args.seconds,
            )
            print(
                f"{alg_name:<10}{'pure-Python BIP-340 reference':<34}{pure:>14,.1f}"
                f"{last_ours / pure:>11,.0f}x slower than kez (compact)"
            )
    print(
        f"\npython {sys.version.split()[0]}; {args.claims} claims per alg; {args.seconds}s per measurement"
    )


if __name__ == "__main__":
    main()
