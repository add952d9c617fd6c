"""`kez verify` of several chain files: validated together (sigchain `prevalidated`), each
with the verdict it gets alone."""

from __future__ import annotations

import json

from kez_core.claim import create_claim
from kez_core.keys import Signer
from kez_core.sigchain import SigchainBuilder


def _chain_file(path, subject: str) -> str:
    primary = Signer.generate()
    b = SigchainBuilder()
    b.claim(primary, create_claim(primary, subject))
    path.write_bytes(b"".join(b.lines))
    return str(path)


def test_verify_many_chain_files_gives_each_its_own_verdict(kez, tmp_path, closed_port):
    url = f"http://127.0.0.1:{closed_port}"
    good = [_chain_file(tmp_path / f"c{n}.jsonl", f"github:many{n}") for n in range(3)]
    broken = tmp_path / "broken.jsonl"
    data = bytearray((tmp_path / "c0.jsonl").read_bytes())
    data[data.index(b'"sig":"') + 8] ^= 1  # the first link's signature no longer verifies
    broken.write_bytes(bytes(data))
    args = ("--github-api", url, "--retries", "0", "--timeout", "1", "--no-snapshot", "--json")
    code, out, _ = kez("verify", *good, *args)
    results = json.loads(out)["results"]
    assert [r["chain_status"] for r in results] == ["valid"] * 3
    assert [r["claims"][0]["subject"] for r in results] == [f"github:many{n}" for n in range(3)]
    assert code == 5  # the proofs are unreachable, the chains fine
    code, out, err = kez("verify", good[1], str(broken), *args)
    assert code != 0 and "not valid" in err + out
    alone = kez("verify", str(broken), *args)
    assert alone[0] == code and alone[2] == err
