"""`edgedigits predict`: a model on ready-made digits -> a CSV or JSON of predictions, or Kaggle's
submission.csv.

The data is any source `train` reads (train/data.py: a Kaggle CSV with or without its label column,
an IDX folder, an .npz, a folder of digit images of any size, 'mnist', 'sample'), plus a flat folder
of images. The model is a manifest (or its folder) from `edgedigits convert`, run through LiteRT or
ONNX Runtime without TensorFlow; a single .tflite or .onnx file; a shipped model by name ('standard',
'tiny'); or a .keras file, which loads TensorFlow.

    preds = predict("out/standard", "test.csv")      # Predictions: classes, confidence, probs
    preds.write("submission.csv", kaggle=True)       # ImageId,Label with ImageId from 1
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedigits.contract import LABELS as DIGITS  # the digit classes, written once
from edgedigits.errors import EdgeDigitsError

SPLITS = ("auto", "train", "test")


@dataclass
class Predictions:
    ids: list[str]  # a name per image: its file name in an image folder, else its 1-based row
    probs: np.ndarray  # (N, 10) float32
    labels: list[str]  # class names, in output order
    truth: np.ndarray | None  # (N,) true classes when the data has labels
    source: str  # the data
    model: str  # what ran it

    @property
    def classes(self) -> np.ndarray:
        return self.probs.argmax(1) if len(self.probs) else np.zeros(0, np.int64)

    @property
    def confidence(self) -> np.ndarray:
        return self.probs.max(1) if len(self.probs) else np.zeros(0, np.float32)

    @property
    def accuracy(self) -> float | None:
        return None if self.truth is None or not len(self.truth) else float(np.mean(self.classes == self.truth))

    def rows(self) -> list[dict]:
        out = []
        for i, (c, p) in enumerate(zip(self.classes.tolist(), self.confidence.tolist())):
            row = {"id": self.ids[i], "class": c, "label": self.labels[c], "confidence": round(p, 6)}
            if self.truth is not None:
                t = int(self.truth[i])
                row.update(true_class=t, true_label=self.labels[t])
            out.append(row)
        return out

    def kaggle_csv(self) -> str:
        """Kaggle's submission: `ImageId,Label`, ImageId counting from 1 in the data's order."""
        return "ImageId,Label\n" + "".join(f"{i + 1},{c}\n" for i, c in enumerate(self.classes.tolist()))

    def csv(self) -> str:
        buf = io.StringIO()
        fields = ["id", "class", "label", "confidence"] + (["true_class", "true_label"] if self.truth is not None else [])
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(self.rows())
        return buf.getvalue()

    def json(self) -> str:
        return json.dumps({"model": self.model, "data": self.source, "count": len(self.ids), "labels": self.labels,
                           "accuracy": self.accuracy, "predictions": self.rows()}, indent=1)

    def write(self, path: str | os.PathLike, kaggle: bool = False, fmt: str | None = None) -> Path | None:
        """Write to `path` ('-': stdout): Kaggle's submission, else CSV or JSON by `fmt` or the suffix."""
        fmt = "kaggle" if kaggle else (fmt or ("json" if str(path).lower().endswith(".json") else "csv"))
        text = {"kaggle": self.kaggle_csv, "csv": self.csv, "json": self.json}[fmt]()
        if str(path) == "-":
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
            return None
        from edgedigits.atomic import atomic_write

        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return atomic_write(path, lambda tmp: tmp.write_text(text if text.endswith("\n") else text + "\n"))
        except OSError as e:  # a full disk: atomic_write says how much was needed, and the old file stays
            raise EdgeDigitsError(f"{path}: cannot write the {len(text):,} bytes of predictions: "
                                  f"{e.strerror or e}") from None


# ------------------------------------------------------------------------------------------ data
def load_data(spec: str | os.PathLike, split: str = "auto", say=print):
    """The digits to predict (a train.data.Digits). `split`: which part of a source that has two (IDX
    folder, .npz, mnist, sample): 'auto' is the test set where there is one, else the only set."""
    from edgedigits import idx
    from edgedigits.train import data as D

    if split not in SPLITS:
        raise EdgeDigitsError(f"split {split!r}: choose one of {', '.join(SPLITS)}")
    path = Path(str(spec))
    if path.is_dir() and not idx.idx_file(path, idx.TRAIN_IMAGES, required=False) and \
            idx.idx_file(path, idx.TEST_IMAGES, required=False):
        # a folder holding only the test files (as Kaggle-style test data often comes), labelled or not
        return D.load_idx_pair(idx.idx_file(path, idx.TEST_IMAGES), idx.idx_file(path, idx.TEST_LABELS, required=False))
    ds = D.load(spec, say, skip_bad_images=True)  # a bad image in a folder: a warning, and the others go on
    if split == "train" or (split == "auto" and ds.test is None):
        return ds.train
    if ds.test is None:
        raise EdgeDigitsError(f"{spec}: has no test set; use --split train (or auto)")
    return ds.test


