"""Publishing proof gists through the real channel code against the local fake GitHub API."""

from __future__ import annotations

import json

import httpx
import pytest
from github_helpers import CHANNEL, checks, claim, context, fetch, markdown, run

from kez_channel_github.errors import GitHubAuthError, GitHubPublishError
from kez_channel_github.testing import running_server
from kez_core.errors import ExitCode, KezError
from kez_core.protocols import ChannelContext
from kez_core.status import Status


def publish(github, text, handle="alice", token=None, **kw):
    return run(CHANNEL.publish(handle, text, context(github, token=token, **kw)))


def test_publish_without_token_is_a_typed_error(github):
    _, obj = claim()
    with pytest.raises(GitHubAuthError) as info:
        publish(github, markdown(obj))
    assert isinstance(info.value, KezError)
    assert "--github-token" in info.value.hint and "GITHUB_TOKEN" in info.value.hint
    assert github.requests == []  # nothing was sent


def test_publish_then_fetch_round_trip(github):
    signer, obj = claim()
    token = github.token_for("Alice")
    text = markdown(obj)
    outcome = publish(github, text, token=token)
    (gist,) = github.gists_of("alice")
    assert outcome.location == gist["html_url"]
    assert gist["public"] is True
    assert gist["description"] == "KEZ identity proof"
    assert gist["files"]["kez-proof.md"]["content"] == text
    (result,) = checks(fetch(github))
    assert result.status is Status.VALID and result.primary == signer.key_id


def test_request_shapes(github):
    _, obj = claim()
    token = github.token_for("alice")
    publish(github, markdown(obj), token=token)
    calls = [(r.method, r.path) for r in github.requests]
    assert calls == [("GET", "/user"), ("GET", "/users/alice/gists"), ("POST", "/gists")]
    for request in github.requests:
        assert request.headers["authorization"] == f"Bearer {token}"
        assert request.headers["x-github-api-version"] == "2022-11-28"
        assert request.headers["accept"] == "application/vnd.github+json"
        assert request.headers["user-agent"] == "kez-python"


def test_second_publish_updates_the_same_gist(github):
    token = github.token_for("alice")
    _, first = claim()
    _, second = claim()
    created = publish(github, markdown(first), token=token)
    github.requests.clear()
    updated = publish(github, markdown(second), token=token)
    assert updated.location == created.location
    assert "updated" in updated.detail and "created" in created.detail
    methods = [(r.method, r.path.split("/")[1]) for r in github.requests]
    assert ("PATCH", "gists") in methods and ("POST", "gists") not in methods
    (gist,) = github.gists_of("alice")
    assert gist["files"]["kez-proof.md"]["content"] == markdown(second)
    assert [r.claim_id for r in checks(fetch(github))] == [second.id]


def test_post_and_patch_bodies(github):
    token = github.token_for("alice")
    _, first = claim()
    _, second = claim()
    publish(github, markdown(first), token=token)
    publish(github, markdown(second), token=token)
    (post,) = [r for r in github.requests if r.method == "POST"]
    assert post.path == "/gists"
    assert post.json() == {
        "description": "KEZ identity proof",
        "public": True,
        "files": {"kez-proof.md": {"content": markdown(first)}},
    }
    (patch,) = [r for r in github.requests if r.method == "PATCH"]
    assert patch.path == f"/gists/{github.gists_of('alice')[0]['id']}"
    assert patch.json() == {
        "description": "KEZ identity proof",
        "files": {"kez-proof.md": {"content": markdown(second)}},
    }


def test_existing_proof_gist_is_updated_in_place(github):
    token = github.token_for("alice")
    seeded = github.seed_proof("alice", "old text")
    _, obj = claim()
    outcome = publish(github, markdown(obj), token=token)
    (gist,) = github.gists_of("alice")
    assert outcome.location == seeded["html_url"] == gist["html_url"]
    assert gist["public"] is True and list(gist["files"]) == ["kez-proof.md"]
    assert gist["files"]["kez-proof.md"]["content"] == markdown(obj)


