"""Rebuild the bundled sample `train/sample/mnist_sample.npz` from the four official MNIST files.

    python -m edgedigits.tools.make_sample PATH/TO/MNIST [--train-per-class 500] [--test-per-class 100]

A stratified, seeded subset: the same files always give the same sample.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edgedigits.atomic import atomic_write
from edgedigits.train.data import SAMPLE_PATH, stratified
from edgedigits.train.mnist import load_mnist


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mnist", type=Path, help="folder with the four MNIST IDX .gz files")
    ap.add_argument("--train-per-class", type=int, default=500)
    ap.add_argument("--test-per-class", type=int, default=100)
    ap.add_argument("--out", type=Path, default=SAMPLE_PATH)
    args = ap.parse_args(argv)
    ds = load_mnist(args.mnist, allow_download=False)
    train = stratified(ds.train, 10 * args.train_per_class, seed=2026)
    test = stratified(ds.test, 10 * args.test_per_class, seed=2026)
    atomic_write(args.out, lambda tmp: np.savez_compressed(tmp, x_train=train.images, y_train=train.labels,
                                                           x_test=test.images, y_test=test.labels))
    print(f"{args.out}: {len(train)} train + {len(test)} test digits, {args.out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
