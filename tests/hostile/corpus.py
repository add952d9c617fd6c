"""Hostile strings, and the checks every command's output must pass (docs/cli.md, "Text from outside").

Each string is something a stranger can put in a claim, a chain link, a
server answer or a message: rich markup that used to end commands in a
traceback, terminal escapes that rewrite lines, C1 controls, bidi
overrides and isolates, zero-width characters, separators, very long text
and lone surrogates.
"""

from __future__ import annotations

import json
import unicodedata

from kez_core.testing.pytest_plugin import KezResult

HOSTILE: dict[str, str] = {
    "markup close": "[/x]",
    "markup open": "[bold red]valid[/]",
    "markup link": "[link=https://evil.example]click[/link]",
    "markup bracket tail": "alice[",
    "markup escape trick": "\\[/x]\\",
    "emoji code": ":cross_mark: :white_check_mark:",
    "esc clear": "\x1b[2J\x1b[H",
    "csi move up": "valid\x1b[1A\x1b[2K\x1b[32mvalid",
    "csi colour": "\x1b[31mred\x1b[0m",
    "osc title": "\x1b]0;owned\x07",
    "osc 8 link": "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",
    "dcs": "\x1bP+q\x1b\\",
    "bell backspace": "ok\x07\x08\x08\x08bad",
    "carriage return": "bad\rvalid",
    "nul and c0": "a\x00b\x01c\x1fd",
    "newline and tab": "line one\nline two\tcol",
    "del": "x\x7fy",
    "c1 csi": "\x9b2J\x9b31m",
    "c1 osc st": "\x9d0;t\x9c",
    "c1 nel": "a\x85b",
    "bidi override": "alice\u202egnp.exe",
    "bidi embeddings": "\u202a\u202b\u202c\u202d",
    "bidi isolates": "\u2066a\u2067b\u2068c\u2069",
    "bidi marks": "\u200e\u200f\u061c",
    "zero width": "ali\u200bce\u200c\u200d\u2060\ufeff",
    "line separators": "a\u2028b\u2029c",
    "tag characters": "hi\U000e0041\U000e007f",
    "soft hyphen": "al\u00adice",
    "lone high surrogate": "a\ud800b",
    "lone low surrogate": "\udfffx",
    "very long": "A" * 5000 + "[/x]" + "\x1b[2J" * 200,
    "mixed": "[/x]\x1b[2J\u202e\x9b\u200b\ud83d",
    "plain unicode": "Zoë ✓ 日本語 \u3000 emoji 👩‍💻",
}

#: Exit codes of the CLI contract (docs/cli.md).
DOCUMENTED_EXITS = frozenset(range(7))

#: The characters no terminal output may hold raw: controls (but newline and
#: tab, which the CLI's own layout and message bodies use), format
#: characters (bidi, zero-width, tags …), separators, lone surrogates.
_BANNED = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def raw_controls(text: str) -> list[str]:
    """The characters of `text` a terminal must not receive raw."""
    return [c for c in text if c not in "\n\t" and unicodedata.category(c) in _BANNED]


#: One CLI run, from the `kez` fixture of kez_core's pytest plugin (in-process:
#: any exception that escapes `main` fails the test, a traceback).
Run = KezResult


def check(run: Run, *, json_mode: bool, codes: frozenset[int] = DOCUMENTED_EXITS) -> object:
    """The four rules: no traceback, a documented exit code, one JSON document, no raw control.

    Returns the JSON document in `--json` mode.
    """
    assert "Traceback" not in run.stdout + run.stderr
    assert run.exit_code in codes, (run.exit_code, run.stderr[-500:])
    assert not raw_controls(run.stdout), (
        "stdout",
        sorted({hex(ord(c)) for c in raw_controls(run.stdout)}),
    )
    assert not raw_controls(run.stderr), (
        "stderr",
        sorted({hex(ord(c)) for c in raw_controls(run.stderr)}),
    )
    run.stdout.encode("utf-8")  # what reaches a UTF-8 terminal can be encoded (no lone surrogate)
    run.stderr.encode("utf-8")
    if json_mode:
        return json.loads(run.stdout)  # exactly one document: trailing data is a JSONDecodeError
    return None
