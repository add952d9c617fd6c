"""`kez verify SUBJECT` when the channel's answer is hostile, in both output modes.

The channel is the GitHub plugin against `kez_channel_github.testing`, a
local server speaking the REST API's gist shapes: a gist holding a signed
claim whose subject is a corpus string (and the string itself around it),
and API errors whose message is one.
"""

from __future__ import annotations

import pytest
from corpus import HOSTILE, check
from kez_channel_github.testing import running_server
from kez_core.claim import KIND
from kez_core.keys import Signer
from kez_core.registry import default_registry
from kez_core.signed import sign

NAMES = sorted(HOSTILE)
SIGNER = Signer.generate()


@pytest.fixture(scope="module")
def github():
    with running_server() as fake:
        yield fake


@pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("name", NAMES)
def test_verify_subject_with_hostile_proofs(kez, github, name, json_mode):
    text = HOSTILE[name]
    mode = ["--json"] if json_mode else []
    flags = [
        "--github-api",
        github.ctx_options()["github_api"],
        "--retries",
        "0",
        "--timeout",
        "5",
        "--no-snapshot",
    ]
    github.clear()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        pass  # a gist file is UTF-8: no lone surrogate there (the errors below carry them as JSON escapes)
    else:
        claim = sign(
            KIND,
            {
                "primary": SIGNER.key_id,
                "subject": text,
                "created_at": "2026-01-01T00:00:00Z",
                "nonce": "00" * 16,
                "note": text,
            },
            SIGNER,
        )
        compact = default_registry().encoding("compact").encode(claim)
        github.add_gist(
            "alice", {"kez-proof.md": f"{text}\n```kez\n{compact}\n```\n{text}"}, description=text
        )
        check(kez("verify", "github:alice", *flags, *mode), json_mode=json_mode)
    github.fail_next(5, status=404, message=text)
    check(kez("verify", "github:alice", *flags, *mode), json_mode=json_mode)
    github.fail_next(5, status=503, message=text)
    check(kez("verify", "github:alice", *flags, *mode), json_mode=json_mode)
