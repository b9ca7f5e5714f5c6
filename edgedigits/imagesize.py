"""An image's size from its header, before anything decodes it: the one check every command makes.

A 380-byte JPEG may claim 60000x60000 pixels, and decoding it would ask for 10 GB; a PNG of a few
KiB may be a decompression bomb. `check_image(path)` reads at most the first 64 KiB of the file (and a
TIFF's first directory, wherever it lies) and refuses one larger than MAX_IMAGE_PIXELS.
images.read_image, the one reader (deploy's sources, `benchmark photos`, `predict` and `train`'s image
folders), calls it before OpenCV decodes a file. It knows every format OpenCV reads: PNG, JPEG, BMP,
WebP, GIF, PBM/PGM/PPM/PAM/PFM, TIFF and BigTIFF, JPEG 2000, Sun raster, Radiance HDR, OpenEXR, AVIF.
OPENCV_IO_MAX_IMAGE_PIXELS, set by the command before OpenCV is imported, is the second guard, for a
header this cannot parse.

Standard library only: deploy imports this on devices.
"""

from __future__ import annotations

import os
import struct

from edgedigits.errors import DataError

MAX_IMAGE_PIXELS = 50_000_000  # 50 megapixels: larger than any phone photo, 150 MB decoded as BGR
HEAD_BYTES = 64 << 10  # a JPEG's frame header may follow large EXIF/ICC segments; past this, unknown


def limit_opencv() -> None:
    """OpenCV reads its own limit once, at its first imread: call before importing cv2."""
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) from the header of an image in any format OpenCV reads (the module's list); None
    for another format or a header this cannot parse (the decoder then says whether it is an image)."""
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
        if head[:4] in TIFF_MAGIC:
            return _tiff(head, f)
    for parse in (_png, _jpeg, _bmp, _webp, _gif, _pnm, _jpeg2000, _sun_raster, _hdr, _exr, _avif):
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
    """P1..P6 (PBM/PGM/PPM) and PF/Pf (PFM): magic, then width and height as text, with # comments;
    P7 (PAM): WIDTH and HEIGHT lines."""
    if len(h) < 3 or h[0:1] != b"P" or h[1:2] not in b"1234567Ff":
        return None
    if h[1:2] == b"7":
        fields = dict(line.split(None, 1) for line in h[3:4096].split(b"ENDHDR")[0].splitlines()
                      if len(line.split(None, 1)) == 2)
        try:
            return int(fields[b"WIDTH"]), int(fields[b"HEIGHT"])
        except (KeyError, ValueError):
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



TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")  # classic TIFF, then BigTIFF, each byte order


def _tiff(h: bytes, f):
    """TIFF and BigTIFF: the first directory's ImageWidth (256) and ImageLength (257) tags, SHORT or LONG
    (LONG8 in BigTIFF). The directory may lie anywhere (OpenCV writes it after the pixels): read
    there, at most its first 4,096 entries."""
    e = "<" if h[:2] == b"II" else ">"
    big = h[2:4] in (b"+\0", b"\0+")
    try:
        (ifd,) = struct.unpack(e + ("Q" if big else "I"), h[8:16] if big else h[4:8])
        f.seek(ifd)
        head_size, size = (8, 20) if big else (2, 12)
        data = f.read(head_size + 4096 * size)
        (count,) = struct.unpack(e + ("Q" if big else "H"), data[:head_size])
        dims = {}
        for i in range(min(count, 4096)):
            entry = data[head_size + i * size:head_size + (i + 1) * size]
            tag, kind = struct.unpack(e + "HH", entry[:4])
            if tag in (256, 257):
                fmt = {3: "H", 4: "I", 16: "Q"}.get(kind)
                if fmt is None:
                    return None
                value = entry[12:] if big else entry[8:]
                dims[tag] = struct.unpack(e + fmt, value[:struct.calcsize(fmt)])[0]
        return (dims[256], dims[257]) if len(dims) == 2 else None
    except (struct.error, OSError, OverflowError, ValueError):
        return None


def _jpeg2000(h: bytes):
    """JPEG 2000: a .jp2 file's image header box (ihdr: height, width), or a bare codestream's SIZ
    marker (Xsiz - XOsiz, Ysiz - YOsiz)."""
    if h[4:12] == b"jP  \r\n\x87\n":
        i = h.find(b"ihdr")
        if i < 0 or i + 12 > len(h):
            return None
        height, width = struct.unpack(">II", h[i + 4:i + 12])
        return width, height
    if h[:4] == b"\xff\x4f\xff\x51" and len(h) >= 24:
        xsiz, ysiz, xo, yo = struct.unpack(">IIII", h[8:24])
        return xsiz - xo, ysiz - yo
    return None


def _sun_raster(h: bytes):
    if h[:4] == b"\x59\xa6\x6a\x95" and len(h) >= 12:
        return struct.unpack(">II", h[4:12])
    return None


def _hdr(h: bytes):
    """Radiance HDR: text lines, a blank line, then the resolution line "-Y H +X W" (or another order)."""
    if not (h.startswith(b"#?RADIANCE") or h.startswith(b"#?RGBE")):
        return None
    head, sep, rest = h.partition(b"\n\n")
    words = rest.split(b"\n", 1)[0].split()
    if not sep or len(words) != 4:
        return None
    try:
        sizes = {words[0][1:2]: int(words[1]), words[2][1:2]: int(words[3])}
        return sizes[b"X"], sizes[b"Y"]
    except (KeyError, ValueError):
        return None


def _exr(h: bytes):
    """OpenEXR: attributes (name, type, size, value) after the magic and version; dataWindow is a box2i."""
    if h[:4] != b"\x76\x2f\x31\x01":
        return None
    i = 8
    while i < len(h) and h[i] != 0:
        name_end = h.find(b"\0", i)
        type_end = h.find(b"\0", name_end + 1)
        if name_end < 0 or type_end < 0 or type_end + 5 > len(h):
            return None
        (size,) = struct.unpack("<i", h[type_end + 1:type_end + 5])
        value = h[type_end + 5:type_end + 5 + size]
        if h[i:name_end] == b"dataWindow" and len(value) == 16:
            x0, y0, x1, y1 = struct.unpack("<iiii", value)
            return x1 - x0 + 1, y1 - y0 + 1
        i = type_end + 5 + max(size, 0)
    return None


def _avif(h: bytes):
    """AVIF (and HEIF): the first image spatial extents property ('ispe': version, flags, width, height)."""
    if h[4:8] != b"ftyp":
        return None
    i = h.find(b"ispe")
    if i < 0 or i + 16 > len(h):
        return None
    return struct.unpack(">II", h[i + 8:i + 16])
