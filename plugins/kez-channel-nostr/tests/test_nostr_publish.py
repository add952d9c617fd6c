"""Publishing proof events through the real channel code to a real nostr-relay."""

from __future__ import annotations

import pytest
from nostr_helpers import NostrAccount, checks, claim_text, fetch, publish

from kez_core import nip19
from kez_core.errors import CredentialsError, ExitCode, KeyFormatError, KezError
from kez_core.keys import Signer
from kez_core.status import Status
from kez_channel_nostr.errors import (
    NostrConfigError,
    NostrKeyMismatchError,
    NostrPublishError,
    NostrSecretMissingError,
)


@pytest.fixture
def identity():
    return Signer.generate("ed25519")


@pytest.fixture
def account():
    return NostrAccount.new()


def test_publish_then_fetch_round_trip(nostr_server, identity, account):
    text = claim_text(identity, account)
    options = {**nostr_server.ctx_options(), "nostr_secret": account.secret.hex()}
    result = publish(account.pubkey, text, options)
    assert result.location == nostr_server.url
    assert "accepted by 1 of 1 relays" in result.detail
    [event_message] = [
        m
        for m in nostr_server.client_messages
        if m[0] == "EVENT" and m[1]["pubkey"] == account.pubkey
    ]
    event = event_message[1]
    assert event["kind"] == 30078 and event["tags"] == [["d", "kez"]]
    assert event["content"] == text and event["pubkey"] == account.pubkey
    assert event["id"] in result.detail

    outcome = fetch(account.pubkey, nostr_server.ctx_options())
    [check] = checks(outcome)
    assert check.status is Status.VALID and check.primary == identity.key_id


def test_publish_with_nsec_and_npub_handle(nostr_server, identity, account):
    options = {
        **nostr_server.ctx_options(),
        "nostr_secret": nip19.encode("nsec", account.secret),
    }
    npub = nip19.encode("npub", bytes.fromhex(account.pubkey))
    publish(npub, claim_text(identity, account), options)
    assert len(fetch(account.pubkey, nostr_server.ctx_options()).candidates) == 1


def test_publish_without_secret_is_a_typed_error(nostr_server, identity, account):
    for options in (
        nostr_server.ctx_options(),
        {**nostr_server.ctx_options(), "nostr_secret": "  "},
    ):
        with pytest.raises(NostrSecretMissingError) as caught:
            publish(account.pubkey, claim_text(identity, account), options)
        assert (
            isinstance(caught.value, CredentialsError) and caught.value.exit_code == ExitCode.STORE
        )
        assert "--nostr-secret" in caught.value.hint and "KEZ_NOSTR_SECRET" in caught.value.hint
    assert not [m for m in nostr_server.client_messages if m[0] == "EVENT"]  # nothing was sent


def test_publish_with_another_accounts_secret_is_refused(nostr_server, identity, account):
    other = NostrAccount.new()
    options = {**nostr_server.ctx_options(), "nostr_secret": other.secret.hex()}
    with pytest.raises(NostrKeyMismatchError) as caught:
        publish(account.pubkey, claim_text(identity, account), options)
    assert other.pubkey in caught.value.message and account.pubkey in caught.value.message
    assert not [m for m in nostr_server.client_messages if m[0] == "EVENT"]


@pytest.mark.parametrize("secret", ["zz" * 32, "nsec1qqqqqq", "0" * 64, "abc", "npub1" + "q" * 58])
def test_malformed_secret_is_a_key_format_error_that_does_not_echo_it(
    nostr_server, identity, account, secret
):
    options = {**nostr_server.ctx_options(), "nostr_secret": secret}
    with pytest.raises(KeyFormatError) as caught:
        publish(account.pubkey, claim_text(identity, account), options)
    assert secret not in str(caught.value) and secret not in (caught.value.hint or "")


def test_publish_when_every_relay_is_down(nostr_server, identity, account):
    options = {"nostr_relays": (nostr_server.refused_url,), "nostr_secret": account.secret.hex()}
    with pytest.raises(NostrPublishError) as caught:
        publish(account.pubkey, claim_text(identity, account), options)
    assert caught.value.exit_code == ExitCode.NETWORK
    assert f"{nostr_server.refused_url}: refused the connection" in caught.value.message


def test_publish_with_one_relay_down(nostr_server, identity, account):
    options = {
        "nostr_relays": (nostr_server.refused_url, nostr_server.url),
        "nostr_secret": account.secret.hex(),
    }
    result = publish(account.pubkey, claim_text(identity, account), options)
    assert result.location == nostr_server.url
    assert "accepted by 1 of 2 relays" in result.detail
    assert nostr_server.refused_url in result.detail


def test_relay_refusing_the_event(nostr_server, identity, account):
    nostr_server.refuse_next(reason="blocked: not on the allow list")
    options = {**nostr_server.ctx_options(), "nostr_secret": account.secret.hex()}
    with pytest.raises(NostrPublishError) as caught:
        publish(account.pubkey, claim_text(identity, account), options)
    assert "blocked: not on the allow list" in caught.value.message


def test_real_relay_refuses_an_oversized_event(nostr_server, account):
    options = {**nostr_server.ctx_options(), "nostr_secret": account.secret.hex()}
    with pytest.raises(NostrPublishError) as caught:
        publish(account.pubkey, "kez:z1:" + "A" * 20_000, options)
    assert "invalid:" in caught.value.message  # nostr-relay's own OK-false message


def test_relay_that_never_answers_ok(nostr_server, identity, account):
    options = {"nostr_relays": (nostr_server.silent_url,), "nostr_secret": account.secret.hex()}
    with pytest.raises(NostrPublishError) as caught:
        publish(account.pubkey, claim_text(identity, account), options, timeout=1.0)
    assert "no OK within 1 s" in caught.value.message


def test_bad_relay_configuration(identity, account):
    base = {"nostr_secret": account.secret.hex()}
    with pytest.raises(NostrConfigError):
        publish(account.pubkey, claim_text(identity, account), {**base, "nostr_relays": ()})
    with pytest.raises(NostrConfigError) as caught:
        publish(account.pubkey, "x", {**base, "nostr_relays": ("http://relay.example",)})
    assert "http://relay.example" in caught.value.message
    assert isinstance(caught.value, KezError)
