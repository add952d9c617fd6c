"""BIP-340 test vectors (bitcoin/bips bip-0340/test-vectors.csv) against `kez_core.builtins.bip340`."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from kez_core.builtins.bip340 import BIP340, schnorr_sign, schnorr_verify

CSV = Path(__file__).parent / "vectors" / "bip340" / "test-vectors.csv"


def _rows() -> list[dict[str, str]]:
    with CSV.open(newline="") as f:
        return list(csv.DictReader(f))


ROWS = _rows()


def _id(row: dict[str, str]) -> str:
    return f"{row['index']}-{row['comment'] or 'ok'}"[:60]


def test_row_count():
    assert [int(r["index"]) for r in ROWS] == list(range(19))


@pytest.mark.parametrize("row", [r for r in ROWS if r["secret key"]], ids=_id)
def test_public_key_from_secret(row):
    secret = bytes.fromhex(row["secret key"])
    assert BIP340.public_from_secret(secret) == bytes.fromhex(row["public key"])


@pytest.mark.parametrize(
    "row", [r for r in ROWS if r["secret key"] and len(r["message"]) == 64], ids=_id
)
def test_sign_reproduces_signature(row):
    # coincurve signs 32-byte messages only; rows with other lengths are verify-only here.
    sig = schnorr_sign(
        bytes.fromhex(row["secret key"]),
        bytes.fromhex(row["message"]),
        bytes.fromhex(row["aux_rand"]),
    )
    assert sig == bytes.fromhex(row["signature"])


@pytest.mark.parametrize("row", ROWS, ids=_id)
def test_verify(row):
    expected = {"TRUE": True, "FALSE": False}[row["verification result"]]
    result = schnorr_verify(
        bytes.fromhex(row["public key"]),
        bytes.fromhex(row["message"]),
        bytes.fromhex(row["signature"]),
    )
    assert result is expected


def test_signing_rows_cover_every_message_length():
    # Guard that the vectors still contain the non-32-byte messages (0, 1, 17, 100 bytes)
    # that exercise verification of arbitrary-length messages.
    lengths = {len(r["message"]) // 2 for r in ROWS if r["secret key"]}
    assert {0, 1, 17, 32, 100} <= lengths
