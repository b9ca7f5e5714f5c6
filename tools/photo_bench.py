"""`edgedigits benchmark photos DIR`: the camera pipeline on real photos, against their labels.

DIR holds images and a `labels.csv` with at least the columns `filename,label`; a label is the digits
the photo shows, text lines separated by a space ("134678 912532"); an empty label says the photo holds
no digit, so nothing should be read there (a page of words, a wall, a face), and so does a labels.csv
with no label column at all. Each photo goes through what
`edgedigits deploy --source PHOTO` runs: decoding, finding and normalizing the digits, one batched
inference. Per photo: the expected and the read text, the time; over the folder: photos read exactly,
digit accuracy and digits found (from an alignment of the read digits to the expected ones), a
confusion matrix of the aligned digits, and the time per photo.
"""

from __future__ import annotations

import csv
import io
import sys
import time
from pathlib import Path

import numpy as np

from edgedigits.errors import EdgeDigitsError


MAX_LABELS_BYTES = 16 << 20  # a labels.csv for thousands of photos is a few hundred KiB


def read_labels(folder: Path) -> list[tuple[str, str]]:
    """[(filename, label)] from folder/labels.csv; errors name the file, the line and the problem.
    A label is ASCII digits, text lines separated by one space ("134678 912532")."""
    path = folder / "labels.csv"
    if not path.is_file():
        raise EdgeDigitsError(f"{path}: no such file (a photo folder needs labels.csv with the columns filename,label)")
    text = _read_text(path)
    rows = []
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        if not reader.fieldnames or "filename" not in reader.fieldnames:
            raise EdgeDigitsError(f"{path}: the header must name the columns filename and label, got {reader.fieldnames}")
        # without a label column, every photo holds no digit (a folder of scenes where nothing should be read)
        for row in reader:
            line = reader.line_num
            name, label = (row.get("filename") or "").strip(), (row.get("label") or "").strip()
            if not name or Path(name).name != name:
                raise EdgeDigitsError(f"{path}, line {line}: {name!r} is not a file name in this folder")
            # isdigit() alone accepts '²' and '٢': only ASCII 0-9 are digits the model reads
            if label and not all(part.isascii() and part.isdigit() for part in label.split(" ")):
                raise EdgeDigitsError(f"{path}, line {line}: label {label[:40]!r} is not digits 0-9 (lines "
                                      f"separated by one space; empty for a photo with no digit)")
            if not (folder / name).is_file():
                raise EdgeDigitsError(f"{path}, line {line}: {folder / name}: no such file")
            rows.append((name, label))
    except csv.Error as e:  # a field over the csv module's limit, a NUL byte, an unclosed quote
        # line_num counts the lines of the records read whole: the bad one is the next
        raise EdgeDigitsError(f"{path}, line {reader.line_num + 1}: not readable as CSV: {e}") from None
    if not rows:
        raise EdgeDigitsError(f"{path}: no photos listed")
    return rows


def _read_text(path: Path) -> str:
    """The file as UTF-8 text, read whole only when it is small enough to be a labels file."""
    size = path.stat().st_size
    if size > MAX_LABELS_BYTES:
        raise EdgeDigitsError(f"{path}: {size:,} bytes, more than a labels file can be ({MAX_LABELS_BYTES:,})")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise EdgeDigitsError(f"{path}, line {line}: not UTF-8 text (byte {data[e.start]:#04x}); save the "
                              f"file as UTF-8") from None


