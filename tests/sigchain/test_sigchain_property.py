"""Random damage to a valid chain is always caught.

Edits: drop a line, swap two lines, duplicate a line (insert a copy anywhere),
flip one byte inside a line. The chain file is rebuilt from the edited lines
and read the way files are read (`iter_file_lines`), so a byte flipped into a
newline really splits a line.

Oracle: a chain whose lines are exactly the first k lines of the original
(k >= 1) is valid with length k — that is what dropping the last line(s)
gives, and nothing else can, because a valid chain is determined link by
link by seqno and prev, and a canonical (JCS) line has no other same-length
spelling of its value, so every flip changes the value, which breaks a
signature, a hash link or the shape. Every other result raises ChainError
(a zero-line result raises ChainError `empty`).
"""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st
from kez_core.sigchain import ChainError, iter_file_lines, validate_lines
from sigchain_helpers import every_op_chain

original = every_op_chain


# Positions are taken modulo the current number of lines (see `apply`), so the
# strategies need not know the chain, which is only built when a test runs.
index = st.integers(min_value=0, max_value=63)
edit = st.one_of(
    st.tuples(st.just("drop"), index),
    st.tuples(st.just("swap"), index, index),
    st.tuples(st.just("dup"), index, index),
    st.tuples(
        st.just("flip"), index, st.integers(min_value=0), st.integers(min_value=1, max_value=255)
    ),
)


def apply(lines: list[bytes], e: tuple) -> list[bytes]:
    lines = list(lines)
    if not lines:
        return lines
    kind, i = e[0], e[1] % len(lines)
    if kind == "drop":
        del lines[i]
    elif kind == "swap":
        j = e[2] % len(lines)
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "dup":
        lines.insert(e[2] % (len(lines) + 1), lines[i])
    else:
        line = bytearray(lines[i])
        pos = e[2] % (len(line) - 1)  # inside the line, not its newline
        line[pos] ^= e[3]  # xor with 1..255: the byte always changes
        lines[i] = bytes(line)
    return lines


def check(lines: list[bytes]) -> None:
    orig = original()
    data = b"".join(lines)
    prefix = next((k for k in range(1, len(orig) + 1) if lines == list(orig[:k])), None)
    try:
        state = validate_lines(iter_file_lines(io.BytesIO(data)))
    except ChainError:
        assert prefix is None, f"a valid prefix of {prefix} lines was refused"
        return
    assert prefix is not None, "damage was not detected"
    assert state.length == prefix
    assert state.head == validate_lines(orig[:prefix]).head


@settings(max_examples=300, deadline=None)
@given(edit)
def test_one_edit_is_always_caught(e):
    check(apply(list(original()), e))


@settings(max_examples=200, deadline=None)
@given(st.lists(edit, min_size=2, max_size=4))
def test_several_edits_are_always_caught(edits):
    lines = list(original())
    for e in edits:
        lines = apply(lines, e)
    check(lines)


def test_dropping_the_last_line_gives_the_shorter_chain():
    orig = original()
    assert validate_lines(orig[:-1]).length == len(orig) - 1
    check(list(orig[:-1]))


def test_every_single_byte_flip_of_one_line_is_caught():
    orig = list(original())
    target = 2  # the claim link holds the most structure
    for pos in range(len(orig[target]) - 1):
        for mask in (0x01, 0x20, 0x80):
            check(apply(orig, ("flip", target, pos, mask)))
