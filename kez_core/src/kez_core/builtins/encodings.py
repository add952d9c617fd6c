"""The four built-in wire encodings: json, compact, markdown, dns (DESIGN.md §3)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import attrs

from .. import hookimpl
from ..codec import COMPACT_PREFIX, check_text, compact_decode, compact_encode, object_from_json
from ..errors import DecodeError
from ..signed import SignedObject

if TYPE_CHECKING:
    from ..protocols import Encoding

# The body is optional: an empty block (```kez, then the closing fence) is a block of
# its own, not the start of one that runs on to the next block's closing fence.
_FENCE = re.compile(
    r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})[ \t]*kez[ \t]*\r?\n(?:(?P<body>.*?)\r?\n)??(?P=indent)(?P=fence)[`~]*[ \t]*\r?$",
    re.MULTILINE | re.DOTALL,
)
_FENCE_START = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*kez[ \t]*\r?$", re.MULTILINE)
_ZONE_LINE = re.compile(
    r"^\s*(?P<owner>\S+)\s+(?:\d+\s+)?(?:IN\s+)?(?:\d+\s+)?TXT\s+(?P<rdata>\".*)$", re.I | re.S
)
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S)
TXT_STRING_MAX = 255
DNS_TTL = 3600


@attrs.frozen
class JsonEncoding:
    """The object as JSON: written as JCS, read from any valid JSON."""

    name: str = "json"
    priority: int = 10

    def encode(self, obj: SignedObject) -> str:
        return obj.canonical().decode("utf-8")

    def decode(self, text: str) -> list[SignedObject]:
        return [object_from_json(check_text(text).strip())]

    def detect(self, text: str) -> bool:
        return text.lstrip().startswith("{")


@attrs.frozen
class CompactEncoding:
    """`kez:z1:` + base64url(zstd(JCS(object))), no padding."""

    name: str = "compact"
    priority: int = 20

    def encode(self, obj: SignedObject) -> str:
        return compact_encode(obj)

    def decode(self, text: str) -> list[SignedObject]:
        return [compact_decode(check_text(text))]

    def detect(self, text: str) -> bool:
        stripped = text.strip()
        return stripped.startswith(COMPACT_PREFIX) and len(stripped.split(maxsplit=1)) == 1


@attrs.frozen
class MarkdownEncoding:
    """A fenced block with info string `kez` holding the compact form; prose around it is fine."""

    name: str = "markdown"
    priority: int = 30

    def encode(self, obj: SignedObject) -> str:
        return f"```kez\n{compact_encode(obj)}\n```\n"

    def decode(self, text: str) -> list[SignedObject]:
        return [decode_block(body) for body in self.blocks(text)]

    @staticmethod
    def blocks(text: str) -> list[str]:
        """The body of every complete ```kez block, in order (DecodeError when there is none)."""
        text = check_text(text)
        blocks = [m.group("body") or "" for m in _FENCE.finditer(text)]
        if not blocks:
            raise DecodeError(
                "no complete ```kez fenced block found", hint="is the closing fence missing?"
            )
        return blocks

    def detect(self, text: str) -> bool:
        return _FENCE_START.search(text) is not None


def decode_block(body: str) -> SignedObject:
    """The object in one ```kez block; the compact form may be wrapped over several lines."""
    compact = "".join(body.split())
    if not compact:
        raise DecodeError("the ```kez block is empty")
    return compact_decode(compact)


_TXT_ESCAPE = re.compile(r"\\(?:([0-9]{3})|(.))", re.S)


def _txt_unescape_one(match: re.Match[str]) -> str:
    digits, char = match.groups()
    if digits is not None:
        code = int(digits)
        return chr(code) if code < 256 else digits  # \256 and up: "\2" then "56"
    return char


def _unescape_txt(value: str) -> str:
    """Zone-file character-string escapes: \\X and \\DDD (a compact form has none: no work)."""
    if "\\" not in value:
        return value
    return _TXT_ESCAPE.sub(_txt_unescape_one, value)


def txt_strings(compact: str) -> list[str]:
    """Split a compact form into TXT character-strings of at most 255 bytes."""
    return [compact[i : i + TXT_STRING_MAX] for i in range(0, len(compact), TXT_STRING_MAX)]


@attrs.frozen
class DnsEncoding:
    """TXT record at `_kez.<domain>`: the compact form split into ≤255-byte strings.

    Written as the zone-file line `_kez.<domain>. 3600 IN TXT "…" "…"` for a
    claim whose subject is `dns:<domain>`; as the quoted strings alone for
    any other object (there is no owner name to give). Readers accept both.
    """

    name: str = "dns"
    priority: int = 40

    def encode(self, obj: SignedObject) -> str:
        rdata = " ".join(f'"{part}"' for part in txt_strings(compact_encode(obj)))
        subject = obj.payload.get("subject")
        if obj.kind == "claim" and isinstance(subject, str) and subject.startswith("dns:"):
            return f"_kez.{subject[4:]}. {DNS_TTL} IN TXT {rdata}"
        return rdata

    def decode(self, text: str) -> list[SignedObject]:
        text = check_text(text).strip()
        match = _ZONE_LINE.match(text)
        rdata = match.group("rdata") if match else text
        strings = _QUOTED.findall(rdata)
        leftover = _QUOTED.sub("", rdata).strip()
        if not strings or leftover:
            raise DecodeError(
                "DNS form must be quoted TXT character-strings, optionally after a zone-file owner/TXT"
            )
        for part in strings:
            if len(_unescape_txt(part).encode("utf-8")) > TXT_STRING_MAX:
                raise DecodeError("a TXT character-string is longer than 255 bytes")
        return [compact_decode("".join(_unescape_txt(s) for s in strings))]

    def detect(self, text: str) -> bool:
        stripped = text.strip()
        if stripped.startswith('"'):
            return True
        return bool(_ZONE_LINE.match(stripped))


@hookimpl
def kez_register_encodings() -> list[Encoding]:
    return [JsonEncoding(), CompactEncoding(), MarkdownEncoding(), DnsEncoding()]
