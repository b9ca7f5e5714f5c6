"""Digit data loaders. NumPy only: importable without TensorFlow.

Every loader returns a `Digits`: images `(N, 28, 28) uint8`, white digit on black (the MNIST
convention), and labels `(N,) uint8` in 0..9, or None for an unlabelled set (Kaggle's test.csv).
Bad input raises `DataError` naming the file, the place in it and the problem.

Sources, as `load(spec)` understands them:
    auto                   mnist when it is cached or downloadable, else sample (with a notice)
    mnist                  full MNIST from the cache, downloaded with checksums if missing (mnist.py)
    sample                 the bundled stratified subset that ships inside the package
    DIR with IDX files     train-images-idx3-ubyte[.gz] and friends
    FILE.csv               Kaggle Digit Recognizer (train.csv: label,pixel0..pixel783; test.csv: no label)
    FILE.npz               Keras' mnist.npz layout (x_train, y_train, x_test, y_test), read without pickle
    DIR with 0/ .. 9/      a folder of a user's own digit images, one sub-folder per class; sub-folders
                           named otherwise (shirt/, trouser/, ...) are 10 classes in sorted order
    DIR of images          (prediction only) a flat folder of images, unlabelled, named by file

Class names: a data set's own (sub-folder names), else those of a known data set recognized by its
hash (KNOWN_DATA: MNIST, Fashion-MNIST, with their licences), else the digits "0".."9"; a labels file
(one name per line, `--labels`) overrides them.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedigits.contract import DIGIT_SHAPE, LABELS, class_name  # class_name: NFC, no BOM: one name however it was typed
from edgedigits.errors import DataError
# the IDX reader, also as this module's names (train/mnist.py, train/negatives.py and the tests use them)
from edgedigits.idx import (IMAGE_MAGIC, LABEL_MAGIC, MAX_IDX_ITEMS, TEST_IMAGES, TEST_LABELS,  # noqa: F401
                            TRAIN_IMAGES, TRAIN_LABELS, check_labels, idx_file, load_idx, parse_idx)
from edgedigits.images import IMAGE_SUFFIXES, is_image, read_digit  # the one reader and digit normalization

SAMPLE_PATH = Path(__file__).with_name("sample") / "mnist_sample.npz"
SAMPLE_SOURCE = "bundled sample (MNIST train subset)"

DIGIT_CLASSES = tuple(LABELS)  # the contract's classes
NUM_CLASSES = len(LABELS)  # every model has 10 outputs


@dataclass(frozen=True)
class KnownData:
    name: str
    licence: str
    classes: tuple[str, ...] = DIGIT_CLASSES


MNIST_DATA = KnownData("MNIST (Yann LeCun, Corinna Cortes, Christopher J.C. Burges)", "CC BY-SA 3.0")
FASHION_DATA = KnownData("Fashion-MNIST (Zalando Research)", "MIT",
                         ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"))
# Digits.sha256() of the training and test sets of the data sets we recognize: a model card names the
# data actually used and its licence, and Fashion-MNIST brings its class names without a labels file.
KNOWN_DATA = {
    "edc0d1098aa497be14ace79ddd5171e5a3dcf9c4d196c015389203eb3ba1f59b": MNIST_DATA,  # train, 60,000
    "c3f9adf9c66efb572b1f9326c3a511b45910c7173b97be66ceceeeeaef6b802b": MNIST_DATA,  # t10k, 10,000
    "3ffc781e643b2294a9e43c1fdf5c06a216eea09054e93ff285a2cd4aa29e04fa": MNIST_DATA,  # the bundled sample
    "16d82e2b505296aa2b78bd5ea0992634f30419a4c97def7c907d154a35ac6157": FASHION_DATA,  # train, 60,000
    "9f1ec356a747bfe4ebab3cfb722d3694c9ca737e2570f6f90cf31d7b6fd689d4": FASHION_DATA,  # t10k, 10,000
}


@dataclass(frozen=True)
class Digits:
    images: np.ndarray  # (N, 28, 28) uint8, white on black
    labels: np.ndarray | None  # (N,) uint8 in 0..9, or None when unlabelled
    source: str  # where they came from, for model cards and reports
    classes: tuple[str, ...] | None = None  # the data set's own class names, when it brings them
    ids: tuple[str, ...] | None = None  # a name per image (file names of an image folder), else None

    def __post_init__(self):
        if self.images.ndim != 3 or self.images.shape[1:] != DIGIT_SHAPE or self.images.dtype != np.uint8:
            raise DataError(f"{self.source}: expected (N, 28, 28) uint8 images, got "
                            f"{self.images.shape} {self.images.dtype}")
        if self.labels is not None and self.labels.shape != (len(self.images),):
            raise DataError(f"{self.source}: {len(self.images)} images but labels of shape {self.labels.shape}")
        if self.ids is not None and len(self.ids) != len(self.images):
            raise DataError(f"{self.source}: {len(self.images)} images but {len(self.ids)} names")

    def __len__(self) -> int:
        return len(self.images)

    def sha256(self) -> str:
        """Hash of the pixels and labels, so a model card says exactly what it was trained on."""
        h = hashlib.sha256(self.images.tobytes())
        if self.labels is not None:
            h.update(self.labels.tobytes())
        return h.hexdigest()

    def subset(self, index: np.ndarray, source: str | None = None) -> Digits:
        labels = None if self.labels is None else self.labels[index]
        ids = None if self.ids is None else tuple(self.ids[i] for i in index)
        return Digits(self.images[index], labels, source or self.source, self.classes, ids)

    def known(self) -> KnownData | None:
        """The known data set these digits are (by hash), or None."""
        return KNOWN_DATA.get(self.sha256())

    def class_names(self) -> list[str]:
        """Its own class names, else a known data set's, else the digits."""
        known = None if self.classes else self.known()
        return list(self.classes or (known.classes if known else DIGIT_CLASSES))


