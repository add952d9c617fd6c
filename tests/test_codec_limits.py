"""Decoders never trust sizes and never leak library exceptions (DESIGN.md §3, §8)."""

from __future__ import annotations

import base64
import json
import secrets
import tracemalloc

import pytest
import zstandard
from kez_core.builtins import bip340, ed25519, encodings
from kez_core.builtins.encodings import CompactEncoding, DnsEncoding, JsonEncoding, MarkdownEncoding
from kez_core.claim import check_claim, create_claim
from kez_core.codec import (
    COMPACT_PREFIX,
    MAX_OBJECT_BYTES,
    MAX_TEXT_CHARS,
    check_text,
    compact_decode,
    compact_encode,
    parse_json,
    zstd_decompress_capped,
)
from kez_core.encoding import decode_any, encode
from kez_core.errors import DecodeError, SizeLimitError
from kez_core.keys import Signer
from kez_core.registry import Registry
from kez_core.signed import SignedObject, sign
from kez_core.status import Status


@pytest.fixture(scope="module")
def registry():
    return Registry(plugins=[ed25519, bip340, encodings], entry_points=False, env={})


@pytest.fixture(scope="module")
def signer(registry):
    return Signer.generate("ed25519", registry)


@pytest.fixture(scope="module")
def claim(signer, registry):
    return create_claim(signer, "dns:example.org", registry=registry)


@pytest.fixture(scope="module")
def big_claim(signer):
    """A claim whose compact form needs several 255-byte TXT strings (random data does not compress)."""
    from kez_core.timefmt import format_time, now

    payload = {
        "primary": signer.key_id,
        "subject": "dns:example.org",
        "created_at": format_time(now()),
        "nonce": secrets.token_hex(16),
        "padding": secrets.token_hex(400),
    }
    return sign("claim", payload, signer)


def wrap(raw: bytes) -> str:
    return COMPACT_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def measure_peak(function, *args):
    """Run `function(*args)`, return (exception or None, peak traced bytes)."""
    tracemalloc.start()
    try:
        function(*args)
        error = None
    except Exception as exc:  # noqa: BLE001 - returned for the caller to check
        error = exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return error, peak


# ---------------------------------------------------------------------- sizes


def test_oversized_text_everywhere(registry, claim):
    huge = "x" * (MAX_TEXT_CHARS + 1)
    with pytest.raises(SizeLimitError):
        check_text(huge)
    with pytest.raises(SizeLimitError):
        check_text(huge.encode() * 5)
    with pytest.raises(SizeLimitError):
        decode_any(huge, registry)
    padded = encode(claim, "json", registry) + " " * MAX_TEXT_CHARS
    for enc in (JsonEncoding(), CompactEncoding(), MarkdownEncoding(), DnsEncoding()):
        with pytest.raises(SizeLimitError):
            enc.decode(padded)


def test_oversized_json(registry, claim):
    data = json.loads(claim.canonical())
    data["payload"]["padding"] = "a" * MAX_OBJECT_BYTES
    text = json.dumps(data)
    with pytest.raises(SizeLimitError):
        parse_json(text)
    with pytest.raises(SizeLimitError):
        decode_any(text, registry)