def test_secret_proof_gist_is_not_reused(github):
    token = github.token_for("alice")
    github.add_gist("alice", {"kez-proof.md": "old"}, public=False)
    _, obj = claim()
    outcome = publish(github, markdown(obj), token=token)
    gists = github.gists_of("alice")
    assert len(gists) == 2
    assert outcome.location == next(g["html_url"] for g in gists if g["public"])


def test_rejected_token(github):
    _, obj = claim()
    with pytest.raises(GitHubAuthError) as info:
        publish(github, markdown(obj), token="ghp_wrong")
    assert "GitHub rejected the token" in info.value.message


def test_token_of_another_account(github):
    _, obj = claim()
    token = github.token_for("bob")
    with pytest.raises(GitHubAuthError) as info:
        publish(github, markdown(obj), token=token)
    assert "bob" in info.value.message and "alice" in info.value.message
    assert github.gists_of("bob") == []


def test_server_error_on_create(github):
    token = github.token_for("alice")
    github.fail_next(1, 502, path="/gists", method="POST")
    _, obj = claim()
    with pytest.raises(GitHubPublishError) as info:
        publish(github, markdown(obj), token=token)
    assert info.value.exit_code == ExitCode.NETWORK
    assert "502" in info.value.message


def test_rate_limited_publish(github):
    token = github.token_for("alice")
    github.rate_limit_next(1, path="/user")
    _, obj = claim()
    with pytest.raises(GitHubPublishError) as info:
        publish(github, markdown(obj), token=token)
    assert "rate limit" in info.value.message


def test_publish_to_a_server_that_is_down():
    with running_server() as github:
        options = github.ctx_options(token="ghp_x")
    _, obj = claim()
    with pytest.raises(GitHubPublishError):
        run(CHANNEL.publish("alice", markdown(obj), ChannelContext(options=options, timeout=2)))


def test_empty_proof_text_is_refused(github):
    with pytest.raises(GitHubPublishError):
        publish(github, "  ", token=github.token_for("alice"))


# ------------------------------------------------------- the fake's write side


def test_fake_create_and_update_shapes(github):
    token = github.token_for("alice")
    headers = {"Authorization": f"Bearer {token}", "X-GitHub-Api-Version": "2022-11-28"}
    body = {"description": "d", "public": True, "files": {"a.md": {"content": "hello"}}}
    created = httpx.post(f"{github.base_url}/gists", json=body, headers=headers)
    assert created.status_code == 201
    gist = created.json()
    assert created.headers["location"] == gist["url"]
    assert gist["owner"]["login"] == "alice" and gist["files"]["a.md"]["content"] == "hello"
    patch = {"files": {"a.md": {"filename": "b.md", "content": "bye"}}}
    updated = httpx.patch(f"{github.base_url}/gists/{gist['id']}", json=patch, headers=headers)
    assert updated.status_code == 200 and list(updated.json()["files"]) == ["b.md"]
    raw = httpx.get(updated.json()["files"]["b.md"]["raw_url"])
    assert raw.text == "bye"
    old_raw = httpx.get(gist["files"]["a.md"]["raw_url"])
    assert old_raw.text == "hello"  # raw_url names a revision
    other = {"Authorization": f"Bearer {github.token_for('bob')}"}
    foreign = httpx.patch(f"{github.base_url}/gists/{gist['id']}", json=patch, headers=other)
    assert foreign.status_code == 404
    assert httpx.post(f"{github.base_url}/gists", json=body).status_code == 401
    empty = httpx.post(f"{github.base_url}/gists", json={"files": {}}, headers=headers)
    assert empty.status_code == 422 and empty.json()["message"] == "Validation Failed"
    broken = httpx.post(f"{github.base_url}/gists", content=b"{", headers=headers)
    assert broken.status_code == 400
    assert json.loads(broken.text)["message"] == "Problems parsing JSON"
