"""Received pictures, decoded for a preview without trusting them.

A file someone sent is hostile until proven otherwise: its name says
nothing (`cat.png` may be anything), its header may claim 100,000 x 100,000
pixels (a decompression bomb), its data may stop half-way or be crafted to
trip a decoder. `kez chat` shows a received picture inline, so the choosing
and the decoding live here, where they are tested without a terminal:

- `sniff_image` names the format from the first bytes (PNG, JPEG, GIF, WebP
  only: the formats people send, and the decoders Pillow hardens most);
- `preview_image` checks the size on disk and the pixel count from the header
  *before* decoding, decodes only the sniffed format, turns Pillow's
  DecompressionBombWarning into an error, and returns a small RGB(A) copy
  (at most `PREVIEW_SIDE` pixels a side). Anything wrong is a `DecodeError`
  (a `SizeLimitError` for sizes): the caller shows the file card instead.

Needs Pillow (the `kez-core[profiles]` extra, which `kez` depends on).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DecodeError, KezError, SizeLimitError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

# The magic bytes of the formats shown inline; anything else is a plain file card.
MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"\xff\xd8\xff", 0, "jpeg"),
    (b"GIF87a", 0, "gif"),
    (b"GIF89a", 0, "gif"),
)
PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG", "gif": "GIF", "webp": "WEBP"}
SNIFF_BYTES = 16
MAX_IMAGE_BYTES = 10 * 1024 * 1024  # a file sent by message is at most 10 MiB (chat.files.FILE_MAX)
MAX_IMAGE_PIXELS = (
    24_000_000  # a 6000x4000 photo; a header claiming more is refused before decoding
)
PREVIEW_SIDE = 512  # pixels: the preview is scaled down to this (a terminal shows far fewer)


def sniff_image(head: bytes) -> str | None:
    """The picture format of a file from its first bytes ("png", "jpeg", "gif", "webp"), else None."""
    for magic, offset, name in MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def sniff_file(path: str | Path) -> str | None:
    """`sniff_image` of a file on disk; None when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return sniff_image(handle.read(SNIFF_BYTES))
    except OSError:
        return None


def preview_image(
    path: str | Path,
    *,
    side: int = PREVIEW_SIDE,
    max_bytes: int = MAX_IMAGE_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> Image.Image:
    """A received picture as a loaded RGB or RGBA image at most `side` pixels a side (the first
    frame of an animation). DecodeError when it is not a PNG/JPEG/GIF/WebP or does not decode;
    SizeLimitError when the file or its pixel count is over the limits (checked before decoding)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - kez depends on kez-core[profiles]
        raise DecodeError(
            "showing pictures needs Pillow", hint="pip install 'kez-core[profiles]'"
        ) from None
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SizeLimitError(f"the picture is {size:,} bytes, more than {max_bytes:,}")
        data = path.read_bytes()
    except OSError as exc:
        raise DecodeError(f"cannot read the picture: {exc.strerror or exc}") from None
    kind = sniff_image(data[:SNIFF_BYTES])
    if kind is None:
        raise DecodeError("not a PNG, JPEG, GIF or WebP picture")
    import io

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Any = Image.open(io.BytesIO(data), formats=[PILLOW_FORMATS[kind]])
            width, height = image.size
            if width <= 0 or height <= 0 or width * height > max_pixels:
                raise SizeLimitError(
                    f"the picture is {width}x{height} pixels, more than {max_pixels:,}"
                )
            if (
                kind == "jpeg"
            ):  # decode at a reduced scale: a 24-megapixel photo need not be decoded whole
                image.draft("RGB", (side, side))
            image.seek(0)
            image.load()
            image.thumbnail((side, side))
            mode = (
                "RGBA"
                if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
                else "RGB"
            )
            shown: Image.Image = image.convert(mode)
            shown.load()
    except KezError:
        raise
    except (
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ):  # past Image.MAX_IMAGE_PIXELS
        raise SizeLimitError(
            "the picture's header claims more pixels than Pillow will decode"
        ) from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types (OSError, SyntaxError, ValueError, …) on bad files
        raise DecodeError(f"the picture does not decode: {type(exc).__name__}") from None
    return shown