def test_oversized_compact_body(registry):
    body = "A" * ((MAX_OBJECT_BYTES * 4) // 3 + 8)
    body += "A" * (len(body) % 4 == 1)
    assert len(body) % 4 != 1
    with pytest.raises(SizeLimitError):
        compact_decode(COMPACT_PREFIX + body)
    with pytest.raises(SizeLimitError):
        decode_any(f"see {COMPACT_PREFIX}{body} here", registry)


def test_zstd_bomb_declared_size(registry):
    raw = zstandard.ZstdCompressor(level=19).compress(b"\0" * 10_000_000)
    assert len(raw) < 2000  # tiny on the wire
    text = wrap(raw)
    error, peak = measure_peak(decode_any, text, registry)
    assert isinstance(error, SizeLimitError), error
    assert peak < 2_000_000, f"decoding a bomb allocated {peak} bytes"


def test_zstd_bomb_without_declared_size(registry):
    raw = zstandard.ZstdCompressor(level=19, write_content_size=False).compress(b"\0" * 10_000_000)
    assert zstandard.frame_content_size(raw) == -1
    for target in (
        lambda t: compact_decode(t),
        lambda t: decode_any(f"```kez\n{t}\n```", registry),
    ):
        error, peak = measure_peak(target, wrap(raw))
        assert isinstance(error, SizeLimitError), error
        assert peak < 2_000_000, f"decoding a bomb allocated {peak} bytes"


def test_frame_declaring_a_huge_size():
    # magic, descriptor (8-byte content size, single segment), size 2**40, one empty raw last block
    frame = (
        bytes.fromhex("28b52ffd") + bytes([0xE0]) + (2**40).to_bytes(8, "little") + b"\x01\x00\x00"
    )
    assert zstandard.frame_content_size(frame) == 2**40
    error, peak = measure_peak(compact_decode, wrap(frame))
    assert isinstance(error, SizeLimitError), error
    assert "declares" in str(error)
    assert peak < 1_000_000


def test_frame_declaring_less_than_it_holds():
    # declares 5 bytes, holds a raw block of 100: must be an error, not 100 bytes
    frame = (
        bytes.fromhex("28b52ffd")
        + bytes([0x20, 5])
        + ((100 << 3) | 1).to_bytes(3, "little")
        + b"a" * 100
    )
    with pytest.raises(DecodeError):
        zstd_decompress_capped(frame)


def test_decompressed_just_over_the_cap():
    payload = b"[" + b"0," * (MAX_OBJECT_BYTES // 2) + b"0]"
    raw = zstandard.ZstdCompressor(write_content_size=False).compress(payload)
    with pytest.raises(SizeLimitError):
        zstd_decompress_capped(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00",
        b"not zstd at all",
        bytes.fromhex("28b52ffd"),
        bytes.fromhex("28b52ffd") + b"\xff" * 20,
    ],
)
def test_corrupt_zstd_is_decode_error(raw):
    with pytest.raises(DecodeError):
        compact_decode(wrap(raw))


def test_compact_that_is_not_json():
    raw = zstandard.ZstdCompressor().compress(b"\xff\xfe not json")
    with pytest.raises(DecodeError):
        compact_decode(wrap(raw))


@pytest.mark.parametrize("body", ["A", "AAAAA", "AB+C", "AB/C", "AB=C", "AB C", "é"])
def test_bad_base64url(body):
    with pytest.raises(DecodeError):
        compact_decode(COMPACT_PREFIX + body)


# ----------------------------------------------------------------------- JSON


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        '{"kez": "claim", "kez": "claim"}',
        '{"payload": {"x": 1, "y": {"z": 1, "z": 1}}}',
    ],
)
def test_duplicate_keys_rejected(text):
    with pytest.raises(DecodeError, match="duplicate"):
        parse_json(text)


def test_duplicate_keys_in_a_claim(registry, claim):
    text = claim.canonical().decode()
    doubled = text.replace('"kez":"claim"', '"kez":"claim","kez":"claim"', 1)
    assert doubled != text
    with pytest.raises(DecodeError, match="duplicate"):
        decode_any(doubled, registry)
    nested = text.replace('"primary":', '"subject":"github:mallory","primary":', 1)
    with pytest.raises(DecodeError, match="duplicate"):
        decode_any(nested, registry)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_finite_numbers_rejected(registry, claim, token):
    with pytest.raises(DecodeError):
        parse_json(f'{{"x": {token}}}')
    text = claim.canonical().decode().replace('"payload":{', f'"payload":{{"n":{token},', 1)
    with pytest.raises(DecodeError):
        decode_any(text, registry)


def test_huge_integer_is_decode_error():
    with pytest.raises(DecodeError):
        parse_json("1" * 5000)


