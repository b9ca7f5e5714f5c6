"""`edgedigits benchmark train`: train registry models and report, per model, test accuracy, parameters,
time per epoch, images per second, the device(s), and with `until` the time to accuracy: the wall clock
from the start of the run (imports, data loading, compilation and validation included) until validation
accuracy first reached `until` percent, read off the run's history (measured, not estimated); training
stops there. Each model trains with its own recipe (epochs, augmentation: chosen on the validation split)
unless `epochs` is given; the test set is read once per model, at the end, for this report."""

from __future__ import annotations

import time
from pathlib import Path


def train_benchmark(data: str = "auto", epochs: int = 0, limit: int = 0, out: Path = Path("runs/bench"),
                    models: list[str] | None = None, until: float = 0.0, batch_size: int = 0,
                    devices: int = 0) -> dict:
    from edgedigits.train.models import REGISTRY
    from edgedigits.train.trainer import TrainConfig, train

    rows = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in models or list(REGISTRY):
        cfg = TrainConfig(model=name, data=data, epochs=epochs, limit=limit, until=until, devices=devices,
                          command="edgedigits benchmark train")
        if batch_size:
            cfg.batch_size = batch_size
        m = train(cfg, out / f"{name}-{stamp}")
        m["run_dir"] = str(out / f"{name}-{stamp}")
        rows.append(m)
    print(table(rows, until))
    return {"until": until, "rows": rows}


def table(rows: list[dict], until: float = 0.0) -> str:
    head = f"{'model':<10} {'params':>8} {'val acc':>8} {'test acc':>9}"
    if until:
        head += f" {f'to {until:g}%':>12}"
    head += f" {'s/epoch':>8} {'first':>6} {'img/s':>8} {'epochs':>7}  device"
    lines = ["", head]
    for m in rows:
        test = f"{m['test_accuracy']:.2%}" if "test_accuracy" in m else "-"
        line = f"{m['model']:<10} {m['parameters']:>8,} {m['val_accuracy']:>8.2%} {test:>9}"
        if until:
            t = m.get("time_to_accuracy")
            reached = f"{t['wall_seconds']:.1f} s (ep {t['epoch']})" if t else "not reached"
            line += f" {reached:>12}"
        line += (f" {m['seconds_per_epoch']:>8.2f} {m.get('first_epoch_seconds', 0):>6.1f}"
                 f" {m.get('images_per_second', 0):>8,.0f} {m['epochs_trained']:>7}  {m['device']}")
        lines.append(line)
    lines.append("s/epoch: median epoch, validation included; first: the first epoch (compilation included); "
                 "img/s: training digits per second in the median epoch after the first" +
                 ("; to N%: wall clock from the start of the run (data loading included)" if until else ""))
    return "\n".join(lines)
