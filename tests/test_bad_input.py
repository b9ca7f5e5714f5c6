"""Every command against bad input, bad paths and hostile files: one row per case.

Each row runs the real `edgedigits` command in a fresh process, in an empty folder of its own, and
checks the exit status, one `error:` line holding the expected phrase, no traceback, and that the folder
holds afterwards exactly what it held before (nothing half-written, no run folder that blocks a rerun).
Most rows fail before TensorFlow is imported, so the table takes about a second per row.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.test_imagesize import tiff_claiming

TINY = ROOT / "deploy" / "models" / "tiny"  # the shipped tiny model, converted: a real manifest to break


# ------------------------------------------------------------------------------------ input makers
def npz(tmp: Path, name="d.npz", **arrays) -> str:
    rng = np.random.default_rng(0)
    base = {"x_train": rng.integers(0, 256, (200, 28, 28), dtype=np.uint8), "y_train": np.arange(200) % 10}
    np.savez(tmp / name, **{**base, **arrays})
    return str(tmp / name)


def npz_claiming(tmp: Path, shape: tuple) -> str:
    """An .npz whose x_train header claims `shape` (the data is never there: it must not be read)."""
    import io

    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "|u1", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(tmp / "big.npz", "w") as z:
        z.writestr("x_train.npy", head.getvalue())  # magic and header, no data
        z.writestr("y_train.npy", b"")
    return str(tmp / "big.npz")


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header announces width x height (a decompression bomb needs no more to be refused)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(  # noqa: E731
        ">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def idx_bomb(folder: Path, items: int, trailing: int = 0) -> str:
    """IDX files whose image header claims `items` digits, followed by `trailing` extra zero bytes."""
    folder.mkdir()
    head = struct.pack(">IIII", 2051, items, 28, 28)
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb", compresslevel=1) as f:
        f.write(head + bytes(min(items, 100) * 784))
        for _ in range(trailing >> 20):
            f.write(bytes(1 << 20))
    with gzip.open(folder / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 2049, 100) + bytes(100))
    return str(folder)


def os_system_model(path: Path) -> str:
    """A .keras file whose config names os.system as a layer: safe mode must refuse it."""
    cfg = {"module": "keras", "class_name": "Sequential", "registered_name": None, "config": {"name": "s", "layers": [
        {"module": "os", "class_name": "system", "config": {"command": "touch pwned"}, "registered_name": None}]}}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(cfg))
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.0"}))
    return str(path)


def manifest(tmp: Path, change: Callable[[dict], object] | None = None, text: str | None = None) -> str:
    """A copy of the shipped tiny model's folder with its manifest changed."""
    folder = tmp / "m"
    shutil.copytree(TINY, folder)
    data = json.loads((folder / "manifest.json").read_text())
    if change:
        change(data)
    (folder / "manifest.json").write_text(text if text is not None else json.dumps(data))
    return str(folder)


def set_artifact(key, value, index=None):
    def change(d):
        i = index if index is not None else next(i for i, a in enumerate(d["artifacts"]) if a["format"] == "onnx_int8")
        d["artifacts"][i][key] = value
    return change


