"""Text from outside, made safe to show: no control or invisible format character reaches a terminal.

Claims, chain fields (device names, revoke reasons, ops), a server's
answers, plugin reasons and message bodies are written by strangers. Shown
as they are, an ESC or CSI sequence can move the cursor and rewrite a line
(a tampered claim then looks `valid`), a C1 byte is a control on some
terminals, and a bidi override or isolate reorders what the reader sees.
So every such character is shown escaped and visible, in one place, for
every command (docs/cli.md, "Text from outside"):

- C0 controls, DEL and C1 controls (Unicode category Cc) become `\\t`,
  `\\n`, `\\r` or `\\xNN`;
- format characters (Cf: bidi embeddings, overrides, isolates and marks,
  zero-width space/joiners, word joiner, BOM, tag characters …), line and
  paragraph separators (Zl, Zp) and lone surrogates (Cs) become `<U+XXXX>`.

`visible()` is for reading, not reversible: `--json` output keeps the exact
value, with the same characters written as `\\uXXXX` escapes by
`json_text()`, so the document is still valid JSON and holds no raw control.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

#: Unicode general categories never shown raw: controls, format characters,
#: surrogates, line and paragraph separators.
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_NOT_PLAIN_ASCII = re.compile(r"[^\x20-\x7e]")


def is_unsafe(char: str) -> bool:
    """True for one character a terminal must not receive raw (see the module docstring)."""
    return unicodedata.category(char) in UNSAFE_CATEGORIES


def escape_char(char: str) -> str:
    """The visible stand-in of one unsafe character: `\\x1b`, `\\n`, `<U+202E>`."""
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"<U+{code:04X}>"


def visible(text: str, *, multiline: bool = False) -> str:
    """`text` with every control, format character, separator and lone surrogate escaped.

    `multiline=True` keeps `\\n` and `\\t` as they are, for a message body
    meant to span lines; everything else (`\\r` included, which can
    overwrite a line) is still escaped. Single-line fields (subjects, names,
    reasons, server messages) use the default, so one field is one line.
    """
    if text.isascii() and text.isprintable():
        return text  # the common case, no per-character work
    keep = "\n\t" if multiline else ""

    def one(match: re.Match[str]) -> str:
        char = match.group()
        return char if char in keep or not is_unsafe(char) else escape_char(char)

    return _NOT_PLAIN_ASCII.sub(one, text)


def _json_escape(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\n" or not is_unsafe(char):
        return char  # "\n" only occurs as indentation: json.dumps escapes it inside strings
    return json.dumps(char)[1:-1]  # ensure_ascii: "\\u202e", or a surrogate pair beyond the BMP


def json_text(data: Any, *, indent: int | None = 2) -> str:
    """`data` as one JSON document, UTF-8 kept readable, unsafe characters as `\\uXXXX` escapes.

    `json.dumps(ensure_ascii=False)` already escapes C0 inside strings, but
    lets DEL, C1, bidi controls and lone surrogates through raw (and a lone
    surrogate cannot even be written to a UTF-8 stdout). Escaping exactly
    those keeps the value the same for every JSON reader.
    """
    text = json.dumps(data, indent=indent, ensure_ascii=False)
    if text.isascii() and "\x7f" not in text:
        return text
    return _NOT_PLAIN_ASCII.sub(_json_escape, text)
