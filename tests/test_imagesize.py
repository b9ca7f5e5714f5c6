"""Image sizes read from headers (edgedigits/imagesize.py), checked against what OpenCV decodes, in
every format this OpenCV can write; and headers that claim more pixels than the limit, refused."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from edgedigits.errors import DataError
from edgedigits.imagesize import check_image, image_size

FORMATS = [".png", ".jpg", ".bmp", ".webp", ".gif", ".tif", ".jp2", ".ras", ".pfm", ".hdr", ".exr", ".avif",
           ".pam", ".ppm", ".pgm", ".pbm"]


def tiff_claiming(path, width: int, height: int, big_endian: bool = False):
    """A TIFF of a few bytes whose first directory claims width x height (LONG tags), no pixels."""
    e, magic = (">", b"MM\0*") if big_endian else ("<", b"II*\0")
    entries = [struct.pack(e + "HHII", tag, 4, 1, value) for tag, value in ((256, width), (257, height))]
    path.write_bytes(magic + struct.pack(e + "I", 8) + struct.pack(e + "H", 2) + b"".join(entries)
                     + struct.pack(e + "I", 0))
    return path


@pytest.mark.parametrize("suffix", FORMATS)
def test_the_header_says_what_opencv_decodes(suffix, tmp_path):
    import cv2

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (230, 371, 3), dtype=np.uint8)  # odd sizes: width and height not mixed up
    if suffix in (".pgm", ".pbm"):
        image = image[:, :, 0]
    if suffix in (".pfm", ".hdr", ".exr"):
        image = image.astype(np.float32) / 255
    path = tmp_path / f"a{suffix}"
    try:
        written = cv2.imwrite(str(path), image)
    except cv2.error as e:
        pytest.skip(f"this OpenCV cannot write {suffix}: {str(e).strip().splitlines()[-1][:100]}")
    if not written:
        pytest.skip(f"this OpenCV cannot write {suffix}")
    decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert decoded is not None
    assert image_size(path) == (decoded.shape[1], decoded.shape[0]) == (371, 230)


def test_a_tiff_written_by_pillow(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((230, 371), np.uint8)).save(tmp_path / "a.tif")
    assert image_size(tmp_path / "a.tif") == (371, 230)


@pytest.mark.parametrize("big_endian", [False, True])
def test_a_tiff_claiming_60000x60000_is_refused_before_decoding(big_endian, tmp_path):
    path = tiff_claiming(tmp_path / "bomb.tif", 60000, 60000, big_endian)
    with pytest.raises(DataError, match=r"bomb.tif: 60000x60000 pixels, more than the 50 megapixels"):
        check_image(path)


def test_a_truncated_or_lying_tiff_is_left_to_the_decoder(tmp_path):
    (tmp_path / "cut.tif").write_bytes(b"II*\0" + struct.pack("<I", 10_000))  # directory past the end
    assert image_size(tmp_path / "cut.tif") is None
    check_image(tmp_path / "cut.tif")  # nothing to refuse here: OpenCV says it is not an image


def test_an_exr_header_claiming_60000x60000_is_refused(tmp_path):
    """OpenEXR (this OpenCV may be built without it): magic, version, then attributes; dataWindow is a
    box2i (xmin, ymin, xmax, ymax)."""
    attr = lambda name, kind, value: name + b"\0" + kind + b"\0" + struct.pack("<i", len(value)) + value  # noqa: E731
    header = (b"\x76\x2f\x31\x01" + struct.pack("<I", 2) + attr(b"channels", b"chlist", b"\0")
              + attr(b"dataWindow", b"box2i", struct.pack("<iiii", 0, 0, 59999, 59999)) + b"\0")
    (tmp_path / "bomb.exr").write_bytes(header)
    assert image_size(tmp_path / "bomb.exr") == (60000, 60000)
    with pytest.raises(DataError, match="60000x60000 pixels"):
        check_image(tmp_path / "bomb.exr")


def bigtiff_claiming(path, width: int, height: int, big_endian: bool = False, tag_type: int = 16):
    """A BigTIFF (8-byte offsets) whose first directory claims width x height: LONG8 (16), LONG (4) or
    SHORT (3) tags, the directory after 100 bytes of (absent) pixels, as a writer that puts it last."""
    e, order = (">", b"MM") if big_endian else ("<", b"II")
    fmt = {16: "Q", 4: "I", 3: "H"}[tag_type]
    entries = [struct.pack(e + "HHQ", tag, tag_type, 1) + struct.pack(e + fmt, value).ljust(8, b"\0")
               for tag, value in ((256, width), (257, height))]
    ifd = struct.pack(e + "Q", len(entries)) + b"".join(entries) + struct.pack(e + "Q", 0)
    path.write_bytes(order + struct.pack(e + "HHH", 43, 8, 0) + struct.pack(e + "Q", 116) + bytes(100) + ifd)
    return path


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("tag_type", [16, 4, 3])
def test_bigtiff_sizes_and_a_bomb(big_endian, tag_type, tmp_path):
    assert image_size(bigtiff_claiming(tmp_path / "a.tif", 371, 230, big_endian, tag_type)) == (371, 230)
    path = bigtiff_claiming(tmp_path / "bomb.tif", 60000, 60000, big_endian, tag_type)
    with pytest.raises(DataError, match=r"bomb.tif: 60000x60000 pixels, more than the 50 megapixels"):
        check_image(path)
