"""`edgedigits benchmark train`: train every registry model and print test accuracy, parameters,
time per epoch and device. Each model trains with its own recipe (epochs, augmentation: chosen on the
validation split) unless `epochs` is given; the test set is read once per model, at the end, for this
report."""

from __future__ import annotations

import time
from pathlib import Path


def train_benchmark(data: str = "auto", epochs: int = 0, limit: int = 0, out: Path = Path("runs/bench")) -> dict:
    from edgedigits.train.models import REGISTRY
    from edgedigits.train.trainer import TrainConfig, train

    rows = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in REGISTRY:
        cfg = TrainConfig(model=name, data=data, epochs=epochs, limit=limit, command="edgedigits benchmark train")
        m = train(cfg, out / f"{name}-{stamp}")
        rows.append(m)
    print(f"\n{'model':<10} {'params':>8} {'val acc':>8} {'test acc':>9} {'s/epoch':>8} {'epochs':>7}  device")
    for m in rows:
        test = f"{m['test_accuracy']:.2%}" if "test_accuracy" in m else "-"
        print(f"{m['model']:<10} {m['parameters']:>8,} {m['val_accuracy']:>8.2%} {test:>9} "
              f"{m['seconds_per_epoch']:>8.1f} {m['epochs_trained']:>7}  {m['device']}")
    return {"rows": rows}
