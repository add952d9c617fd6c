"""Publishing with the Mastodon API (verify_credentials, instance limits, update_credentials)."""

from __future__ import annotations

import pytest
from ap_helpers import CHANNEL, DOMAIN, compact_claim, fetch, objects, publish, run
from kez_core.claim import check_claim
from kez_core.errors import ExitCode, KezError
from kez_core.protocols import ChannelContext
from kez_core.status import Status
from kez_channel_activitypub.errors import (
    MissingTokenError,
    ProfileFullError,
    PublishError,
    TokenRejectedError,
    WrongAccountError,
)

HANDLE = f"alice@{DOMAIN}"
SUBJECT = f"ap:{HANDLE}"
TOKEN = "alice-token"


def verdicts(server, handle=HANDLE):
    outcome = fetch(server, handle)
    assert outcome.reachable, outcome.reason
    return [
        (c.source, check_claim(o).status)
        for c, o in zip(outcome.candidates, objects(outcome), strict=True)
    ]


def test_proof_encoding_is_compact():
    assert CHANNEL.proof_encoding == "compact"


def test_round_trip_on_stock_mastodon_goes_to_the_bio(ap_server, ap_signer):
    """Mastodon keeps 255 characters of a field value; a 400+ character proof goes to the bio."""
    ap_server.set_fields("alice", [("Website", "https://alice.example"), ("Pronouns", "she/her")])
    ap_server.set_note("alice", "Birds, mostly.\nhttps://alice.example/birds")
    proof = compact_claim(ap_signer, SUBJECT)
    assert len(proof) > 255
    outcome = publish(ap_server, HANDLE, proof, TOKEN)
    assert outcome.location == f"https://{DOMAIN}/@Alice"
    assert outcome.detail.startswith("bio") and "255" in outcome.detail
    assert ap_server.note("alice") == f"Birds, mostly.\nhttps://alice.example/birds\n\n{proof}"
    assert ap_server.fields("alice") == [
        ("Website", "https://alice.example"),
        ("Pronouns", "she/her"),
    ]
    assert verdicts(ap_server) == [(f"https://{DOMAIN}/users/Alice (summary)", Status.VALID)]


def test_republishing_to_the_bio_replaces_the_old_proof(ap_server, ap_signer):
    ap_server.set_note("alice", "Hello")
    first, second = compact_claim(ap_signer, SUBJECT), compact_claim(ap_signer, SUBJECT)
    publish(ap_server, HANDLE, first, TOKEN)
    publish(ap_server, HANDLE, second, TOKEN)
    assert ap_server.note("alice") == f"Hello\n\n{second}"


def test_round_trip_in_a_profile_field_when_the_instance_allows_long_values(ap_server, ap_signer):
    ap_server.set_limits(field_value_limit=2047)
    ap_server.set_fields(
        "alice", [("Website", "https://alice.example"), ("Matrix", "@alice:matrix.example")]
    )
    proof = compact_claim(ap_signer, SUBJECT)
    outcome = publish(ap_server, HANDLE, proof, TOKEN)
    assert outcome.detail == "profile field KEZ"
    assert ap_server.fields("alice") == [
        ("Website", "https://alice.example"),
        ("Matrix", "@alice:matrix.example"),
        ("KEZ", proof),
    ]
    assert verdicts(ap_server) == [
        (f"https://{DOMAIN}/users/Alice (profile field 'KEZ')", Status.VALID)
    ]
    # the update went through the documented form shape
    patch = [r for r in ap_server.requests if r[0] == "PATCH"]
    assert patch == [("PATCH", DOMAIN, "/api/v1/accounts/update_credentials")]


def test_existing_kez_field_is_replaced_in_place(ap_server, ap_signer):
    ap_server.set_limits(field_value_limit=2047)
    ap_server.set_fields("alice", [("A", "1"), ("kez", "kez:z1:old"), ("B", "2"), ("C", "3")])
    proof = compact_claim(ap_signer, SUBJECT)
    publish(ap_server, HANDLE, proof, TOKEN)
    assert ap_server.fields("alice") == [("A", "1"), ("KEZ", proof), ("B", "2"), ("C", "3")]


def test_four_fields_in_use_is_a_clear_error(ap_server, ap_signer):
    ap_server.set_limits(field_value_limit=2047)
    taken = [
        ("Website", "https://a.example"),
        ("Pronouns", "she/her"),
        ("Matrix", "@a:m.example"),
        ("Lang", "en"),
    ]
    ap_server.set_fields("alice", taken)
    with pytest.raises(ProfileFullError) as info:
        publish(ap_server, HANDLE, compact_claim(ap_signer, SUBJECT), TOKEN)
    assert "all 4 profile fields" in info.value.message and "'Website'" in info.value.message
    assert "remove one profile field" in info.value.hint
    assert ap_server.fields("alice") == taken
    assert not [r for r in ap_server.requests if r[0] == "PATCH"]


