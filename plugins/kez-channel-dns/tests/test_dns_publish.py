"""Publishing: the zone-file line (print-only) and RFC 2136 updates signed with TSIG."""

from __future__ import annotations

import asyncio
import base64

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsigkeyring
import dns.update
import pytest
from dns.rdtypes.ANY.TXT import TXT
from kez_core.claim import check_claim, create_claim
from kez_core.codec import compact_encode
from kez_core.encoding import decode_any, encode
from kez_core.errors import CredentialsError, DecodeError, ExitCode, KezError
from kez_core.protocols import ChannelContext
from kez_core.status import Status

from kez_channel_dns.errors import DnsCredentialsError, DnsOptionError, DnsPublishError
from kez_channel_dns.testing import free_port


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def claim(dns_signer):
    return create_claim(dns_signer, "dns:example.org")


@pytest.fixture
def proof_text(dns_channel, claim):
    # What the CLI hands to publish: the claim in the channel's preferred encoding.
    return encode(claim, dns_channel.proof_encoding)


# --------------------------------------------------------------- print-only


def test_print_only_gives_the_zone_file_line(dns_channel, dns_ctx, claim, proof_text, dns_server):
    outcome = run(dns_channel.publish("example.org", proof_text, dns_ctx))
    assert outcome.location == "_kez.example.org. TXT"
    assert "add this record to the DNS zone of example.org" in outcome.detail
    line = outcome.detail.splitlines()[-1]
    assert line == encode(claim, "dns")
    assert line.startswith('_kez.example.org. 3600 IN TXT "kez:z1:')
    assert all(len(part) <= 255 for part in line.split('"')[1::2])
    assert decode_any(line) == [claim]
    assert dns_server.updates == []  # nothing was sent


def test_print_only_accepts_any_encoding_of_the_claim(dns_channel, claim):
    for text in (compact_encode(claim), encode(claim, "json"), encode(claim, "markdown")):
        outcome = run(dns_channel.publish("example.org", text, ChannelContext()))
        assert decode_any(outcome.detail.splitlines()[-1]) == [claim]


def test_claim_for_another_subject_is_refused(dns_channel, dns_signer):
    other = create_claim(dns_signer, "dns:example.net")
    with pytest.raises(DecodeError, match="dns:example.net"):
        run(dns_channel.publish("example.org", encode(other, "dns"), ChannelContext()))


def test_garbage_proof_text_is_a_decode_error(dns_channel):
    with pytest.raises(DecodeError):
        run(dns_channel.publish("example.org", "not a claim", ChannelContext()))


# ----------------------------------------------------------------- RFC 2136


def test_publish_then_fetch_round_trip(
    dns_server, dns_channel, dns_ctx, dns_update_ctx, claim, proof_text, dns_signer
):
    outcome = run(dns_channel.publish("Example.org", proof_text, dns_update_ctx))
    assert outcome.location == "_kez.example.org. TXT"
    assert "RFC 2136" in outcome.detail and dns_server.address in outcome.detail
    [record] = dns_server.txt("_kez.example.org")
    assert len(record) > 1 and all(len(s) <= 255 for s in record)
    assert b"".join(record).decode() == compact_encode(claim)

    fetched = run(dns_channel.fetch("example.org", dns_ctx))
    [obj] = decode_any(fetched.candidates[0].text)
    check = check_claim(obj)
    assert check.status is Status.VALID and check.primary == dns_signer.key_id


def test_publish_replaces_the_rrset(dns_server, dns_channel, dns_update_ctx, dns_signer):
    dns_server.add_txt("_kez.example.org", ["old proof"])
    dns_server.set_txt("example.org", ["v=spf1 -all"])  # another name: untouched
    first = create_claim(dns_signer, "dns:example.org")
    second = create_claim(dns_signer, "dns:example.org")
    run(dns_channel.publish("example.org", encode(first, "dns"), dns_update_ctx))
    run(dns_channel.publish("example.org", encode(second, "dns"), dns_update_ctx))
    [record] = dns_server.txt("_kez.example.org")
    assert b"".join(record).decode() == compact_encode(second)
    assert dns_server.txt("example.org") == [[b"v=spf1 -all"]]
    assert dns_server.updates[-1]["zone"] == "example.org"
    kinds = [change[0] for change in dns_server.updates[-1]["changes"]]
    assert kinds == ["delete-rrset", "add"]


