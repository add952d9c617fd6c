"""Running `kez` in-process as one of several people (each with their own KEZ_HOME)."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

from kez_cli.main import main


@contextmanager
def person(home: Path):
    old = os.environ.get("KEZ_HOME")
    os.environ["KEZ_HOME"] = str(home)
    try:
        yield
    finally:
        os.environ["KEZ_HOME"] = old if old is not None else ""


def kez(capsys, home: Path, *args: str) -> tuple[int, str, str]:
    with person(home):
        code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def kez_json(capsys, home: Path, *args: str):
    code, out, err = kez(capsys, home, *args, "--json")
    assert code == 0, err
    return json.loads(out)
