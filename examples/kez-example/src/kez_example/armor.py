"""The `armor` encoding: a signed object as a PGP-style armored block.

    -----BEGIN KEZ SIGNED OBJECT-----
    kez:z1:KLUv_QBY...
    ...wrapped at 64 characters...
    -----END KEZ SIGNED OBJECT-----

It reuses the core's compact form (so the bytes inside are the same as
`kez:z1:`), and shows everything an encoding plugin needs: an attrs class
that satisfies `kez_core.plugin.Encoding`, and one hook implementation.
"""

from __future__ import annotations

import re

import attrs
from kez_core.plugin import (
    DecodeError,
    SignedObject,
    check_text,
    compact_decode,
    compact_encode,
    hookimpl,
)

BEGIN = "-----BEGIN KEZ SIGNED OBJECT-----"
END = "-----END KEZ SIGNED OBJECT-----"
WIDTH = 64
_BLOCK = re.compile(re.escape(BEGIN) + r"(.*?)" + re.escape(END), re.S)


@attrs.frozen
class ArmorEncoding:
    name: str = "armor"
    priority: int = 25  # after compact, before markdown: the BEGIN line is unmistakable

    def encode(self, obj: SignedObject) -> str:
        compact = compact_encode(obj)
        lines = [compact[i : i + WIDTH] for i in range(0, len(compact), WIDTH)]
        return "\n".join([BEGIN, *lines, END]) + "\n"

    def decode(self, text: str) -> list[SignedObject]:
        blocks = _BLOCK.findall(check_text(text))
        if not blocks:
            raise DecodeError(f"no complete {BEGIN} … {END} block found")
        return [compact_decode("".join(block.split())) for block in blocks]

    def detect(self, text: str) -> bool:
        return BEGIN in text


@hookimpl
def kez_register_encodings():
    return [ArmorEncoding()]