def run_folder(tmp: Path, config) -> str:
    (tmp / "run").mkdir()
    (tmp / "run" / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    return str(tmp / "run")


def wrong_shape_model(path: Path) -> str:
    import keras

    inp = keras.Input((32, 32, 3))
    keras.Model(inp, keras.layers.Dense(5)(keras.layers.Flatten()(inp))).save(path)
    return str(path)


def nothing_runs(d: dict) -> None:
    """Every artifact failed to export, and the Keras source is not a model: no row can be measured."""
    d["artifacts"] = [{"format": a["format"], "status": "export_failed", "reason": "test"} for a in d["artifacts"]]


def video(tmp: Path, frames=40, keep=0.4) -> str:
    import cv2

    w = cv2.VideoWriter(str(tmp / "full.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 15, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        w.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    w.release()
    data = (tmp / "full.avi").read_bytes()
    (tmp / "full.avi").unlink()
    (tmp / "cut.avi").write_bytes(data[: int(len(data) * keep)])
    return str(tmp / "cut.avi")


def two_images_one_stem(tmp: Path) -> str:
    import cv2

    (tmp / "photos").mkdir()
    img = cv2.imread(str(ROOT / "docs" / "example.jpg"))
    cv2.imwrite(str(tmp / "photos" / "a.jpg"), img)
    cv2.imwrite(str(tmp / "photos" / "a.png"), cv2.flip(img, 1))
    return str(tmp / "photos")


def busy_port(tmp: Path, held=[]) -> str:  # noqa: B006  the socket stays open while the row runs
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    held.append(s)
    (tmp / "app").mkdir()
    (tmp / "app" / "index.html").write_text("<p>app</p>")
    return str(s.getsockname()[1])


def web_app(tmp: Path) -> str:
    (tmp / "app").mkdir()
    (tmp / "app" / "index.html").write_text("<p>app</p>")
    return str(tmp / "app")


def kaggle_csv(tmp: Path, header_cols: int = 784, values: int = 784, rows: int = 2, name: str = "x.csv") -> str:
    """A Kaggle CSV whose header names `header_cols` columns and whose rows hold `values` values."""
    header = (["label"] if header_cols == 785 else []) + [f"pixel{i}" for i in range(784)]
    (tmp / name).write_text(",".join(header) + "\n" + ("0," * (values - 1) + "0\n") * rows)
    return str(tmp / name)


def nul_csv(tmp: Path, size: int = 1 << 30) -> str:
    """A valid test.csv header, then `size` NUL bytes (a sparse file: it costs no disk)."""
    path = tmp / "nul.csv"
    path.write_text(",".join(f"pixel{i}" for i in range(784)) + "\n")
    os.truncate(path, size)
    return str(path)


def long_line_csv(tmp: Path, header: str, size: int = 50 << 20) -> str:
    """A CSV whose second line is `size` bytes of "0," with no end."""
    path = tmp / "long.csv"
    with open(path, "w") as f:
        f.write(header + "\n")
        f.write("0," * (size // 2))
    return str(path)


def jpeg_claiming(path: Path, width: int, height: int) -> Path:
    """A few hundred bytes of real JPEG whose frame header claims width x height."""
    import cv2

    data = bytearray(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


def photos(tmp: Path, labels: bytes | str, extra: dict | None = None) -> str:
    """A `benchmark photos` folder: docs/example.jpg as a.jpg, a labels.csv, and `extra` files."""
    folder = tmp / "photos"
    folder.mkdir()
    shutil.copyfile(ROOT / "docs" / "example.jpg", folder / "a.jpg")
    (folder / "labels.csv").write_bytes(labels if isinstance(labels, bytes) else labels.encode())
    for name, make in (extra or {}).items():
        make(folder / name)
    return str(folder)


def class_folders(tmp: Path, names) -> str:
    """Sub-folders named by class, one digit image in each."""
    import cv2

    for name in names:
        (tmp / "classes" / name).mkdir(parents=True)
        cv2.imwrite(str(tmp / "classes" / name / "x.png"), np.zeros((28, 28), np.uint8))
    return str(tmp / "classes")


def hold_lock(folder: Path, held=[], copy: Path | None = TINY) -> str:  # noqa: B006  held while the row runs
    """Another run writing `folder` now: the lock beside it, held by this process. `copy`: what the
    folder holds (the tiny model's conversion; None: no folder yet)."""
    import fcntl

    if copy:
        shutil.copytree(copy, folder)
    fd = os.open(folder.parent / f".{folder.name}.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    held.append(fd)
    return str(folder)


def earlier_conversion(tmp: Path) -> str:
    """An earlier conversion (the shipped tiny model's folder) holding the user's own files too."""
    shutil.copytree(TINY, tmp / "o")
    for name, text in (("predictions.csv", "id,class\n1,7\n"), ("train.csv", "label\n"), ("notes.json", "{}"),
                       ("my_finetuned.keras", "mine"), ("notes.txt", "mine")):
        (tmp / "o" / name).write_text(text)
    (tmp / "o" / "mine").mkdir()
    (tmp / "o" / "mine" / "a.txt").write_text("mine")
    return str(tmp / "o")


def run_with_hostile_card(tmp: Path) -> str:
    """A run folder (the shipped tiny run) whose model card, written by an older version, holds HTML."""
    shutil.copytree(ROOT / "train" / "pretrained" / "tiny", tmp / "run")
    card = tmp / "run" / "model_card.md"
    card.write_text(card.read_text() + "\n| classes | <img src=x onerror=alert(1)> |\n")
    return str(tmp / "run" / "model.keras")


def card_is_text(tmp: Path) -> bool:
    card = json.loads((tmp / "o" / "manifest.json").read_text())["source"]["card"]
    return "onerror=alert(1)" in card and "<img" not in card


def kept_user_files(tmp: Path) -> bool:
    o = tmp / "o"
    mine = {"predictions.csv": "id,class\n1,7\n", "train.csv": "label\n", "notes.json": "{}",
            "my_finetuned.keras": "mine", "notes.txt": "mine", "mine/a.txt": "mine"}
    listed = json.loads((o / "manifest.json").read_text())["artifacts"]
    return (all((o / n).read_text() == text for n, text in mine.items())
            and [a["format"] for a in listed] == ["tflite_fp32"]
            and not (o / "tiny.int8.onnx").exists()  # the earlier conversion's files are replaced
            and not (tmp / ".o.lock").exists())  # and the lock is gone


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ------------------------------------------------------------------------------------------- table
@dataclass
class Case:
    id: str
    args: list[str]  # {name} is replaced by what `make` returns under that name; {tmp}, {ro}, {tiny}
    code: int
    phrase: str  # in stderr
    make: Callable[[Path], dict] = lambda tmp: {}
    check: Callable[[Path], None] | None = None  # for rows that succeed: what must be true afterwards
    needs_ro: bool = False  # needs a read-only file system (a tmpfs mounted read-only; root only)
    env: dict | None = None  # environment variables for the command


CASES = [
    # ------------------------------------------------------------------ train: options
    Case("train-batch-size-0", ["train", "--batch-size", "0"], 2, "--batch-size 0: must be at least 1"),
    Case("train-limit-negative", ["train", "--limit", "-5"], 2, "--limit -5: must be at least 0"),
    Case("train-epochs-0", ["train", "--epochs", "0"], 2, "--epochs 0: must be at least 1"),
    Case("train-lr-nan", ["train", "--lr", "nan"], 2, "--lr nan: must be a finite number"),
    Case("train-lr-0", ["train", "--lr", "0"], 2, "--lr 0.0: must be more than 0"),
    Case("train-patience-0", ["train", "--patience", "0"], 2, "--patience 0: must be at least 1"),
    Case("train-val-fraction-1.5", ["train", "--val-fraction", "1.5"], 2, "--val-fraction 1.5: must be between 0 and 1"),
    Case("train-augment-negative", ["train", "--augment", "-1"], 2, "--augment -1.0: must be 0 (off) or more"),
    Case("train-seed-negative", ["train", "--seed", "-1"], 2, "--seed -1: must be between 0"),
    Case("train-from-missing", ["train", "--from", "nope.keras"], 2, "--from nope.keras: no such model file"),
    Case("train-out-is-file", ["train", "--data", "sample", "--out", "{f}"], 2, "is a file, not a folder",
         lambda t: {"f": (t / "f").write_text("x") and str(t / "f")}),
    Case("train-out-under-proc", ["train", "--data", "sample", "--out", "/proc/edgedigits-run"], 2, "cannot write"),
    Case("train-out-read-only", ["train", "--data", "sample", "--out", "{ro}/run"], 2, "Read-only file system",
         needs_ro=True),
    Case("train-out-holds-a-run", ["train", "--out", "{run}"], 2, "already holds a run; use --resume",
         lambda t: {"run": run_folder(t, {"model": "tiny"})}),
    # ------------------------------------------------------------------ train: data
    Case("train-data-missing", ["train", "--data", "nope.npz"], 2, "nope.npz: no such file or folder"),
    Case("train-npz-no-images", ["train", "--data", "{d}"], 2, "x_train holds no images",
         lambda t: {"d": npz(t, x_train=np.zeros((0, 28, 28), np.uint8), y_train=np.zeros(0, np.uint8))}),
    Case("train-npz-nan-pixels", ["train", "--data", "{d}"], 2, "pixel nan, expected a whole number 0..255",
         lambda t: {"d": npz(t, x_train=np.full((200, 28, 28), np.nan))}),
    Case("train-npz-fraction-pixels", ["train", "--data", "{d}"], 2, "pixel 0.5, expected a whole number",
         lambda t: {"d": npz(t, x_train=np.full((200, 28, 28), 0.5))}),
    Case("train-npz-float-labels", ["train", "--data", "{d}"], 2, "label 3.7, expected a whole number 0..9",
         lambda t: {"d": npz(t, y_train=np.full(200, 3.7))}),
    Case("train-npz-label-matrix", ["train", "--data", "{d}"], 2, "y_train has shape (200, 2), expected (N,)",
         lambda t: {"d": npz(t, y_train=np.zeros((200, 2)))}),
    Case("train-npz-strings", ["train", "--data", "{d}"], 2, "holds <U1 values, expected numbers",
         lambda t: {"d": npz(t, y_train=np.array(["1"] * 200))}),
    Case("train-npz-too-few", ["train", "--data", "{d}"], 2, "too few to hold out a validation share",
         lambda t: {"d": npz(t, x_train=np.zeros((3, 28, 28), np.uint8), y_train=np.array([1, 2, 3]))}),
    Case("train-npz-huge-array", ["train", "--data", "{d}"], 2, "more than the 1 GiB this loader reads",
         lambda t: {"d": npz_claiming(t, (2_000_000, 28, 28))}),
    Case("train-not-npz", ["train", "--data", "{d}"], 2, "not a readable .npz",
         lambda t: {"d": (t / "x.npz").write_text("hello") and str(t / "x.npz")}),
    Case("train-npy-as-npz", ["train", "--data", "{d}"], 2, "not a zip archive of .npy arrays",
         lambda t: {"d": np.save(t / "a.npy", np.zeros(3)) or (t / "a.npy").rename(t / "a.npz") and str(t / "a.npz")}),
    Case("train-csv-23-digit-integer", ["train", "--data", "{d}"], 2, "line 2, column 3: 12345678901234567890123 "
         "is out of range", lambda t: {"d": (t / "k.csv").write_text(
             "label," + ",".join(f"pixel{i}" for i in range(784)) + "\n1,0,12345678901234567890123"
             + ",0" * 782 + "\n") and str(t / "k.csv")}),
    Case("train-huge-png-in-folder", ["train", "--data", "{d}"], 2, "more than the 50 megapixels",
         lambda t: {"d": str((t / "mine" / "3").mkdir(parents=True) or png_header(t / "mine" / "3" / "x.png",
                                                                                   20000, 20000).parents[1])}),
    Case("train-idx-gzip-bomb-header", ["train", "--data", "{d}"], 2, "3,800,000 items, more than the 1,000,000",
         lambda t: {"d": idx_bomb(t / "idx", 3_800_000)}),
    Case("train-idx-gzip-bomb-trailing", ["train", "--data", "{d}"], 2, "longer (trailing bytes)",
         lambda t: {"d": idx_bomb(t / "idx", 100, trailing=8 << 20)}),
    # ------------------------------------------------------------------ train: resume
    Case("train-resume-no-run", ["train", "--resume", "{tmp}"], 2, "not a run folder (no config.json)"),
    Case("train-resume-corrupt-config", ["train", "--resume", "{run}"], 2, "not a readable run config",
         lambda t: {"run": run_folder(t, '{"model": "tiny", ')}),
    Case("train-resume-config-is-list", ["train", "--resume", "{run}"], 2, "expected a JSON object, got list",
         lambda t: {"run": run_folder(t, "[1, 2]")}),
    Case("train-resume-config-wrong-type", ["train", "--resume", "{run}"], 2, "'batch_size' is 'x' (str), expected int",
         lambda t: {"run": run_folder(t, {"model": "tiny", "batch_size": "x"})}),
    Case("train-resume-config-bad-value", ["train", "--resume", "{run}"], 2, "'batch_size' is 0: must be at least 1",
         lambda t: {"run": run_folder(t, {"model": "tiny", "batch_size": 0})}),
    Case("train-resume-config-unknown-model", ["train", "--resume", "{run}"], 2, "'model' is 'huge'",
         lambda t: {"run": run_folder(t, {"model": "huge"})}),
    Case("train-resume-config-deep", ["train", "--resume", "{run}"], 2, "not a readable run config",
         lambda t: {"run": run_folder(t, "[" * 200_000 + "]" * 200_000)}),
    Case("train-resume-state-corrupt", ["train", "--resume", "{run}"], 2, "not a readable checkpoint state",
         lambda t: {"run": run_folder(t, {"model": "tiny"}), "x": (t / "run" / "checkpoint").mkdir()
                    or (t / "run" / "checkpoint" / "state.json").write_text("{")}),
    Case("train-resume-weights-damaged", ["train", "--resume", "{run}"], 2, "cannot load the checkpoint",
         lambda t: {"run": run_folder(t, {"model": "tiny", "data": "sample", "epochs": 3}),
                    "x": (t / "run" / "checkpoint").mkdir() or (t / "run" / "checkpoint" / "train.weights.h5")
                    .write_text("junk") + (t / "run" / "checkpoint" / "state.json").write_text(json.dumps(
                        {"epoch": 1, "best_val_loss": 1.0, "best_epoch": 1, "wait": 0, "history": [{"seconds": 1}]}))}),
    Case("train-out-name-too-long", ["train", "--out", "{tmp}/" + "r" * 300], 2, "longer than 255 bytes"),
    # a refused --from model fails after the run folder was begun: it must leave nothing, so a rerun works
    Case("train-from-os-system-model", ["train", "--data", "{d}", "--from", "{m}", "--out", "{tmp}/run"], 2,
         "names 'os.system', which is not a Keras layer",
         lambda t: {"d": npz(t), "m": os_system_model(t / "evil.keras")}),
    # ------------------------------------------------------------------ convert
    Case("convert-check-limit-negative", ["convert", "{tiny}/tiny.keras", "--out", "o", "--check-limit", "-5"], 2,
         "--check-limit -5: must be at least 0"),
    Case("convert-opset-1", ["convert", "{tiny}/tiny.keras", "--out", "o", "--opset", "1"], 2,
         "--opset 1: must be between 13 and 18"),
    Case("convert-opset-99", ["convert", "{tiny}/tiny.keras", "--out", "o", "--opset", "99"], 2,
         "--opset 99: must be between 13 and 18"),
    Case("convert-tolerance-negative", ["convert", "{tiny}/tiny.keras", "--out", "o", "--tolerance", "-1"], 2,
         "--tolerance -1.0: must be at least 0"),
    Case("convert-tolerance-nan", ["convert", "{tiny}/tiny.keras", "--out", "o", "--tolerance", "nan"], 2,
         "--tolerance nan: must be a finite number"),
    Case("convert-calibration-size-5", ["convert", "{tiny}/tiny.keras", "--out", "o", "--calibration-size", "5"], 2,
         "--calibration-size 5: use at least 10 digits"),
    Case("convert-format-unknown", ["convert", "{tiny}/tiny.keras", "--out", "o", "--formats", "tflite_int4"], 2,
         "invalid choice: 'tflite_int4'"),
    Case("convert-model-missing", ["convert", "nope.keras", "--out", "o"], 2, "nope.keras: no such model file"),
    Case("convert-model-is-folder", ["convert", "{tmp}", "--out", "o"], 2, "not a file"),
    Case("convert-model-not-keras", ["convert", "{m}", "--out", "o"], 2, "not a Keras model (.keras zip archive)",
         lambda t: {"m": (t / "m.keras").write_text("hello") and str(t / "m.keras")}),
    Case("convert-model-os-system", ["convert", "{m}", "--out", "o", "--data", "sample"], 2,
         "names 'os.system', which is not a Keras layer", lambda t: {"m": os_system_model(t / "evil.keras")}),
    Case("convert-model-wrong-shape", ["convert", "{m}", "--out", "o"], 2,
         "not a digit model: inputs [(None, 32, 32, 3)], outputs [(None, 5)]",
         lambda t: {"m": wrong_shape_model(t / "rgb.keras")}),
    Case("convert-out-is-file", ["convert", "{tiny}/tiny.keras", "--out", "{f}"], 2, "is a file, not a folder",
         lambda t: {"f": (t / "f").write_text("x") and str(t / "f")}),
    Case("convert-out-below-a-file", ["convert", "{tiny}/tiny.keras", "--out", "{f}/sub"], 2,
         "cannot write the output folder", lambda t: {"f": (t / "f").write_text("x") and str(t / "f")}),
    Case("convert-out-holds-other-files", ["convert", "{tiny}/tiny.keras", "--out", "{tmp}/mine"], 2,
         "holds notes.txt, which is not part of a conversion",
         lambda t: {"x": (t / "mine").mkdir() or (t / "mine" / "notes.txt").write_text("mine")}),
    Case("convert-out-under-proc", ["convert", "{tiny}/tiny.keras", "--out", "/proc/edgedigits-out"], 2,
         "cannot write the output folder /proc"),
    Case("convert-out-read-only", ["convert", "{tiny}/tiny.keras", "--out", "{ro}/out"], 2, "Read-only file system",
         needs_ro=True),
    Case("convert-data-missing", ["convert", "{tiny}/tiny.keras", "--out", "{tmp}/o", "--data", "nope.npz",
                                  "--formats", "tflite_fp32"], 2, "nope.npz: no such file or folder"),
    # ------------------------------------------------------------------ deploy: options and paths
    Case("deploy-max-frames-negative", ["deploy", "--max-frames", "-1"], 2, "--max-frames -1: must be at least 0"),
    Case("deploy-threads-0", ["deploy", "--threads", "0"], 2, "--threads 0: must be at least 1"),
    Case("deploy-confidence-2", ["deploy", "--confidence", "2"], 2, "--confidence 2.0: must be between 0 and 1"),
    Case("deploy-smooth-1", ["deploy", "--smooth", "1", "--source", "{tiny}/manifest.json"], 2,
         "--smooth 1.0: must be in [0, 1)"),
    Case("deploy-reconnect-negative", ["deploy", "--reconnect", "-1"], 2, "--reconnect -1: must be at least 0"),
    Case("deploy-format-unknown", ["deploy", "--format", "tflite_int4"], 2,
         "--format tflite_int4: no such format; choose one of: tflite_fp32"),
    Case("deploy-camera-index-huge", ["deploy", "--source", "99999999999999999999"], 2,
         "not a camera index (0 to 255)"),
    Case("deploy-source-missing", ["deploy", "--source", "nope.jpg", "--headless"], 2, "nope.jpg: no such file"),
    Case("deploy-save-onto-file", ["deploy", "--source", "{root}/docs/example.jpg", "--save", "{f}"], 2,
         "is a file, not a folder", lambda t: {"f": (t / "f").write_text("x") and str(t / "f")}),
    Case("deploy-save-under-proc", ["deploy", "--source", "{root}/docs/example.jpg", "--save", "/proc/x"], 2,
         "cannot write the output folder /proc"),
    Case("deploy-save-read-only", ["deploy", "--source", "{root}/docs/example.jpg", "--save", "{ro}/a"], 2,
         "Read-only file system", needs_ro=True),
    Case("deploy-save-video-read-only", ["deploy", "--source", "{v}", "--headless", "--save", "{ro}/a"], 2,
         "Read-only file system", lambda t: {"v": video(t, keep=1.0)}, needs_ro=True),
    Case("deploy-save-into-source", ["deploy", "--source", "{d}", "--save", "{d}"], 2, "the folder of the source images",
         lambda t: {"d": two_images_one_stem(t)}),
    Case("deploy-collect-onto-file", ["deploy", "--source", "{root}/docs/example.jpg", "--collect", "{f}"], 2,
         "is a file, not a folder", lambda t: {"f": (t / "f").write_text("x") and str(t / "f")}),
    Case("deploy-collect-read-only", ["deploy", "--source", "{root}/docs/example.jpg", "--headless", "--collect",
                                      "{ro}/a"], 2, "Read-only file system", needs_ro=True),
    Case("deploy-web-no-out", ["deploy", "--target", "web"], 2, "give the folder with --out DIR"),
    Case("deploy-web-out-read-only", ["deploy", "--target", "web", "--out", "{ro}/app"], 2, "Read-only file system",
         needs_ro=True),
    Case("deploy-web-out-holds-other-files", ["deploy", "--target", "web", "--out", "{tmp}/mine"], 2,
         "is not a built web app", lambda t: {"x": (t / "mine").mkdir() or (t / "mine" / "notes.txt").write_text("x")}),
    Case("deploy-huge-png", ["deploy", "--source", "{d}", "--headless", "--model", "tiny"], 2, "megapixels; skipped",
         lambda t: {"d": str((t / "in").mkdir() or png_header(t / "in" / "big.png", 20000, 20000).parent)}),
    Case("deploy-empty-image", ["deploy", "--source", "{i}", "--headless", "--model", "tiny"], 2,
         "no frame could be read", lambda t: {"i": (t / "e.jpg").write_bytes(b"") or str(t / "e.jpg")}),
    # ------------------------------------------------------------------ deploy: hostile manifests
    Case("manifest-missing", ["deploy", "--manifest", "{tmp}", "--headless"], 2, "no manifest here"),
    Case("manifest-not-json", ["deploy", "--manifest", "{m}", "--headless"], 2, "not valid JSON",
         lambda t: {"m": manifest(t, text="{")}),
    Case("manifest-200000-deep", ["deploy", "--manifest", "{m}", "--headless"], 2, "nested too deeply",
         lambda t: {"m": manifest(t, text="[" * 200_000 + "]" * 200_000)}),
    Case("manifest-file-absolute-web", ["deploy", "--manifest", "{m}", "--target", "web", "--out", "{tmp}/app"], 2,
         "'file' is '/etc/passwd'; expected a plain file name", lambda t: {"m": manifest(t, set_artifact(
             "file", "/etc/passwd"))}),
    Case("manifest-file-dotdot", ["deploy", "--manifest", "{m}", "--headless"], 2,
         "'file' is '../tiny/tiny.int8.tflite'; expected a plain file name",
         lambda t: {"m": manifest(t, set_artifact("file", "../tiny/tiny.int8.tflite"))}),
    Case("manifest-file-number", ["deploy", "--manifest", "{m}", "--headless"], 2, "'file' is 12345",
         lambda t: {"m": manifest(t, set_artifact("file", 12345))}),
    Case("manifest-artifact-not-object", ["deploy", "--manifest", "{m}", "--headless"], 2,
         "artifacts[0] is a int, expected an object",
         lambda t: {"m": manifest(t, lambda d: d["artifacts"].__setitem__(0, 7))}),
    Case("manifest-inputs-not-list", ["deploy", "--manifest", "{m}", "--headless"], 2,
         "'inputs' should be a list of objects", lambda t: {"m": manifest(t, set_artifact("inputs", "x"))}),
    Case("manifest-details-not-object", ["deploy", "--manifest", "{m}", "--target", "edgetpu", "--headless"], 2,
         "'details' should be an object", lambda t: {"m": manifest(t, set_artifact("details", [1], index=-1))}),
    Case("manifest-link-outside", ["deploy", "--manifest", "{m}", "--target", "web", "--out", "{tmp}/app"], 2,
         "outside the manifest's folder", lambda t: {"m": manifest(t, set_artifact("file", "evil.onnx")),
                                                       "x": (t / "m" / "evil.onnx").symlink_to("/etc/passwd")}),
    Case("manifest-hash-differs", ["deploy", "--manifest", "{m}", "--headless"], 2, "SHA-256 differs",
         lambda t: {"m": manifest(t), "x": (t / "m" / "tiny.int8.tflite").write_bytes(b"x")}),
    Case("manifest-no-such-format", ["deploy", "--manifest", "{m}", "--format", "edgetpu", "--headless"], 2,
         "has no 'edgetpu' artifact",
         lambda t: {"m": manifest(t, lambda d: d.update(artifacts=[a for a in d["artifacts"] if a["format"] != "edgetpu"]))}),
    # ------------------------------------------------------------------ deploy: what succeeds must be right
    Case("deploy-save-same-stem", ["deploy", "--source", "{d}", "--headless", "--model", "tiny", "--save",
                                   "{tmp}/out"], 0, "", lambda t: {"d": two_images_one_stem(t)},
         check=lambda t: sorted(p.name for p in (t / "out").iterdir()) == ["a-png.annotated.jpg", "a.annotated.jpg"]),
    Case("deploy-truncated-video", ["deploy", "--source", "{v}", "--headless", "--model", "tiny"], 0,
         "read 15 of the 40 frames its header announces", lambda t: {"v": video(t)}, check=lambda t: True),
    # ------------------------------------------------------------------ benchmark
    Case("benchmark-runs-0", ["benchmark", "--runs", "0"], 2, "--runs 0: must be at least 1"),
    Case("benchmark-threads-0", ["benchmark", "--threads", "0"], 2, "--threads 0: must be at least 1"),
    Case("benchmark-limit-negative", ["benchmark", "--limit", "-1"], 2, "--limit -1: must be at least 0"),
    Case("benchmark-min-accuracy-nan", ["benchmark", "--min-accuracy", "nan"], 2, "--min-accuracy nan: must be a finite"),
    Case("benchmark-camera-frames-0", ["benchmark", "camera", "--frames", "0"], 2, "--frames 0: must be at least 1"),
    Case("benchmark-camera-digits-0", ["benchmark", "camera", "--digits", "0"], 2, "--digits 0: must be at least 1"),
    Case("benchmark-json-missing-folder", ["benchmark", "--json", "{tmp}/no/b.json"], 2, "does not exist; create it"),
    Case("benchmark-markdown-is-folder", ["benchmark", "--markdown", "{tmp}"], 2, "is a folder; give a file name"),
    Case("benchmark-plot-under-proc", ["benchmark", "--plot", "/proc/b.png"], 2, "cannot write the output folder /proc"),
    Case("benchmark-json-read-only", ["benchmark", "--json", "{ro}/b.json"], 2, "Read-only file system", needs_ro=True),
    Case("benchmark-compare-missing", ["benchmark", "--compare", "nope.json"], 2, "--compare nope.json: no such file"),
    Case("benchmark-compare-malformed", ["benchmark", "--compare", "{j}"], 2, "cannot read an earlier report",
         lambda t: {"j": (t / "old.json").write_text('{"rows": [') and str(t / "old.json")}),
    Case("benchmark-compare-not-report", ["benchmark", "--compare", "{j}"], 2, "not a benchmark report",
         lambda t: {"j": (t / "old.json").write_text('[1, 2]') and str(t / "old.json")}),
    Case("benchmark-compare-bad-row", ["benchmark", "--compare", "{j}"], 2, "'accuracy' is 'high', expected a number",
         lambda t: {"j": (t / "old.json").write_text('{"rows": [{"format": "keras", "accuracy": "high"}]}')
                    and str(t / "old.json")}),
    Case("benchmark-every-row-fails", ["benchmark", "{m}", "--data", "sample", "--limit", "20", "--runs", "1"], 1,
         "no row could be measured", lambda t: {"m": manifest(t, nothing_runs),
                                                 "x": (t / "m" / "tiny.keras").write_text("not a model")}),
    Case("benchmark-manifest-missing", ["benchmark", "{tmp}/none"], 2, "no manifest here"),
    Case("benchmark-manifest-bad", ["benchmark", "{m}"], 2, "expected a plain file name",
         lambda t: {"m": manifest(t, set_artifact("file", "/etc/passwd"))}),
    # ------------------------------------------------------------------ serve
    Case("serve-port-70000", ["serve", "{a}", "--port", "70000"], 2, "--port 70000: must be between 0 and 65535",
         lambda t: {"a": web_app(t)}),
    Case("serve-port-negative", ["serve", "{a}", "--port", "-1"], 2, "--port -1: must be between 0 and 65535",
         lambda t: {"a": web_app(t)}),
    Case("serve-port-busy", ["serve", "{tmp}/app", "--port", "{p}"], 2, "cannot serve on 127.0.0.1",
         lambda t: {"p": busy_port(t)}),
    Case("serve-cert-missing", ["serve", "{a}", "--cert", "nope.pem"], 2, "--cert nope.pem: no such file",
         lambda t: {"a": web_app(t)}),
    Case("serve-cert-no-name", ["serve", "{a}", "--cert"], 2, "--cert: expected one argument",
         lambda t: {"a": web_app(t)}),
    Case("serve-cert-garbage", ["serve", "{a}", "--cert", "{c}"], 2, "not a usable PEM certificate",
         lambda t: {"a": web_app(t), "c": (t / "c.pem").write_text("garbage") and str(t / "c.pem")}),
    Case("serve-key-without-cert", ["serve", "{a}", "--key", "{c}"], 2, "give the certificate too, with --cert",
         lambda t: {"a": web_app(t), "c": (t / "k.pem").write_text("k") and str(t / "k.pem")}),
    Case("serve-no-app", ["serve", "{tmp}"], 2, "no index.html"),
    # ------------------------------------------------------------------ an output never lands on an input
    Case("predict-out-onto-its-input", ["predict", "tiny", "{c}", "--kaggle", "--out", "{c}"], 2, "is the data",
         lambda t: {"c": kaggle_csv(t, name="test.csv")}),
    Case("predict-out-onto-the-manifest", ["predict", "{m}", "{c}", "--out", "{m}/manifest.json"], 2,
         "is the model's manifest", lambda t: {"m": manifest(t), "c": kaggle_csv(t)}),
    Case("predict-out-onto-a-model-file", ["predict", "{m}", "{c}", "--out", "{m}/tiny.int8.tflite"], 2,
         "is a file of the model folder", lambda t: {"m": manifest(t), "c": kaggle_csv(t)}),
    Case("predict-out-onto-an-image-of-the-data", ["predict", "tiny", "{d}", "--out", "{d}/a.jpg.csv"], 2,
         "is a file of the data folder", lambda t: {"d": str(Path(photos(t, "filename,label\n", {
             "a.jpg.csv": lambda p: p.write_text("mine")}))), "x": (t / "photos" / "labels.csv").unlink()}),
    Case("benchmark-photos-json-onto-labels", ["benchmark", "photos", "{d}", "--json", "{d}/labels.csv"], 2,
         "is the photos' labels", lambda t: {"d": photos(t, "filename,label\na.jpg,2026\n")}),
    Case("benchmark-json-onto-the-manifest", ["benchmark", "{m}", "--json", "{m}/manifest.json"], 2,
         "is the model's manifest", lambda t: {"m": manifest(t)}),
    Case("convert-while-another-converts", ["convert", "{tiny}/tiny.keras", "--out", "{o}", "--data", "sample"], 2,
         "another run is writing this folder now", lambda t: {"o": hold_lock(t / "o")}),
    Case("train-while-another-trains-there", ["train", "--data", "sample", "--out", "{o}"], 2,
         "--out {tmp}/r: another run is writing this folder now", lambda t: {"o": hold_lock(t / "r", copy=None)}),
    Case("train-resume-while-another-resumes", ["train", "--resume", "{run}"], 2,
         "--resume {tmp}/run: another run is writing this folder now",
         lambda t: {"run": run_folder(t, {"model": "tiny"}), "x": hold_lock(t / "run", copy=None)}),
    Case("deploy-web-while-another-builds-there", ["deploy", "--target", "web", "--model", "tiny", "--out", "{o}"], 2,
         "--out {tmp}/app: another run is writing this folder now", lambda t: {"o": hold_lock(t / "app", copy=None)}),
    Case("deploy-save-while-another-saves-there", ["deploy", "--source", "{root}/docs/example.jpg", "--headless",
                                                   "--model", "tiny", "--save", "{o}"], 2,
         "--save {tmp}/s: another run is writing this folder now", lambda t: {"o": hold_lock(t / "s", copy=None)}),
    Case("convert-over-an-earlier-keeps-the-users-files", ["convert", "{tiny}/tiny.keras", "--out", "{o}", "--data",
                                                          "sample", "--formats", "tflite_fp32", "--check-limit", "100"],
         0, "", lambda t: {"o": earlier_conversion(t)}, check=kept_user_files),
    Case("train-out-holds-a-model-not-a-run", ["train", "--data", "sample", "--out", "{d}"], 2,
         "model.keras, which a run would replace", lambda t: {"d": str((t / "r").mkdir() or (t / "r" / "model.keras")
                                                                     .write_text("mine") and t / "r")}),
    # ------------------------------------------------------------------ files that are not what they say
    Case("predict-kaggle-784-header-785-values", ["predict", "tiny", "{c}", "--kaggle", "--out", "{tmp}/s.csv"], 2,
         "line 2: 785 columns, expected 784", lambda t: {"c": kaggle_csv(t, 784, 785)}),
    Case("predict-kaggle-785-header-784-values", ["predict", "tiny", "{c}", "--out", "{tmp}/s.csv"], 2,
         "line 2: 784 columns, expected 785", lambda t: {"c": kaggle_csv(t, 785, 784)}),
    Case("predict-1-gib-of-nul-bytes", ["predict", "tiny", "{c}", "--kaggle", "--out", "{tmp}/s.csv"], 2,
         "line 2: longer than 16,384 characters", lambda t: {"c": nul_csv(t)}),
    Case("predict-50-mb-single-line", ["predict", "tiny", "{c}", "--kaggle", "--out", "{tmp}/s.csv"], 2,
         "line 2: longer than 16,384 characters",
         lambda t: {"c": long_line_csv(t, ",".join(f"pixel{i}" for i in range(784)))}),
    Case("train-csv-50-mb-single-line", ["train", "--data", "{c}"], 2, "line 2: longer than 16,384 characters",
         lambda t: {"c": long_line_csv(t, "label," + ",".join(f"pixel{i}" for i in range(784)))}),
    Case("predict-folder-of-other-classes", ["predict", "tiny", "{d}", "--out", "{tmp}/p.csv"], 2,
         "are not the model's (0, 1, 2", lambda t: {"d": class_folders(t, "abcdefghij")}),
    Case("predict-huge-jpeg-in-a-folder-is-skipped", ["predict", "tiny", "{d}", "--out", "{tmp}/p.csv"], 0,
         "60000x60000 pixels, more than the 50 megapixels; skipped",
         lambda t: {"d": photos(t, "x", {"huge.jpg": lambda p: jpeg_claiming(p, 60000, 60000)})},
         check=lambda t: (t / "p.csv").read_text().splitlines()[1].startswith("a.jpg,")),
    Case("benchmark-photos-latin-1-labels", ["benchmark", "photos", "{d}", "--model", "tiny"], 2,
         "labels.csv, line 3: not UTF-8 text", lambda t: {"d": photos(t, "filename,label\na.jpg,2026\n# caf\xe9\n"
                                                                      .encode("latin-1"))}),
    Case("benchmark-photos-field-over-the-csv-limit", ["benchmark", "photos", "{d}", "--model", "tiny"], 2,
         "labels.csv, line 2: not readable as CSV: field larger than field limit",
         lambda t: {"d": photos(t, "filename,label\na.jpg," + "1" * 200_000 + "\n")}),
    Case("benchmark-photos-superscript-label", ["benchmark", "photos", "{d}", "--model", "tiny"], 2,
         "line 2: label '2\u00b226' is not digits 0-9", lambda t: {"d": photos(t, "filename,label\na.jpg,2\u00b226\n")}),
    Case("benchmark-photos-arabic-indic-label", ["benchmark", "photos", "{d}", "--model", "tiny"], 2,
         "line 2: label '\u0662\u0660\u0662\u0666' is not digits 0-9",
         lambda t: {"d": photos(t, "filename,label\na.jpg,\u0662\u0660\u0662\u0666\n")}),
    Case("benchmark-photos-huge-jpeg-is-skipped", ["benchmark", "photos", "{d}", "--model", "tiny", "--json",
                                                   "{tmp}/p.json"], 0, "60000x60000 pixels, more than the 50 megapixels; skipped",
         lambda t: {"d": photos(t, "filename,label\nhuge.jpg,1\na.jpg,2026\n",
                                {"huge.jpg": lambda p: jpeg_claiming(p, 60000, 60000)})},
         check=lambda t: json.loads((t / "p.json").read_text())["photos"] == 1),
    Case("benchmark-photos-resize-not-a-size", ["benchmark", "photos", "{d}", "--resize", "12x"], 2,
         "argument --resize: '12x': give the width and height in pixels, e.g. 4032x3024",
         lambda t: {"d": photos(t, "filename,label\na.jpg,2026\n")}),
    Case("benchmark-photos-resize-over-the-limit", ["benchmark", "photos", "{d}", "--resize", "10000x10000"], 2,
         "'10000x10000': 100 megapixels, more than the 50 any photo may have",
         lambda t: {"d": photos(t, "filename,label\na.jpg,2026\n")}),
    Case("benchmark-photos-resized-to-12-megapixels", ["benchmark", "photos", "{d}", "--resize", "4032x3024", "--json",
                                                      "{tmp}/p.json"], 0, "",
         lambda t: {"d": photos(t, "filename,label\na.jpg,2026\n")},
         # docs/example.jpg's clear 0, 2 and 6 read at 12 MP too (its first 2, thin and broken, is in doubt)
         check=lambda t: [(f["size"], f["read"][-3:]) for f in json.loads((t / "p.json").read_text())["files"]]
         == [([4032, 3024], "026")]),
    Case("benchmark-photos-huge-png-is-skipped", ["benchmark", "photos", "{d}", "--model", "tiny"], 0,
         "20000x20000 pixels, more than the 50 megapixels; skipped",
         lambda t: {"d": photos(t, "filename,label\nbig.png,1\na.jpg,2026\n",
                                {"big.png": lambda p: png_header(p, 20000, 20000)})}, check=lambda t: True),
    Case("deploy-huge-tiff-in-a-folder-is-skipped", ["deploy", "--source", "{d}", "--headless", "--model", "tiny"], 0,
         "huge.tif: 60000x60000 pixels, more than the 50 megapixels; skipped",
         lambda t: {"d": photos(t, "", {"huge.tif": lambda p: tiff_claiming(p, 60000, 60000)})}, check=lambda t: True),
    Case("deploy-huge-tiff", ["deploy", "--source", "{i}", "--headless", "--model", "tiny"], 2,
         "no frame could be read", lambda t: {"i": str(tiff_claiming(t / "huge.tiff", 60000, 60000))}),
    Case("benchmark-photos-huge-tiff-is-skipped", ["benchmark", "photos", "{d}", "--model", "tiny", "--json",
                                                   "{tmp}/p.json"], 0, "huge.tif: 60000x60000 pixels, more than the 50 megapixels; skipped",
         lambda t: {"d": photos(t, "filename,label\nhuge.tif,1\na.jpg,2026\n",
                                {"huge.tif": lambda p: tiff_claiming(p, 60000, 60000, big_endian=True)})},
         check=lambda t: json.loads((t / "p.json").read_text())["photos"] == 1),
    Case("predict-huge-tiff-in-a-folder-is-skipped", ["predict", "tiny", "{d}", "--out", "{tmp}/p.csv"], 0,
         "huge.tif: 60000x60000 pixels, more than the 50 megapixels; skipped",
         lambda t: {"d": photos(t, "x", {"huge.tif": lambda p: tiff_claiming(p, 60000, 60000)})},
         check=lambda t: [r.split(",")[0] for r in (t / "p.csv").read_text().splitlines()[1:]] == ["a.jpg"]),
    Case("train-huge-tiff-in-folder", ["train", "--data", "{d}"], 2, "60000x60000 pixels, more than the 50 megapixels",
         lambda t: {"d": str((t / "mine" / "3").mkdir(parents=True) or tiff_claiming(t / "mine" / "3" / "x.tif",
                                                                                      60000, 60000).parents[1])}),
    Case("deploy-huge-jpeg-header", ["deploy", "--source", "{j}", "--headless", "--model", "tiny"], 2,
         "no frame could be read", lambda t: {"j": str(jpeg_claiming(t / "huge.jpg", 60000, 60000))}),
    Case("deploy-huge-jpeg-in-a-folder-is-skipped", ["deploy", "--source", "{d}", "--headless", "--model", "tiny"], 0,
         "60000x60000 pixels, more than the 50 megapixels; skipped",
         lambda t: {"d": photos(t, "", {"huge.jpg": lambda p: jpeg_claiming(p, 60000, 60000)})}, check=lambda t: True),
    Case("benchmark-compare-nan-accuracy", ["benchmark", "--compare", "{j}"], 2, "'accuracy' is nan",
         lambda t: {"j": (t / "old.json").write_text('{"rows": [{"format": "keras", "accuracy": NaN}]}')
                    and str(t / "old.json")}),
    Case("benchmark-compare-no-rows", ["benchmark", "--compare", "{j}"], 2, "a report with no rows",
         lambda t: {"j": (t / "old.json").write_text('{"rows": []}') and str(t / "old.json")}),
    # ------------------------------------------------------------------ class names
    Case("manifest-labels-not-strings", ["deploy", "--manifest", "{m}", "--headless"], 2,
         "m/manifest.json: labels[0] is 0; expected a class name",
         lambda t: {"m": manifest(t, lambda d: d.update(labels=list(range(10))))}),
    Case("predict-manifest-labels-not-strings", ["predict", "{m}", "{c}", "--out", "{tmp}/p.csv"], 2,
         "m/manifest.json: labels[9] is None; expected a class name",
         lambda t: {"m": manifest(t, lambda d: d["labels"].__setitem__(9, None)), "c": kaggle_csv(t)}),
    Case("manifest-labels-nfc-and-nfd-are-one-name", ["deploy", "--manifest", "{m}", "--headless"], 2,
         "labels[9] is 'cafe\u0301', the same class name as labels[8]",
         lambda t: {"m": manifest(t, lambda d: d.update(labels=[*"abcdefgh", "caf\u00e9", "cafe\u0301"]))}),
    Case("predict-manifest-labels-normalized", ["predict", "{m}", "{c}", "--out", "{tmp}/p.json"], 0, "",
         lambda t: {"m": manifest(t, lambda d: d.update(labels=["\ufeffzero", *"abcdefgh", "cafe\u0301"])),
                    "c": kaggle_csv(t)},
         check=lambda t: json.loads((t / "p.json").read_text())["labels"] == ["zero", *"abcdefgh", "caf\u00e9"]),
    Case("train-labels-nfc-and-nfd-are-one-name", ["train", "--data", "sample", "--labels", "{f}", "--out", "{tmp}/r"], 2,
         "class name 'caf\u00e9' appears more than once", lambda t: {"f": (t / "l.txt").write_text(
             "\ufeffcaf\u00e9\ncafe\u0301\n" + "\n".join("abcdefgh") + "\n") and str(t / "l.txt")}),
    Case("convert-model-card-with-html", ["convert", "{m}", "--out", "{tmp}/o", "--data", "sample", "--formats",
                                          "tflite_fp32", "--check-limit", "100"], 0, "",
         lambda t: {"m": run_with_hostile_card(t)}, check=card_is_text),
    # ------------------------------------------------------------------ a cluster that is misconfigured
    Case("train-coordinator-no-port", ["train", "--backend", "jax", "--coordinator", "nohost", "--num-processes", "2",
                                       "--process-id", "0"], 2, "--coordinator 'nohost': expected HOST:PORT"),
    Case("train-coordinator-url", ["train", "--backend", "jax", "--coordinator", "http://127.0.0.1:19005/x",
                                   "--num-processes", "2", "--process-id", "0"], 2, "expected HOST:PORT"),
    Case("train-coordinator-port-99999", ["train", "--backend", "jax", "--coordinator", "127.0.0.1:99999",
                                          "--num-processes", "2", "--process-id", "0"], 2, "must be a number 1..65535"),
    Case("train-num-processes-0", ["train", "--num-processes", "0"], 2, "--num-processes 0: must be at least 1"),
    Case("train-num-processes-negative", ["train", "--num-processes", "-1"], 2, "--num-processes -1: must be at least 1"),
    Case("train-coordinator-without-count", ["train", "--coordinator", "127.0.0.1:1234"], 2,
         "--coordinator: give --num-processes N too"),
    Case("train-env-num-processes-abc", ["train"], 2, "KERAS_DISTRIBUTION_NUM_PROCESSES='abc': must be a whole number",
         env={"KERAS_DISTRIBUTION_NUM_PROCESSES": "abc"}),
    Case("train-env-process-id-abc", ["train", "--backend", "jax"], 2, "KERAS_DISTRIBUTION_PROCESS_ID='abc': must be a whole number",
         env={"KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": "abc"}),
    Case("train-coordinator-never-answers", ["train", "--backend", "jax", "--data", "sample", "--coordinator",
                                             "127.0.0.1:{p}", "--num-processes", "2", "--process-id", "1",
                                             "--coordinator-timeout", "2", "--out", "{tmp}/r"], 1,
         "no answer within 2 s", lambda t: {"p": str(free_port())}),
    # ------------------------------------------------------------------ the command itself
    Case("unknown-command", ["fly"], 2, "invalid choice: 'fly'"),
]


@pytest.fixture(scope="session")
def read_only_dir(tmp_path_factory):
    """A read-only file system (a 1 MiB tmpfs mounted read-only), where this machine allows mounting."""
    where = tmp_path_factory.mktemp("ro")
    mount = shutil.which("mount")
    proc = mount and subprocess.run([mount, "-t", "tmpfs", "-o", "ro,size=1m", "edgedigits-ro", str(where)],
                                    capture_output=True, text=True)
    if not proc or proc.returncode:
        yield None
        return
    yield where
    subprocess.run(["umount", str(where)], check=False)


def snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# `edgedigits ARGS` in the child itself, then its peak resident memory and the heavy libraries it loaded,
# written to the file named first. VmHWM counts this process since exec, where ru_maxrss would carry
# over the parent's (pytest's) peak.
HEAVY = ("tensorflow", "keras", "jax", "onnx", "tf2onnx", "onnxruntime", "ai_edge_litert", "cv2", "matplotlib")
MEASURED = f"""
import json, sys
from pathlib import Path
from edgedigits.cli import main
peak, sys.argv = sys.argv[1], ["edgedigits", *sys.argv[2:]]
try:
    code = main(sys.argv[1:])
finally:
    status = Path("/proc/self/status")
    if status.exists():
        hwm = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        Path(peak).write_text(json.dumps({{"bytes": int(hwm.split()[1]) * 1024,
                                          "libraries": [m for m in {HEAVY!r} if m in sys.modules]}}))
sys.exit(code)
"""
MAX_PEAK_BYTES = 500_000_000  # the bound on any bad input, above what the libraries themselves take
_BASELINES: dict[tuple, int] = {}


def baseline(libraries: tuple, env: dict) -> int:
    """The peak resident memory of a fresh process that imports `libraries` and does nothing else:
    TensorFlow alone takes about 700 MB here, before a command reads anything."""
    if libraries not in _BASELINES:
        code = "".join(f"import {m}\n" for m in libraries) + (
            "from pathlib import Path\n"
            "print(next(l for l in Path('/proc/self/status').read_text().splitlines() if l.startswith('VmHWM:')).split()[1])")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
        _BASELINES[libraries] = int(proc.stdout.split()[-1]) * 1024
    return _BASELINES[libraries]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, tmp_path_factory, read_only_dir):
    if case.needs_ro and read_only_dir is None:
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    tmp = tmp_path_factory.mktemp(case.id[:40])
    names = {k: v for k, v in case.make(tmp).items() if isinstance(v, str)}
    args = [a.format(tmp=tmp, ro=read_only_dir, tiny=TINY, root=ROOT, **names) for a in case.args]
    before = snapshot(tmp)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "EDGEDIGITS_DATA": str(tmp_path_factory.getbasetemp() / "cache"),
           **(case.env or {})}
    peak = tmp_path_factory.mktemp("peak") / "bytes"  # outside the row's folder, which must not change
    proc = subprocess.run([sys.executable, "-c", MEASURED, peak, *args], capture_output=True, text=True, timeout=300,
                          cwd=tmp, env=env)
    out, err = proc.stdout, proc.stderr
    assert "Traceback" not in out + err, err
    assert proc.returncode == case.code, (proc.returncode, out[-2000:], err[-2000:])
    if peak.exists():  # Linux, and the command ended through main() (not a watchdog's os._exit)
        measured = json.loads(peak.read_text())
        base = baseline(tuple(measured["libraries"]), env)
        assert measured["bytes"] - base < MAX_PEAK_BYTES, (
            f"peak resident memory {measured['bytes'] / 1e6:.0f} MB, {base / 1e6:.0f} MB of it the libraries "
            f"({', '.join(measured['libraries']) or 'none'})")
    phrase = case.phrase.format(tmp=tmp) if "{tmp}" in case.phrase else case.phrase
    assert phrase in err, err[-2000:]
    if case.code:
        errors = [line for line in err.splitlines() if line.startswith("error:") or ": error: " in line]
        assert len(errors) == 1 and phrase in errors[0] + err, err[-2000:]
        assert snapshot(tmp) == before, "left behind: " + ", ".join(sorted(snapshot(tmp) - before))
        assert not (tmp / "pwned").exists()
    else:
        assert case.check(tmp), sorted(snapshot(tmp))


def test_the_table_covers_every_command():
    """Every subcommand the real parser has (read from it, so a new command without a case fails here)."""
    import argparse

    from edgedigits.cli import build_parser

    sub, = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(CASES) >= 60
    assert set(sub.choices) - {c.args[0] for c in CASES} == set()
    assert "predict" in sub.choices


# ----------------------------------------------------------------------------------- a full disk
@pytest.fixture
def full_disk(tmp_path):
    """A 2 MiB tmpfs mounted for this test, with fill() to use up what is free (root only)."""
    where = tmp_path / "small"
    where.mkdir()
    mount = shutil.which("mount")
    proc = mount and subprocess.run([mount, "-t", "tmpfs", "-o", "size=2m", "edgedigits-full", str(where)],
                                    capture_output=True, text=True)
    if not proc or proc.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {(proc.stderr.strip() if proc else 'no mount command')}")

    def fill(leave: int = 0):
        """Use up what is free but about `leave` bytes."""
        with open(where / "filler", "wb", buffering=0) as f:
            st = os.statvfs(where)
            f.write(bytes(max(0, st.f_bavail * st.f_frsize - leave)))
            try:
                while not leave:
                    f.write(bytes(4096))
            except OSError:
                pass

    try:
        yield where, fill
    finally:
        subprocess.run(["umount", str(where)], check=False)


def run_edgedigits(*args, cwd: Path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "edgedigits", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=env)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc


def test_a_full_disk_keeps_the_previous_predictions(full_disk, tmp_path):
    disk, fill = full_disk
    (disk / "submission.csv").write_text("ImageId,Label\n1,7\n")
    fill()
    proc = run_edgedigits("predict", "tiny", "sample", "--kaggle", "--out", disk / "submission.csv", cwd=tmp_path)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0 and len(errors) == 1, proc.stderr
    assert str(disk / "submission.csv") in errors[0] and "no space left on the device" in errors[0], errors
    assert "bytes free" in errors[0] and "the earlier file is kept" in errors[0], errors
    assert (disk / "submission.csv").read_text() == "ImageId,Label\n1,7\n"
    assert sorted(p.name for p in disk.iterdir()) == ["filler", "submission.csv"]


def test_a_full_disk_keeps_the_previous_annotated_video(full_disk, tmp_path):
    disk, fill = full_disk
    source = video(tmp_path, frames=30, keep=1.0)
    (disk / "out").mkdir()
    (disk / "out" / "annotated.avi").write_bytes(b"the previous video")
    fill()
    proc = run_edgedigits("deploy", "--source", source, "--headless", "--model", "tiny", "--save", disk / "out",
                          cwd=tmp_path)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0 and len(errors) == 1, proc.stderr
    assert str(disk / "out") in errors[0] and "no space left" in errors[0] and "bytes free" in errors[0], errors
    assert f"the previous {disk / 'out' / 'annotated.avi'} is kept" in errors[0], errors
    assert (disk / "out" / "annotated.avi").read_bytes() == b"the previous video"
    assert sorted(p.name for p in (disk / "out").iterdir()) == ["annotated.avi"]


TRAIN_ON_A_SMALL_DISK = ["train", "--model", "tiny", "--data", "sample", "--limit", "500", "--epochs", "2"]


def test_a_full_disk_before_training_leaves_nothing(full_disk, tmp_path):
    disk, fill = full_disk
    fill()
    proc = run_edgedigits(*TRAIN_ON_A_SMALL_DISK, "--out", disk / "run", cwd=tmp_path)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-3000:]
    assert errors[0].startswith(f"error: {disk / 'run' / 'config.json'}: no space left on the device (needs "), errors
    assert "bytes, 0 bytes free); nothing was written" in errors[0], errors
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_a_full_disk_while_training_keeps_the_finished_epochs(full_disk, tmp_path):
    """Room for the first epoch's files (config, model.keras of 175 kB, a 248 kB checkpoint, measured with
    this model), not for the second's: h5py never writes on the full disk (it printed a traceback per
    object and crashed), the error says what was needed, and the run resumes from epoch 1."""
    disk, fill = full_disk
    fill(leave=520_000)
    proc = run_edgedigits(*TRAIN_ON_A_SMALL_DISK, "--out", disk / "run", cwd=tmp_path)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-3000:]
    assert "no space left on the device (needs " in errors[0] and "bytes free); the earlier file is kept" in errors[0]
    assert str(disk / "run") in errors[0].split(":")[1], errors  # the file that did not fit, named first
    assert f"continue with `edgedigits train --resume {disk / 'run'}`" in errors[0], errors
    run = disk / "run"
    assert json.loads((run / "checkpoint" / "state.json").read_text())["epoch"] == 1
    assert sorted(p.name for p in run.rglob("*")) == ["checkpoint", "config.json", "history.csv", "model.keras",
                                                       "state.json", "train.weights.h5"]
    from edgedigits.train.io import load_keras_model

    assert load_keras_model(run / "model.keras").count_params() > 0  # whole, not cut short


def _same_files(a: Path, b: Path) -> bool:
    files = lambda d: {p.relative_to(d): p.read_bytes() for p in d.rglob("*") if p.is_file()}  # noqa: E731
    return files(a) == files(b)


def test_a_full_disk_keeps_the_earlier_conversion(full_disk, tmp_path):
    """Room for the model's copy, not for the exports: TensorFlow's own full-disk error (a
    ResourceExhaustedError) stops the conversion instead of being recorded as nine failed exports in a
    manifest that would replace the earlier one."""
    disk, fill = full_disk
    shutil.copytree(TINY, disk / "o")
    fill(leave=300_000)
    proc = run_edgedigits("convert", TINY / "tiny.keras", "--out", disk / "o", "--data", "sample", "--check-limit",
                          "100", cwd=tmp_path)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-3000:]
    assert errors[0].startswith(f"error: {disk / 'o'}: no space left on the device: the new folder needs more "
                                f"than the "), errors
    assert "bytes free; the earlier folder is kept" in errors[0] and "(the earlier one holds" in errors[0], errors
    assert _same_files(disk / "o", TINY)
    assert sorted(p.name for p in disk.iterdir()) == ["filler", "o"]


def test_a_full_disk_keeps_the_earlier_web_app(full_disk, tmp_path):
    disk, fill = full_disk
    (disk / "app").mkdir()
    for name, text in (("index.html", "<p>the earlier app</p>"), ("model.json", "{}")):
        (disk / "app" / name).write_text(text)
    fill(leave=100_000)
    proc = run_edgedigits("deploy", "--target", "web", "--model", "tiny", "--out", disk / "app", cwd=tmp_path)
    if "needs npm" in proc.stderr or "npm ci" in proc.stderr:
        pytest.skip(f"the web app's runtime is not installed here: {proc.stderr.strip()}")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-3000:]
    assert errors[0].startswith(f"error: {disk / 'app'}: no space left on the device: the new folder needs more "
                                "than the "), errors
    assert errors[0].endswith("bytes free; the earlier folder is kept"), errors
    assert (disk / "app" / "index.html").read_text() == "<p>the earlier app</p>"
    assert sorted(p.name for p in disk.iterdir()) == ["app", "filler"]


def test_a_full_disk_keeps_the_previous_benchmark_report(full_disk, tmp_path):
    disk, fill = full_disk
    photos = tmp_path / "photos"
    photos.mkdir()
    import cv2

    assert cv2.imwrite(str(photos / "a.png"), np.full((120, 160, 3), 230, np.uint8))
    (photos / "labels.csv").write_text("filename,label\na.png,\n")
    (disk / "report.json").write_text('{"mine": 1}')
    fill()
    for option, name in (("--json", "report.json"), ("--plot", "report.png")):
        proc = run_edgedigits("benchmark", "photos", photos, option, disk / name, cwd=tmp_path)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert proc.returncode != 0 and len(errors) == 1, proc.stderr
        assert str(disk / name) in errors[0] and "no space left on the device" in errors[0], errors
    assert (disk / "report.json").read_text() == '{"mine": 1}'
    assert sorted(p.name for p in disk.iterdir()) == ["filler", "report.json"]