def read_labels(path: str | os.PathLike) -> list[str]:
    """A labels file: one class name per line, in output order (as TFLite's labels.txt)."""
    path = Path(path)
    try:
        names = [ln.strip() for ln in path.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the labels file: {e}") from None
    return check_class_names(names, path)


def check_class_names(names, where) -> list[str]:
    """The names, normalized (class_name); a count other than the model's outputs, an empty name or
    one given twice is refused."""
    names = [class_name(n) for n in names]
    if "" in names:
        raise DataError(f"{where}: class name {names.index('') + 1} is empty")
    if len(names) != NUM_CLASSES:
        raise DataError(f"{where}: {len(names)} class names, expected {NUM_CLASSES} (one per line; "
                        f"the models have {NUM_CLASSES} outputs)")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"{where}: class name {dup[0]!r} appears more than once")
    return names


@dataclass(frozen=True)
class Dataset:
    train: Digits
    test: Digits | None  # the final-report set; never used to choose models or epochs


# ----------------------------------------------------------------------------------------- IDX files
# the reader is edgedigits/idx.py (predict reads IDX test files with it too)
MAX_ARRAY_BYTES = 1 << 30  # one array of an .npz


def load_idx_pair(images: Path, labels: Path | None) -> Digits:
    """IDX images and their labels (None: unlabelled) as Digits."""
    from edgedigits import idx

    x, y = idx.load_idx_pair(images, labels)
    return Digits(x, y, str(images))


def load_idx_folder(folder: Path) -> Dataset:
    train = load_idx_pair(idx_file(folder, TRAIN_IMAGES), idx_file(folder, TRAIN_LABELS))
    test = None
    if idx_file(folder, TEST_IMAGES, required=False):
        test = load_idx_pair(idx_file(folder, TEST_IMAGES), idx_file(folder, TEST_LABELS))
    return Dataset(train, test)


