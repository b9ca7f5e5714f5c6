"""`edgedigits predict` on files the tests make: Kaggle CSVs, IDX, npz, folders of larger images."""

import csv
import gzip
import json

import numpy as np
import pytest
from PIL import Image

from edgedigits.deploy.predict import load_data, predict
from edgedigits.errors import EdgeDigitsError
from tests.conftest import run_cli

N = 200


def _kaggle_csv(path, images, labels=None):
    header = (["label"] if labels is not None else []) + [f"pixel{i}" for i in range(784)]
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for i, img in enumerate(images):
            cells = ([str(int(labels[i]))] if labels is not None else []) + [str(v) for v in img.reshape(-1)]
            f.write(",".join(cells) + "\n")
    return path


@pytest.fixture(scope="module")
def digits(sample):
    return sample.test.images[:N], sample.test.labels[:N].astype(np.int64)


def test_kaggle_test_csv_without_labels_gives_a_submission(digits, tmp_path, shipped):
    x, y = digits
    test_csv = _kaggle_csv(tmp_path / "test.csv", x)
    code, out, err = run_cli("predict", str(shipped[1]), str(test_csv), "--kaggle", cwd=tmp_path)
    assert code == 0, err
    with open(tmp_path / "submission.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ImageId", "Label"]
    assert [int(r[0]) for r in rows[1:]] == list(range(1, N + 1))  # Kaggle counts from 1
    pred = np.array([int(r[1]) for r in rows[1:]])
    assert np.mean(pred == y) > 0.97
    assert "accuracy" not in out and f"wrote {N} predictions to submission.csv" in out
    assert "\r" not in err  # no progress bar when stderr is not a terminal


def test_labelled_csv_prints_accuracy_and_writes_confidences(digits, tmp_path, shipped):
    x, y = digits
    train_csv = _kaggle_csv(tmp_path / "train.csv", x, y)
    code, out, err = run_cli("predict", str(shipped[1]), str(train_csv), "--out", str(tmp_path / "p.csv"),
                             "--target", "onnx")
    assert code == 0, err
    assert "accuracy: " in out and f"of {N})" in out
    with open(tmp_path / "p.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["id", "class", "label", "confidence", "true_class", "true_label"]
    assert all(0 < float(r["confidence"]) <= 1.0001 for r in rows)
    assert np.mean([r["class"] == r["true_class"] for r in rows]) > 0.97
    # quiet: nothing but the result
    code, out, err = run_cli("predict", str(shipped[1]), str(train_csv), "--out", str(tmp_path / "q.csv"), "--quiet")
    assert code == 0 and out.startswith("accuracy: ") and out.count("\n") == 1 and err == "", (out, err)


def test_folder_of_larger_dark_on_light_images_to_json(digits, tmp_path, shipped):
    x, y = digits
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(20):  # 84x84 ink on paper, as a scanner or phone gives them
        Image.fromarray(255 - np.kron(x[i], np.ones((3, 3), np.uint8))).save(folder / f"img{i:02d}.png")
    preds = predict(shipped[1], folder, quiet=True)
    assert preds.ids == [f"img{i:02d}.png" for i in range(20)] and preds.truth is None
    assert np.mean(preds.classes == y[:20]) >= 0.9
    path = preds.write(tmp_path / "p.json")
    data = json.loads(path.read_text())
    assert data["count"] == 20 and data["accuracy"] is None and data["labels"][3] == "3"
    assert data["predictions"][0]["id"] == "img00.png" and set(data["predictions"][0]) == {"id", "class", "label", "confidence"}


def test_idx_test_files_alone_and_npz(digits, tmp_path, shipped):
    x, y = digits
    idx = tmp_path / "idx"
    idx.mkdir()
    header = (2051).to_bytes(4, "big") + b"".join(v.to_bytes(4, "big") for v in x.shape)
    (idx / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + x.tobytes()))
    (idx / "t10k-labels-idx1-ubyte").write_bytes((2049).to_bytes(4, "big") + len(y).to_bytes(4, "big") + y.astype(np.uint8).tobytes())
    d = load_data(idx)
    assert len(d) == N and (d.labels == y).all()
    np.savez(tmp_path / "m.npz", x_train=x[:50], y_train=y[:50], x_test=x[50:], y_test=y[50:])
    assert len(load_data(tmp_path / "m.npz")) == N - 50  # auto: the test set
    assert len(load_data(tmp_path / "m.npz", "train")) == 50
    preds = predict("tiny", tmp_path / "m.npz", quiet=True, batch_size=64)
    assert len(preds.ids) == N - 50 and preds.accuracy > 0.95


def test_keras_model_through_tensorflow_agrees_with_the_manifest(digits, shipped):
    x, y = digits
    from edgedigits.train.data import Digits

    d = Digits(x[:64], y[:64].astype(np.uint8), "test digits")
    k = predict(shipped[0], d, quiet=True)
    m = predict(shipped[1], d, quiet=True, target="onnx")
    assert k.model.endswith("(keras)") and np.mean(k.classes == m.classes) >= 0.98
    np.testing.assert_allclose(k.probs, m.probs, atol=1e-3)


def test_class_names_from_a_labels_file(digits, tmp_path, shipped):
    x, y = digits
    names = [f"class {c}" for c in "abcdefghij"]
    (tmp_path / "labels.txt").write_text("\n".join(names) + "\n")
    code, out, err = run_cli("predict", "tiny", "sample", "--labels", str(tmp_path / "labels.txt"),
                             "--out", "-", "--quiet")
    assert code == 0, err
    rows = list(csv.DictReader(out.splitlines()))  # stdout holds the CSV alone; the accuracy goes to stderr
    assert len(rows) == 1000 and rows[0]["label"] == names[int(rows[0]["class"])]
    assert err.startswith("accuracy: ")
    (tmp_path / "bad.txt").write_text("a\nb\n")
    code, out, err = run_cli("predict", "tiny", "sample", "--labels", str(tmp_path / "bad.txt"))
    assert code == 2 and "bad.txt: 2 class names, expected 10" in err and "Traceback" not in err


def test_bad_model_and_data_are_refused_clearly(tmp_path):
    code, out, err = run_cli("predict", str(tmp_path / "nope"), "sample")
    assert code == 2 and "nope: no such model" in err and "Traceback" not in err
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    code, out, err = run_cli("predict", "tiny", str(tmp_path / "t.csv"))
    assert code == 2 and "t.csv: line 1: header has 2 columns" in err
    with pytest.raises(EdgeDigitsError, match="no test set; use --split train"):
        load_data(_kaggle_csv(tmp_path / "k.csv", np.zeros((2, 28, 28), np.uint8)), "test")


def test_progress_bar_on_a_terminal_only(tmp_path):
    """On a terminal (a pseudo-terminal here) stderr shows tqdm's bar; --quiet and pipes show none."""
    import os
    import pty
    import subprocess
    import sys

    def stderr_of(*args):
        import fcntl
        import struct
        import termios

        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
        proc = subprocess.run([sys.executable, "-m", "edgedigits", "predict", "tiny", "sample", "--batch-size", "50",
                               "--out", str(tmp_path / "p.csv"), *args], stdout=subprocess.PIPE, stderr=slave,
                              timeout=120)
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other end is closed: all read
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(master)
        assert proc.returncode == 0
        return b"".join(chunks).decode(errors="replace")

    bar = stderr_of()
    assert "predict:" in bar and "/20 [" in bar and "batch" in bar, bar
    assert stderr_of("--quiet") == ""
