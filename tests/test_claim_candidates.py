"""Issue 13 §6: in `kez claim verify` each candidate (fence, token) is checked on its own, so
a broken `kez:z1:` token or an empty ```kez fence never hides a valid proof beside it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kez_core.claim import create_claim
from kez_core.encoding import decode_any, decode_candidates
from kez_core.errors import DecodeError
from kez_core.keys import Signer

SIGNER = Signer.generate()
CLAIM = create_claim(SIGNER, "github:alice")


def compact(obj) -> str:
    from kez_core.codec import compact_encode

    return compact_encode(obj)


BROKEN = "kez:z1:AAAAnotvalid"

TEXTS = {
    "broken token before": f"old: {BROKEN}\nnew: {compact(CLAIM)}\n",
    "broken token after": f"new: {compact(CLAIM)}\nold: {BROKEN}\n",
    "empty fence before": f"```kez\n```\n\nmy proof:\n```kez\n{compact(CLAIM)}\n```\n",
    "broken fence before": f"```kez\n{BROKEN}\n```\n```kez\n{compact(CLAIM)}\n```\n",
}


@pytest.mark.parametrize("name", list(TEXTS))
def test_each_candidate_is_decoded_on_its_own(name):
    found = decode_candidates(TEXTS[name])
    assert len(found) == 2, found
    good = [c for c in found if c.obj is not None]
    bad = [c for c in found if c.error is not None]
    assert [c.obj for c in good] == [CLAIM] and len(bad) == 1
    assert isinstance(bad[0].error, DecodeError) and bad[0].where
    with pytest.raises(DecodeError):  # decode_any stays strict: the whole text must decode
        decode_any(TEXTS[name])


@pytest.mark.parametrize("name", list(TEXTS))
def test_cli_claim_verify_reports_every_candidate(kez, tmp_path, name):
    path = tmp_path / "proof.md"
    path.write_text(TEXTS[name])
    code, out, _ = kez("claim", "verify", str(path), "--json")
    data = json.loads(out)
    statuses = sorted(c["status"] for c in data["candidates"])
    assert statuses == ["invalid", "valid"], data
    assert (
        data["subject"] == "github:alice" and data["claim_id"] == CLAIM.id
    )  # the first claim found
    assert [c["claim_id"] for c in data["claims"]] == [CLAIM.id]
    assert data["status"] == "invalid" and code == 1  # not every candidate is valid
    code, out, _ = kez("claim", "verify", str(path))
    assert code == 1 and "valid" in out and "github:alice" in out and "invalid" in out


def test_cli_single_candidate_json_is_unchanged(kez, tmp_path):
    path = tmp_path / "c.txt"
    path.write_text(compact(CLAIM))
    code, out, _ = kez("claim", "verify", str(path), "--json")
    data = json.loads(out)
    assert code == 0 and data["status"] == "valid" and data["claim_id"] == CLAIM.id
    assert len(data["claims"]) == 1 and len(data["candidates"]) == 1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(["good", "broken", "empty fence", "prose"]), min_size=1, max_size=5)
)
def test_valid_claims_are_found_whatever_sits_beside_them(parts):
    pieces = {
        "good": f"```kez\n{compact(CLAIM)}\n```",
        "broken": f"```kez\n{BROKEN}\n```",
        "empty fence": "```kez\n```",
        "prose": "some words",
    }
    text = "\n\n".join(pieces[p] for p in parts) + "\n"
    found = decode_candidates(text) if any(p != "prose" for p in parts) else []
    assert sum(c.obj is not None for c in found) == parts.count("good")
    assert sum(c.error is not None for c in found) == parts.count("broken") + parts.count(
        "empty fence"
    )
