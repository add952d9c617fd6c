"""The sigchain store over HTTP: appends, idempotent re-push, tails, forks, races.

Runs against the real server under uvicorn, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import hashlib
import threading

import httpx
import pytest
from kez_core.keys import Signer
from kez_core.sigchain import SigchainBuilder, make_link
from server_helpers import NDJSON, assert_error, body, chain, extend, fork_of, identity_path, pretty


def push(client, identity, lines, **kwargs):
    return client.post(identity_path(identity), content=body(lines), headers=NDJSON, **kwargs)


def test_push_then_read_exact_bytes(client):
    signer, builder = chain(3)
    response = push(client, signer.key_id, builder.lines)
    assert response.status_code == 200, response.text
    state = builder.state
    assert response.json() == {
        "identity": signer.key_id,
        "head_seqno": 3,
        "head_id": state.head,
        "appended": 3,
    }
    got = client.get(identity_path(signer.key_id))
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/x-ndjson"
    assert got.content == body(builder.lines)
    assert got.content.endswith(b"\n") and got.content.count(b"\n") == 3


def test_idempotent_repush_and_extension(client):
    signer, builder = chain(4)
    assert push(client, signer.key_id, builder.lines).json()["appended"] == 4
    for _ in range(3):  # the client pushes its whole chain every time
        again = push(client, signer.key_id, builder.lines)
        assert again.status_code == 200 and again.json()["appended"] == 0
        assert again.json()["head_seqno"] == 4
    extend(builder, signer)
    extend(builder, signer)
    grown = push(client, signer.key_id, builder.lines)
    assert grown.json() == {
        "identity": signer.key_id,
        "head_seqno": 6,
        "head_id": builder.state.head,
        "appended": 2,
    }
    assert client.get(identity_path(signer.key_id)).content == body(builder.lines)


def test_prefix_and_other_spellings_are_no_ops(client):
    signer, builder = chain(3)
    push(client, signer.key_id, builder.lines)
    shorter = push(client, signer.key_id, builder.lines[:2])
    assert shorter.status_code == 200
    assert shorter.json()["appended"] == 0 and shorter.json()["head_seqno"] == 3
    respelt = [pretty(line) for line in builder.lines]
    assert respelt[0] != builder.lines[0]
    same = push(client, signer.key_id, respelt)
    assert same.status_code == 200, same.text
    assert same.json()["appended"] == 0 and same.json()["head_seqno"] == 3
    # another spelling of the stored links, then a new one
    extend(builder, signer)
    mixed = push(client, signer.key_id, [*respelt, pretty(builder.lines[3])])
    assert mixed.json()["appended"] == 1
    # stored bytes stay canonical
    assert client.get(identity_path(signer.key_id)).content == body(builder.lines)
    # \r\n line ends and blank lines are fine
    crlf = b"\r\n\n".join(line.rstrip(b"\n") for line in builder.lines) + b"\r\n"
    assert (
        client.post(identity_path(signer.key_id), content=crlf, headers=NDJSON).json()["appended"]
        == 0
    )


@pytest.mark.parametrize("cold", [False, True], ids=["cached", "rebuilt"])
def test_tail_push(client, server, cold):
    signer, builder = chain(3)
    push(client, signer.key_id, builder.lines)
    if cold:  # e.g. another server process stored the head: state rebuilt from the database
        server.app.state.kez.chains._cache.clear()
    extend(builder, signer)
    extend(builder, signer)
    tail = push(client, signer.key_id, builder.lines[3:])
    assert tail.status_code == 200, tail.text
    assert tail.json()["appended"] == 2 and tail.json()["head_seqno"] == 5
    # a tail that overlaps the stored head
    extend(builder, signer)
    assert push(client, signer.key_id, builder.lines[4:]).json()["appended"] == 1
    assert client.get(identity_path(signer.key_id)).content == body(builder.lines)


def test_after_gives_the_tail(client):
    signer, builder = chain(5)
    push(client, signer.key_id, builder.lines)
    url = identity_path(signer.key_id)
    assert client.get(url, params={"after": 0}).content == body(builder.lines)
    assert client.get(url, params={"after": 2}).content == body(builder.lines[2:])
    assert client.get(url, params={"after": 4}).content == builder.lines[4]
    for past in (5, 6, 10**17):
        empty = client.get(url, params={"after": past})
        assert empty.status_code == 200 and empty.content == b""
    for bad in ("-1", "abc", "1.5", "9" * 40, " 1"):
        assert_error(client.get(url, params={"after": bad}), 400, "bad_query")


def test_unknown_identity_is_404(client):
    nobody = Signer.generate("ed25519").key_id
    assert_error(client.get(identity_path(nobody)), 404, "unknown_identity")
    assert_error(client.get(identity_path(nobody), params={"after": 3}), 404, "unknown_identity")
    assert_error(client.get(identity_path(nobody) + "/forks"), 404, "unknown_identity")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/sigchains/ed25519/abc",
        "/v1/sigchains/ed25519/" + "A" * 64,
        "/v1/sigchains/ed25519/" + "g" * 64,
        "/v1/sigchains/rsa/" + "a" * 64,
        "/v1/sigchains/nostr/" + "0" * 64,  # not a point on the curve
        "/v1/sigchains/nostr/npub1" + "q" * 58,
    ],
)
def test_bad_identity_in_path(client, path):
    assert_error(client.get(path), 400, "bad_identity")
    assert_error(client.post(path, content=b"{}\n", headers=NDJSON), 400, "bad_identity")


def test_nostr_identity(client):
    signer, builder = chain(3, alg="nostr")
    assert push(client, signer.key_id, builder.lines).json()["appended"] == 3
    assert client.get(identity_path(signer.key_id)).content == body(builder.lines)


def test_identity_must_match_the_url(client):
    signer, builder = chain(2)
    other = Signer.generate("ed25519").key_id
    data = assert_error(push(client, other, builder.lines), 422, "identity_mismatch")
    assert signer.key_id in data["message"]
    assert_error(client.get(identity_path(other)), 404)  # nothing stored


def test_gap_is_refused(client):
    signer, builder = chain(4)
    data = assert_error(push(client, signer.key_id, builder.lines[2:]), 422, "gap")
    assert data["head_seqno"] == 0
    push(client, signer.key_id, builder.lines[:2])
    data = assert_error(push(client, signer.key_id, builder.lines[3:]), 422, "gap")
    assert data["head_seqno"] == 2 and data["seqno"] == 4


def test_invalid_links_are_refused_with_the_reason(client):
    signer, builder = chain(3)
    push(client, signer.key_id, builder.lines[:1])
    # a changed payload: the signature no longer holds
    tampered = builder.lines[1].replace(b"dns:u", b"dns:x", 1)
    data = assert_error(
        push(client, signer.key_id, [builder.lines[0], tampered]), 422, "invalid_link"
    )
    assert data["reason"] == "signature" and data["seqno"] == 2 and data["line"] == 2
    # a link signed by a key the chain does not know
    stranger = Signer.generate("ed25519")
    state = SigchainBuilder.resume(builder.lines[:1]).state
    foreign = (
        make_link(
            stranger,
            seqno=2,
            prev=state.head,
            op="revoke",
            body={"claim_id": "0" * 64, "reason": ""},
            created_at=state.last_created_at,
        ).canonical()
        + b"\n"
    )
    assert (
        assert_error(push(client, signer.key_id, [foreign]), 422, "invalid_link")["reason"]
        == "signer"
    )
    # not JSON, not a link
    assert (
        assert_error(push(client, signer.key_id, [b"{oops\n"]), 400, "malformed_link")["reason"]
        == "malformed"
    )
    assert_error(push(client, signer.key_id, [b'{"kez":"claim"}\n']), 400, "malformed_link")
    assert_error(push(client, signer.key_id, [b"x" * 70000 + b"\n"]), 400, "malformed_link")
    # nothing of it was stored
    assert client.get(identity_path(signer.key_id)).content == builder.lines[0]
    # out of order / duplicated lines
    data = assert_error(
        push(client, signer.key_id, [builder.lines[0], builder.lines[2]]), 422, "invalid_link"
    )
    assert data["reason"] in ("seqno", "prev")
    data = assert_error(
        push(client, signer.key_id, [*builder.lines[:2], builder.lines[1]]), 422, "invalid_link"
    )
    assert data["reason"] == "seqno"


def test_empty_body(client):
    signer, _builder = chain(1)
    assert_error(
        client.post(identity_path(signer.key_id), content=b"", headers=NDJSON), 400, "empty"
    )
    assert_error(
        client.post(identity_path(signer.key_id), content=b"\n \n", headers=NDJSON), 400, "empty"
    )


def test_wrong_content_type(client):
    signer, builder = chain(1)
    response = client.post(
        identity_path(signer.key_id),
        content=body(builder.lines),
        headers={"content-type": "image/png"},
    )
    assert_error(response, 415, "unsupported_media_type")


def test_fork_is_refused_and_kept_as_evidence(client):
    signer, builder = chain(3)
    push(client, signer.key_id, builder.lines)
    branch = fork_of(builder, 2)
    extend(branch, signer)
    extend(branch, signer)
    stored_id, conflicting_id = builder.state.head, _id(branch.lines[2])
    data = assert_error(push(client, signer.key_id, branch.lines), 409, "fork")
    assert data["seqno"] == 3
    assert data["stored_id"] == stored_id and data["conflicting_id"] == conflicting_id
    assert data["link_ids"] == [stored_id, conflicting_id]
    # nothing of the branch was stored
    assert client.get(identity_path(signer.key_id)).content == body(builder.lines)
    forks = client.get(identity_path(signer.key_id) + "/forks")
    assert forks.status_code == 200
    evidence = forks.json()
    assert evidence["identity"] == signer.key_id
    assert len(evidence["forks"]) == 1
    fork = evidence["forks"][0]
    assert (fork["seqno"], fork["stored_id"], fork["link_id"]) == (3, stored_id, conflicting_id)
    assert _id(_canonical(fork["link"])) == conflicting_id
    assert fork["first_seen"].endswith("Z")
    # the same fork again: 409 again, kept once
    assert_error(push(client, signer.key_id, branch.lines), 409, "fork")
    assert len(client.get(identity_path(signer.key_id) + "/forks").json()["forks"]) == 1
    # a chain without forks has an empty list
    clean, clean_builder = chain(1)
    push(client, clean.key_id, clean_builder.lines)
    assert client.get(identity_path(clean.key_id) + "/forks").json() == {
        "identity": clean.key_id,
        "forks": [],
    }


def test_invalid_conflicting_link_is_not_evidence(client):
    """Only a link validly signed in its position counts as a fork."""
    signer, builder = chain(2)
    push(client, signer.key_id, builder.lines)
    branch = fork_of(builder, 1)
    extend(branch, signer)
    forged = branch.lines[1].replace(b"dns:u", b"dns:z", 1)
    assert_error(push(client, signer.key_id, [builder.lines[0], forged]), 422, "invalid_link")
    assert client.get(identity_path(signer.key_id) + "/forks").json()["forks"] == []


def test_long_chain_is_streamed(client):
    """More links than two database pages (1,000 each): served in pages, bytes intact."""
    signer = Signer.generate("ed25519")
    builder = SigchainBuilder()
    for i in range(2300):
        extend(builder, signer, i)
    assert push(client, signer.key_id, builder.lines).json()["appended"] == 2300
    got = client.get(identity_path(signer.key_id))
    assert got.status_code == 200 and got.content == body(builder.lines)
    assert client.get(identity_path(signer.key_id), params={"after": 2298}).content == body(
        builder.lines[2298:]
    )
    assert push(client, signer.key_id, builder.lines).json()["appended"] == 0


# ----------------------------------------------------------------- races


def _race(server, bodies: list[bytes], url: str) -> list[httpx.Response]:
    barrier = threading.Barrier(len(bodies))
    results: list[httpx.Response | None] = [None] * len(bodies)

    def run(i: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            http.get("/v1/healthz")  # connect before the start line
            barrier.wait()
            results[i] = http.post(url, content=bodies[i], headers=NDJSON)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results  # type: ignore[return-value]


@pytest.mark.parametrize("round_", range(3))
def test_racing_appends_one_wins(client, server, round_):
    """Clients extending the same head with different links: one 200, the rest 409, no lost link.

    A loser whose insert lost the race is told `chain_changed` (fetch and retry);
    one that arrived after the winner was stored sees a `fork`, kept as evidence.
    Which of the two each loser gets depends on timing."""
    signer, builder = chain(5)
    push(client, signer.key_id, builder.lines)
    branches = []
    for _ in range(6):
        branch = fork_of(builder, 5)
        extend(branch, signer)
        branches.append(branch)
    results = _race(server, [body(b.lines) for b in branches], identity_path(signer.key_id))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] + [409] * 5, [r.text for r in results]
    winner = next(i for i, r in enumerate(results) if r.status_code == 200)
    assert results[winner].json()["appended"] == 1 and results[winner].json()["head_seqno"] == 6
    forks = 0
    for i, r in enumerate(results):
        if i != winner:
            data = r.json()
            assert data["error"] in ("fork", "chain_changed") and data["seqno"] == 6, data
            assert data["stored_id"] == _id(branches[winner].lines[5])
            assert data["conflicting_id"] == _id(branches[i].lines[5])
            forks += data["error"] == "fork"
    assert client.get(identity_path(signer.key_id)).content == body(branches[winner].lines)
    assert len(client.get(identity_path(signer.key_id) + "/forks").json()["forks"]) == forks


def test_racing_identical_appends_all_succeed_once(client, server):
    signer, builder = chain(2)
    push(client, signer.key_id, builder.lines)
    extend(builder, signer)
    results = _race(server, [body(builder.lines)] * 6, identity_path(signer.key_id))
    assert [r.status_code for r in results] == [200] * 6, [r.text for r in results]
    assert sorted(r.json()["appended"] for r in results) == [0] * 5 + [1]
    assert client.get(identity_path(signer.key_id)).content == body(builder.lines)


def test_racing_new_chains(client, server):
    """Several clients creating the same new chain at once: stored once, nobody sees a fork."""
    signer, builder = chain(3)
    results = _race(server, [body(builder.lines)] * 5, identity_path(signer.key_id))
    assert [r.status_code for r in results] == [200] * 5, [r.text for r in results]
    assert sorted(r.json()["appended"] for r in results) == [0] * 4 + [3]
    assert client.get(identity_path(signer.key_id)).content == body(builder.lines)


def _id(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def _canonical(obj) -> bytes:
    from kez_core.jcs import canonicalize

    return canonicalize(obj)


# ------------------------------------------------------- methods, race loser, clock


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v1/sigchains/ed25519/" + "a" * 64, {"GET", "HEAD", "POST"}),
        ("DELETE", "/v1/sigchains/ed25519/" + "a" * 64, {"GET", "HEAD", "POST"}),
        ("POST", "/v1/sigchains/ed25519/" + "a" * 64 + "/forks", {"GET", "HEAD"}),
        ("GET", "/v1/register", {"POST"}),
        ("POST", "/v1/u/alice", {"GET", "HEAD"}),
        ("POST", "/v1/healthz", {"GET", "HEAD"}),
    ],
)
def test_405_lists_the_methods_of_the_path(client, method, path, allowed):
    response = client.request(method, path)
    data = assert_error(response, 405, "method_not_allowed")
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed
    for name in allowed:
        assert name in data["message"]


def test_race_loser_is_told_the_chain_changed(server):
    """The insert of a request loses to a writer that stored another link at the same seqno
    after the request read the head: 409 chain_changed (fetch and retry), not fork evidence."""
    from kez_server.chains import ChainService
    from kez_server.db import Store
    from kez_server.errors import ApiError

    signer, builder = chain(2)
    theirs, mine = fork_of(builder, 2), fork_of(builder, 2)
    extend(theirs, signer)
    extend(mine, signer)

    class RacedStore(Store):
        """The real store; the other writer's insert lands just before this request's."""

        raced = False

        def insert_links(self, identity, rows, stored_at):
            if not self.raced and rows[0][0] == 3:
                self.raced = True
                other = theirs.lines[2].rstrip(b"\n")
                super().insert_links(
                    identity, [(3, hashlib.sha256(other).hexdigest(), other)], stored_at
                )
            super().insert_links(identity, rows, stored_at)

    store = RacedStore(server.settings.db)
    try:
        service = ChainService(store)
        service.append(signer.key_id, body(builder.lines))
        with pytest.raises(ApiError) as caught:
            service.append(signer.key_id, body(mine.lines))
        error = caught.value
        assert (error.status, error.code) == (409, "chain_changed")
        assert "fetch" in error.message and error.extra["seqno"] == 3
        assert error.extra["stored_id"] == _id(theirs.lines[2])
        assert error.extra["head_seqno"] == 3
        assert store.forks(signer.key_id) == []  # a lost race is not evidence of a fork
        # fetching and building on the new head goes through
        rebuilt = SigchainBuilder.resume(theirs.lines)
        extend(rebuilt, signer)
        assert service.append(signer.key_id, body(rebuilt.lines)).head_seqno == 4
        # a link conflicting with a link stored before the request: a fork, kept as evidence
        with pytest.raises(ApiError) as caught:
            service.append(signer.key_id, body(mine.lines))
        assert caught.value.code == "fork" and len(store.forks(signer.key_id)) == 1
    finally:
        store.close()


def test_link_from_the_far_future_is_refused(client):
    signer, builder = chain(1)
    assert push(client, signer.key_id, builder.lines).status_code == 200
    state = builder.state
    link = make_link(
        signer,
        seqno=2,
        prev=state.head,
        op="claim",
        body=json_claim(signer),
        created_at="9999-12-31T23:59:59Z",
    )
    response = push(client, signer.key_id, [link.canonical() + b"\n"])
    data = assert_error(response, 422, "invalid_link")
    assert data["seqno"] == 2 and data["line"] == 1 and data["link_id"] == link.id
    assert "9999" in data["message"] or "future" in data["message"]
    assert client.get(identity_path(signer.key_id)).content == body(builder.lines)


def json_claim(signer):
    from kez_core.claim import create_claim

    return {"claim": create_claim(signer, "dns:future.example.org").to_dict()}