@pytest.mark.parametrize("opener", ["[", '{"a":', '[{"a":'])
def test_deep_nesting_is_decode_error(registry, opener):
    depth = 30_000 // len(opener)
    text = opener * depth
    for function in (
        parse_json,
        lambda t: decode_any(t, registry),
        lambda t: compact_decode(wrap(zstandard.ZstdCompressor().compress(t.encode()))),
    ):
        try:
            function(text)
        except DecodeError:
            continue
        except RecursionError:  # pragma: no cover - the failure this test exists for
            pytest.fail("deep nesting escaped as RecursionError")
        pytest.fail("deep nesting was accepted")


def test_deep_payload_inside_a_valid_envelope(registry, claim):
    """Nesting deep enough to strain recursion but small enough to parse: check_claim answers."""
    for depth in (200, 900, 5000):
        data = json.loads(claim.canonical())
        inner = "[" * depth + "]" * depth
        text = json.dumps(data).replace('"payload": {', f'"payload": {{"deep": {inner}, ', 1)
        try:
            objects = decode_any(text, registry)
        except DecodeError:
            continue
        result = check_claim(objects[0], registry=registry)
        assert result.status is Status.INVALID  # the payload changed after signing


@pytest.mark.parametrize(
    "text", ["", " ", "nul", "{", '{"a"}', "[1,]", "\ufeff{}", '"\\ud800', b"\xff\xfe"]
)
def test_malformed_json_is_decode_error(text):
    with pytest.raises(DecodeError):
        parse_json(text)


def test_non_utf8_bytes(registry):
    with pytest.raises(DecodeError, match="UTF-8"):
        decode_any(b"\xff\xfe{}", registry)


# ------------------------------------------------------------------------ DNS


def test_dns_split_into_255_byte_strings(registry, big_claim):
    text = encode(big_claim, "dns", registry)
    assert text.startswith("_kez.example.org. 3600 IN TXT ")
    strings = text.split("IN TXT ", 1)[1].split(" ")
    assert len(strings) >= 3
    assert all(len(s.strip('"').encode()) <= 255 for s in strings)
    assert all(len(s.strip('"')) == 255 for s in strings[:-1])
    rdata = " ".join(strings)
    for variant in (
        text,
        rdata,
        "\n" + rdata + "\n",
        "_kez.example.org. IN TXT " + rdata,
        "_kez.example.org. 300 TXT " + rdata,
        "_kez.example.org.\t3600\tIN\tTXT\t" + "\t".join(strings),
    ):
        assert decode_any(variant, registry) == [big_claim], variant[:60]
        assert DnsEncoding().decode(variant) == [big_claim]


def test_dns_readers_join_any_split(registry, big_claim):
    compact = compact_encode(big_claim)
    for size in (1, 7, 100, 255):
        parts = [compact[i : i + size] for i in range(0, len(compact), size)]
        text = " ".join(f'"{p}"' for p in parts)
        assert decode_any(text, registry) == [big_claim]


def test_dns_escapes(registry, claim):
    compact = compact_encode(claim)
    first, rest = compact[:200], compact[200:]
    escaped = "\\" + str(ord(first[0])).zfill(3) + "\\" + first[1] + first[2:]
    assert DnsEncoding().decode(f'"{escaped}" "{rest}"') == [claim]
    # an escape counts as the one byte it stands for: 255 escaped bytes fit one string
    assert DnsEncoding().decode(f'"{first}" "{rest}"') == [claim]


@pytest.mark.parametrize(
    "text",
    [
        '"' + "A" * 256 + '"',
        '"kez:z1:AAAA" junk',
        '"unterminated',
        "_kez.example.org. 3600 IN TXT",
        '"\\²²²"',  # superscript digits are not a \DDD escape
        '"\\999"',
    ],
)
def test_dns_bad_input(registry, text):
    with pytest.raises(DecodeError):
        DnsEncoding().decode(text)


