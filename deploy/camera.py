"""The camera pipeline: frames -> digits in reading order -> one batched inference -> output.

Output: a window with boxes, digits, confidence and FPS where a display exists; with headless, one
JSON line per frame; with save_dir, annotated images or an annotated video. At the end, per-stage
timings (capture, preprocess, inference, total: p50 and p95) and frames per second.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgedigits.atomic import atomic_write_bytes
from edgedigits.contract import CONFIDENCE, SegmentConfig
from edgedigits.deploy.preprocess import Digit, segment
from edgedigits.deploy.sources import Frame
from edgedigits.errors import EdgeDigitsError

STAGES = ("capture", "preprocess", "inference", "total")


@dataclass
class Recognition:
    digits: list[Digit]
    probs: np.ndarray  # (N, 10)
    labels: list  # int, or "?" below the confidence threshold
    confidence: list[float]

    @property
    def text(self) -> str:
        out, line = "", 0
        for d, lab in zip(self.digits, self.labels):
            if d.line != line:
                out += " "
                line = d.line
            out += str(lab)
        return out


@dataclass
class Smoother:
    """Averages each digit's probabilities with the same place in the previous frames (live video)."""
    weight: float  # share of the previous frames in the average (0: off)
    previous: list = field(default_factory=list)  # [(box, probs)]

    def __call__(self, digits: list[Digit], probs: np.ndarray) -> np.ndarray:
        if self.weight <= 0:
            return probs
        out = probs.copy()
        for i, d in enumerate(digits):
            best, best_iou = None, 0.3
            for box, p in self.previous:
                iou = _iou(d.box, box)
                if iou > best_iou:
                    best, best_iou = p, iou
            if best is not None:
                out[i] = self.weight * best + (1 - self.weight) * probs[i]
        self.previous = [(d.box, p) for d, p in zip(digits, out)]
        return out


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / float(aw * ah + bw * bh - inter) if inter else 0.0


def recognize(frame: np.ndarray, runner, confidence: float = CONFIDENCE, seg: SegmentConfig = SegmentConfig(),
              smoother: Smoother | None = None, timings: dict | None = None, single: bool = False) -> Recognition:
    """All digits of one frame, classified in one batch; with `single`, the whole frame is one digit."""
    t0 = time.perf_counter()
    digits = segment(frame, seg, single, verify=getattr(runner, "verify", None))
    t1 = time.perf_counter()
    probs = runner(np.stack([d.image for d in digits])) if digits else np.zeros((0, 10), np.float32)
    if smoother:
        probs = smoother(digits, probs)
    t2 = time.perf_counter()
    if timings is not None:
        timings["preprocess"].append(t1 - t0)
        timings["inference"].append(t2 - t1)
    best = probs.argmax(1) if len(probs) else np.zeros(0, int)
    conf = [float(probs[i, c]) for i, c in enumerate(best)]
    # a piece the verifier doubts and the classifier cannot read is not a digit: no "?" for it
    keep = [i for i, (d, p) in enumerate(zip(digits, conf)) if readable(d.p_digit, p, confidence, seg)]
    if len(keep) < len(digits):
        digits, probs, best, conf = [digits[i] for i in keep], probs[keep], best[keep], [conf[i] for i in keep]
    labels = [int(c) if p >= confidence else "?" for c, p in zip(best, conf)]
    return Recognition(digits, probs, labels, conf)


def readable(p_digit: float, conf: float, confidence: float, seg: SegmentConfig) -> bool:
    """Whether a digit is shown: one the verifier is sure of (p >= sure_digit) always, as "?" where the
    classifier cannot read it; one it doubts only where the classifier reads it confidently. (Asking
    the classifier to be surer still, 0.9, where p < 0.25 took a photo of a person and one of a wall
    off the photos read as a digit, and 3% of the digits of a generated handwriting font with them.)"""
    return p_digit >= seg.sure_digit or conf >= confidence


