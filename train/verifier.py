"""The digit verifier: a small CNN that says whether a normalized piece of ink is one digit.

The camera pipeline asks it which pieces to group, where to cut joined digits and which pieces are
not digits at all (deploy/group.py); the classifier then reads only what it accepts. It is separate
from the classifiers so that every model, `standard`, `tiny` or one you train, keeps its 10 outputs,
its formats and its Edge TPU compatibility, and the camera pipeline works the same with each.

    python -m edgedigits.train.verifier --data ../shared/data/mnist --out runs/verifier
    python -m edgedigits.train.verifier --data ../shared/data/mnist --out deploy/models/verifier --evaluate val

trains it on CPU in minutes (train/negatives.py makes the data), chooses the epoch on a validation
split carved from the training data (MNIST's validation digits and held-apart generated examples),
and writes verifier.keras, verifier.fp32.tflite, verifier.fp32.onnx and verifier.json (the card).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from edgedigits.contract import INPUT_SHAPE, to_float

INPUT = INPUT_SHAPE


def build_verifier():
    """About 24,000 parameters, 2 million multiply-adds: three 3x3 convolutions at 28, 14 and 7 pixels,
    global average pooling, two outputs (not a digit, a digit). Only layers that quantize to int8.
    (A 4,000-parameter depthwise-separable design plateaued at 2% of MNIST validation digits rejected.)"""
    import keras
    from keras import layers

    from edgedigits.train.models import _conv_bn_relu

    inp = keras.Input(INPUT, name="digits")
    x = _conv_bn_relu(inp, 16, name="v1")               # (28, 28, 16)
    x = layers.MaxPooling2D(name="v1_pool")(x)          # (14, 14, 16)
    x = _conv_bn_relu(x, 32, name="v2")
    x = layers.MaxPooling2D(name="v2_pool")(x)          # (7, 7, 32)
    x = _conv_bn_relu(x, 64, name="v3")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.1, name="drop")(x)
    out = layers.Dense(2, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(inp, out, name="verifier")


def augment(x: np.ndarray, rng) -> np.ndarray:
    """Each image moved by up to 2 pixels (the pipeline's centring is not exact on real crops), and in
    most of them the stroke's profile changed, whatever the label: a gamma between 0.4 and 3.5 (a
    camera's faint stroke, normalized, is a few white pixels in a grey body), the stroke binarized at a
    random level, a slight blur. The profile then tells the verifier nothing about digit or not: only
    the shape does (the first verifier, trained with gamma 0.5 to 2 on half, rejected a thin-pen 7 that
    it accepted once binarized)."""
    out = np.empty_like(x)
    shifts = rng.integers(-2, 3, size=(len(x), 2))
    kind = rng.choice(4, size=len(x), p=[0.3, 0.4, 0.15, 0.15])
    gammas = np.exp(rng.uniform(np.log(0.4), np.log(3.5), len(x)))
    cuts = rng.integers(40, 160, len(x))
    sigmas = rng.uniform(0.5, 1.0, len(x))
    levels = np.arange(256, dtype=np.float32) / 255
    for i in range(len(x)):
        img = np.roll(np.roll(x[i], shifts[i, 0], 0), shifts[i, 1], 1)
        if kind[i] == 1:
            img = (255 * levels[img] ** gammas[i]).astype(np.uint8)
        elif kind[i] == 2:
            img = cv2.GaussianBlur(np.where(img >= cuts[i], 255, 0).astype(np.uint8), (3, 3), sigmas[i])
        elif kind[i] == 3:
            img = cv2.GaussianBlur((255 * levels[img] ** (1 + gammas[i] / 2)).astype(np.uint8), (3, 3), sigmas[i])
        out[i] = img
    return out


def train(mnist: str, out: Path, epochs: int = 8, n_neg: int = 80000, n_pos: int = 30000, scenes: int = 300,
          seed: int = 0, say=print) -> dict:
    import keras

    from edgedigits.train import data as D
    from edgedigits.train import negatives as N

    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    ds = D.load(mnist, say)
    tr, val = D.train_val_split(ds.train, 0.1, 0)  # the classifiers' own split: val digits never trained on
    t0 = time.time()
    cache = out / f".examples-{seed}-{n_neg}-{n_pos}-{scenes}.npz"  # made once per setting: retraining reuses it
    if cache.is_file():
        with np.load(cache) as z:
            x, y = z["x"], z["y"]
    else:
        x, y = N.build_set(rng, tr.images, tr.labels, n_neg, n_pos, scenes, say)
        out.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, x=x, y=y)
    # hold apart 10% of the generated examples for validation
    n_val = len(x) // 10
    xv_gen, yv_gen, x, y = x[:n_val], y[:n_val], x[n_val:], y[n_val:]
    say(f"{len(x)} training examples ({int(y.sum())} digits, {int((1 - y).sum())} not), made in "
        f"{time.time() - t0:.0f} s")
    model = build_verifier()
    steps = epochs * (len(x) // 256)
    lr = keras.optimizers.schedules.CosineDecay(3e-3, steps, alpha=0.02)
    model.compile(keras.optimizers.AdamW(lr, weight_decay=1e-4), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    xv_digits = to_float(val.images)
    best, history = None, []
    for epoch in range(epochs):
        t = time.time()
        xs = to_float(augment(x, rng))
        # a digit counts twice: rejecting a real digit costs more than reading a stray piece, which
        # the grouping and the threshold still get to set aside
        model.fit(xs, y, batch_size=256, epochs=1, verbose=0, shuffle=True, class_weight={0: 1.0, 1: 2.0})
        p_val = model.predict(xv_digits, batch_size=1024, verbose=0)[:, 1]
        p_gen = model.predict(to_float(xv_gen), batch_size=1024, verbose=0)[:, 1]
        row = {"epoch": epoch + 1, "seconds": round(time.time() - t, 1),
               "mnist_val_rejected": float(np.mean(p_val < 0.5)),
               "generated_val_accuracy": float(np.mean((p_gen >= 0.5) == (yv_gen == 1))),
               "generated_negatives_accepted": float(np.mean(p_gen[yv_gen == 0] >= 0.5)),
               "generated_digits_rejected": float(np.mean(p_gen[yv_gen == 1] < 0.5))}
        history.append(row)
        say(json.dumps(row))
        # choose on validation: the fewest errors, a rejected MNIST digit counting as much as 5 accepted fakes
        err = 5 * row["mnist_val_rejected"] + (1 - row["generated_val_accuracy"])
        if best is None or err < best[0]:
            best = (err, epoch + 1, model.get_weights())
    model.set_weights(best[2])
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "verifier.keras")
    card = {"model": "verifier", "parameters": int(model.count_params()),
            "input": "(N, 28, 28, 1) float32 in [0, 1], white on black, normalized as the camera pipeline does",
            "output": "(N, 2) softmax: [not a digit, a digit]",
            "chosen_epoch": best[1], "history": history,
            "training": {"mnist": str(mnist), "split": "MNIST training split (val 10%, seed 0, as the classifiers)",
                         "generated_negatives": n_neg, "generated_positives": n_pos, "scenes": scenes,
                         "seed": seed, "data": "train/negatives.py (no real photo of ../shared/data/photos)"},
            "validation": history[best[1] - 1], "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    export(model, out, to_float(np.concatenate([tr.images[:500], x[:500]])), say)
    (out / "verifier.json").write_text(json.dumps(card, indent=1) + "\n")
    return card


def export(model, out: Path, calibration: np.ndarray, say=print) -> None:
    """verifier.fp32.tflite (LiteRT: the CPU and Edge TPU targets run it on the CPU) and verifier.fp32.onnx
    (ONNX Runtime and the web app): the same float32 weights (deploy/runners.py Verifier says why not int8)."""
    from edgedigits.convert import export as E

    with E.new_workdir() as tmp:
        ctx = E.ExportContext(model, calibration, Path(tmp), metadata={"labels": ["not a digit", "digit"]})
        E.export_tflite_fp32(ctx, out / "verifier.fp32.tflite")
        ctx.artifacts["onnx_fp32"] = E.export_onnx_fp32(ctx, out / "verifier.fp32.onnx")
    say(f"wrote {out}/verifier.fp32.tflite and verifier.fp32.onnx")


def evaluate(data: str, folder: Path, split: str = "val", say=print) -> dict:
    """The shipped files' share of MNIST digits rejected (the verifier's probability below the camera
    pipeline's thresholds), on the validation split or, for the final report only, the test set; and
    the share the camera pipeline would not show at all beside the shipped `standard` classifier in the
    same runtime (rejected, or doubted and not read confidently enough: camera.readable)."""
    from edgedigits.contract import CONFIDENCE, SegmentConfig
    from edgedigits.deploy import shipped_manifest
    from edgedigits.deploy.camera import readable
    from edgedigits.deploy.runners import Verifier, from_manifest
    from edgedigits.train import data as D

    ds = D.load(data, say)
    digits = D.train_val_split(ds.train, 0.1, 0)[1] if split == "val" else ds.test
    cfg, out = SegmentConfig(), {"split": split, "digits": len(digits)}
    for runtime in ("litert", "onnxruntime"):
        v = Verifier(runtime, folder=folder)
        classify = from_manifest(shipped_manifest("standard"), "onnx" if runtime == "onnxruntime" else "cpu",
                                 say=lambda *a: None, verifier=False)
        chunks = [digits.images[i:i + 1024] for i in range(0, len(digits), 1024)]
        p = np.concatenate([v(c) for c in chunks])
        conf = np.concatenate([classify(c).max(1) for c in chunks])
        shown = [pk >= cfg.min_digit and readable(float(pk), float(c), CONFIDENCE, cfg) for pk, c in zip(p, conf)]
        out[runtime] = {"rejected": float(np.mean(p < cfg.min_digit)), "doubted": float(np.mean(p < cfg.sure_digit)),
                        "not_shown": 1 - float(np.mean(shown)), "file": v.path.name}
        say(f"{v.path.name}: MNIST {split} digits rejected (p < {cfg.min_digit}) {out[runtime]['rejected']:.3%}, "
            f"doubted (p < {cfg.sure_digit}, read only when the classifier is confident) {out[runtime]['doubted']:.3%}, "
            f"not shown beside the standard classifier {out[runtime]['not_shown']:.3%} of {len(digits)}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edgedigits.train.verifier", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="mnist", help="MNIST (a folder of the IDX files, or 'mnist' for the cache)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the verifier's files")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--negatives", type=int, default=80000, help="generated negatives (and scene pieces on top)")
    ap.add_argument("--scenes", type=int, default=300, help="generated scenes with no digit to cut pieces from")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--evaluate", choices=["val", "test"],
                    help="instead of training: the share of MNIST digits the verifier in --out rejects")
    a = ap.parse_args(argv)
    if a.evaluate:
        evaluate(a.data, a.out, a.evaluate)
        return 0
    train(a.data, a.out, a.epochs, a.negatives, scenes=a.scenes, seed=a.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
