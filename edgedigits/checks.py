"""Checks of options and output paths, run before a command starts its work.

Each raises EdgeDigitsError (exit 2) with one line: the option, its value and what would be valid. Output
paths are tried for real (a probe file is created and removed), so a read-only file system, /proc or a
file where a folder should be is found before an hour of work, not after it.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from edgedigits.errors import EdgeDigitsError


def at_least(option: str, value, low) -> None:
    if value is not None and not value >= low:  # `not >=` also refuses NaN
        raise EdgeDigitsError(f"{option} {value}: must be at least {low}")


def in_range(option: str, value, low, high, what: str = "") -> None:
    if value is not None and not low <= value <= high:
        raise EdgeDigitsError(f"{option} {value}: must be between {low} and {high}{what}")


def finite(option: str, value, low: float = -math.inf, *, above: bool = False) -> None:
    """A real number (not NaN or infinite); above: strictly greater than low, else at least low."""
    if value is None:
        return
    if not math.isfinite(value):
        raise EdgeDigitsError(f"{option} {value}: must be a finite number")
    if (value <= low) if above else (value < low):
        raise EdgeDigitsError(f"{option} {value}: must be {'more than' if above else 'at least'} {low:g}")


def input_file(option: str, path: Path | None) -> None:
    if path is None:
        return
    if not path.exists():
        raise EdgeDigitsError(f"{option} {path}: no such file")
    if not path.is_file():
        raise EdgeDigitsError(f"{option} {path}: not a file")


def _probe(folder: Path, option: str, path: Path) -> None:
    """Create and remove a file in `folder`: the only sure test that writing there works."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".edgedigits-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise EdgeDigitsError(f"{option} {path}: cannot write the output folder {folder}: "
                              f"{e.strerror or e}") from None


def _existing_ancestor(option: str, path: Path) -> Path:
    """The nearest folder above `path` that exists; a file in the way is an error."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise EdgeDigitsError(f"{option} {path}: {parent} is a file, not a folder; "
                                      f"cannot write the output folder")
            return parent
    raise EdgeDigitsError(f"{option} {path}: no folder above it exists")


def output_file(option: str, path: Path | None) -> None:
    """A file to be written: its folder must exist and take files; the path itself must not be a folder."""
    if path is None:
        return
    _names_fit(option, path)
    if path.is_dir():
        raise EdgeDigitsError(f"{option} {path}: is a folder; give a file name")
    folder = path.absolute().parent
    if not folder.is_dir():
        kind = "is a file, not a folder" if folder.exists() else "does not exist"
        raise EdgeDigitsError(f"{option} {path}: the folder {folder} {kind}; create it first or choose another path")
    _probe(folder, option, path)


def _names_fit(option: str, path: Path) -> None:
    for part in path.parts:
        if len(os.fsencode(part)) > 255:  # NAME_MAX on every common file system
            raise EdgeDigitsError(f"{option} {str(path)[:80]}...: a name in it is longer than 255 bytes")


def output_folder(option: str, path: Path | None) -> None:
    """A folder to be written (created when missing): no file in the way, and writing there works."""
    if path is None:
        return
    _names_fit(option, path)
    if path.exists() and not path.is_dir():
        raise EdgeDigitsError(f"{option} {path}: is a file, not a folder; cannot write the output folder")
    _probe(path if path.is_dir() else _existing_ancestor(option, path), option, path)


def _same(a: Path, b: Path) -> bool:
    """The same file: one path resolved to the other, or one file under two names (a hard link)."""
    try:
        if a.absolute().resolve() == b.absolute().resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def not_an_input(option: str, out: Path | None, inputs: dict[Path, str]) -> None:
    """Refuse an output that would land on a file the command reads or a model folder holds:
    `inputs` maps each such file to what it is ("the data", "the model's manifest")."""
    if out is None or str(out) == "-":
        return
    for path, what in inputs.items():
        if path is not None and _same(Path(out), Path(path)):
            raise EdgeDigitsError(f"{option} {out}: is {what} {path}; writing there would destroy it: "
                                  f"choose another path")


def model_files(model: str | os.PathLike) -> dict[Path, str]:
    """The files of a model folder that no output may replace: the manifest and every file it lists,
    or a model file itself. Empty for what is not a path (a shipped model's name)."""
    path = Path(model)
    if path.is_dir():
        path = path / "manifest.json"
    if not path.exists():
        return {}
    files = {path: "the model's manifest" if path.name == "manifest.json" else "the model"}
    if path.name == "manifest.json":
        try:
            import json

            data = json.loads(path.read_text())
            names = [data["source"]["file"]] + [a.get("file") for a in data["artifacts"]]
        except (OSError, ValueError, RecursionError, KeyError, TypeError, AttributeError):
            names = []  # not a readable manifest: its loader says so
        for name in names:
            if isinstance(name, str) and name and "/" not in name and "\0" not in name:
                files[path.parent / name] = "a file of the model folder"
    return files
