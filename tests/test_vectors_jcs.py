"""RFC 8785 (JCS) vectors from cyberphone/json-canonicalization against `kez_core.jcs`.

See tests/vectors/README.md for provenance: six input/output pairs and the
first 10,000 lines of the ES6 number-serialization test file.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest

from kez_core.jcs import canonicalize

VECTORS = Path(__file__).parent / "vectors" / "jcs"
CASES = sorted(p.stem for p in (VECTORS / "input").glob("*.json"))
ES6_FILE = VECTORS / "es6-numbers" / "es6testfile-first10000.txt"


def test_all_cases_present():
    assert CASES == ["arrays", "french", "structures", "unicode", "values", "weird"]


@pytest.mark.parametrize("name", CASES)
def test_canonical_form(name: str):
    value = json.loads((VECTORS / "input" / f"{name}.json").read_bytes())
    expected = (VECTORS / "output" / f"{name}.json").read_bytes()
    expected_hex = bytes.fromhex((VECTORS / "outhex" / f"{name}.txt").read_text())
    assert expected == expected_hex  # the two published forms agree
    assert canonicalize(value) == expected


@pytest.mark.parametrize("name", CASES)
def test_canonical_form_is_idempotent(name: str):
    expected = (VECTORS / "output" / f"{name}.json").read_bytes()
    assert canonicalize(json.loads(expected)) == expected


def _es6_lines() -> list[tuple[str, str]]:
    lines = ES6_FILE.read_text(encoding="ascii").splitlines()
    return [tuple(line.split(",")) for line in lines]  # type: ignore[misc]


def test_es6_numbers():
    lines = _es6_lines()
    assert len(lines) == 10_000
    failures = []
    skipped = 0
    for hexbits, expected in lines:
        value = struct.unpack(">d", int(hexbits, 16).to_bytes(8, "big"))[0]
        if not math.isfinite(value):  # the file holds none; JSON cannot represent them
            skipped += 1
            continue
        got = canonicalize(value)
        if got != expected.encode("ascii"):
            failures.append((hexbits, expected, got))
    assert skipped == 0
    assert not failures, f"{len(failures)} mismatches, first: {failures[:5]}"
