"""`kez claim verify` and `kez claim decode` on claims a stranger wrote, in both output modes.

The claims are made with the real signing code (`kez_core.signed.sign`),
past the subject normalisation `create_claim` applies, so the readers see
what an attacker can publish: a signed claim whose subject or extra field is
hostile, a valid claim whose subject was changed afterwards (which must
show as `invalid`, never look `valid`), and hostile text as the whole input.
"""

from __future__ import annotations

import json

import pytest
from corpus import HOSTILE, check
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kez_core.claim import KIND, create_claim
from kez_core.errors import CanonicalizationError
from kez_core.keys import Signer
from kez_core.safetext import visible
from kez_core.signed import sign

SIGNER = Signer.generate()


def _signed(payload_extra: dict[str, str], subject: str) -> dict:
    payload = {
        "primary": SIGNER.key_id,
        "subject": subject,
        "created_at": "2026-01-01T00:00:00Z",
        "nonce": "00" * 16,
    }
    try:
        return sign(KIND, {**payload, **payload_extra}, SIGNER).to_dict()
    except CanonicalizationError:  # a lone surrogate cannot be signed; a stranger can still send it
        good = sign(KIND, {**payload, "subject": "github:alice", "note": "x"}, SIGNER).to_dict()
        good["payload"].update(payload_extra)  # the signature no longer matches: invalid
        good["payload"]["subject"] = subject
        return good


def claim_files(tmp_path, text: str) -> dict[str, str]:
    """Files holding hostile claims (ASCII JSON: the escapes carry any code point, lone surrogates too)."""
    tampered = create_claim(SIGNER, "github:alice").to_dict()
    tampered["payload"]["subject"] = text  # changed after signing: invalid, whatever it says
    variants = {
        "signed": _signed(
            {"note": text, text[:64] or "empty": text}, text
        ),  # subject, field name and value
        "tampered subject": tampered,
    }
    files = {}
    for name, obj in variants.items():
        path = tmp_path / f"{name.replace(' ', '-')}.json"
        path.write_text(json.dumps(obj))
        files[name] = str(path)
    raw = tmp_path / "raw.txt"
    raw.write_text(json.dumps(text)[1:-1] if "\\ud" in json.dumps(text) else text, encoding="utf-8")
    files["raw text"] = str(raw)
    return files


@pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_claim_verify_and_decode(kez, tmp_path, name, json_mode):
    text = HOSTILE[name]
    mode = ["--json"] if json_mode else []
    for variant, path in claim_files(tmp_path, text).items():
        run = kez("claim", "verify", path, *mode)
        doc = check(run, json_mode=json_mode)
        if variant == "tampered subject":
            assert run.exit_code == 1  # never valid
            if json_mode:
                assert doc["status"] == "invalid"
            else:
                assert run.stdout.startswith("invalid")
                assert "\nvalid" not in run.stdout
        if variant == "raw text":
            continue  # decode fails the same way verify did
        run = kez("claim", "decode", path, *mode)
        doc = check(run, json_mode=json_mode)
        if json_mode and variant == "signed" and run.exit_code == 0:
            assert doc["payload"]["note"] == text  # --json keeps the exact value
        if not json_mode and variant == "signed" and run.exit_code == 0 and len(text) < 100:
            assert (
                f"note       {visible(text)}\n" in run.stdout
            )  # in full, escaped, not read as markup


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.text(
        st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=()), max_size=40
    ),
    st.booleans(),
)
def test_claim_verify_on_any_text(kez, tmp_path, text, json_mode):
    path = tmp_path / "claim.json"
    path.write_text(json.dumps(_signed({"note": text}, text)))
    run = kez("claim", "verify", str(path), *(["--json"] if json_mode else []))
    check(run, json_mode=json_mode)
    run = kez("claim", "decode", str(path), *(["--json"] if json_mode else []))
    check(run, json_mode=json_mode)