def align(expected: str, read: str) -> list[tuple[str | None, str | None]]:
    """The read digits aligned to the expected ones by edit distance: (expected, read) pairs, None
    where a digit was missed (read None) or is extra (expected None)."""
    n, m = len(expected), len(read)
    cost = np.zeros((n + 1, m + 1), np.int32)
    cost[:, 0], cost[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j] + 1, cost[i, j - 1] + 1,
                             cost[i - 1, j - 1] + (expected[i - 1] != read[j - 1]))
    pairs, i, j = [], n, m
    while i or j:
        if i and j and cost[i, j] == cost[i - 1, j - 1] + (expected[i - 1] != read[j - 1]):
            pairs.append((expected[i - 1], read[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i, j] == cost[i - 1, j] + 1:
            pairs.append((expected[i - 1], None))
            i -= 1
        else:
            pairs.append((None, read[j - 1]))
            j -= 1
    return pairs[::-1]


def photo_benchmark(folder: Path, manifest: Path, target: str = "cpu", threads: int = 1, single: bool = False,
                    fmt: str | None = None, verifier: bool = True, resize: tuple[int, int] | None = None,
                    say=print) -> dict:
    """Each photo of folder/labels.csv read by deploy's pipeline: per photo the expected and the read text and
    the time to read it (decoding, and the scaling to `resize` (width, height) when given, not included)."""
    import cv2

    from edgedigits.deploy import camera
    from edgedigits.deploy.runners import from_manifest
    from edgedigits.images import read_image
    from edgedigits.tools.benchmark import cpu_name

    folder = Path(folder)
    rows = read_labels(folder)
    cv2.setNumThreads(1)
    runner = from_manifest(manifest, target, threads, fmt=fmt, verifier=verifier)
    confusion = np.zeros((10, 10), np.int64)  # [expected, read], aligned digits only
    files, skipped, correct, found, total, exact = [], [], 0, 0, 0, 0
    empty = with_output = invented = 0  # photos that hold no digit: any output there is invented
    for name, label in rows:
        t0 = time.perf_counter()
        try:
            image = read_image(folder / name)  # the size checked from the header before decoding
        except EdgeDigitsError as e:  # one bad photo: said, left out of the figures, and the others go on
            print(f"warning: {e}; skipped", file=sys.stderr)
            skipped.append({"file": name, "reason": str(e)})
            continue
        decoded = time.perf_counter()
        if resize:
            image = cv2.resize(image, resize, interpolation=cv2.INTER_LINEAR)
        t1 = time.perf_counter()
        rec = camera.recognize(image, runner, single=single)
        t2 = time.perf_counter()
        pairs = align(label.replace(" ", ""), "".join(str(lab) for lab in rec.labels))
        for e, r in pairs:
            if e is not None and r is not None and r != "?":
                confusion[int(e), int(r)] += 1
        n_correct = sum(e == r for e, r in pairs)
        n_found = sum(e is not None and r is not None for e, r in pairs)
        digits = len(label.replace(" ", ""))
        correct, found, total = correct + n_correct, found + n_found, total + digits
        exact += rec.text == label
        if not label:
            empty += 1
            with_output += bool(rec.digits)
            invented += len(rec.digits)
        files.append({"file": name, "expected": label, "read": rec.text, "exact": rec.text == label,
                      "size": [int(image.shape[1]), int(image.shape[0])], "digits": digits, "correct": n_correct,
                      "decode_ms": (decoded - t0) * 1000, "recognize_ms": (t2 - t1) * 1000})
    if not files:
        raise EdgeDigitsError(f"{folder}: none of the {len(rows)} photos could be read (see the warnings above)")
    ms = np.array([f["recognize_ms"] for f in files])
    report = {"folder": str(folder), "model": str(manifest), "target": target, "threads": threads, "single": single,
              "resize": list(resize) if resize else None,
              "verifier": runner.verify is not None, "cpu": cpu_name(),
              "photos": len(files), "exact": exact, "exact_rate": exact / len(files),
              "digits": total, "digits_correct": correct, "digit_accuracy": correct / total if total else None,
              "digits_found": found / total if total else None,
              "no_digit_photos": empty, "no_digit_photos_with_output": with_output,
              "invented_per_100": 100 * invented / empty if empty else None,
              "recognize_ms": {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
                               "max": float(ms.max())},
              "confusion": confusion.tolist(), "files": files, "skipped": skipped}
    say(table(report))
    return report


def table(report: dict) -> str:
    lines = [f"{'file':<28} {'expected':>14} {'read':>14}  {'ms':>6}"]
    for f in report["files"]:
        mark = "" if f["exact"] else "   <- misread"
        lines.append(f"{f['file']:<28} {f['expected'] or '-':>14} {f['read'] or '-':>14}  {f['recognize_ms']:6.1f}{mark}")
    lines.append(summary(report))
    return "\n".join(lines)


def summary(report: dict) -> str:
    r = report
    parts = [f"{r['folder']}: {r['exact']}/{r['photos']} photos read exactly ({r['exact_rate']:.1%})"]
    if r["digits"]:
        parts.append(f"digits {r['digits_correct']}/{r['digits']} right ({r['digit_accuracy']:.1%}), "
                     f"{r['digits_found']:.1%} found")
    if r.get("no_digit_photos"):
        parts.append(f"photos with no digit: {r['no_digit_photos_with_output']}/{r['no_digit_photos']} with any output, "
                     f"{r['invented_per_100']:.0f} digits invented per 100")
    return "; ".join(parts) + (f"; per photo p50 {r['recognize_ms']['p50']:.1f} ms, p95 {r['recognize_ms']['p95']:.1f} ms, "
                               f"max {r['recognize_ms']['max']:.1f} ms (decoding not included)"
                               + (" at {}x{}, each photo scaled after decoding".format(*r["resize"]) if r.get("resize") else "")
                               + (f"; {r.get('threads', 1)} thread(s) of {r['cpu']}" if r.get("cpu") else ""))


def markdown(report: dict, command: str = "") -> str:
    from edgedigits.markdown import code, text

    out = [code(command) if command else "", "", text(summary(report)), "",
           "| file | size | expected | read | ms |", "| --- | ---: | ---: | ---: | ---: |"]
    for f in report["files"]:
        read = f["read"] if f["exact"] else f"**{f['read'] or '-'}**"
        name = text(f["file"])  # a file name is text, never HTML
        out.append(f"| {name} | {f['size'][0]}x{f['size'][1]} | {f['expected'] or '-'} | {read} | {f['recognize_ms']:.1f} |")
    out += ["", "Confusion of the aligned digits (rows: expected, columns: read):", "",
            "| | " + " | ".join(map(str, range(10))) + " |", "| --- " * 11 + "|"]
    for d, row in enumerate(report["confusion"]):
        out.append(f"| **{d}** | " + " | ".join(str(v) if v else "." for v in row) + " |")
    return "\n".join(out) + "\n"


def plot(report: dict, path: Path) -> None:
    """The confusion matrix of the aligned digits as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgedigits.atomic import atomic_write

    cm = np.asarray(report["confusion"])
    fig, ax = plt.subplots(figsize=(5, 4.4), dpi=110)
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black", fontsize=8)
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("read")
    ax.set_ylabel("expected")
    digits = f"{report['digit_accuracy']:.1%} of digits" if report["digits"] else "no digit expected"
    ax.set_title(f"{Path(report['folder']).name}: {report['exact']}/{report['photos']} photos exact, {digits}", fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
