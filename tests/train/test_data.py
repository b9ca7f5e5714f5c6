import gzip
import struct
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from edgedigits.errors import DataError
from edgedigits.train import data as D


def idx_images(images: np.ndarray) -> bytes:
    return struct.pack(">iiii", 2051, *images.shape) + images.tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">ii", 2049, len(labels)) + labels.tobytes()


@pytest.fixture
def digits(sample):
    return sample.train.images[:50], sample.train.labels[:50]


def write_idx_folder(folder, x, y, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    for stem, data in (("train-images-idx3-ubyte", idx_images(x)), ("train-labels-idx1-ubyte", idx_labels(y)),
                       ("t10k-images-idx3-ubyte", idx_images(x[:10])), ("t10k-labels-idx1-ubyte", idx_labels(y[:10]))):
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return folder


# ------------------------------------------------------------------------------------------- IDX
@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_round_trip(tmp_path, digits, gz):
    x, y = digits
    ds = D.load(write_idx_folder(tmp_path / "m", x, y, gz))
    np.testing.assert_array_equal(ds.train.images, x)
    np.testing.assert_array_equal(ds.train.labels, y)
    assert len(ds.test) == 10


def test_real_mnist_files(mnist_dir):
    ds = D.load(mnist_dir)
    assert ds.train.images.shape == (60000, 28, 28) and ds.test.images.shape == (10000, 28, 28)
    assert np.bincount(ds.test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_idx_truncated_archive(tmp_path, digits):
    folder = write_idx_folder(tmp_path / "m", *digits)
    f = folder / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:-200])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: corrupt or truncated gzip"):
        D.load(folder)


def test_idx_truncated_data(tmp_path, digits):
    folder = write_idx_folder(tmp_path / "m", *digits, gz=False)
    f = folder / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: header says .* \(truncated\)"):
        D.load(folder)


def test_idx_wrong_magic(tmp_path, digits):
    folder = write_idx_folder(tmp_path / "m", *digits, gz=False)
    f = folder / "train-labels-idx1-ubyte"
    f.write_bytes(struct.pack(">i", 2051) + f.read_bytes()[4:])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: byte 0: magic number 2051, expected 2049"):
        D.load(folder)


def test_idx_label_out_of_range(tmp_path, digits):
    x, y = digits
    y = y.copy()
    y[7] = 11
    with pytest.raises(DataError, match=r"item 7: label 11, expected a digit 0..9"):
        D.load(write_idx_folder(tmp_path / "m", x, y))


def test_idx_count_mismatch(tmp_path, digits):
    x, y = digits
    folder = write_idx_folder(tmp_path / "m", x, y)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_labels(y[:-1])))
    with pytest.raises(DataError, match=r"50 images but .* holds 49 labels"):
        D.load(folder)


# ----------------------------------------------------------------------------------------- CSV
def write_csv(path, x, y=None, header=None, rows=None):
    cols = ([] if y is None else ["label"]) + [f"pixel{i}" for i in range(784)]
    lines = [",".join(header or cols)]
    for i in range(len(x)):
        vals = ([] if y is None else [str(y[i])]) + [str(v) for v in x[i].ravel()]
        lines.append(",".join(vals))
    path.write_text("\n".join(rows or lines) + "\n")
    return path


def test_kaggle_train_and_test_csv(tmp_path, digits):
    x, y = digits
    d = D.load(write_csv(tmp_path / "train.csv", x, y)).train
    np.testing.assert_array_equal(d.images, x)
    np.testing.assert_array_equal(d.labels, y)
    t = D.load(write_csv(tmp_path / "test.csv", x)).train
    assert t.labels is None and t.images.shape == (50, 28, 28)


def test_csv_783_columns(tmp_path, digits):
    x, y = digits
    path = write_csv(tmp_path / "train.csv", x, y)
    lines = path.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0]
    path.write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"train.csv: line 4: 784 columns, expected 785"):
        D.load(path)


def test_csv_header_783_pixels(tmp_path, digits):
    x, _ = digits
    cols = [f"pixel{i}" for i in range(783)]
    with pytest.raises(DataError, match=r"line 1: header has 783 columns"):
        D.load(write_csv(tmp_path / "t.csv", x[:, :27, :], header=cols))


def test_csv_pixel_300(tmp_path, digits):
    x, y = digits
    path = write_csv(tmp_path / "train.csv", x, y)
    lines = path.read_text().splitlines()
    cells = lines[2].split(",")
    cells[1 + 100] = "300"
    lines[2] = ",".join(cells)
    path.write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"line 3: pixel100 = 300, expected 0..255"):
        D.load(path)


def test_csv_label_11_and_text(tmp_path, digits):
    x, y = digits
    path = write_csv(tmp_path / "train.csv", x, y)
    lines = path.read_text().splitlines()
    lines[5] = "11" + lines[5][1:]
    path.write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"line 6: label 11, expected a digit 0..9"):
        D.load(path)
    lines[5] = "x" + lines[5][2:]
    path.write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"line 6, column 1: 'x' is not an integer"):
        D.load(path)


# ----------------------------------------------------------------------------------------- NPZ
def test_npz_keras_layout(tmp_path, digits):
    x, y = digits
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y, x_test=x[:5], y_test=y[:5])
    ds = D.load(tmp_path / "mnist.npz")
    np.testing.assert_array_equal(ds.train.images, x)
    assert len(ds.test) == 5


