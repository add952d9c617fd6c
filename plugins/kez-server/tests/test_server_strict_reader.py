"""kez-server reads posted links with the same strict reader as every client path
(issue 13 §3, §6): the same verdict, the same link named, and no link from the future."""

from __future__ import annotations

import re

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kez_core.sigchain import ChainError, SigchainBuilder, make_link, merge_copies, validate_lines
from kez_core.keys import Signer
from kez_core.jcs import canonicalize
from kez_server.testing import running_server
from server_helpers import NDJSON, assert_error, identity_path


@pytest.fixture(scope="module")
def server():
    with running_server() as running:  # SQLite: the reading path is the same on PostgreSQL
        yield running


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def _chain(n: int = 3) -> tuple[Signer, SigchainBuilder]:
    signer = Signer.generate()
    b = SigchainBuilder()
    for _ in range(n):
        b.add_recovery(signer, Signer.generate().key_id)
    return signer, b


def post(client, identity: str, data: bytes):
    return client.post(identity_path(identity), content=data, headers=NDJSON)


def test_a_link_dated_in_the_future_is_refused(client):
    signer, b = _chain(1)
    assert post(client, signer.key_id, b.export()).status_code == 200
    state = b.state
    far = make_link(
        signer,
        seqno=2,
        prev=state.head,
        op="add_recovery",
        body={"key": Signer.generate().key_id},
        created_at="9999-12-31T23:59:59Z",
    )
    line = canonicalize(far.to_dict()) + b"\n"
    data = assert_error(post(client, signer.key_id, line), 422, "invalid_link")
    assert data["reason"] == "future" and data["seqno"] == 2 and data["line"] == 1, data
    assert client.get(identity_path(signer.key_id)).content == b.export()  # nothing stored


def test_a_tail_push_with_a_float_seqno_names_its_own_line_not_seqno_1(client):
    signer, b = _chain(2)
    assert post(client, signer.key_id, b.lines[0]).status_code == 200
    tail = re.sub(rb'"seqno":2', b'"seqno":2.0', b.lines[1])
    data = assert_error(post(client, signer.key_id, tail), 400, "malformed_link")
    assert data["reason"] == "malformed" and data["line"] == 1, data
    assert data.get("seqno") != 1, data
    assert "seqno" in data["message"]


# ------------------------------------------------------------------ differential

MUTATIONS = [
    ("float seqno", lambda line: re.sub(rb'"seqno":(\d+)', rb'"seqno":\1.0', line, count=1)),
    ("exponent seqno", lambda line: re.sub(rb'"seqno":(\d+)', rb'"seqno":\1e0', line, count=1)),
    ("string seqno", lambda line: re.sub(rb'"seqno":(\d+)', rb'"seqno":"\1"', line, count=1)),
    ("float version", lambda line: line.replace(b'"version":1', b'"version":1.0', 1)),
    (
        "duplicate key",
        lambda line: line.replace(b'{"kez":"link",', b'{"kez":"link","kez":"link",', 1),
    ),
    ("spaces", lambda line: line.replace(b'":', b'": ')),
    ("crlf", lambda line: line.rstrip(b"\n") + b"\r\n"),
    ("blank line before", lambda line: b"\n  \n" + line),
    ("truncated", lambda line: line[: len(line) // 2] + b"\n"),
    ("not utf-8", lambda line: line.replace(b'"op"', b'"\xff"', 1)),
    ("trailing garbage", lambda line: line.rstrip(b"\n") + b" x\n"),
    ("unicode escape", lambda line: line.replace(b'"add_recovery"', b'"add_\\u0072ecovery"', 1)),
    ("extra payload float", lambda line: line.replace(b'"prev":', b'"zz":7e0,"prev":', 1)),
    ("bad json constant", lambda line: line.replace(b'"prev":', b'"zz":NaN,"prev":', 1)),
    ("future", lambda line: re.sub(rb'"created_at":"\d{4}', b'"created_at":"9999', line, count=1)),
]


def verdicts(lines: list[bytes], good: list[bytes]) -> tuple[object, object]:
    try:
        validate_lines(lines)
        validator = None
    except ChainError as exc:
        validator = (str(exc.reason), exc.seqno, exc.line)
    error = merge_copies([lines]).copies[0].error
    merged = None if error is None else (str(error.reason), error.seqno, error.line)
    # beside a longer good copy (the prefix shortcut must not skip a respelt copy)
    beside = merge_copies([good, lines]).copies[1].error
    assert merged == (None if beside is None else (str(beside.reason), beside.seqno, beside.line))
    return validator, merged


def _more(signer: Signer, b: SigchainBuilder) -> list[bytes]:
    longer = SigchainBuilder.resume(b.lines)
    longer.add_recovery(signer, Signer.generate().key_id)
    return longer.lines[len(b.lines) :]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.integers(0, 2),
    mutation=st.sampled_from(MUTATIONS),
)
def test_validator_merge_and_server_agree(client, which, mutation):
    signer, b = _chain(3)
    lines = list(b.lines)
    lines[which] = mutation[1](lines[which])
    validator, merged = verdicts(lines, [*b.lines, *_more(signer, b)])
    assert validator == merged, mutation[0]
    response = post(client, signer.key_id, b"".join(lines))
    if validator is None:
        assert response.status_code == 200, (mutation[0], response.text)
        assert response.json()["head_seqno"] == 3
    else:
        data = response.json()
        assert response.status_code in (400, 422), (mutation[0], response.text)
        assert (data.get("reason"), data.get("seqno"), data.get("line")) == validator, (
            mutation[0],
            data,
        )
