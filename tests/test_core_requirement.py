"""The registry's kez-core requirement check decides the plain forms itself (packaging costs
~15 ms of start-up) and must give exactly packaging's answer: a differential test."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kez_core.registry import _packaging_requirement, core_requirement

release = st.lists(st.integers(0, 12), min_size=1, max_size=4).map(lambda p: ".".join(map(str, p)))
clause = st.tuples(st.sampled_from([">=", "<=", "==", "!=", ">", "<", "~=", "===", "== "]), release)
name = st.sampled_from(
    [
        "kez-core",
        "kez_core",
        "Kez-Core",
        "kez.core",
        "KEZ__CORE",
        " kez-core",
        "kez-core[profiles]",
        "kez-cores",
        "kez-core-x",
        "kezcore",
        "httpx",
        "psycopg[binary]",
        "kez-core.",
        "-kez-core",
    ]
)
space = st.sampled_from(["", " "])


@st.composite
def requirement(draw: st.DrawFn) -> str:
    clauses = draw(st.lists(clause, max_size=3))
    text = draw(name) + draw(space) + ",".join(f"{op}{draw(space)}{v}" for op, v in clauses)
    return text + draw(
        st.sampled_from(["", "; python_version > '3'", "; extra == 'test'", ";", "  ", " @ x"])
    )


@settings(max_examples=400, deadline=None)
@given(
    requirement(),
    st.one_of(release, st.sampled_from(["0.1.0rc1", "0.2.dev0", "1.0+local", "0.1.post1"])),
)
def test_the_fast_path_answers_as_packaging_does(raw: str, core: str) -> None:
    assert core_requirement(raw, core) == _packaging_requirement(raw, core)


def test_every_plugin_form_is_decided_without_packaging() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from kez_core.registry import core_requirement;"
        "assert core_requirement('kez-core[profiles]>=0.1,<0.2', '0.1.0') == ('<0.2,>=0.1', True);"
        "assert 'packaging' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_loading_the_installed_plugins_does_not_import_packaging() -> None:
    """Every installed distribution's requirements are read at start-up: those on other
    distributions, and kez-core ones under an extra's marker, are decided without packaging."""
    import subprocess
    import sys

    code = (
        "import sys; from kez_core.registry import default_registry;"
        "default_registry().load();"
        "assert 'packaging' not in sys.modules, 'packaging was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