# ------------------------------------------------------------------------------------- Kaggle CSV
MAX_CSV_LINE = 16 << 10  # characters in one line: a Kaggle row is at most 785 x "255," = 3,140
MAX_CSV_ROWS = MAX_IDX_ITEMS  # rows in one file (Kaggle's train.csv: 42,000)
CSV_BATCH = 4096  # rows parsed at a time: about 26 MB as int64, whatever the file's size


def load_kaggle_csv(path: Path | str) -> Digits:
    """Kaggle Digit Recognizer: train.csv (label, pixel0..pixel783) or test.csv (pixel0..pixel783).

    Read line by line, never whole: a line longer than MAX_CSV_LINE (a file of NUL bytes, a table of
    another shape) is refused when it is reached, and each batch of rows is checked and kept as uint8,
    so memory stays near the size of the digits themselves."""
    path = Path(path)
    pixels = [f"pixel{i}" for i in range(784)]
    batches, labels = [], []
    try:
        with open(path, encoding="utf-8-sig", newline=None) as f:  # -sig: a BOM is not part of the header
            header = _csv_line(f, path, 1).strip().split(",")
            if header == ["label"] + pixels:
                has_label = True
            elif header == pixels:
                has_label = False
            else:
                raise DataError(f"{path}: line 1: header has {len(header)} columns; expected 'label,pixel0..pixel783' "
                                f"(785, Kaggle train.csv) or 'pixel0..pixel783' (784, test.csv)")
            ncols = 785 if has_label else 784
            lineno, rows = 2, 0
            while True:
                first, lines = lineno, []
                while len(lines) < CSV_BATCH:
                    line = _csv_line(f, path, lineno)
                    if not line:
                        break
                    lineno += 1
                    lines.append(line)
                if not lines:
                    break
                table = _parse_rows(path, lines, first, ncols)
                rows += len(table)
                if rows > MAX_CSV_ROWS:
                    raise DataError(f"{path}: more than the {MAX_CSV_ROWS:,} rows this loader reads")
                px = table[:, 1:] if has_label else table
                bad = np.argwhere((px < 0) | (px > 255))
                if bad.size:
                    r, c = bad[0]
                    raise DataError(f"{path}: line {_line_of(lines, first, r)}: pixel{c} = {px[r, c]}, expected 0..255")
                if has_label:
                    lab = table[:, 0]
                    badl = np.flatnonzero((lab < 0) | (lab > 9))
                    if badl.size:
                        raise DataError(f"{path}: line {_line_of(lines, first, badl[0])}: label {lab[badl[0]]}, "
                                        f"expected a digit 0..9")
                    labels.append(lab.astype(np.uint8))
                batches.append(px.astype(np.uint8))
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read as CSV text: {e}") from None
    if not batches:
        raise DataError(f"{path}: no data rows after the header")
    images = np.concatenate(batches).reshape(-1, *DIGIT_SHAPE)
    return Digits(images, np.concatenate(labels) if has_label else None, str(path))


def _csv_line(f, path: Path, lineno: int) -> str:
    """One line, read no further than MAX_CSV_LINE characters ('' at the end of the file)."""
    line = f.readline(MAX_CSV_LINE + 1)
    if len(line) > MAX_CSV_LINE:
        raise DataError(f"{path}: line {lineno}: longer than {MAX_CSV_LINE:,} characters; not a row of a Kaggle "
                        f"digit CSV (a damaged or binary file?)")
    return line


def _line_of(lines: list[str], first: int, row: int) -> int:
    """The file's line number of the row-th non-blank line of a batch starting at line `first`."""
    seen = -1
    for i, line in enumerate(lines):
        seen += bool(line.strip())
        if seen == row:
            return first + i
    return first


