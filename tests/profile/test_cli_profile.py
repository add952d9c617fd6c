"""`kez profile set/show/preview` against a real kez-server (and nostr-relay) on 127.0.0.1."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from kez_cli.main import main
from kez_core.keystore import Keystore
from kez_core.profile.keys import ProfileKeyStore, accept_profile_key

kez_server_testing = pytest.importorskip("kez_server.testing")


def kez(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def kez_json(capsys, *args, expect=0):
    code, out, err = kez(capsys, *args, "--json")
    assert code == expect, (out, err)
    return json.loads(out)


def show_alice(server, save_to) -> list[str]:
    """`kez profile show alice@example.org` asked of `server`, the picture saved to `save_to`."""
    return [
        "profile",
        "show",
        "alice@example.org",
        "--handle-server",
        server.url,
        "--save-picture",
        str(save_to),
    ]


@pytest.fixture(scope="module")
def server():
    with kez_server_testing.running_server(server_name="example.org") as running:
        yield running


def _picture(path, mode="RGB"):
    y, x = np.mgrid[0:64, 0:80]
    arr = np.stack([x * 3, y * 4, (x + y) % 256], axis=-1).astype(np.uint8)
    Image.fromarray(arr, "RGB").convert(mode).save(path, format="PNG")
    return path


def test_set_show_preview(capsys, server, tmp_path, monkeypatch) -> None:
    alice_home, stranger_home = tmp_path / "alice", tmp_path / "stranger"
    monkeypatch.setenv("KEZ_HOME", str(alice_home))
    kez(capsys, "identity", "new", "--alg", "nostr", "--no-passphrase")
    assert (
        kez(
            capsys,
            "handle",
            "register",
            "alice",
            "--server",
            server.url,
            "--server-name",
            "example.org",
        )[0]
        == 0
    )

    code, _, err = kez(capsys, "profile", "set", "--name", "Alice")
    assert code == 2 and "--handle" in err
    picture = _picture(tmp_path / "face.png")
    done = kez_json(
        capsys,
        "profile",
        "set",
        "--handle",
        "alice@example.org",
        "--handle-server",
        server.url,
        "--name",
        "Alice \x1b[31m",
        "--about",
        "hi",
        "--picture",
        str(picture),
    )
    assert done["scrambled"] and "#kez-visual-v1:" in done["picture"]
    # the handle is remembered, and a name change keeps the picture
    again = kez_json(capsys, "profile", "set", "--about", "still me")
    assert again["picture_sha256"] == done["picture_sha256"] and again["name"] == "Alice \x1b[31m"

    # the owner opens her own picture
    mine = kez_json(
        capsys,
        *show_alice(server, tmp_path / "mine.png"),
        "--refresh",
    )
    assert mine["key_held"] and mine["about"] == "still me"
    assert Image.open(tmp_path / "mine.png").size == (256, 256)
    code, out, _ = kez(
        capsys, "profile", "show", "alice@example.org", "--handle-server", server.url
    )
    assert code == 0 and "\\x1b[31m" in out and "\x1b" not in out  # outside text shown visibly

    code, out, _ = kez(capsys, "profile", "preview", "-o", str(tmp_path / "preview.png"))
    assert code == 0
    assert Image.open(tmp_path / "preview.png").size == (256 * 2 + 8, 256)

    identity = Keystore().get().identity_id or Keystore().get().key_id
    own_key = ProfileKeyStore(alice_home).get(identity, done["picture_sha256"])
    assert own_key is not None

    # a stranger sees noise and saves nothing unless asked
    monkeypatch.setenv("KEZ_HOME", str(stranger_home))
    seen = kez_json(
        capsys,
        *show_alice(server, tmp_path / "noise.png"),
    )
    assert seen["scrambled"] and not seen["key_held"] and seen["saved"] is None
    assert not (tmp_path / "noise.png").exists()
    code, _, err = kez(
        capsys,
        *show_alice(server, tmp_path / "noise.png"),
    )
    assert code == 0 and "--save-noise" in err
    seen = kez_json(
        capsys,
        *show_alice(server, tmp_path / "noise.png"),
        "--save-noise",
    )
    assert seen["saved"] and (tmp_path / "noise.png").exists()
    # once the profile_key message arrives, the stranger-turned-contact sees the face
    from kez_core.profile.keys import profile_key_body

    accept_profile_key(
        ProfileKeyStore(stranger_home),
        profile_key_body(identity, own_key, done["picture_sha256"]),
        identity,
    )
    seen = kez_json(
        capsys,
        *show_alice(server, tmp_path / "face-out.png"),
    )
    assert seen["key_held"]
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "face-out.png")),
        np.asarray(Image.open(tmp_path / "mine.png")),
    )


def test_bad_input(capsys, server, tmp_path) -> None:
    kez(capsys, "identity", "new", "--no-passphrase")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a picture")
    code, _, err = kez(
        capsys,
        "profile",
        "set",
        "--handle",
        "bob@example.org",
        "--handle-server",
        server.url,
        "--picture",
        str(bad),
    )
    assert code == 3 and "Traceback" not in err
    code, _, err = kez(
        capsys, "profile", "show", "nobody@example.org", "--handle-server", server.url
    )
    assert code in (1, 5) and "Traceback" not in err
    code, _, err = kez(capsys, "profile", "show", "not a handle")
    assert code == 2
    code, _, err = kez(capsys, "profile", "preview")
    assert code == 4 and "kez profile set" in err
    code, _, err = kez(
        capsys,
        "profile",
        "set",
        "--handle",
        "bob@example.org",
        "--handle-server",
        server.url,
        "--nostr-relay",
        "ws://127.0.0.1:9",
    )
    assert code == 2 and "nostr identity" in err


def test_set_publishes_kind0(capsys, server, tmp_path) -> None:
    from kez_channel_nostr.relay import query
    from kez_channel_nostr.testing import running_relay

    import asyncio

    kez(capsys, "identity", "new", "--alg", "nostr", "--no-passphrase")
    assert (
        kez(
            capsys,
            "handle",
            "register",
            "carol",
            "--server",
            server.url,
            "--server-name",
            "example.org",
        )[0]
        == 0
    )
    pubkey = Keystore().get().key_id.partition(":")[2]
    with running_relay() as relay:
        done = kez_json(
            capsys,
            "profile",
            "set",
            "--handle",
            "carol@example.org",
            "--handle-server",
            server.url,
            "--name",
            "Carol",
            "--picture",
            str(_picture(tmp_path / "c.png", "L")),
            "--nostr-relay",
            relay.url,
        )
        assert done["nostr"][0]["accepted"], done
        reply = asyncio.run(query(relay.url, {"authors": [pubkey], "kinds": [0]}, 10))
    [event] = reply.events
    content = json.loads(event["content"])
    assert content == {"name": "Carol", "about": "", "picture": done["picture"]}