# ----------------------------------------------------------------------------------------- model
def _labels_beside(path: Path) -> list[str] | None:
    """Class names of a model file from what lies beside it: a manifest.json, or a run's config.json."""
    for name in ("manifest.json", "config.json"):
        try:
            labels = json.loads((path.with_name(name)).read_text()).get("labels")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(labels, list) and len(labels) == 10:
            return [str(v) for v in labels]
    return None


class KerasRunner:
    """A .keras model as a runner (loads TensorFlow/Keras: not for devices)."""

    name = "keras"

    def __init__(self, path: Path):
        try:
            from edgedigits.train.io import load_keras_model
            model = load_keras_model(path)
        except ModuleNotFoundError as e:
            raise EdgeDigitsError(f"{path}: a .keras model needs Keras and TensorFlow ({e.name} is not installed): "
                                  f"pip install 'edgedigits[train]', or predict with a converted manifest") from None
        self.path, self.model = Path(path), model

    def __call__(self, digits: np.ndarray) -> np.ndarray:
        from edgedigits.contract import to_float

        return np.asarray(self.model.predict_on_batch(to_float(digits)), np.float32)


def load_model(model: str | os.PathLike, target: str = "cpu", fmt: str | None = None, threads: int = 1,
               say=print):
    """(runner, class names, description) for a manifest or its folder, a shipped model's name, a
    .tflite, .onnx or .keras file."""
    from edgedigits.manifest import load_manifest
    from edgedigits.deploy import shipped_manifest
    from edgedigits.deploy.runners import from_manifest, load_runner

    text = str(model)
    path = shipped_manifest(text) if text in ("standard", "tiny") else Path(text)
    if path.is_dir() or path.name == "manifest.json":
        m = load_manifest(path)
        runner = from_manifest(m, target, threads, fmt=fmt, say=say, verifier=False)  # single digits: nothing to segment
        return runner, [str(v) for v in m.data["labels"]], f"{m.path} ({runner.path.name}, {runner.name})"
    if not path.exists():
        raise EdgeDigitsError(f"{path}: no such model; give a manifest (or its folder) from `edgedigits convert`, "
                              f"a .tflite, .onnx or .keras file, or a shipped model: standard, tiny")
    if path.suffix == ".keras":
        return KerasRunner(path), _labels_beside(path) or DIGITS, f"{path} (keras)"
    runner = load_runner(path, threads, target)
    labels = _labels_beside(path)
    if labels is None and path.suffix == ".onnx":  # the labels convert wrote into the ONNX metadata
        try:
            labels = json.loads(runner.session.get_modelmeta().custom_metadata_map.get("labels", "null"))
        except ValueError:
            labels = None
    return runner, labels or DIGITS, f"{path} ({runner.name})"


