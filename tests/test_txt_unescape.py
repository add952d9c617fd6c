"""Zone-file TXT unescaping: the regex version equals the straightforward reading."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from kez_core.builtins.encodings import _unescape_txt


def reference(value: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            digits = value[i + 1 : i + 4]
            if len(digits) == 3 and digits.isascii() and digits.isdigit() and int(digits) < 256:
                out.append(chr(int(digits)))
                i += 4
                continue
            out.append(value[i + 1])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


@given(st.text(alphabet=st.sampled_from(list('\\0123456789a"\n ;é')), max_size=40))
def test_same_as_reference(value):
    assert _unescape_txt(value) == reference(value)


def test_examples():
    assert _unescape_txt(r"a\"b\\c\059\256\\") == 'a"b\\c;256\\'
    assert _unescape_txt("kez:z1:abc") == "kez:z1:abc"
