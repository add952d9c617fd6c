"""Visual encryption speed: scramble/unscramble of a 256x256 RGB picture, as a ratio to numpy.

    .venv/bin/python benchmarks/profile_picture.py               # best of 200 runs each
    .venv/bin/python benchmarks/profile_picture.py --runs 50 --json

The baseline is the cheapest thing that moves the same pixels: indexing the
same (65536, 3) uint8 array with a precomputed random permutation
(`rng.permutation`), measured in the same run. `scramble/perm` is how many
such plain permutations one scramble costs; the scramble does more
(generate 458 KiB of ChaCha20 keystream, argsort 65536 words for the keyed
permutation, XOR the mask), so the ratio says how close to plain numpy the
cipher work comes. Times are the best of `--runs` (a busy machine adds noise
upwards only). The PNG encode/decode around it (Pillow) is timed apart.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "kez_core" / "src"))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from kez_core.profile import visual  # noqa: E402


def best(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:256, 0:256]
    pixels = np.stack([x, y, (x + y) // 2], axis=-1).astype(np.uint8)
    key, salt = visual.new_key(), visual.new_salt()
    perm = rng.permutation(256 * 256)
    flat = pixels.reshape(-1, 3)

    scrambled = visual.scramble_array(pixels, key, salt)
    assert np.array_equal(visual.unscramble_array(scrambled, key, salt), pixels)

    t_perm = best(lambda: flat[perm], args.runs)
    t_scramble = best(lambda: visual.scramble_array(pixels, key, salt), args.runs)
    t_unscramble = best(lambda: visual.unscramble_array(scrambled, key, salt), args.runs)
    image = Image.fromarray(pixels, "RGB")
    t_png_out = best(lambda: visual.scramble_png(image, key, salt), max(10, args.runs // 10))
    published = visual.scramble_png(image, key, salt)
    t_png_in = best(lambda: visual.unscramble_png(published, key, salt), max(10, args.runs // 10))
    result = {
        "pixels": "256x256 RGB",
        "numpy_permutation_ms": round(t_perm * 1e3, 3),
        "scramble_ms": round(t_scramble * 1e3, 3),
        "unscramble_ms": round(t_unscramble * 1e3, 3),
        "scramble_over_permutation": round(t_scramble / t_perm, 1),
        "unscramble_over_permutation": round(t_unscramble / t_perm, 1),
        "scramble_png_ms": round(t_png_out * 1e3, 2),
        "unscramble_png_ms": round(t_png_in * 1e3, 2),
        "published_png_bytes": len(published),
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"256x256 RGB, best of {args.runs}")
    print(f"  numpy permutation (baseline) {result['numpy_permutation_ms']:8.3f} ms")
    print(
        f"  scramble                     {result['scramble_ms']:8.3f} ms  = {result['scramble_over_permutation']}x baseline"
    )
    print(
        f"  unscramble                   {result['unscramble_ms']:8.3f} ms  = {result['unscramble_over_permutation']}x baseline"
    )
    print(
        f"  scramble + PNG encode        {result['scramble_png_ms']:8.2f} ms  ({result['published_png_bytes']} bytes)"
    )
    print(f"  PNG decode + unscramble      {result['unscramble_png_ms']:8.2f} ms")


if __name__ == "__main__":
    main()
