"""Teach it your handwriting: camera frames of a handwriting the shipped model reads badly -> `deploy
--collect` -> misreads fixed by moving files -> `train --from --mix` on the CPU -> read again.

The handwriting is the femkeklaver font (Debian's fonts-femkeklaver, one of the Makefile's FONTS), the
one of those fonts the shipped 'standard' model reads worst. Frames are generated scenes (tools/scenes.py:
paper, light, shadow, perspective, blur, JPEG) with that font's digits; the digits read back are those
the camera pipeline finds. Fine-tuning sees only crops collected from one set of frames; accuracy is
measured on another set, never collected. Run with -s to see the figures (the README quotes them).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import ROOT, run_cli

FONT = Path("/usr/share/fonts/truetype/femkeklaver/femkeklaver.ttf")
SHIPPED = ROOT / "deploy" / "models" / "standard"
NAME = re.compile(r"(?P<stem>.+)_f\d+_x(?P<x>\d+)_y(?P<y>\d+)_w(?P<w>\d+)_h(?P<h>\d+)(-\d+)?\.png$")


def _frames(folder: Path, seed: int, n: int, mnist) -> dict[str, list]:
    """n frames of 4 digits in the font, written as JPEG; returns {stem: truth [(label, box)]}."""
    from edgedigits.tools.scenes import SceneConfig, make_scene

    if not FONT.is_file():
        pytest.skip(f"{FONT} not present (apt-get install fonts-femkeklaver, or `make system-deps`)")
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    truth = {}
    for i in range(n):
        text = "".join(str(d) for d in rng.permutation(10)[:4])
        frame, boxes = make_scene(rng, mnist, SceneConfig(digits=(4, 4), two_lines_prob=0.0), fonts=[str(FONT)],
                                  text=text)
        cv2.imwrite(str(folder / f"s{seed}-{i:03d}.jpg"), frame)
        truth[f"s{seed}-{i:03d}"] = boxes
    return truth


def _label_of(box, truth) -> int | None:
    """The true digit whose box holds this box's centre (what a user sees looking at the crop)."""
    x, y, w, h = box
    for label, (tx, ty, tw, th) in truth:
        if tx <= x + w / 2 <= tx + tw and ty <= y + h / 2 <= ty + th:
            return label
    return None


def _accuracy(runner, folder: Path, truth: dict) -> float:
    """Digits read right over all the digits in the frames (a missed digit counts as wrong)."""
    from edgedigits.deploy import camera
    from edgedigits.tools.scenes import match

    right = total = 0
    for stem, boxes in truth.items():
        rec = camera.recognize(cv2.imread(str(folder / f"{stem}.jpg")), runner)
        correct, _, _ = match([(lab, d.box) for lab, d in zip(rec.labels, rec.digits)], boxes)
        right, total = right + correct, total + len(boxes)
    return right / total


def _keras_runner(path: Path):
    from edgedigits.deploy.predict import KerasRunner

    return KerasRunner(path)


@pytest.mark.slow
def test_collect_fine_tune_and_read_a_new_handwriting(tmp_path, mnist_dir, sample):
    mnist = (sample.test.images, sample.test.labels)
    seen = _frames(tmp_path / "collect", 1, 60, mnist)  # frames whose digits are collected
    held = _frames(tmp_path / "held", 2, 40, mnist)  # never collected: the measure

    # 1. collect: every digit read, as the model saw it, in the folder of what it read
    crops = tmp_path / "my_digits"
    code, out, err = run_cli("deploy", "--source", str(tmp_path / "collect"), "--headless", "--collect", str(crops))
    assert code == 0, err
    files = sorted(crops.glob("*/*.png"))
    assert f"collected {len(files)} digits into {crops}" in err and len(files) >= 200, err
    # 2. fix the misreads, as a user does: move each crop to the folder of its true digit
    moved = 0
    for f in files:
        m = NAME.match(f.name)
        label = _label_of(tuple(int(m[k]) for k in "xywh"), seen[m["stem"]])
        assert cv2.imread(str(f), cv2.IMREAD_UNCHANGED).shape == (28, 28)  # the model's input, greyscale
        if label is None:
            f.unlink()  # not a digit (none was found here in these frames, but a user would drop it)
        elif f.parent.name != str(label):
            (crops / str(label)).mkdir(exist_ok=True)
            f.rename(crops / str(label) / f.name)
            moved += 1
    # 3. fine-tune from the shipped model, mixed with MNIST, on the CPU
    run = tmp_path / "run"
    t0 = time.perf_counter()
    code, out, err = run_cli("train", "--data", str(crops), "--from", str(SHIPPED), "--mix", str(mnist_dir),
                             "--epochs", "3", "--out", str(run), env={"CUDA_VISIBLE_DEVICES": ""})
    seconds = time.perf_counter() - t0
    assert code == 0, out + err
    assert seconds < 120, f"fine-tuning took {seconds:.0f} s"
    metrics = json.loads((run / "metrics.json").read_text())
    before_mnist = json.loads((ROOT / "train" / "pretrained" / "standard" / "metrics.json").read_text())["test_accuracy"]
    # 4. read the held-apart frames with both models, through the same camera pipeline
    before = _accuracy(_keras_runner(SHIPPED / "standard.keras"), tmp_path / "held", held)
    after = _accuracy(_keras_runner(run / "model.keras"), tmp_path / "held", held)
    # 5. convert and deploy as usual: the int8 model a device runs, against the shipped one
    from edgedigits.deploy.runners import from_manifest

    code, out, err = run_cli("convert", str(run / "model.keras"), "--out", str(tmp_path / "mine"),
                             "--formats", "tflite_int8", "--data", str(mnist_dir))
    assert code == 0, out + err
    before_int8 = _accuracy(from_manifest(SHIPPED, "cpu"), tmp_path / "held", held)
    after_int8 = _accuracy(from_manifest(tmp_path / "mine", "cpu"), tmp_path / "held", held)
    print(f"\ncollected {len(files)} digits ({moved} misreads moved); fine-tuned in {seconds:.0f} s; "
          f"held-apart frames: Keras {before:.1%} -> {after:.1%}, int8 {before_int8:.1%} -> {after_int8:.1%}; "
          f"MNIST test: {before_mnist:.2%} -> {metrics['test_accuracy']:.2%} ({metrics['test_digits']} digits)")
    assert after - before >= 0.05 and after_int8 - before_int8 >= 0.05, (before, after, before_int8, after_int8)
    # forgetting: measured 0.07 to 0.11 points of MNIST test accuracy lost (the crops collected change
    # with the camera pipeline: 99.65%, 99.63%, 99.61% over three of its versions)
    assert metrics["test_digits"] == 10_000 and metrics["test_accuracy"] >= before_mnist - 0.0015, metrics
