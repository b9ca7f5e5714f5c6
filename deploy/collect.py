"""`deploy --collect DIR`: every digit the camera pipeline reads, written exactly as the model saw it.

Each digit becomes DIR/<label>/<source>_f<frame>_x<x>_y<y>_w<w>_h<h>.png: the (28, 28) uint8 white-on-black
image the model was given (a 28x28 PNG is read back as it is: edgedigits/images.py), in the folder of the
class the model read (its best guess when it showed "?"), named by the frame it came from and its box
in that frame's pixels. Move a misread file into the right folder, then fine-tune on the folder:

    edgedigits deploy --source 0 --collect my_digits/
    edgedigits train --data my_digits/ --from deploy/models/standard --epochs 5

A file that is already there is never replaced: the name gets -2, -3, ... (created exclusively, so not
even another run writing at the same moment loses a file).
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from edgedigits.errors import EdgeDigitsError


def _plain(text: str) -> str:
    """A file-name-safe part: letters, digits, '.', '-' and '_' kept, anything else one '-'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:60] or "frame"


def label_folders(labels: list[str]) -> list[str]:
    """The class names as folder names; a name that cannot be one (a '/', '.', '..') is refused."""
    for name in labels:
        if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
            raise EdgeDigitsError(f"--collect: the model's class name {name!r} cannot be a folder name; "
                                  f"collect with a model whose classes are plain names")
    return list(labels)


class Collector:
    """Called with each frame and its Recognition (camera.run's `collect`); counts what it wrote."""

    def __init__(self, folder: Path, labels: list[str]):
        self.folder, self.labels = Path(folder), label_folders(labels)
        self.written = 0

    def __call__(self, frame, rec) -> None:
        if not rec.digits:
            return
        src = Path(frame.source)
        stem = _plain(src.stem if src.suffix else frame.source)  # photo.jpg -> photo; "camera 0" -> camera-0
        for d, probs in zip(rec.digits, rec.probs):
            x, y, w, h = d.box
            folder = self.folder / self.labels[int(np.argmax(probs))]
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise EdgeDigitsError(f"{folder}: cannot make the folder for collected digits: "
                                      f"{e.strerror or e}") from None
            self._write(folder, f"{stem}_f{frame.index:06d}_x{x}_y{y}_w{w}_h{h}", d.image)

    def _write(self, folder: Path, name: str, image: np.ndarray) -> Path:
        ok, png = cv2.imencode(".png", image)  # (28, 28) uint8: a greyscale PNG, lossless
        if not ok:
            raise EdgeDigitsError(f"{folder / name}.png: OpenCV could not encode the digit")
        for n in range(1, 1000):
            path = folder / (f"{name}.png" if n == 1 else f"{name}-{n}.png")
            try:
                with open(path, "xb") as f:  # exclusive: a file already there is never replaced
                    f.write(png.tobytes())
            except FileExistsError:
                continue
            except OSError as e:
                raise EdgeDigitsError(f"{path}: cannot write the collected digit: {e.strerror or e}") from None
            self.written += 1
            return path
        raise EdgeDigitsError(f"{folder / name}.png: 999 files of this name already; collect into a new folder")
