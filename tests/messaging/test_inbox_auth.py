"""X-KEZ-Auth (spec section 11): signing and checking the inbox header, both key algorithms."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kez_core.keys import Signer
from kez_core.messaging.inbox_auth import (
    InboxAuthError,
    parse_inbox_auth,
    sign_inbox_request,
    signed_bytes,
    verify_inbox_auth,
)

PATH = "/v1/inbox/alice"
NOW = 1_800_000_000


def check(header, primary, *, devices=(), bound="since=0", path=PATH, method="GET", now=NOW):
    return verify_inbox_auth(
        header, method=method, path=path, bound=bound, primary=primary, devices=devices, now=now
    )


@pytest.mark.parametrize("alg", ["ed25519", "nostr"])
def test_the_primary_signs_and_the_server_accepts(alg):
    signer = Signer.generate(alg)
    header = sign_inbox_request(signer, "GET", PATH, "since=0", NOW)
    ts, sig = header.split(":")
    assert ts == str(NOW) and len(sig) == 128
    assert check(header, signer.key_id) == signer.key_id


def test_the_signed_bytes_are_the_seeds_shape():
    assert signed_bytes("get", PATH, "since=7", 5) == b"GET\n/v1/inbox/alice\nsince=7\n5"


def test_bip340_signs_the_sha256_of_the_bytes():
    import hashlib

    signer = Signer.generate("nostr")
    header = sign_inbox_request(signer, "GET", PATH, "since=0", NOW)
    sig = bytes.fromhex(header.split(":")[1])
    public = bytes.fromhex(signer.key_id.split(":")[1])
    digest = hashlib.sha256(signed_bytes("GET", PATH, "since=0", NOW)).digest()
    import coincurve

    assert coincurve.PublicKeyXOnly(public).verify(sig, digest)


@pytest.mark.parametrize("alg", ["ed25519", "nostr"])
def test_a_device_key_names_itself(alg):
    primary, device = Signer.generate(), Signer.generate(alg)
    header = sign_inbox_request(device, "GET", PATH, "since=3", NOW, device=True)
    assert header.count(":") == 3  # ts, the key id's own colon, sig
    assert parse_inbox_auth(header).key == device.key_id
    assert check(header, primary.key_id, devices={device.key_id}, bound="since=3") == device.key_id
    with pytest.raises(InboxAuthError) as err:  # a device the chain does not hold
        check(header, primary.key_id, bound="since=3")
    assert err.value.reason == "wrong_signer"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"now": NOW + 61}, "stale"),
        ({"now": NOW - 61}, "future"),
        ({"bound": "since=1"}, "bad_signature"),  # signed for another cursor
        ({"path": "/v1/inbox/bob"}, "bad_signature"),
        ({"method": "DELETE"}, "bad_signature"),
    ],
)
def test_refusals(change, reason):
    signer = Signer.generate()
    header = sign_inbox_request(signer, "GET", PATH, "since=0", NOW)
    with pytest.raises(InboxAuthError) as err:
        check(header, signer.key_id, **change)
    assert err.value.reason == reason and err.value.exit_code == 1


def test_the_skew_edges_are_accepted():
    signer = Signer.generate()
    header = sign_inbox_request(signer, "GET", PATH, "since=0", NOW)
    assert check(header, signer.key_id, now=NOW + 60) and check(header, signer.key_id, now=NOW - 60)


def test_a_wrong_signer_is_refused():
    signer, other = Signer.generate(), Signer.generate()
    header = sign_inbox_request(other, "GET", PATH, "since=0", NOW)
    with pytest.raises(InboxAuthError) as err:
        check(header, signer.key_id)
    assert err.value.reason == "bad_signature"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "  ",
        "abc",
        "123",
        "12:zz",
        "12:" + "a" * 127,
        ":" + "a" * 128,
        "1" * 13 + ":" + "a" * 128,
    ],
)
def test_missing_and_malformed(header):
    with pytest.raises(InboxAuthError) as err:
        check(header, Signer.generate().key_id)
    assert err.value.reason in {"missing", "malformed"}


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.none(),
        st.text(max_size=300),
        st.from_regex(r"\A[0-9]{1,12}:[a-z0-9:]{0,80}:[0-9a-f]{0,140}\Z"),
    )
)
def test_garbage_is_only_ever_an_inbox_auth_error(header):
    with pytest.raises(InboxAuthError):
        check(header, "ed25519:" + "11" * 32, devices={"nostr:" + "22" * 32})


# ------------------------------------------------- remembered signatures


def test_a_remembered_signature_skips_only_the_signature_check():
    """`verified` remembers signatures that held; the clock and the signer are judged anew."""
    from kez_core.messaging.inbox_auth import VerifiedSignatures

    primary, device = Signer.generate(), Signer.generate()
    verified = VerifiedSignatures(size=8)
    header = sign_inbox_request(device, "GET", PATH, "since=0", NOW, device=True)

    def again(**kw):
        args = {"primary": primary.key_id, "devices": {device.key_id}, "now": NOW, **kw}
        return verify_inbox_auth(
            header, method="GET", path=PATH, bound="since=0", verified=verified, **args
        )

    assert again() == device.key_id
    assert len(verified) == 1
    assert again(now=NOW + 60) == device.key_id  # still inside the skew window
    for kw, reason in (
        ({"now": NOW + 61}, "stale"),  # never beyond the window, remembered or not
        ({"now": NOW - 61}, "future"),
        ({"devices": set()}, "wrong_signer"),  # the device left the chain
    ):
        with pytest.raises(InboxAuthError) as err:
            again(**kw)
        assert err.value.reason == reason
    # another cursor is other bytes: not remembered, and the signature does not hold
    with pytest.raises(InboxAuthError) as err:
        verify_inbox_auth(
            header,
            method="GET",
            path=PATH,
            bound="since=1",
            primary=primary.key_id,
            devices={device.key_id},
            now=NOW,
            verified=verified,
        )
    assert err.value.reason == "bad_signature"
    assert len(verified) == 1  # a signature that failed is not remembered


def test_a_bad_signature_is_never_remembered_and_the_memory_is_bounded():
    from kez_core.messaging.inbox_auth import VerifiedSignatures

    signer = Signer.generate()
    verified = VerifiedSignatures(size=3)
    good = sign_inbox_request(signer, "GET", PATH, "since=0", NOW)
    ts, sig = good.split(":")
    forged = f"{ts}:{sig[:-2]}{(int(sig[-2:], 16) ^ 1):02x}"
    for _ in range(2):
        with pytest.raises(InboxAuthError) as err:
            verify_inbox_auth(
                forged,
                method="GET",
                path=PATH,
                bound="since=0",
                primary=signer.key_id,
                now=NOW,
                verified=verified,
            )
        assert err.value.reason == "bad_signature"
    assert len(verified) == 0
    for n in range(5):
        header = sign_inbox_request(signer, "GET", PATH, f"since={n}", NOW)
        verify_inbox_auth(
            header,
            method="GET",
            path=PATH,
            bound=f"since={n}",
            primary=signer.key_id,
            now=NOW,
            verified=verified,
        )
    assert len(verified) == 3
    with pytest.raises(ValueError):
        VerifiedSignatures(size=0)


def test_a_recalled_header_is_still_judged_on_time_and_keys():
    """The header memory skips parsing only on a pass; every refusal keeps its reason."""
    from kez_core.messaging.inbox_auth import VerifiedSignatures

    old_primary, new_primary, device = Signer.generate(), Signer.generate(), Signer.generate()
    verified = VerifiedSignatures(size=4)
    short = sign_inbox_request(old_primary, "GET", PATH, "since=0", NOW)
    named = sign_inbox_request(device, "GET", PATH, "since=0", NOW, device=True)

    def judge(header, primary, devices=(), now=NOW, bound="since=0"):
        try:
            return verify_inbox_auth(
                header,
                method="GET",
                path=PATH,
                bound=bound,
                primary=primary,
                devices=devices,
                now=now,
                verified=verified,
            )
        except InboxAuthError as exc:
            return exc.reason

    for _ in range(2):  # the second time from memory
        assert judge(short, old_primary.key_id) == old_primary.key_id
        assert judge(named, old_primary.key_id, {device.key_id}) == device.key_id
    assert judge(short, new_primary.key_id) == "bad_signature"  # the primary rotated
    assert judge(named, new_primary.key_id) == "wrong_signer"  # the device left
    assert judge(short, old_primary.key_id, now=NOW + 61) == "stale"
    assert judge(short, old_primary.key_id, now=NOW - 61) == "future"
    assert judge(short, old_primary.key_id, bound="since=5") == "bad_signature"  # another cursor
    assert judge(short, old_primary.key_id, now=NOW + 60) == old_primary.key_id