def test_publish_into_a_parent_zone(dns_server, dns_channel, dns_signer):
    dns_server.zones = {"example.org"}
    claim = create_claim(dns_signer, "dns:www.example.org")
    options = dns_server.ctx_options(update=True) | {"dns_zone": "example.org."}
    run(dns_channel.publish("www.example.org", encode(claim, "dns"), ChannelContext(options)))
    assert dns_server.updates[-1]["zone"] == "example.org"
    assert len(dns_server.txt("_kez.www.example.org")) == 1


def test_wrong_tsig_secret_is_refused_with_badsig(dns_server, dns_channel, proof_text):
    wrong = base64.b64encode(b"\x01" * 32).decode()
    options = dns_server.ctx_options(update=True) | {"dns_tsig_secret": wrong}
    with pytest.raises(DnsPublishError) as caught:
        run(dns_channel.publish("example.org", proof_text, ChannelContext(options, timeout=5)))
    error = caught.value
    assert error.rcode == "NOTAUTH" and error.tsig_error == "BADSIG"
    assert "BADSIG" in error.message and "NOTAUTH" in error.message
    assert "--dns-tsig-secret" in error.hint
    assert error.exit_code == ExitCode.NETWORK
    assert error.to_dict()["tsig_error"] == "BADSIG"
    assert dns_server.txt("_kez.example.org") == []  # nothing changed


def test_unknown_tsig_key_is_refused_with_badkey(dns_server, dns_channel, proof_text):
    options = dns_server.ctx_options(update=True) | {"dns_tsig_name": "someone-else."}
    with pytest.raises(DnsPublishError) as caught:
        run(dns_channel.publish("example.org", proof_text, ChannelContext(options, timeout=5)))
    assert caught.value.tsig_error == "BADKEY"


def test_wrong_tsig_algorithm_is_refused(dns_server, dns_channel, proof_text):
    options = dns_server.ctx_options(update=True) | {"dns_tsig_algorithm": "hmac-sha512"}
    with pytest.raises(DnsPublishError) as caught:
        run(dns_channel.publish("example.org", proof_text, ChannelContext(options, timeout=5)))
    assert caught.value.rcode == "NOTAUTH"


def test_zone_the_server_does_not_serve_is_notauth(dns_server, dns_channel, proof_text):
    dns_server.zones = {"example.net"}
    with pytest.raises(DnsPublishError) as caught:
        run(
            dns_channel.publish(
                "example.org", proof_text, ChannelContext(dns_server.ctx_options(update=True))
            )
        )
    assert caught.value.rcode == "NOTAUTH" and caught.value.tsig_error is None
    assert "--dns-zone" in caught.value.hint


def test_update_servfail_is_a_publish_error(dns_server, dns_channel, proof_text):
    dns_server.fail_next(1, "SERVFAIL")
    with pytest.raises(DnsPublishError):
        run(
            dns_channel.publish(
                "example.org", proof_text, ChannelContext(dns_server.ctx_options(update=True))
            )
        )


def test_update_server_down(dns_server, dns_channel, proof_text):
    options = dns_server.ctx_options(update=True) | {
        "dns_update_server": f"127.0.0.1:{free_port()}"
    }
    with pytest.raises(DnsPublishError, match="cannot reach"):
        run(dns_channel.publish("example.org", proof_text, ChannelContext(options, timeout=3)))


def test_update_timeout(dns_server, dns_channel, proof_text):
    dns_server.drop = True
    options = dns_server.ctx_options(update=True)
    with pytest.raises(DnsPublishError, match="no answer"):
        run(dns_channel.publish("example.org", proof_text, ChannelContext(options, timeout=1)))


# ------------------------------------------------------------ credentials


@pytest.mark.parametrize("missing", ["dns_tsig_name", "dns_tsig_secret"])
def test_publish_without_credentials_is_a_typed_error(dns_server, dns_channel, proof_text, missing):
    options = dns_server.ctx_options(update=True)
    del options[missing]
    with pytest.raises(DnsCredentialsError) as caught:
        run(dns_channel.publish("example.org", proof_text, ChannelContext(options)))
    assert isinstance(caught.value, CredentialsError) and caught.value.exit_code == ExitCode.STORE
    flag = "--" + missing.replace("_", "-")
    assert flag in caught.value.message and "KEZ_" + missing.upper() in caught.value.message
    assert dns_server.updates == []


