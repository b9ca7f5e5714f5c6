"""Pictures and cards for a training run: loss curves, confusion matrix, model card."""

from __future__ import annotations

import platform
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from edgedigits.atomic import atomic_write
from edgedigits.contract import LABELS


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


def plot_curves(history: list[dict], path: Path, title: str = "") -> None:
    """Loss, and error rate on a log scale: at 99 %+ accuracy the interesting part is the last
    fraction of a percent, which a linear accuracy axis squashes flat. The best epoch is marked."""
    plt = _pyplot()
    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    loss, val_loss = [h["loss"] for h in history], [h["val_loss"] for h in history]
    a.plot(ep, loss, ".-", label="training (augmented)")
    a.plot(ep, val_loss, ".-", label="validation")
    late = loss[len(loss) // 10:] + val_loss[len(val_loss) // 10:]  # zoom past the first epochs' drop
    if len(history) >= 10:
        lo, hi = min(late), max(late)
        a.set_ylim(lo - 0.05 * (hi - lo), hi + 0.6 * (hi - lo))
    a.set(xlabel="epoch", ylabel="loss", title="loss")
    err = lambda key: [max(100 * (1 - h[key]), 1e-3) for h in history]  # noqa: E731
    b.plot(ep, err("accuracy"), ".-", label="training (augmented)")
    b.plot(ep, err("val_accuracy"), ".-", label="validation")
    b.set_yscale("log")
    b.set(xlabel="epoch", ylabel="error (%), log scale", title="error rate (100 - accuracy)")
    best = min(range(len(history)), key=lambda i: val_loss[i])
    for ax in (a, b):
        ax.axvline(ep[best], color="grey", lw=0.8, ls="--", label=f"best validation loss (epoch {ep[best]})")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    m = np.zeros((10, 10), np.int64)
    np.add.at(m, (y_true.astype(int), y_pred.astype(int)), 1)
    return m


def plot_confusion(y_true: np.ndarray, y_pred: np.ndarray, path: Path, title: str = "") -> None:
    plt = _pyplot()
    m = confusion(y_true, y_pred)
    fig, ax = plt.subplots(figsize=(6, 5.5))
    off = m.copy()
    np.fill_diagonal(off, 0)
    ax.imshow(off, cmap="Reds")  # colour shows the mistakes; the diagonal would drown them
    for i in range(10):
        for j in range(10):
            if m[i, j]:
                ax.text(j, i, m[i, j], ha="center", va="center", fontsize=7,
                        color="black" if i != j else "tab:green")
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true",
           title=f"{title}\naccuracy {np.trace(m) / max(m.sum(), 1):.2%}")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def library_versions(names=("edgedigits", "keras", "tensorflow", "jax", "torch", "numpy")) -> dict:
    out = {"python": platform.python_version()}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    return out


def _text(value) -> str:
    """A value shown as text in a Markdown table (edgedigits/markdown.py)."""
    from edgedigits.markdown import text

    return text(value)


def write_model_card(path: Path, cfg, metrics: dict) -> None:
    versions = ", ".join(f"{k} {v}" for k, v in library_versions().items())
    names = getattr(cfg, "labels", None) or LABELS
    # names and paths come from the user (--labels, folder names): as text, never as HTML or Markdown
    names = [_text(n) for n in names]
    classes = ", ".join(f"{i}: {n}" if n != str(i) else n for i, n in enumerate(names))
    if getattr(cfg, "data_licence", ""):
        licence = f"Licence of the data: {cfg.data_name}, {cfg.data_licence}."
    else:
        licence = ("Licence of the data: not known to edgedigits (not a data set it recognizes); "
                   "check the terms of the data's owner before sharing this model.")
    test = (f"{metrics['test_accuracy']:.2%} on {metrics['test_digits']} digits of {metrics['test_source']}"
            if "test_accuracy" in metrics else "not measured (no test set with this data)")
    text = f"""# Model card: {cfg.model}

| | |
| --- | --- |
| model | `{cfg.model}`{' (fine-tuned from `' + cfg.init_from + '`)' if cfg.init_from else ''}, {metrics['parameters']:,} parameters |
| input | (N, 28, 28, 1) float32 in [0, 1]: pixel / 255, white digit on black (MNIST convention) |
| output | (N, 10) softmax probabilities for the classes {classes} |
| data | {_text(cfg.data_source)}{' (' + _text(cfg.data_name) + ')' if cfg.data_name else ''} |
| data SHA-256 | `{cfg.data_sha256}` (pixels then labels of the training set) |
| split | {cfg.val_fraction:.0%} of the training data held out for validation, seed {cfg.seed} |
| training | {metrics['epochs_trained']} epochs (best {metrics['best_epoch']}), batch {cfg.batch_size}, AdamW lr {cfg.learning_rate} cosine, label smoothing {cfg.label_smoothing}, augmentation {f'strength {float(cfg.augment):g}' if cfg.augment else 'off'} |
| validation accuracy | {metrics['val_accuracy']:.2%} on {metrics['val_digits']} digits |
| test accuracy | {test} |
| device | {cfg.device}, Keras backend {cfg.backend}{', mixed precision' if cfg.mixed_precision else ''} |
| time | {metrics['seconds_per_epoch']:.1f} s per epoch (median); written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} |
| command | `{cfg.command or ' '.join(sys.argv)}` |
| libraries | {versions} |

{licence}
"""
    atomic_write(path, lambda tmp: tmp.write_text(text))
