"""Full MNIST: a cache folder filled from the canonical mirrors, verified by checksum.

The cache is `$EDGEDIGITS_DATA/mnist` (default `~/.cache/edgedigits/mnist`). Files are checked by
the MD5 of their *uncompressed* content, which holds for the published archives and for
re-compressed copies alike. A download goes to a temporary name in the cache folder and is renamed
into place only after its checksum matched, so an interrupted or corrupt download leaves nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from edgedigits.errors import DataError
from edgedigits.train.data import Dataset, load_idx_folder

# name -> MD5 of the uncompressed IDX bytes (the values in LeCun's original distribution)
FILES = {
    "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
TIMEOUT_S = 30


def cache_dir() -> Path:
    root = os.environ.get("EDGEDIGITS_DATA") or Path.home() / ".cache" / "edgedigits"
    return Path(root) / "mnist"


def mirrors() -> list[str]:
    """EDGEDIGITS_MNIST_MIRRORS (space-separated base URLs) replaces the defaults, e.g. a local copy."""
    env = os.environ.get("EDGEDIGITS_MNIST_MIRRORS")
    return env.split() if env else list(MIRRORS)


def content_md5(path: Path) -> str:
    """MD5 of the uncompressed bytes; raises DataError for a corrupt archive."""
    h = hashlib.md5()
    try:
        with gzip.open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except (EOFError, OSError) as e:
        raise DataError(f"{path}: corrupt or truncated gzip archive ({e})") from None
    return h.hexdigest()


def is_cached(folder: Path | None = None) -> bool:
    folder = folder or cache_dir()
    return all((folder / name).is_file() for name in FILES)


def _download_one(name: str, folder: Path, bases: list[str], progress) -> None:
    errors = []
    for base in bases:
        url = base.rstrip("/") + "/" + name
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
                total = int(resp.headers.get("Content-Length") or 0)
                done = 0
                while block := resp.read(1 << 16):
                    out.write(block)
                    done += len(block)
                    progress(name, done, total)
                if total and done != total:
                    raise DataError(f"{url}: connection closed after {done} of {total} bytes")
            got = content_md5(Path(tmp))
            if got != FILES[name]:
                raise DataError(f"{url}: checksum mismatch: MD5 of content {got}, expected {FILES[name]}")
            os.replace(tmp, folder / name)
            return
        except (OSError, urllib.error.URLError, DataError, ValueError) as e:
            errors.append(f"  {url}: {getattr(e, 'reason', None) or e}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise DataError(f"could not download {name} into {folder}:\n" + "\n".join(errors))


def _print_progress(name: str, done: int, total: int) -> None:
    if sys.stderr.isatty():
        pct = f"{100 * done / total:5.1f}%" if total else f"{done >> 10} KiB"
        print(f"\rdownloading {name}: {pct}", end="" if done != total else "\n", file=sys.stderr)


def download(folder: Path | None = None, progress=_print_progress) -> Path:
    """Fill the cache; files already there are verified, not downloaded again."""
    folder = folder or cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{folder}: cannot create the MNIST cache folder: {e.strerror}") from None
    for name in FILES:
        if not (folder / name).is_file():
            _download_one(name, folder, mirrors(), progress)
    return folder


def verify(folder: Path) -> None:
    for name, md5 in FILES.items():
        got = content_md5(folder / name)
        if got != md5:
            raise DataError(f"{folder / name}: checksum mismatch: MD5 of content {got}, expected {md5}; "
                            f"delete it and run again to download it afresh")


def load_mnist(folder: Path | None = None, allow_download: bool = True) -> Dataset:
    folder = folder or cache_dir()
    if not is_cached(folder):
        if not allow_download:
            raise DataError(f"{folder}: full MNIST is not cached")
        download(folder)
    verify(folder)
    return load_idx_folder(folder)
