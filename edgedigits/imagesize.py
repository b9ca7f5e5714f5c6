"""An image's size from its header, before anything decodes it: the one check every command makes.

A 380-byte JPEG may claim 60000x60000 pixels, and decoding it would ask for 10 GB; a PNG of a few
KiB may be a decompression bomb. `check_image(path)` reads at most the first 64 KiB of the file and
refuses one larger than MAX_IMAGE_PIXELS. images.read_image, the one reader (deploy's sources,
`benchmark photos`, `predict` and `train`'s image folders), calls it before OpenCV decodes a file;
OPENCV_IO_MAX_IMAGE_PIXELS, set before OpenCV is imported, is the second guard, for the formats read
here by nobody (TIFF).

Standard library only: deploy imports this on devices.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from edgedigits.errors import DataError

MAX_IMAGE_PIXELS = 50_000_000  # 50 megapixels: larger than any phone photo, 150 MB decoded as BGR
HEAD_BYTES = 64 << 10  # a JPEG's frame header may follow large EXIF/ICC segments; past this, unknown


def limit_opencv() -> None:
    """OpenCV reads its own limit once, at its first imread: call before importing cv2."""
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) from the header of a PNG, JPEG, BMP, WebP, GIF or PGM/PPM; None for another
    format or a header this cannot parse (the decoder then says whether the file is an image)."""
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    for parse in (_png, _jpeg, _bmp, _webp, _gif, _pnm):
        size = parse(head)
        if size:
            return size
    return None


def check_image(path: str | os.PathLike, limit: int = MAX_IMAGE_PIXELS) -> None:
    """Refuse (DataError, one line naming the file) an image whose header claims more than `limit`
    pixels, or that cannot be read at all. Callers add what follows: "; skipped" in a folder."""
    try:
        size = image_size(path)
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    if size and size[0] * size[1] > limit:
        raise DataError(f"{path}: {size[0]}x{size[1]} pixels, more than the {limit // 1_000_000} megapixels")


def _png(h: bytes):
    if h[:8] == b"\x89PNG\r\n\x1a\n" and h[12:16] == b"IHDR" and len(h) >= 24:
        return struct.unpack(">II", h[16:24])
    return None


def _jpeg(h: bytes):
    """The first start-of-frame marker (SOF0..SOF15 but DHT, JPG, DAC): height, then width."""
    if h[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(h):
        if h[i] != 0xFF:
            return None
        marker = h[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", h[i + 2:i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > len(h):
                return None
            height, width = struct.unpack(">HH", h[i + 5:i + 9])
            return width, height
        i += 2 + length
    return None


def _bmp(h: bytes):
    if h[:2] != b"BM" or len(h) < 26:
        return None
    (dib,) = struct.unpack("<I", h[14:18])
    if dib == 12:  # BITMAPCOREHEADER: 16-bit sizes
        return struct.unpack("<HH", h[18:22])
    width, height = struct.unpack("<ii", h[18:26])
    return abs(width), abs(height)  # a negative height means top-down rows


def _webp(h: bytes):
    if h[:4] != b"RIFF" or h[8:12] != b"WEBP" or len(h) < 30:
        return None
    kind = h[12:16]
    if kind == b"VP8 ":  # lossy: 14-bit sizes after the frame tag and start code
        w, ht = struct.unpack("<HH", h[26:30])
        return w & 0x3FFF, ht & 0x3FFF
    if kind == b"VP8L":  # lossless: 14-bit width - 1 and height - 1, packed
        (bits,) = struct.unpack("<I", h[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X":  # extended: 24-bit canvas width - 1 and height - 1
        return int.from_bytes(h[24:27], "little") + 1, int.from_bytes(h[27:30], "little") + 1
    return None


def _gif(h: bytes):
    if h[:6] in (b"GIF87a", b"GIF89a") and len(h) >= 10:
        return struct.unpack("<HH", h[6:10])
    return None


def _pnm(h: bytes):
    """P1..P6 (PBM/PGM/PPM): magic, then width and height as text, with # comments."""
    if len(h) < 3 or h[0:1] != b"P" or h[1:2] not in b"123456":
        return None
    words = []
    for line in h[2:4096].split(b"\n"):
        words += line.split(b"#")[0].split()
        if len(words) >= 2:
            break
    try:
        return int(words[0]), int(words[1])
    except (IndexError, ValueError):
        return None