def test_dns_non_claim_has_no_owner(registry, signer):
    obj = sign("note", {"text": "hello"}, signer)
    text = encode(obj, "dns", registry)
    assert text.startswith('"kez:z1:')
    assert decode_any(text, registry) == [obj]


# ------------------------------------------------------------------- markdown


def test_markdown_prose_and_two_blocks(registry, signer, claim):
    second = create_claim(signer, "github:alice", registry=registry)
    text = (
        "# My proofs\n\nI am alice. Here is one:\n\n"
        + encode(claim, "markdown", registry)
        + "\nand ```inline code``` and another one:\n\n"
        + encode(second, "markdown", registry)
        + "\nThanks for reading.\n"
    )
    assert decode_any(text, registry) == [claim, second]


def test_markdown_wrapped_lines(registry, big_claim):
    compact = compact_encode(big_claim)
    wrapped = "\n".join(compact[i : i + 64] for i in range(0, len(compact), 64))
    for text in (
        f"proof:\n```kez\n{wrapped}\n```\n",
        f"~~~kez\n{wrapped}\n~~~",
        f"   ```kez\n{wrapped}\n   ```",
        f"````kez\n{wrapped}\n````\n",
        f"```kez\r\n{wrapped.replace(chr(10), chr(13) + chr(10))}\r\n```\r\n",
        f"```kez\n  {wrapped.replace(chr(10), chr(10) + '  ')}  \n```",
    ):
        assert decode_any(text, registry) == [big_claim], text[:40]


@pytest.mark.parametrize(
    "text",
    [
        "```kez\nkez:z1:AAAA",  # unterminated
        "```kez\n```",
        "```kez\nnot a compact form\n```",
        "```kez\nkez:z1:AAAA\n~~~",  # fence kinds differ
    ],
)
def test_markdown_bad_blocks(registry, text):
    with pytest.raises(DecodeError):
        MarkdownEncoding().decode(text)


def test_compact_tokens_in_prose(registry, claim, signer):
    other = create_claim(signer, "github:bob", registry=registry)
    text = f"My key proof: {compact_encode(claim)} and {compact_encode(other)}."
    assert decode_any(text, registry) == [claim, other]


def test_nothing_found(registry):
    with pytest.raises(DecodeError, match="not a KEZ object"):
        decode_any("just some prose", registry)


def test_signed_object_from_dict_types():
    for value in (None, [], "x", 1, {"kez": "claim"}):
        with pytest.raises(DecodeError):
            SignedObject.from_dict(value)


@pytest.mark.parametrize("number", [4.006166625208573e16, 2.0**60, -(2.0**53), 1e21, 1.5, 1.0])
def test_signed_numbers_survive_the_wire(registry, signer, number):
    """JCS writes integral doubles as digits; reading them back must give the same signed bytes."""
    obj = sign("note", {"n": number}, signer)
    for name in ("json", "compact", "markdown", "dns"):
        [decoded] = decode_any(encode(obj, name, registry), registry)
        assert decoded.payload["n"] == number
        assert decoded.canonical() == obj.canonical()
        assert decoded.id == obj.id


def test_big_integers_read_as_doubles():
    assert parse_json("9007199254740991") == 9007199254740991
    assert isinstance(parse_json("9007199254740991"), int)
    assert parse_json("9007199254740993") == 9007199254740992.0
    with pytest.raises(DecodeError):
        parse_json("1" + "0" * 400)


def test_compact_refuses_bytes_after_the_frame_and_truncated_frames():
    import base64

    import zstandard

    from kez_core.codec import COMPACT_PREFIX, compact_decode
    from kez_core.errors import DecodeError as _DecodeError

    frame = zstandard.ZstdCompressor().compress(b'{"a":1}')
    for raw in (frame + b"x", frame + frame, frame[:-2]):
        text = COMPACT_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        with pytest.raises(_DecodeError):
            compact_decode(text)
