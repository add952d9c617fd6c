"""One strict reader: every path (validator, merge, CLI verify/import, kez-server) reads a
chain line the same way and names the same link (issue 13 §6)."""

from __future__ import annotations

import json
import re

import pytest
from kez_core.sigchain import ChainError, merge_copies, validate_lines
from sigchain_helpers import builder, make_keys

KEYS = make_keys()


def _chain() -> list[bytes]:
    b = builder()
    b.add_device(KEYS.primary, KEYS.device, "laptop")
    b.add_recovery(KEYS.primary, KEYS.recovery.key_id)
    b.add_inbox(KEYS.device, b"\x01" * 32)
    return list(b.lines)


LINES = _chain()


def respell_seqno(line: bytes, spelling: str) -> bytes:
    return re.sub(rb'"seqno":(\d+)', f'"seqno":{spelling}'.encode(), line, count=1)


def verdict_validator(lines: list[bytes]) -> tuple[str, int | None, int | None] | None:
    try:
        validate_lines(lines)
    except ChainError as exc:
        return str(exc.reason), exc.seqno, exc.line
    return None


def verdict_merge(lines: list[bytes]) -> tuple[str, int | None, int | None] | None:
    merged = merge_copies([lines])
    error = merged.copies[0].error
    if error is None:
        return None if merged.state is not None else ("empty", None, None)
    return str(error.reason), error.seqno, error.line


@pytest.mark.parametrize("spelling", ["2.0", "2e0", "20e-1", "2E0"])
def test_merge_refuses_a_seqno_spelled_as_a_float(spelling):
    lines = list(LINES)
    lines[1] = respell_seqno(lines[1], spelling)
    assert verdict_validator(lines) == ("malformed", 2, 2)
    assert verdict_merge(lines) == ("malformed", 2, 2)
    assert merge_copies([lines]).state.length == 1  # the valid prefix stays usable


def test_merge_counts_blank_lines_in_line_numbers():
    lines = [LINES[0], b"\n", b"   \n", respell_seqno(LINES[1], "2.0"), *LINES[2:]]
    assert verdict_validator(lines) == ("malformed", 2, 4)
    assert verdict_merge(lines) == ("malformed", 2, 4)


def test_a_copy_covered_by_another_is_still_read_strictly():
    bad = list(LINES[:2])
    bad[1] = respell_seqno(bad[1], "2.0")
    merged = merge_copies([LINES, bad])
    assert merged.copies[1].error is not None and merged.copies[1].valid_links == 1


def test_cli_verify_and_import_refuse_a_float_seqno(kez, tmp_path):
    lines = list(LINES)
    lines[1] = respell_seqno(lines[1], "7e0").replace(b'"seqno":7e0', b'"seqno":2e0')
    path = tmp_path / "chain.jsonl"
    path.write_bytes(b"".join(lines))
    code, out, _ = kez("sigchain", "verify", str(path), "--json")
    data = json.loads(out)
    assert code == 1 and data["status"] == "invalid", data
    assert data["errors"][0]["seqno"] == 2 and data["errors"][0]["line"] == 2
    code, out, _ = kez("sigchain", "import", str(path), "--json")
    assert code == 1


def test_cli_line_numbers_are_physical_lines(kez, tmp_path):
    # U+2028 inside a JSON string is legal JSON; it must not split the line
    b = builder()
    b.add_device(KEYS.primary, KEYS.device, "lap\u2028top")
    b.add_recovery(KEYS.primary, KEYS.recovery.key_id)
    lines = [line.replace(b"\\u2028", "\u2028".encode()) for line in b.lines]
    assert "\u2028".encode() in lines[0]
    lines.insert(1, b"\n")
    lines.append(respell_seqno(lines[0], "1").replace(b'"seqno":1', b'"seqno":3.0'))
    path = tmp_path / "chain.jsonl"
    path.write_bytes(b"".join(lines))
    code, out, _ = kez("sigchain", "verify", str(path), "--json")
    data = json.loads(out)
    assert data["length"] == 2, data
    assert data["errors"][0]["line"] == 4 and data["errors"][0]["seqno"] == 3, data


def test_cli_verify_and_import_read_chain_files_over_4_mib(kez, tmp_path):
    # long device names (64 characters) and many links: a > 4 MiB chain, built quickly
    b = builder()
    primary = KEYS.primary
    n = 0
    path = tmp_path / "big.jsonl"
    with path.open("wb") as fp:
        for line in b.lines:
            fp.write(line)
        size = 0
        while size <= 4 * 1024 * 1024 + 1000:
            link = b.add_recovery(primary, _fresh_key())
            fp.write(link.line)
            size += len(link.line)
            n += 1
            b.lines.clear()
    assert path.stat().st_size > 4 * 1024 * 1024
    code, out, err = kez("sigchain", "verify", str(path), "--json")
    assert code == 0, (out[-500:], err)
    assert json.loads(out)["length"] == n
    code, out, err = kez("sigchain", "import", str(path), "--json")
    assert code == 0, err
    assert json.loads(out)["length"] == n


_KEY_COUNTER = [0]


def _fresh_key() -> str:
    _KEY_COUNTER[0] += 1
    return f"ed25519:{_KEY_COUNTER[0]:064x}"
