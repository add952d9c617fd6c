"""`kez claim publish nostr:<own key>` needs no --nostr-secret: the core hands the channel the
subject key's secret (`kez_core.plugin.SUBJECT_SECRET`) without naming the plugin (issue 16)."""

from __future__ import annotations

import json

import pytest

nostr_testing = pytest.importorskip("kez_channel_nostr.testing")


def test_a_nostr_identity_publishes_its_own_key_claim_without_a_secret_flag(kez, monkeypatch):
    monkeypatch.delenv("KEZ_NOSTR_SECRET", raising=False)
    code, out, err = kez("identity", "new", "--alg", "nostr", "--no-passphrase", "--json")
    assert code == 0, err
    key_id = json.loads(out)["key_id"]
    with nostr_testing.running_server() as relay:
        code, out, err = kez("claim", "publish", key_id, "--relay", relay.url, "--json")
        assert code == 0, err
        assert json.loads(out)["subject"] == key_id
        code, out, err = kez("verify", key_id, "--relay", relay.url, "--json")
    result = json.loads(out)["results"][0]
    assert code == 0, err
    assert [c["status"] for c in result["claims"]] == ["valid"]


def test_another_nostr_account_still_needs_its_secret(kez, monkeypatch):
    monkeypatch.delenv("KEZ_NOSTR_SECRET", raising=False)
    kez("identity", "new", "--no-passphrase")
    with nostr_testing.running_server() as relay:
        code, _, err = kez("claim", "publish", "nostr:" + "ab" * 32, "--relay", relay.url)
    assert code == 4 and "--nostr-secret" in err