def _parse_rows(path: Path, lines: list[str], first: int, ncols: int) -> np.ndarray:
    """(rows, ncols) int64 from CSV lines; an error names the line and what is wrong."""
    try:  # numpy's C parser; on any failure, scan the lines again to say which one is wrong
        table = np.loadtxt(lines, delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError:
        _raise_csv_error(path, lines, ncols, first)
    if table.shape[1] != ncols:
        _raise_csv_error(path, lines, ncols, first)
    return table


def _raise_csv_error(path: Path, lines: list[str], ncols: int, first: int = 2):
    for lineno, line in enumerate(lines, start=first):
        if not line.strip():
            continue
        cells = line.rstrip("\r\n").split(",")
        if len(cells) != ncols:
            raise DataError(f"{path}: line {lineno}: {len(cells)} columns, expected {ncols} (as the header "
                            f"names)")
        for col, cell in enumerate(cells):
            try:
                value = int(cell)
            except ValueError:
                raise DataError(f"{path}: line {lineno}, column {col + 1}: {cell.strip()[:30]!r} is not an "
                                f"integer") from None
            if not 0 <= value <= 255:
                raise DataError(f"{path}: line {lineno}, column {col + 1}: {cell.strip()[:30]} is out of range "
                                f"(pixels 0..255, labels 0..9)")
    raise DataError(f"{path}: lines {first}..{first + len(lines) - 1}: not a table of integers")


# ------------------------------------------------------------------------------------------ NPZ
def load_npz(path: Path | str) -> Dataset:
    """Keras' mnist.npz layout. allow_pickle stays False: an npz from anywhere is data, not code."""
    path = Path(path)
    if not zipfile.is_zipfile(path):  # numpy would guess "pickled data" for any other bytes
        raise DataError(f"{path}: not a readable .npz: not a zip archive of .npy arrays (a single .npy array, "
                        f"or another file renamed?)")
    try:
        with np.load(path, allow_pickle=False) as z:
            for k in z.files:  # sizes from the headers, before anything is decompressed
                with z.zip.open(f"{k}.npy") as f:
                    version = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(f)
                if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > MAX_ARRAY_BYTES:
                    raise DataError(f"{path}: {k} is {shape} {dtype}, more than the "
                                    f"{MAX_ARRAY_BYTES >> 30} GiB this loader reads")
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz without pickle: {e}") from None
    missing = [k for k in ("x_train", "y_train") if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing arrays {missing}; expected Keras' mnist.npz layout "
                        f"(x_train, y_train, x_test, y_test), found {sorted(arrays)}")

    def split(xk: str, yk: str) -> Digits:
        x, y = arrays[xk], arrays[yk]
        if x.ndim != 3 or x.shape[1:] != DIGIT_SHAPE:
            raise DataError(f"{path}: {xk} has shape {x.shape}, expected (N, 28, 28)")
        if len(x) == 0:
            raise DataError(f"{path}: {xk} holds no images")
        x = _whole_numbers(x, f"{path}: {xk}", "pixel", 255)
        if y.ndim != 1:
            raise DataError(f"{path}: {yk} has shape {y.shape}, expected (N,)")
        y = check_labels(_whole_numbers(y, f"{path}: {yk}", "label", 9), f"{path}: {yk}")
        if len(x) != len(y):
            raise DataError(f"{path}: {xk} has {len(x)} images but {yk} has {len(y)} labels")
        return Digits(x, y, f"{path}:{xk}")

    test = split("x_test", "y_test") if "x_test" in arrays and "y_test" in arrays else None
    return Dataset(split("x_train", "y_train"), test)


def _whole_numbers(a: np.ndarray, where: str, what: str, high: int) -> np.ndarray:
    """An array of any numeric dtype -> uint8, refusing what a cast would silently change: NaN,
    fractions (a label 3.7 is not 3) and values outside 0..high."""
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind not in "biuf":
        raise DataError(f"{where}: holds {a.dtype} values, expected numbers")
    bad = np.flatnonzero(~np.isfinite(a) | (a != np.round(a)) | (a < 0) | (a > high)) if a.dtype.kind == "f" \
        else np.flatnonzero((a < 0) | (a > high))
    if bad.size:
        i = tuple(int(v) for v in np.unravel_index(bad[0], a.shape))
        place = f"image {i[0]}, row {i[1]}, column {i[2]}" if a.ndim == 3 else f"item {i[0]}"
        raise DataError(f"{where}: {place}: {what} {a[i].item()!r}, expected a whole number 0..{high}")
    return a.astype(np.uint8)


# --------------------------------------------------------------------------------- image folders
def _images_in(folder: Path) -> list[Path]:
    return [f for f in sorted(folder.iterdir()) if is_image(f)]


def load_folder(folder: Path | str, skip_bad: bool = False) -> Digits:
    """A folder of digit images (any size; each read by images.read_digit, normalized as the camera
    normalizes a digit; a 28x28 image taken as it is): sub-folders 0/ .. 9/, or 10 sub-folders
    named by class (sorted by name: their names are the class names), or a flat folder of images
    (unlabelled, for prediction). skip_bad (prediction): an image too large or unreadable is skipped
    with a warning on stderr; else it is an error (a training set is not trained on in part)."""
    import sys

    def read(f: Path):
        try:
            images.append(read_digit(f))
            return True
        except DataError as e:
            if not skip_bad:
                raise
            print(f"warning: {e}; skipped", file=sys.stderr)
            return False

    folder = Path(folder)
    subs = [d for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".") and _images_in(d)]
    images, labels, ids = [], [], []
    classes = None
    if subs:
        digits = [d.name for d in subs if d.name in DIGIT_CLASSES]
        if digits and len(digits) < len(subs):  # 0/ .. 9/ beside a folder that is no digit (unsure/, misc/)
            odd = [d.name for d in subs if d.name not in DIGIT_CLASSES]
            raise DataError(f"{folder}: sub-folder{'s' if len(odd) > 1 else ''} {', '.join(odd)} beside "
                            f"{', '.join(digits)}: not one of the classes {', '.join(DIGIT_CLASSES)}; move "
                            f"{'their' if len(odd) > 1 else 'its'} images into the folder of their digit, or out")
        if digits:
            index = {d.name: int(d.name) for d in subs}
        else:
            classes = tuple(check_class_names([d.name for d in subs], f"{folder} (sub-folders as classes)"))
            index = {d.name: i for i, d in enumerate(subs)}  # in the order of the names, normalized or not
        for d in subs:
            for f in _images_in(d):
                if read(f):
                    labels.append(index[d.name])
                    ids.append(f"{d.name}/{f.name}")
    else:
        for f in _images_in(folder):
            if read(f):
                ids.append(f.name)
    if not images:
        raise DataError(f"{folder}: no digit images found; expected sub-folders 0/ .. 9/ (or one per class) "
                        f"holding {', '.join(sorted(IMAGE_SUFFIXES))} files")
    return Digits(np.stack(images), np.asarray(labels, np.uint8) if subs else None, str(folder), classes,
                  tuple(ids))


