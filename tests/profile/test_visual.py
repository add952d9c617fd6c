"""Visual encryption: exact round trips, noise under a wrong key, no structure left."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from kez_core.errors import DecodeError, KezError
from kez_core.profile import visual

KEY = bytes(range(32))
SALT = bytes(range(16))

# chi-square critical value for 255 degrees of freedom at p = 0.001
CHI2_255_P001 = 330.5


def _gradient(width: int, height: int, mode: str) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint16)[None, :]
    y = np.linspace(0, 255, height, dtype=np.uint16)[:, None]
    base = ((x + y) // 2).astype(np.uint8)
    channels = visual.MODES[mode]
    if channels == 1:
        return Image.fromarray(base, mode)
    arr = np.stack([base, 255 - base, base // 2, np.full_like(base, 200)][:channels], axis=-1)
    return Image.fromarray(arr, mode)


def _chi2(values: np.ndarray) -> float:
    counts = np.bincount(values.ravel(), minlength=256).astype(float)
    expected = values.size / 256
    return float(((counts - expected) ** 2 / expected).sum())


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("size", [(256, 256), (1, 1), (2, 3), (17, 5), (255, 257)])
def test_round_trip_is_exact(mode: str, size: tuple[int, int]) -> None:
    image = _gradient(*size, mode)
    published = visual.scramble_png(image, KEY, SALT)
    back = Image.open(io.BytesIO(visual.unscramble_png(published, KEY, SALT)))
    assert back.mode == mode and back.size == size
    assert np.array_equal(np.asarray(back), np.asarray(image))
    shown = Image.open(io.BytesIO(published))
    assert shown.mode == mode and shown.size == size


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 40),
    st.integers(1, 40),
    st.sampled_from(["L", "LA", "RGB", "RGBA"]),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=16, max_size=16),
    st.randoms(use_true_random=False),
)
def test_array_round_trip_property(w, h, mode, key, salt, rnd) -> None:
    shape = (h, w) if visual.MODES[mode] == 1 else (h, w, visual.MODES[mode])
    arr = np.frombuffer(rnd.randbytes(int(np.prod(shape))), np.uint8).reshape(shape)
    scrambled = visual.scramble_array(arr, key, salt)
    assert scrambled.shape == arr.shape
    assert np.array_equal(visual.unscramble_array(scrambled, key, salt), arr)


def test_wrong_key_gives_noise_not_an_error() -> None:
    image = _gradient(256, 256, "RGB")
    published = visual.scramble_png(image, KEY, SALT)
    wrong = Image.open(io.BytesIO(visual.unscramble_png(published, bytes(32), SALT)))
    arr = np.asarray(wrong)
    assert arr.shape == (256, 256, 3)
    assert _chi2(arr) < CHI2_255_P001
    # and the wrong salt too
    wrong_salt = np.asarray(
        Image.open(io.BytesIO(visual.unscramble_png(published, KEY, bytes(16))))
    )
    assert _chi2(wrong_salt) < CHI2_255_P001


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_scrambled_gradient_has_no_structure(mode: str) -> None:
    image = _gradient(256, 256, mode)
    assert _chi2(np.asarray(image)) > 10 * CHI2_255_P001  # the input is far from uniform
    scrambled = np.asarray(visual.scramble_image(image, KEY, SALT))
    assert _chi2(scrambled) < CHI2_255_P001
    for channel in range(scrambled.shape[-1] if scrambled.ndim == 3 else 0):
        assert _chi2(scrambled[..., channel]) < CHI2_255_P001
    # neighbours are unrelated: the XOR of adjacent bytes is uniform as well
    flat = scrambled.reshape(-1)
    assert _chi2(flat[1:] ^ flat[:-1]) < CHI2_255_P001


def test_a_flat_picture_still_gives_a_flat_histogram() -> None:
    image = Image.new("RGB", (256, 256), (10, 200, 30))
    assert _chi2(np.asarray(visual.scramble_image(image, KEY, SALT))) < CHI2_255_P001


def test_two_keys_give_unrelated_noise() -> None:
    image = _gradient(256, 256, "RGB")
    a = np.asarray(visual.scramble_image(image, visual.new_key(), SALT))
    b = np.asarray(visual.scramble_image(image, visual.new_key(), SALT))
    assert _chi2(a ^ b) < CHI2_255_P001
    assert np.mean(a == b) < 0.01  # ~1/256 by chance
    # same key, new salt: unrelated as well
    c = np.asarray(visual.scramble_image(image, KEY, bytes(16)))
    d = np.asarray(visual.scramble_image(image, KEY, bytes(15) + b"\1"))
    assert _chi2(c ^ d) < CHI2_255_P001


def test_prepare_picture_resizes_to_256_and_keeps_the_mode_family() -> None:
    buf = io.BytesIO()
    _gradient(640, 480, "RGB").save(buf, format="JPEG")
    image = visual.prepare_picture(buf.getvalue())
    assert image.size == (256, 256) and image.mode == "RGB"
    buf = io.BytesIO()
    Image.new("P", (30, 90)).save(buf, format="PNG")
    assert visual.prepare_picture(buf.getvalue()).mode == "RGB"


@pytest.mark.parametrize(
    "data", [b"", b"not a png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"\x89PNG\r\n\x1a\ngarbage" * 10]
)
def test_bad_png_is_a_typed_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        visual.open_png(data)
    with pytest.raises(KezError):
        visual.prepare_picture(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_open_png_never_raises_untyped(data: bytes) -> None:
    try:
        visual.open_png(b"\x89PNG\r\n\x1a\n" + data)
    except KezError:
        pass


def test_reference_fragment() -> None:
    ref = "https://kez.example/v1/u/alice/picture" + visual.fragment(SALT)
    assert visual.split_reference(ref) == ("https://kez.example/v1/u/alice/picture", SALT)
    assert visual.split_reference("https://x/p.png") == ("https://x/p.png", None)
    assert visual.split_reference("https://x/p.png#other") == ("https://x/p.png", None)
    for bad in ("#kez-visual-v1:zz", "#kez-visual-v1:" + "AB" * 16, "#kez-visual-v1:00"):
        with pytest.raises(DecodeError):
            visual.split_reference("https://x/p" + bad)


def test_permutation_is_the_stable_argsort_of_the_keystream_words() -> None:
    """The spec's definition (docs/spec.md §13), independent of the packed-sort shortcut."""
    n = 4096
    stream = visual._stream(KEY, SALT, 4 * n + n)
    words = np.frombuffer(stream, "<u4", count=n)
    perm, mask = visual._perm_and_mask(KEY, SALT, n, 1)
    assert np.array_equal(perm, np.argsort(words, kind="stable"))
    assert mask.tobytes() == stream[4 * n :]
    tied = np.array([5, 1, 5, 1, 0], dtype="<u4")  # ties keep index order
    packed = (tied.astype(np.uint64) << np.uint64(32)) | np.arange(5, dtype=np.uint64)
    packed.sort()
    assert list(packed & np.uint64(0xFFFFFFFF)) == [4, 1, 3, 0, 2]


def test_pinned_output() -> None:
    """kez-visual-v1 is a wire format: the same key, salt and pixels always give these bytes."""
    import hashlib

    arr = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    out = visual.scramble_array(arr, KEY, SALT)
    assert (
        hashlib.sha256(out.tobytes()).hexdigest()
        == "aea274cb9195050e9f66a0e5be1b309aeb3dab5e914616501335a88d030cbc64"
    )
