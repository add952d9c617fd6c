"""What this device published stays consistent: picture files and their key switch together."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from kez_core.errors import StoreError
from kez_core.keys import Signer
from kez_core.profile import service, visual


def _file(seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def test_save_load_and_old_files_go(tmp_path) -> None:
    alice = Signer.generate()
    store = service.OwnProfileStore(tmp_path, alice.key_id)
    assert store.load() is None
    first = service.make_publication(
        alice, alice.key_id, "https://k.example", "alice", name="A", about="", picture=_file(1)
    )
    store.save("alice", "https://k.example", first)
    second = service.make_publication(
        alice, alice.key_id, "https://k.example", "alice", name="A", about="", picture=_file(2)
    )
    store.save("alice", "https://k.example", second)
    loaded = store.load()
    assert loaded.key == second.key and loaded.published_png == second.published_png
    _, salt = visual.split_reference(loaded.picture)
    assert visual.unscramble_png(loaded.published_png, loaded.key, salt) == visual.encode_png(
        visual.open_png(second.plain_png)
    )
    assert len(list((tmp_path / "profile").glob("*.png"))) == 2
    # a public picture has no key, and keeps none
    public = service.make_publication(
        alice,
        alice.key_id,
        "https://k.example",
        "alice",
        name="A",
        about="",
        picture=_file(3),
        public=True,
    )
    store.save("alice", "https://k.example", public)
    assert store.load().key is None and public.key_body(alice.key_id) is None


def test_damaged_state_is_a_store_error(tmp_path) -> None:
    alice = Signer.generate()
    store = service.OwnProfileStore(tmp_path, alice.key_id)
    store.folder.mkdir(parents=True)
    store.meta.write_text("{not json")
    with pytest.raises(StoreError):
        store.load()
    store.meta.write_text(json.dumps({"handle": "a", "base": "b", "published": "gone.png"}))
    with pytest.raises(StoreError):
        store.load()