def as_json(frame: Frame, rec: Recognition, names: list[str] | None = None) -> str:
    """One frame as a JSON line; with the model's class names, each digit's "name" too. "digit" is the
    verifier's probability that the box holds one digit (1 where no verifier ran: --no-verifier)."""
    def named(lab):
        return {"name": names[lab] if lab != "?" else "?"} if names else {}

    return json.dumps({"source": frame.source, "frame": frame.index,
                       "digits": [{"label": lab, **named(lab), "confidence": round(c, 4),
                                   "digit": round(float(d.p_digit), 4), "box": list(d.box)}
                                  for d, lab, c in zip(rec.digits, rec.labels, rec.confidence)],
                       "text": rec.text})


def annotate(image: np.ndarray, rec: Recognition, fps: float | None = None) -> np.ndarray:
    out = image.copy()
    for d, lab, c in zip(rec.digits, rec.labels, rec.confidence):
        x, y, w, h = d.box
        color = (0, 200, 0) if lab != "?" else (0, 160, 255)
        cv2.rectangle(out, (x, y), (x + w, y + h), color, 2)
        cv2.putText(out, f"{lab} {c:.0%}", (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, color, 2)
    banner = rec.text or "-"
    if fps:
        banner += f"   {fps:.0f} FPS"
    cv2.putText(out, banner, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 4)
    cv2.putText(out, banner, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (30, 30, 220), 2)
    return out


def has_display() -> bool:
    return sys.platform in ("win32", "darwin") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class Saver:
    """Annotated images (one per input image) or one annotated video, each renamed into place when done.

    The video is renamed onto annotated.avi only when it is whole: a run short of disk space ends with
    an error and the previous annotated.avi kept; an interrupted run keeps the previous one too, and
    its own frames go to annotated.partial.avi (or to annotated.avi when there was none)."""

    VIDEO = "annotated.avi"
    PARTIAL = "annotated.partial.avi"
    HEADROOM = 1 << 20  # bytes kept free beyond a frame, for the video's index written at the end

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.video = None
        self.video_tmp = None
        self.frames = 0  # video frames written
        self.written = set()  # names written in this run: a.jpg and a.png must not both become a.annotated.jpg

    def add(self, frame: Frame, image: np.ndarray, is_video: bool) -> None:
        if not is_video:
            src = Path(frame.source)
            stem = src.stem if src.is_file() else f"frame{frame.index:06d}"
            name, n = f"{stem}.annotated.jpg", 1
            if name in self.written:  # the same stem with another suffix: keep the suffix in the name
                name = f"{stem}{src.suffix.replace('.', '-')}.annotated.jpg"
            while name in self.written:
                n += 1
                name = f"{stem}-{n}.annotated.jpg"
            self.written.add(name)
            ok, jpeg = cv2.imencode(".jpg", image)  # in memory: a full disk is then one line with the bytes needed
            if not ok:
                raise EdgeDigitsError(f"{self.folder / name}: OpenCV could not encode the annotated image")
            atomic_write_bytes(self.folder / name, jpeg.tobytes())
            return
        if self.video is None:
            h, w = image.shape[:2]
            self.video_tmp = self.folder / ".tmp-annotated.avi"
            self.video = cv2.VideoWriter(str(self.video_tmp), cv2.VideoWriter_fourcc(*"MJPG"), 15, (w, h))
        # VideoWriter.write says nothing when the disk is full: look before each frame (a Motion JPEG
        # frame is smaller than its raw pixels)
        need = image.nbytes + self.HEADROOM
        st = os.statvfs(self.folder)
        if st.f_bavail * st.f_frsize < need:
            raise EdgeDigitsError(f"{self.folder}: no space left for the annotated video ({st.f_bavail * st.f_frsize:,} "
                                  f"bytes free, a frame needs up to {need:,}); {self._kept()}")
        self.video.write(image)
        self.frames += 1

    def _kept(self) -> str:
        video = self.folder / self.VIDEO
        return f"the previous {video} is kept" if video.exists() else "no annotated video was saved"

    def close(self, outcome: str = "done") -> str | None:
        """Finish the video. outcome: "done", "interrupted" (its frames are kept, the previous video
        too) or "failed" (its video is dropped). Returns a line saying where an interrupted run's
        frames went."""
        if self.video is None:  # no video frame written (images, or interrupted before the first)
            video = self.folder / self.VIDEO
            return f"the previous {video} is kept" if outcome == "interrupted" and video.exists() else None
        self.video.release()
        self.video = None
        complete = outcome == "done"
        try:
            if outcome == "failed":
                return None
            cap = cv2.VideoCapture(str(self.video_tmp))
            readable = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
            cap.release()
            if readable != self.frames:  # a write that failed without a word (disk full at the end)
                raise EdgeDigitsError(f"{self.folder / self.VIDEO}: the annotated video holds {readable} of its "
                                      f"{self.frames} frames (disk full?); {self._kept()}")
            video = self.folder / self.VIDEO
            if complete or not video.exists():
                os.replace(self.video_tmp, video)
                return None if complete else f"the {self.frames} annotated frames are in {video}"
            os.replace(self.video_tmp, self.folder / self.PARTIAL)
            return (f"the previous {video} is kept; this run's {self.frames} annotated frames are in "
                    f"{self.folder / self.PARTIAL}")
        finally:
            self.video_tmp.unlink(missing_ok=True)


def summarize(timings: dict, frames: int, wall_s: float) -> str:
    lines = [f"{frames} frames in {wall_s:.2f} s: {frames / wall_s if wall_s else 0:.1f} FPS"]
    for stage in STAGES:
        t = np.asarray(timings[stage]) * 1000
        if len(t):
            lines.append(f"  {stage:<11} p50 {np.percentile(t, 50):7.3f} ms   p95 {np.percentile(t, 95):7.3f} ms")
    return "\n".join(lines)


def run(frames, runner, *, confidence: float = CONFIDENCE, smooth: float = 0.0, headless: bool = False,
        save_dir: Path | None = None, max_frames: int = 0, is_video: bool = True,
        out=sys.stdout, seg: SegmentConfig = SegmentConfig(), single: bool = False, collect=None) -> dict:
    """Run the pipeline over a frame source; returns the timings (seconds per stage per frame).
    collect: called with each frame and its Recognition (collect.Collector writes the digits read)."""
    timings = {s: [] for s in STAGES}
    smoother = Smoother(smooth) if smooth > 0 else None
    show = not headless and has_display()
    if not headless and not show:
        print("notice: no display found; printing one JSON line per frame (as with --headless)", file=sys.stderr)
    saver = Saver(save_dir) if save_dir else None
    n, fps, t_start = 0, None, time.perf_counter()
    # when each frame was done with (output, saving, display included), from the start: the FPS on the
    # image counts frames per second of wall time over the last 30, as the summary does over the run
    done = collections.deque([t_start], maxlen=31)
    try:
        for frame in frames:
            t0 = time.perf_counter()
            rec = recognize(frame.image, runner, confidence, seg, smoother, timings, single)
            timings["capture"].append(frame.capture_s)
            timings["total"].append(frame.capture_s + time.perf_counter() - t0)
            if collect:
                collect(frame, rec)
            n += 1
            fps = (len(done) - 1) / (done[-1] - done[0]) if len(done) > 1 else None
            if headless or not show:
                print(as_json(frame, rec, getattr(runner, "labels", None)), file=out, flush=True)
            if show or saver:
                image = annotate(frame.image, rec, fps)
                if saver:
                    saver.add(frame, image, is_video)
                if show:
                    cv2.imshow("edgedigits", image)
                    if cv2.waitKey(0 if not is_video else 1) & 0xFF in (ord("q"), 27):
                        break
            done.append(time.perf_counter())
            if max_frames and n >= max_frames:
                break
    except KeyboardInterrupt:
        timings["interrupted"] = True  # Ctrl-C ends a live run: the summary still comes, then exit 130
    except BaseException:
        if saver:
            saver.close("failed")  # its video is dropped, the previous one kept
            saver = None
        raise
    finally:
        if saver:
            timings["saved"] = saver.close("interrupted" if timings.get("interrupted") else "done")
        if show:
            cv2.destroyAllWindows()
    timings["wall"] = time.perf_counter() - t_start
    timings["frames"] = n
    return timings
