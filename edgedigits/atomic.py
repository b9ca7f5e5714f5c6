"""Files and folders appear whole or not at all: write to a temporary name beside them, then rename."""

from __future__ import annotations

import errno
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call write(tmp) for a temporary path beside `path`, then rename it onto `path` (atomic on one
    file system). A crash or Ctrl-C leaves the old file, or none, never half of the new one. The
    temporary name keeps the suffix, for writers that insist on one (`.weights.h5`, `.keras`)."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        raise OSError(e.errno, no_space(path, tmp), str(path)) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """atomic_write of bytes made in memory first: a disk without room for them is refused before
    anything is written, in one line saying how many bytes were needed."""
    path = Path(path)
    free = _free(path)
    if free is not None and free < len(data):
        raise OSError(errno.ENOSPC, no_space(path, need=len(data)), str(path))
    try:
        return atomic_write(path, lambda tmp: tmp.write_bytes(data))
    except OSError as e:  # the room went while writing (another writer): the same message
        if e.errno != errno.ENOSPC:
            raise
        raise OSError(e.errno, no_space(path, need=len(data)), str(path)) from None


def _free(path: Path) -> int | None:
    """Bytes free for an ordinary user on the file system that holds `path`'s folder."""
    try:
        st = os.statvfs(path.parent)
    except (OSError, AttributeError):  # no such folder yet (the write says so), or not POSIX
        return None
    return st.f_bavail * st.f_frsize


def no_space(path: Path, partial: Path | None = None, need: int | None = None) -> str:
    """The message of a full disk: what it needed (`need` bytes, or more than the `partial` file
    holds), what is free, and that the earlier file is kept."""
    try:
        wrote = partial.stat().st_size if partial else 0
    except OSError:
        wrote = 0
    free = _free(path)
    free = "free space unknown" if free is None else f"{free:,} bytes free"
    need = f"needs {need:,} bytes, " if need else f"needs more than the {wrote:,} bytes it could write, " if wrote else ""
    kept = "the earlier file is kept" if path.exists() else "nothing was written"
    return f"no space left on the device ({need}{free}); {kept}"


def is_disk_full(e: BaseException) -> bool:
    """A write refused for want of space: an OSError, or a library's own error saying so (TensorFlow's
    ResourceExhaustedError, h5py's RuntimeError)."""
    return (isinstance(e, OSError) and e.errno == errno.ENOSPC) or "No space left on device" in str(e)


def _bytes_in(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where it is not available."""
    if sys.platform != "linux":
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:  # glibc before 2.28, or musl
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _recover(path: Path) -> None:
    """Undo what a killed swap left: put back an old folder moved aside, remove unfinished new ones."""
    for old in sorted(path.parent.glob(f".{path.name}.old-*")):
        if not path.exists() and old.is_dir():
            os.rename(old, path)
        else:
            shutil.rmtree(old, ignore_errors=True)
    for new in path.parent.glob(f".{path.name}.new-*"):
        shutil.rmtree(new, ignore_errors=True)


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty folder beside `path` to fill; when the block ends without error, it takes the
    place of `path` in one step, and the old folder, if any, is removed. An exception, Ctrl-C or a
    SIGKILL at any moment leaves `path` as it was (the old complete folder, or none) or the new
    complete one, never a mix. What a kill leaves beside it (`.NAME.new-*`) goes on the next run."""
    path = Path(path)
    _recover(path)
    new = Path(tempfile.mkdtemp(prefix=f".{path.name}.new-", dir=path.parent))
    try:
        new.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the result should look like mkdir's
        try:
            yield new
        except Exception as e:  # a full disk: said of the folder the user named, not of the one beside it
            if not is_disk_full(e):
                raise
            wrote, free = _bytes_in(new), _free(path)
            need = f"needs more than the {wrote:,} bytes written before it ran out" if wrote else "does not fit"
            earlier = f" (the earlier one holds {_bytes_in(path):,} bytes)" if path.is_dir() else ""
            free = "free space unknown" if free is None else f"{free:,} bytes free"
            kept = "the earlier folder is kept" if path.exists() else "nothing was kept"
            raise OSError(errno.ENOSPC, f"no space left on the device: the new folder {need}{earlier}, {free}; {kept}",
                          str(path)) from None
        if not path.exists():
            os.rename(new, path)
        elif not _exchange(new, path):  # elsewhere: two renames; _recover repairs a kill between them
            old = new.with_name(new.name.replace(".new-", ".old-"))
            os.rename(path, old)
            os.rename(new, path)
            new = old
    finally:
        shutil.rmtree(new, ignore_errors=True)  # the unfinished new folder, or the old one after the swap


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def folder_lock(path: str | os.PathLike, option: str = "--out") -> Iterator[None]:
    """Hold an exclusive lock on writing `path` (fcntl.flock on `.NAME.lock` beside it, not inside:
    the folder itself is swapped); a second writer is refused at once rather than replacing the first
    one's result. The lock file goes at the end; one left by a kill is taken over, since the kernel
    drops a dead process's lock."""
    path = Path(path)
    lock = path.parent / f".{path.name}.lock"
    try:
        import fcntl
    except ImportError:  # not POSIX (Windows): no lock
        yield
        return
    from edgedigits.errors import EdgeDigitsError

    fd = None
    try:
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                fd = None
                raise EdgeDigitsError(f"{option} {path}: another run is writing this folder now (it holds "
                                      f"{lock}); wait for it to end or choose another folder") from None
            try:  # the file locked may have been removed by the holder that just ended: lock the new one
                if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
            fd = None
        yield
    finally:
        if fd is not None:  # ours: removed before it is unlocked, so no one waits on a file that is gone
            lock.unlink(missing_ok=True)
            os.close(fd)