def test_tsig_without_update_server_is_an_option_error(dns_server, dns_channel, proof_text):
    options = dns_server.ctx_options(update=True)
    del options["dns_update_server"]
    with pytest.raises(DnsOptionError, match="no update server"):
        run(dns_channel.publish("example.org", proof_text, ChannelContext(options)))


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("dns_tsig_secret", "not base64!!", "not base64"),
        ("dns_tsig_algorithm", "hmac-md4", "not a TSIG HMAC algorithm"),
        ("dns_zone", "example.net", "not inside zone"),
        ("dns_update_server", "127.0.0.1:0", "HOST"),
    ],
)
def test_malformed_update_settings(dns_server, dns_channel, proof_text, key, value, match):
    options = dns_server.ctx_options(update=True) | {key: value}
    with pytest.raises(DnsOptionError, match=match) as caught:
        run(dns_channel.publish("example.org", proof_text, ChannelContext(options)))
    assert isinstance(caught.value, KezError) and caught.value.exit_code == ExitCode.USAGE


# ------------------------------------------- the test server speaks RFC 2136


def _update(server, *, keyring=True):
    update = dns.update.UpdateMessage(
        "example.org.",
        keyring=dns.tsigkeyring.from_text(
            {server.tsig_name: (server.tsig_algorithm, server.tsig_secret)}
        )
        if keyring
        else None,
    )
    return update


async def _send(server, message):
    return await dns.asyncquery.tcp(message, server.host, port=server.port, timeout=5)


def test_server_signs_its_answers_to_signed_updates(dns_server):
    update = _update(dns_server)
    update.add("_kez.example.org.", 300, TXT(dns.rdataclass.IN, dns.rdatatype.TXT, [b"x"]))
    response = run(_send(dns_server, update))
    assert response.rcode() == dns.rcode.NOERROR
    assert response.had_tsig  # dnspython verified it against the request's MAC
    assert dns_server.txt("_kez.example.org") == [[b"x"]]


def test_server_refuses_unsigned_updates(dns_server):
    update = _update(dns_server, keyring=False)
    update.add("_kez.example.org.", 300, TXT(dns.rdataclass.IN, dns.rdatatype.TXT, [b"x"]))
    assert run(_send(dns_server, update)).rcode() == dns.rcode.REFUSED
    dns_server.allow_unsigned_updates = True
    assert run(_send(dns_server, update)).rcode() == dns.rcode.NOERROR


def test_server_checks_prerequisites_and_zone(dns_server):
    txt = TXT(dns.rdataclass.IN, dns.rdatatype.TXT, [b"x"])
    update = _update(dns_server)
    update.present("_kez.example.org.", "TXT")  # RRset must exist: it does not
    update.add("_kez.example.org.", 300, txt)
    assert run(_send(dns_server, update)).rcode() == dns.rcode.NXRRSET
    update = _update(dns_server)
    update.absent("_kez.example.org.")
    update.add("_kez.example.org.", 300, txt)
    assert run(_send(dns_server, update)).rcode() == dns.rcode.NOERROR
    update = _update(dns_server)
    update.add("_kez.example.net.", 300, txt)  # outside the zone
    assert run(_send(dns_server, update)).rcode() == dns.rcode.NOTZONE
    update = _update(dns_server)
    update.delete("_kez.example.org.", txt)
    assert run(_send(dns_server, update)).rcode() == dns.rcode.NOERROR
    assert dns_server.txt("_kez.example.org") == []


def test_server_answers_queries_over_tcp_and_udp(dns_server):
    dns_server.set_txt("_kez.example.org", ["a" * 255, "b" * 255, "c"])
    query = dns.message.make_query("_kez.example.org.", "TXT")
    udp = run(dns.asyncquery.udp(query, dns_server.host, port=dns_server.port, timeout=5))
    assert udp.flags & dns.flags.TC and not udp.answer
    tcp = run(dns.asyncquery.tcp(query, dns_server.host, port=dns_server.port, timeout=5))
    [rrset] = tcp.answer
    assert [list(rd.strings) for rd in rrset] == [[b"a" * 255, b"b" * 255, b"c"]]
    query.use_edns(0, payload=4096)
    big = run(dns.asyncquery.udp(query, dns_server.host, port=dns_server.port, timeout=5))
    assert not big.flags & dns.flags.TC and big.answer