def test_instance_without_advertised_limits_uses_mastodon_defaults(ap_server, ap_signer):
    ap_server.set_limits(
        field_value_limit=2047, advertise=False
    )  # an older Mastodon: no limits in /api/v2/instance
    outcome = publish(ap_server, HANDLE, compact_claim(ap_signer, SUBJECT), TOKEN)
    assert outcome.detail.startswith("bio")


def test_field_values_written_through_the_api_are_cut_like_mastodon(ap_server):
    """The fake's own behaviour: what the channel's limit check protects against."""
    import httpx

    response = httpx.patch(
        ap_server.base_url + "/api/v1/accounts/update_credentials",
        headers={"Host": DOMAIN, "Authorization": f"Bearer {TOKEN}"},
        data={"fields_attributes[0][name]": "KEZ", "fields_attributes[0][value]": "x" * 300},
    )
    assert response.status_code == 200
    assert response.json()["source"]["fields"][0]["value"] == "x" * 255


def test_full_bio_is_a_clear_error(ap_server, ap_signer):
    ap_server.set_note("alice", "word " * 60)
    with pytest.raises(ProfileFullError) as info:
        publish(ap_server, HANDLE, compact_claim(ap_signer, SUBJECT), TOKEN)
    assert "limit 500" in info.value.message and "shorten the bio" in info.value.hint


def test_publish_without_token_is_a_typed_error(ap_server, ap_signer):
    with pytest.raises(MissingTokenError) as info:
        publish(ap_server, HANDLE, compact_claim(ap_signer, SUBJECT), None)
    assert isinstance(info.value, KezError)
    assert "--mastodon-token" in info.value.hint and "KEZ_MASTODON_TOKEN" in info.value.hint
    assert ap_server.requests == []


def test_rejected_token(ap_server, ap_signer):
    with pytest.raises(TokenRejectedError) as info:
        publish(ap_server, HANDLE, compact_claim(ap_signer, SUBJECT), "wrong-token")
    assert "the Mastodon token was rejected" in info.value.message
    assert "401" in info.value.message and "The access token is invalid" in info.value.message
    assert info.value.exit_code == ExitCode.STORE


def test_token_without_write_scope(ap_server, ap_signer):
    ap_server.add_account("Alice", token="read-only", scopes=("read",))
    with pytest.raises(TokenRejectedError) as info:
        publish(ap_server, HANDLE, compact_claim(ap_signer, SUBJECT), "read-only")
    assert "403" in info.value.message and "outside the authorized scopes" in info.value.message


def test_token_of_another_account(ap_server, ap_signer):
    ap_server.add_account("bob", token="bob-token")
    with pytest.raises(WrongAccountError) as info:
        publish(ap_server, HANDLE, compact_claim(ap_signer, SUBJECT), "bob-token")
    assert "@bob" in info.value.message and HANDLE in info.value.message


@pytest.mark.parametrize("status", [429, 503])
def test_server_trouble_is_a_network_error(ap_server, ap_signer, status):
    ap_server.fail_next(1, status, headers={"Retry-After": "7"}, path="/api/v1/")
    with pytest.raises(PublishError) as info:
        publish(ap_server, HANDLE, compact_claim(ap_signer, SUBJECT), TOKEN)
    assert info.value.exit_code == ExitCode.NETWORK
    assert str(status) in info.value.message


def test_malformed_api_answer(ap_server, ap_signer):
    ap_server.malform_next(1, path="/api/v1/accounts/verify_credentials")
    with pytest.raises(PublishError) as info:
        publish(ap_server, HANDLE, compact_claim(ap_signer, SUBJECT), TOKEN)
    assert "malformed" in info.value.message


def test_instance_endpoint_failure_falls_back_to_defaults(ap_server, ap_signer):
    ap_server.set_limits(field_value_limit=2047)
    ap_server.fail_next(1, 500, path="/api/v2/instance")
    outcome = publish(ap_server, HANDLE, compact_claim(ap_signer, SUBJECT), TOKEN)
    assert outcome.detail.startswith("bio")


def test_publish_via_alias_spelling(ap_server, ap_signer):
    proof = compact_claim(ap_signer, "mastodon:@Alice@Mastodon.Example")
    ctx = ChannelContext(options=ap_server.ctx_options(token=TOKEN), timeout=5)
    run(CHANNEL.publish("@ALICE@mastodon.example", proof, ctx))
    assert verdicts(ap_server) == [(f"https://{DOMAIN}/users/Alice (summary)", Status.VALID)]
