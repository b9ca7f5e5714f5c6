"""Frame sources for the camera pipeline: a webcam index, a video file, an image, a folder of images,
or a stream URL (RTSP/HTTP). Each yields `Frame`s; faults are reported and skipped, or retried."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from edgedigits.images import IMAGE_SUFFIXES, read_image  # the one reader and suffix set
from edgedigits.imagesize import MAX_IMAGE_PIXELS, limit_opencv

limit_opencv()  # before cv2 is imported (the command does it first; this is for library users)

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edgedigits.errors import EdgeDigitsError  # noqa: E402

__all__ = ["IMAGE_SUFFIXES", "MAX_IMAGE_PIXELS", "Frame", "open_source", "read_image"]

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mjpeg", ".mjpg", ".y4m"}


@dataclass
class Frame:
    source: str  # the file or camera it came from
    index: int  # frame number within the run
    image: np.ndarray  # (H, W, 3) uint8 BGR
    capture_s: float  # seconds spent getting it


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


def list_cameras(max_index: int = 8) -> list[int]:
    found = []
    for i in range(max_index):
        cap = cv2.VideoCapture(i)
        if cap.isOpened():
            found.append(i)
        cap.release()
    return found


def open_source(spec: str, retries: int = 3, retry_delay_s: float = 0.5) -> Iterator[Frame]:
    """Frames from a source spec; raises EdgeDigitsError when the source cannot be opened at all."""
    if spec.isdigit():
        return _capture(int(spec), f"camera {spec}", live=True, retries=retries, delay=retry_delay_s)
    if "://" in spec:
        return _capture(spec, spec, live=True, retries=retries, delay=retry_delay_s)
    path = Path(spec)
    if not path.exists():
        raise EdgeDigitsError(f"{spec}: no such file, folder or camera (use a camera index like 0, "
                              f"a video, an image, a folder of images, or an rtsp:// or http:// URL)")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise EdgeDigitsError(f"{path}: no images in this folder ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return _images(files)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return _images([path])
    return _capture(str(path), str(path), live=False, retries=0, delay=0)


def _images(files: list[Path]) -> Iterator[Frame]:
    for i, f in enumerate(files):
        t0 = time.perf_counter()
        try:
            img = read_image(f)
        except EdgeDigitsError as e:  # one bad file in a folder: say so and go on
            _warn(f"{e}; skipped")
            continue
        yield Frame(str(f), i, img, time.perf_counter() - t0)


def _open(target, name: str):
    cap = cv2.VideoCapture(target)
    if cap.isOpened():
        return cap
    cap.release()
    if isinstance(target, int):
        cams = list_cameras()
        have = f"cameras that open: {', '.join(map(str, cams))}" if cams else "no camera opens on this machine"
        raise EdgeDigitsError(f"{name}: cannot be opened ({have})")
    raise EdgeDigitsError(f"{name}: OpenCV cannot open it as a video or stream")


def _capture(target, name: str, live: bool, retries: int, delay: float) -> Iterator[Frame]:
    cap = _open(target, name)  # fail now, before the first frame is asked for

    def frames():
        nonlocal cap
        index = 0
        reconnections = 0
        length = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)  # > 0: a file-like stream of known length
        try:
            while True:
                t0 = time.perf_counter()
                ok, img = cap.read()
                if ok and img is not None and img.size:
                    yield Frame(name, index, img, time.perf_counter() - t0)
                    index += 1
                    continue
                if not live and 0 < index < length:
                    _warn(f"{name}: read {index} of the {length} frames its header announces; "
                          f"the file may be truncated or damaged")
                if not live or (length > 0 and index % length == 0 and index):
                    return  # the end of a video file, or of a stream of known length
                if reconnections >= retries:
                    _warn(f"{name}: no frames after {retries} reconnection attempts; stopping")
                    return
                reconnections += 1
                _warn(f"{name}: lost the stream; reconnecting ({reconnections}/{retries})")
                cap.release()
                time.sleep(delay)
                cap = cv2.VideoCapture(target)
        finally:
            cap.release()

    return frames()