# -------------------------------------------------------------------------------------- sample
def load_sample() -> Dataset:
    """The bundled subset of MNIST (see sample/README.md for provenance and licence)."""
    ds = load_npz(SAMPLE_PATH)
    return Dataset(Digits(ds.train.images, ds.train.labels, SAMPLE_SOURCE),
                   Digits(ds.test.images, ds.test.labels, "bundled sample (MNIST test subset)"))


# ---------------------------------------------------------------------------------- dispatcher
def load(spec: str | os.PathLike, say=print, skip_bad_images: bool = False) -> Dataset:
    """Load a data source named on the command line (see the module docstring). skip_bad_images: in an
    image folder, skip an image that cannot be read (with a warning) instead of failing."""
    spec = str(spec)
    if spec == "auto":  # full MNIST when it is cached or can be downloaded, else the bundled sample
        from edgedigits.train.mnist import load_mnist

        try:
            return load_mnist()
        except DataError as e:
            why = "; ".join(ln.strip() for ln in str(e).splitlines() if ln.strip())  # every mirror's reason
            say(f"notice: full MNIST is not available ({why}); using the bundled sample")
            return load_sample()
    if spec == "sample":
        return load_sample()
    if spec == "mnist":
        from edgedigits.train.mnist import load_mnist

        return load_mnist()
    path = Path(spec)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder (expected 'mnist', 'sample', an IDX folder, "
                        f"a Kaggle .csv, an .npz, or a folder with 0/ .. 9/)")
    if path.is_dir():
        if any(path.glob("train-images-idx3-ubyte*")):
            return load_idx_folder(path)
        return Dataset(load_folder(path, skip_bad_images), None)
    if path.suffix.lower() == ".csv":
        return Dataset(load_kaggle_csv(path), None)
    if path.suffix.lower() == ".npz":
        return load_npz(path)
    if "idx" in path.name:
        raise DataError(f"{path}: name the folder that holds the IDX files, not one file")
    raise DataError(f"{path}: unknown data format '{path.suffix}'; expected .csv, .npz or a folder")