def predict(model, data, *, target: str = "cpu", fmt: str | None = None, threads: int = 1, batch_size: int = 256,
            split: str = "auto", labels: list[str] | None = None, quiet: bool = False, say=print) -> Predictions:
    """Run `model` (see load_model, or a runner with class names given in `labels`) on `data` (a source
    name, or a train.data.Digits) in batches, with a progress bar unless quiet."""
    from edgedigits.progress import progress
    from edgedigits.train import data as D

    if batch_size < 1:
        raise EdgeDigitsError(f"batch size {batch_size}: must be at least 1")
    if callable(model) and not isinstance(model, (str, os.PathLike)):
        runner, names, what = model, DIGITS, getattr(model, "name", "runner")
    else:
        runner, names, what = load_model(model, target, fmt, threads, say)
    digits = data if isinstance(data, D.Digits) else load_data(data, split, say)
    if labels:
        names = D.check_class_names(labels, "labels")
    if digits.classes and list(digits.classes) != [D.class_name(n) for n in names]:
        # the folder's labels are indices into its own class names: scored against another order, or
        # printed under names that are not the model's, every result would be silently wrong
        raise EdgeDigitsError(f"{digits.source}: its class names ({', '.join(digits.classes)}) are not the "
                              f"model's ({', '.join(names)}); give the model's names in this order with "
                              f"--labels FILE if they are the same classes")
    if not quiet:
        say(f"predicting {len(digits)} images of {digits.source} with {what}")
    n = len(digits)
    probs = np.zeros((n, len(names)), np.float32)
    for start in progress(range(0, n, batch_size), total=-(-n // batch_size), desc="predict", unit="batch",
                          quiet=quiet):
        probs[start:start + batch_size] = runner(digits.images[start:start + batch_size])
    ids = list(digits.ids) if digits.ids else [str(i + 1) for i in range(n)]
    truth = None if digits.labels is None else digits.labels.astype(np.int64)
    return Predictions(ids, probs, names, truth, digits.source, what)


# ------------------------------------------------------------------------------------------- CLI
def register(make, sub) -> None:
    p = make(sub, "predict", "Predict ready-made digits (Kaggle CSV, IDX, npz, image folder) and write a CSV, JSON or Kaggle submission.", """\
        examples:
          edgedigits predict standard test.csv --kaggle                 # Kaggle's Digit Recognizer: submission.csv
          edgedigits predict out/standard digits/ --out preds.json      # a folder of images; JSON
          edgedigits predict out/standard train.csv                     # labelled: also prints the accuracy
          edgedigits predict runs/train/x/model.keras mnist --split test --out mnist.csv   # through TensorFlow

        MODEL: a manifest or its folder (from `edgedigits convert`; LiteRT or ONNX Runtime, no TensorFlow),
        a .tflite, .onnx or .keras file, or a shipped model: standard, tiny.
        DATA: what `train --data` reads (Kaggle CSV with or without labels, an IDX folder, .npz, sub-folders
        of images per class, mnist, sample), or a flat folder of images of one digit each (any size).
        CSV columns: id, class, label (its name), confidence, and true_class, true_label with labels.
        --kaggle writes ImageId,Label with ImageId from 1, as Kaggle expects.""")
    p.add_argument("model", metavar="MODEL", help="manifest (or folder), .tflite, .onnx, .keras, or standard/tiny")
    p.add_argument("data", metavar="DATA", help="the digits (see below)")
    p.add_argument("--out", help="output file ('-': stdout); .json for JSON (default: predictions.csv, "
                                 "submission.csv with --kaggle)")
    p.add_argument("--kaggle", action="store_true", help="write Kaggle's submission format: ImageId,Label")
    p.add_argument("--format", dest="fmt", help="with a manifest: run this format (e.g. onnx_int8) instead of the target's")
    p.add_argument("--target", default="cpu", choices=["cpu", "onnx", "edgetpu"], help="with a manifest: which runner")
    p.add_argument("--split", default="auto", choices=SPLITS,
                   help="sources with two sets (IDX folder, npz, mnist, sample): auto is the test set")
    p.add_argument("--labels", type=Path, metavar="FILE", help="class names, one per line (default: the model's)")
    p.add_argument("--batch-size", type=int, default=256, help="images per inference call")
    p.add_argument("--threads", type=int, default=1, help="inference threads")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no messages, only errors")
    p.set_defaults(run=run_predict)


def _check_out(out: str, args) -> None:
    """The output lands on no input: not the data, the labels file, the model or its folder's files,
    nor a file already in the data folder."""
    from edgedigits import checks

    if out == "-":
        return
    out_path = Path(out)
    inputs = checks.model_files(args.model) if args.model not in ("standard", "tiny") else {}
    inputs[Path(args.data)] = "the data"
    if args.labels:
        inputs[args.labels] = "the labels file"
    checks.not_an_input("--out", out_path, inputs)
    data = Path(args.data)
    if data.is_dir() and out_path.exists() and data.resolve() in out_path.resolve().parents:
        raise EdgeDigitsError(f"--out {out}: is a file of the data folder {data}; writing there would destroy "
                              f"it: choose another path")


def run_predict(args) -> int:
    from edgedigits.train.data import read_labels

    out = args.out or ("submission.csv" if args.kaggle else "predictions.csv")
    _check_out(out, args)
    to_stdout = out == "-"
    result = (lambda msg: print(msg, file=sys.stderr)) if to_stdout else print  # noqa: E731
    say = (lambda msg: None) if args.quiet else result  # noqa: E731
    labels = read_labels(args.labels) if args.labels else None
    preds = predict(args.model, args.data, target=args.target, fmt=args.fmt, threads=args.threads,
                    batch_size=args.batch_size, split=args.split, labels=labels, quiet=args.quiet, say=say)
    written = preds.write(out, kaggle=args.kaggle)
    if preds.accuracy is not None:
        right = int(np.sum(preds.classes == preds.truth))
        result(f"accuracy: {preds.accuracy:.2%} ({right} of {len(preds.ids)})")  # the result: even when quiet
    if written:
        say(f"wrote {len(preds.ids)} predictions to {written}")
    return 0
