"""Visual encryption of profile pictures (`kez-visual-v1`, docs/spec.md §12).

A published picture is a valid PNG of the same size and mode whose pixels
were moved by a keyed permutation and XORed with a keystream, both taken from
one ChaCha20 stream under the 32-byte picture key. Strangers see noise whose
byte histogram is flat; holders of the key get the exact pixels back.

Why ChaCha20 and not the seeds' xoshiro256**: xoshiro is not a cryptographic
generator (its state can be recovered from outputs), and a permutation alone
keeps the colour histogram. Here both the permutation and the mask come from
a stream cipher, so the public image reveals its size and channel count only.

Stream layout (ChaCha20, key = picture key, 16-byte nonce = 4 zero counter
bytes + the first 12 bytes of SHA-256("kez-visual-v1\\0" || salt)):
the first 4·N bytes are N little-endian uint32 sort keys (N = width·height);
the permutation is their stable argsort, so output pixel i is input pixel
perm[i]. The next N·C bytes (C channels) are the XOR mask over the permuted
pixels, every channel including alpha.

numpy and Pillow are the `kez-core[profiles]` extra: imported inside the
functions, so `import kez_core.profile` costs nothing without them.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from typing import TYPE_CHECKING, Any

from ..errors import DecodeError, KezError, SizeLimitError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from numpy import ndarray as _Array  # the names a function's own `np`, `Image` do not hide
    from PIL import Image
    from PIL.Image import Image as _Image

SCHEME = "kez-visual-v1"
FRAGMENT_PREFIX = f"#{SCHEME}:"
KEY_BYTES = 32
SALT_BYTES = 16
PICTURE_SIDE = 256
# Modes kept as they are; any other mode is converted (RGBA when it has alpha, else RGB).
MODES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
# A published picture is 256x256; reading accepts up to this many pixels (no decompression bombs).
MAX_PIXELS = 1024 * 1024
MAX_PNG_BYTES = 8 * 1024 * 1024
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ProfileDependencyError(KezError):
    """numpy or Pillow is missing: the `kez-core[profiles]` extra is not installed."""

    code = "missing_extra"
    exit_code = 6


def _deps() -> tuple[Any, Any]:
    try:
        import numpy
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - the CLI depends on the extra
        raise ProfileDependencyError(
            f"profile pictures need numpy and Pillow ({exc.name} is not installed)",
            hint="pip install 'kez-core[profiles]'",
        ) from None
    return numpy, Image


def new_key() -> bytes:
    """A fresh random picture key (a new one on every picture change)."""
    return secrets.token_bytes(KEY_BYTES)


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def _stream(key: bytes, salt: bytes, length: int) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    if len(key) != KEY_BYTES:
        raise DecodeError(f"a picture key is {KEY_BYTES} bytes, got {len(key)}")
    if len(salt) != SALT_BYTES:
        raise DecodeError(f"a picture salt is {SALT_BYTES} bytes, got {len(salt)}")
    nonce = b"\0\0\0\0" + hashlib.sha256(SCHEME.encode() + b"\0" + salt).digest()[:12]
    encryptor = Cipher(algorithms.ChaCha20(key, nonce), mode=None).encryptor()
    return encryptor.update(bytes(length))


def _perm_and_mask(
    key: bytes, salt: bytes, pixels: int, channels: int
) -> tuple[np.ndarray, np.ndarray]:
    np, _ = _deps()
    stream = _stream(key, salt, 4 * pixels + pixels * channels)
    words = np.frombuffer(stream, dtype="<u4", count=pixels)
    # the stable argsort of `words`, computed as a plain sort of (word << 32 | index):
    # the packed values are distinct, so any sort gives the stable order (~25% faster)
    packed = (words.astype(np.uint64) << np.uint64(32)) | np.arange(pixels, dtype=np.uint64)
    packed.sort()
    perm = (packed & np.uint64(0xFFFFFFFF)).astype(np.intp)
    mask = np.frombuffer(stream, dtype=np.uint8, offset=4 * pixels).reshape(pixels, channels)
    return perm, mask


def scramble_array(pixels: np.ndarray, key: bytes, salt: bytes) -> np.ndarray:
    """Permute and mask an (H, W) or (H, W, C) uint8 array; same shape back."""
    shape = pixels.shape
    flat = pixels.reshape(shape[0] * shape[1], -1)
    perm, mask = _perm_and_mask(key, salt, flat.shape[0], flat.shape[1])
    scrambled: _Array = (flat[perm] ^ mask).reshape(shape)
    return scrambled


def unscramble_array(pixels: np.ndarray, key: bytes, salt: bytes) -> np.ndarray:
    """The inverse of `scramble_array` (a wrong key gives noise, never an error)."""
    np, _ = _deps()
    shape = pixels.shape
    flat = pixels.reshape(shape[0] * shape[1], -1)
    perm, mask = _perm_and_mask(key, salt, flat.shape[0], flat.shape[1])
    out = np.empty_like(flat)
    out[perm] = flat ^ mask
    plain: _Array = out.reshape(shape)
    return plain


def _normal_mode(image: Image.Image) -> Image.Image:
    if image.mode in MODES:
        return image
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def encode_png(image: Image.Image) -> bytes:
    """Lossless PNG bytes (noise does not compress, so the fastest level)."""
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def open_png(data: bytes, *, what: str = "the picture") -> Image.Image:
    """Decode PNG bytes into a loaded image in one of MODES; DecodeError on anything else."""
    _, Image = _deps()
    if len(data) > MAX_PNG_BYTES:
        raise SizeLimitError(f"{what} is {len(data)} bytes, more than {MAX_PNG_BYTES}")
    if not data.startswith(_PNG_MAGIC):
        raise DecodeError(f"{what} is not a PNG file")
    return _open(data, what)


def _open(data: bytes, what: str) -> Image.Image:
    _, Image = _deps()
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise SizeLimitError(f"{what} is {width}x{height} pixels, more than {MAX_PIXELS}")
        image.load()
    except KezError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on bad files
        raise DecodeError(f"{what} cannot be decoded as an image: {exc}") from None
    return _normal_mode(image)


def prepare_picture(data: bytes) -> Image.Image:
    """A picture file (PNG, JPEG, …) as the 256x256 image a profile publishes.

    Centre-cropped to a square and resized with Lanczos; EXIF rotation applied
    (and so dropped with the rest of the metadata).
    """
    _, Image = _deps()
    from PIL import ImageOps

    if len(data) > MAX_PNG_BYTES * 4:
        raise SizeLimitError(
            f"the picture file is {len(data)} bytes, more than {MAX_PNG_BYTES * 4}"
        )
    try:
        image = Image.open(io.BytesIO(data))
        if image.size[0] * image.size[1] > 64 * MAX_PIXELS:
            raise SizeLimitError(
                f"the picture is {image.size[0]}x{image.size[1]} pixels: too large"
            )
        image = ImageOps.exif_transpose(image)
        image = _normal_mode(image)
        image = ImageOps.fit(image, (PICTURE_SIDE, PICTURE_SIDE), Image.Resampling.LANCZOS)
    except KezError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise DecodeError(
            f"the picture file cannot be read as an image: {exc}",
            hint="give a PNG, JPEG, GIF or WebP file",
        ) from None
    return image


def scramble_image(image: Image.Image, key: bytes, salt: bytes) -> Image.Image:
    np, Image = _deps()
    image = _normal_mode(image)
    scrambled: _Image = Image.fromarray(scramble_array(np.asarray(image), key, salt), image.mode)
    return scrambled


def unscramble_image(image: Image.Image, key: bytes, salt: bytes) -> Image.Image:
    np, Image = _deps()
    image = _normal_mode(image)
    plain: _Image = Image.fromarray(unscramble_array(np.asarray(image), key, salt), image.mode)
    return plain


def scramble_png(image: Image.Image, key: bytes, salt: bytes) -> bytes:
    """The published PNG of `image` under `key`/`salt`."""
    return encode_png(scramble_image(image, key, salt))


def unscramble_png(data: bytes, key: bytes, salt: bytes) -> bytes:
    """The PNG contacts see, from the published one. A wrong key gives noise."""
    return encode_png(unscramble_image(open_png(data), key, salt))


def fragment(salt: bytes) -> str:
    return f"{FRAGMENT_PREFIX}{salt.hex()}"


def split_reference(reference: str) -> tuple[str, bytes | None]:
    """(URL, salt) of a picture reference; salt None for a public (unscrambled) picture."""
    url, sep, frag = reference.partition("#")
    if not sep:
        return url, None
    prefix = FRAGMENT_PREFIX[1:]
    if not frag.startswith(prefix):
        return url, None
    text = frag[len(prefix) :]
    if len(text) != 2 * SALT_BYTES or text.lower() != text:
        raise DecodeError(
            f"picture reference fragment must be {prefix}<{2 * SALT_BYTES} lowercase hex>"
        )
    try:
        return url, bytes.fromhex(text)
    except ValueError:
        raise DecodeError(f"picture reference fragment must be {prefix}<hex>") from None