def load_trained_on(requested: str, trained_on: dict | None, say=print) -> tuple[Dataset, str, str | None]:
    """The digits to check or benchmark a model on: `requested`, or with 'auto' the data the model was
    trained on (trained_on: its run's "data" and "data_sha256") when that path is on this machine, else
    the default. Returns (the data set, the source used, None when it holds the digits the model was
    trained on or nothing is known of them, else what it holds, for a message)."""
    from edgedigits.errors import EdgeDigitsError

    if not (trained_on and "data" in trained_on and "data_sha256" in trained_on):
        trained_on = None  # a model converted without its run's config.json: only the data's name and licence
    data = trained_on["data"] if trained_on and requested == "auto" else requested
    try:
        ds = load(data, say)
    except EdgeDigitsError:
        if data == requested:
            raise
        data = requested  # the training data's path is not on this machine: the same digits may be, checked below
        ds = load(data, say)
    other = None
    if trained_on and ds.train.labels is not None and ds.train.sha256() != trained_on["data_sha256"]:
        other = ds.train.source
    return ds, data, other


def train_val_split(digits: Digits, val_fraction: float = 0.1, seed: int = 0) -> tuple[Digits, Digits]:
    """Stratified split with a fixed seed: validation data for choosing epochs and models."""
    if digits.labels is None:
        raise DataError(f"{digits.source}: unlabelled data cannot be split for training")
    rng = np.random.default_rng(seed)
    val_idx = []
    for c in range(10):
        idx = np.flatnonzero(digits.labels == c)
        rng.shuffle(idx)
        val_idx.append(idx[: int(round(len(idx) * val_fraction))])
    val = np.sort(np.concatenate(val_idx))
    mask = np.ones(len(digits), bool)
    mask[val] = False
    train = np.flatnonzero(mask)
    if not len(val) or not len(train):
        raise DataError(f"{digits.source}: {len(digits)} digits are too few to hold out a validation share of "
                        f"{val_fraction}: {len(train)} for training, {len(val)} for validation")
    return digits.subset(train, digits.source + " [train split]"), digits.subset(val, digits.source + " [val split]")


def stratified(digits: Digits, n: int, seed: int = 0) -> Digits:
    """n digits with the classes in equal shares (calibration sets, bundled sample)."""
    rng = np.random.default_rng(seed)
    per = [np.flatnonzero(digits.labels == c) for c in range(10)]
    take = [rng.choice(ix, size=min(len(ix), n // 10 + (c < n % 10)), replace=False) for c, ix in enumerate(per)]
    return digits.subset(np.sort(np.concatenate(take)))
