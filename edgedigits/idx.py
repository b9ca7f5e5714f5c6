"""IDX files (MNIST's format: train-images-idx3-ubyte[.gz] and friends), read by train's data loaders and
by `predict` alike. NumPy only.

An IDX file is a big-endian int32 magic number, one int32 per dimension, then the values row-major as
uint8. Bad input raises DataError naming the file, the place in it and the problem.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from edgedigits.contract import DIGIT_SHAPE
from edgedigits.errors import DataError

IMAGE_MAGIC = 2051  # IDX: unsigned byte, 3 dimensions
LABEL_MAGIC = 2049  # IDX: unsigned byte, 1 dimension
MAX_IDX_ITEMS = 1_000_000  # images or labels in one IDX file (MNIST: 60,000; EMNIST: 814,255)
TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


def _open_maybe_gzip(path: Path):
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    if f.read(2) == b"\x1f\x8b":
        f.close()
        return gzip.open(path, "rb")
    f.seek(0)
    return f


def parse_idx(data: bytes, path: Path | str, expect_magic: int, header_only: bool = False) -> np.ndarray | None:
    """Parse IDX bytes: a big-endian int32 magic, the dimension sizes, then row-major uint8."""
    ndim = {IMAGE_MAGIC: 3, LABEL_MAGIC: 1}[expect_magic]
    header = 4 * (1 + ndim)
    if len(data) < header:
        raise DataError(f"{path}: file is {len(data)} bytes, shorter than the {header}-byte IDX header")
    magic = int.from_bytes(data[:4], "big")
    if magic != expect_magic:
        kind = "images" if expect_magic == IMAGE_MAGIC else "labels"
        raise DataError(f"{path}: byte 0: magic number {magic}, expected {expect_magic} for IDX {kind}")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if ndim == 3 and dims[1:] != DIGIT_SHAPE:
        raise DataError(f"{path}: header: images are {dims[1]}x{dims[2]}, expected 28x28")
    if dims[0] > MAX_IDX_ITEMS:
        raise DataError(f"{path}: header: {dims[0]:,} items, more than the {MAX_IDX_ITEMS:,} this loader reads")
    if header_only:
        return None
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise DataError(f"{path}: header says {dims} ({expected} bytes) but the data is "
                        + (f"{len(data)} bytes (truncated)" if len(data) < expected else "longer (trailing bytes)"))
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def load_idx(path: Path | str, expect_magic: int) -> np.ndarray:
    """An IDX file, raw or gzipped, read as a stream: the header is checked first, then exactly the
    bytes it announces are read (and one more, to catch trailing data). A gzip bomb or a lying header
    costs no more memory than a real file of the stated limit (MAX_IDX_ITEMS)."""
    path = Path(path)
    ndim = {IMAGE_MAGIC: 3, LABEL_MAGIC: 1}[expect_magic]
    try:
        with _open_maybe_gzip(path) as f:
            head = f.read(4 * (1 + ndim))
            parse_idx(head, path, expect_magic, header_only=True)
            dims = tuple(int.from_bytes(head[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
            size = int(np.prod(dims))
            body = f.read(size + 1)
    except (EOFError, OSError, gzip.BadGzipFile, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip archive ({e})") from None
    if len(body) != size:
        raise DataError(f"{path}: header says {dims} ({len(head) + size} bytes) but the data is "
                        + (f"{len(head) + len(body)} bytes (truncated)" if len(body) < size
                           else "longer (trailing bytes)"))
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def check_labels(labels: np.ndarray, path: Path | str) -> np.ndarray:
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise DataError(f"{path}: item {bad[0]}: label {labels[bad[0]]}, expected a digit 0..9")
    return labels


def idx_file(folder: Path, stem: str, required: bool = True) -> Path | None:
    """folder/stem or folder/stem.gz; missing: a DataError, or None when not `required`."""
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    if required:
        raise DataError(f"{folder}: missing {stem}[.gz]")
    return None


def load_idx_pair(images: Path, labels: Path | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, 28, 28) uint8 images and their (N,) uint8 labels (None without a labels file)."""
    x = load_idx(images, IMAGE_MAGIC)
    if labels is None:
        return x, None
    y = check_labels(load_idx(labels, LABEL_MAGIC), labels)
    if len(x) != len(y):
        raise DataError(f"{images}: {len(x)} images but {labels} holds {len(y)} labels")
    return x, y
