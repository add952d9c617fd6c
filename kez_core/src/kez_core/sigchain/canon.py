"""Strict line parsing for sigchains, and JCS without walking values the parser already vouched for.

`kez_core.jcs.canonicalize` is the one JCS implementation: it walks a value
to decide whether the C JSON encoder's output is provably JCS (ASCII object
names; only str, bool, None and ints within ±(2**53 - 1)) and falls back to
`rfc8785` otherwise. A sigchain line is parsed here, and the parser already
knows the answer without a walk: the text is ASCII with no `\\u` escape (so
every string, hence every name, is ASCII) and no number hook saw a float or
an out-of-range integer. For such values `jcs_trusted` calls the C encoder
directly (built once, without `JSONEncoder.encode`'s per-call setup);
everything else goes through `canonicalize`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..codec import MAX_OBJECT_BYTES
from ..errors import DecodeError, SizeLimitError
from ..jcs import canonicalize, dumps_plain

_SAFE_INT = 2**53 - 1
_dumps = dumps_plain
_LINE_ENDS = frozenset({"\n", "\r\n"})

jcs = canonicalize


def jcs_trusted(value: Any, simple: bool) -> bytes:
    """JCS of a value parsed by `LineParser`, given the `simple` flag it returned."""
    if simple:
        try:
            return _dumps(value).encode("utf-8")
        except UnicodeEncodeError:  # pragma: no cover - ASCII text has no lone surrogate
            pass
    return canonicalize(value)


class LineParser:
    """Strict JSON for one line: UTF-8, size cap, no duplicate keys, no NaN.

    It also says whether the value is "simple" (see the module text), so
    callers can canonicalize without walking it. Not thread-safe: one parser
    per validator.
    """

    def __init__(self, max_bytes: int = MAX_OBJECT_BYTES) -> None:
        self.max_bytes = max_bytes
        self._numbers_ok = True
        self._decoder = json.JSONDecoder(
            object_pairs_hook=self._pairs,
            parse_float=self._float,
            parse_int=self._int,
            parse_constant=self._constant,
        )
        # Without the duplicate-key hook (a Python call per object, a third of
        # the parse time): only for callers that prove the absence of duplicate
        # keys otherwise (see `read_line` and `read_canonical` in wire.py).
        self._fast_decoder = json.JSONDecoder(
            parse_float=self._float,
            parse_int=self._int,
            parse_constant=self._constant,
        )
        # for wire.read_canonical; typeshed does not declare the `scan_once` CPython sets
        self._fast_scan: Callable[[str, int], tuple[Any, int]] = self._fast_decoder.scan_once  # type: ignore[attr-defined]

    def _pairs(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    raise DecodeError(
                        f"duplicate JSON key {key[:40]!r}: refusing an ambiguous object"
                    )
                seen.add(key)
        return out

    def _float(self, text: str) -> float:
        self._numbers_ok = False
        return float(text)

    def _int(self, text: str) -> int:
        value = int(text)
        if not -_SAFE_INT <= value <= _SAFE_INT:
            self._numbers_ok = False
        return value

    @staticmethod
    def _constant(name: str) -> Any:
        raise DecodeError(f"JSON value {name} is not allowed (not representable in JCS)")

    def parse(self, line: bytes | str) -> tuple[Any, bool]:
        """Parse one line strictly; return (value, simple). Raises DecodeError."""
        return self._parse(self._text(line), self._decoder)

    def parse_unchecked(self, line: bytes | str) -> tuple[Any, bool]:
        """Like `parse` but duplicate keys are NOT detected (the last one wins).

        Only for callers that re-check: if the canonical form of the value is
        byte-identical to the input, the input had no duplicate keys (the same
        text cannot parse two ways); otherwise they must call `parse`.
        """
        return self._parse(self._text(line), self._fast_decoder)

    def _text(self, line: bytes | str) -> str:
        if not isinstance(line, (bytes, bytearray, str)):
            raise DecodeError(f"a line must be bytes or str, not {type(line).__name__}")
        if len(line) > self.max_bytes:
            raise SizeLimitError(f"line is larger than {self.max_bytes} bytes")
        if isinstance(line, (bytes, bytearray)):
            try:
                return bytes(line).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DecodeError(f"line is not UTF-8: {exc.reason} at byte {exc.start}") from exc
        return line

    def _parse(self, text: str, decoder: json.JSONDecoder) -> tuple[Any, bool]:
        self._numbers_ok = True
        try:
            # what decoder.decode does, without its two whitespace regexes when the
            # line is a value and a line ending (as every written line is)
            value, end = decoder.scan_once(text, 0)  # type: ignore[attr-defined]  # see _fast_scan
            if end != len(text) and text[end:] not in _LINE_ENDS:
                raise ValueError  # anything else: decode() below gives the verdict
        except (StopIteration, ValueError, RecursionError):
            self._numbers_ok = True
            value = None
        else:
            return value, self._numbers_ok and text.isascii() and "\\u" not in text
        try:
            value = decoder.decode(text)
        except DecodeError:
            raise
        except json.JSONDecodeError as exc:
            raise DecodeError(f"not valid JSON: {exc.msg} at column {exc.colno}") from exc
        except (ValueError, RecursionError) as exc:
            raise DecodeError(f"JSON cannot be read: {exc}") from exc
        # ASCII text without \u escapes holds only ASCII strings (names sort
        # alike by code point and by UTF-16 unit, no lone surrogate can appear).
        return value, self._numbers_ok and text.isascii() and "\\u" not in text
