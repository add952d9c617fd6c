"""Files and byte stability: export → import → export gives the same bytes."""

from __future__ import annotations

import io
import json
import threading

import pytest
from kez_core.claim import create_claim
from kez_core.errors import StoreError
from kez_core.sigchain import (
    ChainError,
    ChainFault,
    append_links,
    canonical_lines,
    export_chain,
    iter_file_lines,
    read_chain,
    validate_lines,
    write_chain,
)
from sigchain_helpers import T0, builder, make_keys


@pytest.fixture
def keys():
    return make_keys()


@pytest.fixture
def chain(keys):
    b = builder()
    b.add_recovery(keys.primary, keys.recovery.key_id)
    b.add_device(keys.primary, keys.phone, "téléphone ☎ 🦊")  # non-ASCII survives byte for byte
    b.claim(keys.primary, create_claim(keys.primary, "github:alice", created_at=T0))
    b.revoke(keys.phone, b.state and next(iter(b.state.claims)), 'said "bye"\n\ttab \\ slash \x01')
    b.add_inbox(keys.phone, b"\x01" * 32)
    return b


def test_export_import_export_is_byte_identical(chain, tmp_path):
    exported = chain.export()
    assert exported.count(b"\n") == 5 and exported.endswith(b"\n")
    assert export_chain(exported.splitlines(keepends=True)) == exported
    path = tmp_path / "chain.jsonl"
    write_chain(path, exported.splitlines(keepends=True))
    assert path.read_bytes() == exported
    state = read_chain(path)
    with open(path, "rb") as fp:
        again = export_chain(iter_file_lines(fp))
    assert again == exported and state == validate_lines(exported.splitlines())


def test_non_canonical_import_exports_canonical(chain):
    messy = []
    for line in chain.lines:
        data = json.loads(line)
        messy.append(
            json.dumps(data, indent=None, ensure_ascii=True, separators=(", ", ": ")) + "\n"
        )
    assert "".join(messy).encode() != chain.export()
    assert export_chain(messy) == chain.export()
    assert export_chain(export_chain(messy).splitlines(keepends=True)) == chain.export()


def test_canonical_lines_streams(chain):
    out = canonical_lines(chain.lines)
    assert next(out) == chain.lines[0]
    assert list(out) == chain.lines[1:]


def test_write_is_all_or_nothing(chain, tmp_path):
    path = tmp_path / "chain.jsonl"
    write_chain(path, chain.lines[:2])
    before = path.read_bytes()
    with pytest.raises(ChainError):
        write_chain(path, chain.lines[:3] + [b"{bad\n"])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_append_links(chain, tmp_path):
    path = tmp_path / "sub" / "chain.jsonl"
    append_links(path, chain.lines[:2])
    state = append_links(path, chain.lines[2:4])
    assert state.length == 4 and path.read_bytes() == b"".join(chain.lines[:4])
    # a link that does not continue the file is refused and the file is kept
    with pytest.raises(ChainError) as info:
        append_links(path, chain.lines[1:2])
    assert info.value.reason is ChainFault.SEQNO
    assert path.read_bytes() == b"".join(chain.lines[:4])


def test_concurrent_appends_one_wins(keys, chain, tmp_path):
    path = tmp_path / "chain.jsonl"
    write_chain(path, chain.lines)
    from kez_core.sigchain import SigchainBuilder

    forks = []
    for n in range(4):
        b = SigchainBuilder.resume(chain.lines)
        forks.append(b.add_inbox(keys.primary, bytes([n + 10]) * 32).line)
    results = []

    def run(line: bytes) -> None:
        try:
            append_links(path, [line])
            results.append("ok")
        except ChainError:
            results.append("refused")

    threads = [threading.Thread(target=run, args=(line,)) for line in forks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok", "refused", "refused", "refused"]
    assert read_chain(path).length == 6


def test_read_missing_file(tmp_path):
    with pytest.raises(StoreError):
        read_chain(tmp_path / "nope.jsonl")


def test_long_line_is_refused_without_reading_it_all():
    fp = io.BytesIO(b"x" * 200_000 + b"\n")
    with pytest.raises(ChainError) as info:
        list(iter_file_lines(fp, max_line=1000))
    assert info.value.reason is ChainFault.MALFORMED and info.value.line == 1
    assert fp.tell() <= 1002


def test_line_at_the_limit_with_crlf_is_fine():
    fp = io.BytesIO(b"x" * 1000 + b"\r\n" + b"y\n")
    assert [len(x) for x in iter_file_lines(fp, max_line=1000)] == [1002, 2]


def test_file_without_final_newline(chain, tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(chain.export().rstrip(b"\n"))
    assert read_chain(path).length == 5


def test_write_error_is_a_store_error(chain, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(StoreError):
        write_chain(blocker / "c.jsonl", chain.lines)
    with pytest.raises(StoreError):
        append_links(blocker / "c.jsonl", chain.lines)
