"""Issue 15 end to end, through the CLI only: a real kez-server under uvicorn on 127.0.0.1
(handles, profiles, pictures, and its HTTP inbox as the transport of the picture key).

Alice publishes a scrambled picture and adds Bob as a contact: `kez contact add`
sends Bob her picture key (an encrypted `profile_key` message over `--via http`).
Bob's `kez message listen` stores it and his `kez profile show` opens her face,
pixel for pixel her resized original. Carol, not a contact, sees noise and is
told she holds no key. Alice removes Bob and changes her picture: the new key
goes to nobody, and Bob now sees noise too. (The kind 0 event on a real
nostr-relay, read back by nostr-sdk, is tested in test_profile_flow.py and
test_cli_profile.py.)
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kez_core.profile import visual

sys.path.insert(0, str(Path(__file__).parent.parent / "messaging"))

from message_cli_helpers import kez, kez_json  # noqa: E402

kez_server_testing = pytest.importorskip("kez_server.testing")


@pytest.fixture(scope="module")
def server():
    with kez_server_testing.running_server(server_name="example.org") as running:
        yield running


def _face(path: Path, seed: int) -> bytes:
    y, x = np.mgrid[0:300, 0:240]
    r = ((x - 120 - seed) ** 2 + (y - 150) ** 2 < 80**2) * 200
    arr = np.stack([x * 255 // 240, y * 255 // 300, r], axis=-1).astype(np.uint8)
    Image.fromarray(arr, "RGB").save(path, format="PNG")
    return path.read_bytes()


def _pixels(png: bytes | Path) -> np.ndarray:
    data = png.read_bytes() if isinstance(png, Path) else png
    return np.asarray(Image.open(io.BytesIO(data)))


def _person(capsys, home: Path, name: str, server_url: str) -> str:
    kez_json(capsys, home, "identity", "new", "--name", name, "--no-passphrase")
    kez_json(capsys, home, "sigchain", "init")
    added = kez_json(capsys, home, "sigchain", "add-inbox")
    kez_json(capsys, home, "handle", "register", name, "--server", server_url)
    return added["identity_id"]


def _listen(capsys, home: Path, url: str, *args: str) -> list[dict]:
    """One `kez message listen --via http` run in this process: what it printed (JSON Lines)."""
    import json

    code, out, err = kez(
        capsys, home, "message", "listen", "--via", "http", "--inbox-server", url, "--json", *args
    )
    assert code == 0, err
    return [d for d in map(json.loads, out.splitlines()) if d["event"] in ("message", "ack")]


def test_picture_key_reaches_contacts_only(capsys, server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KEZ_PASSPHRASE", "")
    url = server.url
    homes = {name: tmp_path / name for name in ("alice", "bob", "carol")}
    ids = {name: _person(capsys, home, name, url) for name, home in homes.items()}
    http = ["--via", "http", "--inbox-server", url]
    at = ["--handle-server", url]

    # alice publishes a scrambled picture; no contact yet, so the key goes to nobody
    face = _face(tmp_path / "face.png", 0)
    done = kez_json(
        capsys,
        homes["alice"],
        "profile",
        "set",
        "--handle",
        "alice@example.org",
        *at,
        "--name",
        "Alice",
        "--picture",
        str(tmp_path / "face.png"),
        *http,
    )
    assert done["scrambled"] and "#kez-visual-v1:" in done["picture"]
    assert done["key_shares"] == []

    # bob knows alice (her chain checks her messages); he has no picture, so sends no key
    added = kez_json(capsys, homes["bob"], "contact", "add", "alice", "alice@example.org", *at)
    assert added["identity"] == ids["alice"] and added["profile_key"] is None

    # alice adds bob: her picture key goes to him, encrypted, through the server's inbox
    added = kez_json(capsys, homes["alice"], "contact", "add", "bob", "bob@example.org", *at, *http)
    assert added["identity"] == ids["bob"]
    assert added["profile_key"]["sent"] and added["profile_key"]["devices"] == 1, added

    [got] = _listen(capsys, homes["bob"], url, "--count", "1", "--wait", "30")
    assert got["kind"] == "profile_key" and got["from"] == ids["alice"] and got["sender_checked"]
    assert "key" not in got["body"] and got["body"]["picture_sha256"] == done["picture_sha256"]

    # bob sees alice's face: exactly her picture resized to 256x256
    original = np.asarray(visual.prepare_picture(face))
    seen = kez_json(
        capsys,
        homes["bob"],
        "profile",
        "show",
        "alice@example.org",
        *at,
        "--save-picture",
        str(tmp_path / "bob-sees.png"),
    )
    assert seen["key_held"] and seen["scrambled"] and seen["name"] == "Alice"
    assert np.array_equal(_pixels(tmp_path / "bob-sees.png"), original)

    # carol, not a contact, sees noise: told she holds no key, and nothing saved unless asked
    code, out, err = kez(
        capsys,
        homes["carol"],
        "profile",
        "show",
        "alice@example.org",
        *at,
        "--save-picture",
        str(tmp_path / "carol-sees.png"),
    )
    assert code == 0 and "you hold no key" in out and "--save-noise" in err
    assert not (tmp_path / "carol-sees.png").exists()
    seen = kez_json(
        capsys,
        homes["carol"],
        "profile",
        "show",
        "alice@example.org",
        *at,
        "--save-picture",
        str(tmp_path / "carol-sees.png"),
        "--save-noise",
    )
    assert seen["scrambled"] and not seen["key_held"]
    noise = _pixels(tmp_path / "carol-sees.png")
    assert noise.shape[:2] == (256, 256) and not np.array_equal(noise, original)

    # alice removes bob and changes her picture: the new key goes to no one
    kez(capsys, homes["alice"], "contact", "remove", "bob")
    _face(tmp_path / "face2.png", 40)
    changed = kez_json(
        capsys, homes["alice"], "profile", "set", "--picture", str(tmp_path / "face2.png"), *http
    )
    assert changed["picture_sha256"] != done["picture_sha256"] and changed["key_shares"] == []
    assert _listen(capsys, homes["bob"], url, "--wait", "2") == []
    # bob's cached copy still opens the old picture; a refresh finds the new one, and noise
    cached = kez_json(capsys, homes["bob"], "profile", "show", "alice@example.org", *at)
    assert cached["from_cache"] and cached["key_held"]
    after = kez_json(
        capsys,
        homes["bob"],
        "profile",
        "show",
        "alice@example.org",
        *at,
        "--refresh",
        "--save-picture",
        str(tmp_path / "bob-after.png"),
    )
    assert not after["from_cache"] and after["picture_sha256"] == changed["picture_sha256"]
    assert after["scrambled"] and not after["key_held"] and after["saved"] is None

    # the cached copy is fresh for 6 hours: past that, `show` fetches again without --refresh
    import json

    [meta] = (homes["bob"] / "profiles").glob("alice@example.org.json")
    data = json.loads(meta.read_text())
    assert kez_json(capsys, homes["bob"], "profile", "show", "alice@example.org", *at)["from_cache"]
    meta.write_text(json.dumps({**data, "fetched_unix": data["fetched_unix"] - 6 * 3600 - 1}))
    assert not kez_json(capsys, homes["bob"], "profile", "show", "alice@example.org", *at)[
        "from_cache"
    ]


def test_a_contact_that_cannot_be_reached_is_a_warning(
    capsys, server, tmp_path, monkeypatch
) -> None:
    """A picture change with a contact whose handle is on no server here: the profile is
    published, the key goes to the others, that contact gets a warning, not a traceback."""
    monkeypatch.setenv("KEZ_PASSPHRASE", "")
    url = server.url
    homes = {name: tmp_path / name for name in ("dora", "erin", "finn")}
    ids = {name: _person(capsys, home, name, url) for name, home in homes.items()}
    at, http = ["--handle-server", url], ["--via", "http", "--inbox-server", url]
    kez_json(
        capsys,
        homes["dora"],
        "profile",
        "set",
        "--handle",
        "dora@example.org",
        *at,
        "--name",
        "Dora",
    )
    for name in ("erin", "finn"):
        kez_json(capsys, homes["dora"], "contact", "add", name, f"{name}@example.org", *at)
    # finn's inbox keys all expire: a key cannot be sealed to him
    chain = homes["dora"] / "chains" / (ids["finn"].replace(":", "-") + ".jsonl")
    assert chain.exists()
    lines = chain.read_bytes().splitlines(keepends=True)
    chain.write_bytes(b"".join(lines[:-1]))  # his add_inbox link gone from dora's copy
    _face(tmp_path / "d.png", 0)
    code, out, err = kez(
        capsys,
        homes["dora"],
        "profile",
        "set",
        "--picture",
        str(tmp_path / "d.png"),
        *http,
        "--json",
    )
    assert code == 0 and "Traceback" not in err, err
    import json

    shares = {s["name"]: s for s in json.loads(out)["key_shares"]}
    assert shares["erin"]["sent"] and not shares["finn"]["sent"]
    assert shares["finn"]["error"]["message"]
    code, _, err = kez(
        capsys, homes["dora"], "profile", "set", "--picture", str(tmp_path / "d.png"), *http
    )
    assert code == 0 and "picture key sent to erin" in err and "picture key not sent to finn" in err
    # the same key again, without a new picture
    again = kez_json(capsys, homes["dora"], "profile", "share-key", *http)
    assert [(s["name"], s["sent"]) for s in again["key_shares"]] == [
        ("erin", True),
        ("finn", False),
    ]
    # no transport at all: published, and every contact gets a warning
    code, _, err = kez(
        capsys, homes["dora"], "profile", "set", "--picture", str(tmp_path / "d.png")
    )
    assert code == 0 and "picture key not sent to erin" in err and "--via" in err
    code, _, err = kez(capsys, homes["dora"], "profile", "set", "--name", "D", *http)
    assert code == 2 and "--picture" in err and "Traceback" not in err
    code, _, err = kez(capsys, homes["dora"], "profile", "share-key", "--nats-url")
    assert code == 2 and "Traceback" not in err
    code, _, err = kez(capsys, tmp_path / "nobody", "identity", "new", "--no-passphrase")
    code, _, err = kez(capsys, tmp_path / "nobody", "profile", "share-key", *http)
    assert code == 4 and "kez profile set --picture" in err