def test_npz_missing_arrays_and_pickle(tmp_path, digits):
    x, y = digits
    np.savez(tmp_path / "a.npz", images=x, labels=y)
    with pytest.raises(DataError, match=r"a.npz: missing arrays \['x_train', 'y_train'\]"):
        D.load(tmp_path / "a.npz")
    np.savez(tmp_path / "p.npz", x_train=np.array([{"evil": 1}], dtype=object), y_train=y)
    with pytest.raises(DataError, match=r"p.npz: not a readable .npz without pickle"):
        D.load(tmp_path / "p.npz")


# ---------------------------------------------------------------------------------- image folder
def test_image_folder(tmp_path, digits):
    x, y = digits
    for i in range(20):
        sub = tmp_path / "mine" / str(y[i])
        sub.mkdir(parents=True, exist_ok=True)
        # dark ink on white paper, larger than 28x28: the loader inverts and resizes
        Image.fromarray(255 - np.kron(x[i], np.ones((3, 3), np.uint8))).save(sub / f"{i}.png")
    d = D.load(tmp_path / "mine").train
    assert d.images.shape == (20, 28, 28) and sorted(d.labels.tolist()) == sorted(y[:20].tolist())
    i = int(np.flatnonzero(d.labels == y[0])[0])
    assert d.images[i].mean() < 100  # white on black again


def test_empty_folder_and_bad_image(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no digit images found"):
        D.load(tmp_path / "empty")
    (tmp_path / "bad" / "3").mkdir(parents=True)
    (tmp_path / "bad" / "3" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"x.png: not a readable image"):
        D.load(tmp_path / "bad")


def test_unknown_and_missing_paths(tmp_path):
    with pytest.raises(DataError, match=r"nope: no such file or folder"):
        D.load(tmp_path / "nope")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match=r"x.txt: unknown data format"):
        D.load(tmp_path / "x.txt")


# ------------------------------------------------------------------------------ sample and split
def test_bundled_sample_is_stratified_mnist(sample, mnist_dir):
    assert sample.train.images.shape == (5000, 28, 28) and sample.test.images.shape == (1000, 28, 28)
    assert np.bincount(sample.train.labels).tolist() == [500] * 10
    full = D.load(mnist_dir)
    # every sample digit is a real MNIST training digit (provenance)
    train_rows = {r.tobytes() for r in full.train.images.reshape(60000, -1)}
    assert all(r.tobytes() in train_rows for r in sample.train.images[::97].reshape(-1, 784))


def test_split_is_stratified_and_fixed(sample):
    a_train, a_val = D.train_val_split(sample.train, 0.1, seed=0)
    b_train, b_val = D.train_val_split(sample.train, 0.1, seed=0)
    np.testing.assert_array_equal(a_val.images, b_val.images)
    assert len(a_val) == 500 and np.bincount(a_val.labels).tolist() == [50] * 10
    assert len(a_train) + len(a_val) == len(sample.train)


def test_data_module_imports_without_tensorflow():
    code = ("import sys; import edgedigits.train.data, edgedigits.train.mnist; "
            "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------- class names
def test_class_names_are_nfc_without_a_bom(tmp_path):
    names = ["\ufeffzero", "cafe\u0301"] + list("abcdefgh")  # a BOM from Notepad; 'é' typed as e + accent
    (tmp_path / "labels.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    read = D.read_labels(tmp_path / "labels.txt")
    assert read[:2] == ["zero", "caf\u00e9"] and read[1] == D.class_name("caf\u00e9")


def test_folder_class_names_are_nfc_and_index_their_images(tmp_path):
    import cv2

    names = ["cafe\u0301"] + list("abcdefghi")  # a folder named in NFD (as macOS writes names)
    for i, name in enumerate(names):
        (tmp_path / name).mkdir()
        cv2.imwrite(str(tmp_path / name / "x.png"), np.full((28, 28), i, np.uint8))
    d = D.load_folder(tmp_path)
    assert "caf\u00e9" in d.classes and sorted(d.labels.tolist()) == list(range(10))
    assert d.classes[d.labels[d.ids.index("cafe\u0301/x.png")]] == "caf\u00e9"


def test_a_huge_image_in_a_folder_is_skipped_for_prediction_and_refused_for_training(tmp_path):
    import struct
    import zlib

    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((28, 28), np.uint8))
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk
                                     + struct.pack(">I", zlib.crc32(chunk)))
    assert D.load_folder(tmp_path, skip_bad=True).ids == ("a.png",)
    with pytest.raises(DataError, match=r"b.png: 20000x20000 pixels, more than the 50 megapixels"):
        D.load_folder(tmp_path)


def test_a_kaggle_csv_is_read_in_batches(tmp_path, digits, monkeypatch):
    x, y = digits
    monkeypatch.setattr(D, "CSV_BATCH", 7)  # 50 rows: 8 batches, the last one short
    d = D.load(write_csv(tmp_path / "train.csv", x, y)).train
    np.testing.assert_array_equal(d.images, x)
    np.testing.assert_array_equal(d.labels, y)
    path = tmp_path / "train.csv"
    lines = path.read_text().splitlines()
    lines[30] = lines[30] + ",0"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"line 31: 786 columns, expected 785"):
        D.load(path)


def test_a_model_known_only_by_its_data_licence_is_checked_on_the_requested_data():
    """The shipped models were converted without their run's config.json: their manifests name the
    data and its licence only. `benchmark`/`convert` then use what was asked for (here the sample)."""
    ds, used, other = D.load_trained_on("sample", {"data_name": "MNIST (LeCun, Cortes, Burges)",
                                                   "data_licence": "CC BY-SA 3.0"}, say=lambda *_: None)
    assert used == "sample" and other is None and len(ds.test.images) == 1000
