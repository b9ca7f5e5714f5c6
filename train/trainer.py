"""One training run: data -> model -> run folder.

A run folder holds:
    model.keras        the best model by validation loss (plain Keras layers, loads in safe mode)
    config.json        the TrainConfig, so `--resume` and readers know how it was made
    history.csv        per-epoch loss, accuracy, val_loss, val_accuracy, learning rate, seconds
    curves.png         training and validation loss and accuracy per epoch
    confusion.png      confusion matrix on the validation split
    metrics.json       final figures (validation, and test when a test set exists)
    model_card.md      data source and hash, model, parameters, command, versions, device, time
    checkpoint/        last epoch's weights and optimizer state, for `--resume`

Every file is written to a temporary name and renamed, so a killed run leaves complete files only.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgedigits.atomic import atomic_write
from edgedigits.contract import to_float  # (N, 28, 28) uint8 -> (N, 28, 28, 1) float32: the model's input
from edgedigits.errors import EdgeDigitsError
from edgedigits.train import data as D


@dataclass
class TrainConfig:
    model: str = "standard"
    data: str = "auto"  # 'auto': full MNIST if cached or downloadable, else the bundled sample
    epochs: int = 0  # 0: the model's recipe (ModelSpec.epochs), or SAMPLE_EPOCHS on the bundled sample
    batch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    val_fraction: float = 0.1
    patience: int = 20  # early stopping on validation loss (long cosine runs plateau mid-way, then improve)
    seed: int = 0
    augment: float | None = None  # augmentation strength, 0 none; None: the model's recipe
    limit: int = 0  # use only this many training digits (0: all), for quick runs
    init_from: str = ""  # fine-tune this .keras model instead of building `model` afresh
    backend: str = ""  # filled in with the backend that ran
    device: str = ""
    mixed_precision: bool = False
    data_source: str = ""
    data_sha256: str = ""
    labels: list | None = None  # class names, in output order: --labels, else the data's own (data.py)
    data_name: str = ""  # a known data set's name and licence (data.KNOWN_DATA), else ""
    data_licence: str = ""
    command: str = ""


SAMPLE_EPOCHS = 30  # the bundled sample is a tenth of MNIST: its default run takes a few minutes on a CPU


# --------------------------------------------------------------------------------- the callback
class RunState:
    """Per-epoch bookkeeping that survives SIGKILL: history, best model, checkpoint, early stop."""

    def __init__(self, run_dir: Path, patience: int):
        import keras

        self.run_dir = run_dir
        self.patience = patience
        self.ckpt = run_dir / "checkpoint"
        self.ckpt.mkdir(exist_ok=True)
        state_file = self.ckpt / "state.json"
        self.state = json.loads(state_file.read_text()) if state_file.exists() else {
            "epoch": 0, "best_val_loss": float("inf"), "best_epoch": 0, "wait": 0, "history": []}

        outer = self

        class _Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                outer.epoch_end(self.model, epoch, dict(logs or {}), time.perf_counter() - self.t0)

        self.callback = _Callback()

    def epoch_end(self, train_model, epoch: int, logs: dict, seconds: float) -> None:
        base = train_model.layers[-1]  # the model being trained, without the augmentation
        opt = train_model.optimizer
        row = {"epoch": epoch + 1, "loss": logs.get("loss"), "accuracy": logs.get("accuracy"),
               "val_loss": logs.get("val_loss"), "val_accuracy": logs.get("val_accuracy"),
               "learning_rate": float(np.asarray(opt.learning_rate)), "seconds": round(seconds, 2)}
        s = self.state
        s["history"].append(row)
        if row["val_loss"] < s["best_val_loss"]:
            s.update(best_val_loss=row["val_loss"], best_epoch=epoch + 1, wait=0)
            atomic_write(self.run_dir / "model.keras", lambda p: save_plain(base, p))
        else:
            s["wait"] += 1
        s["epoch"] = epoch + 1
        # weights first, then the state that points at them: a kill between the two loses one epoch
        atomic_write(self.ckpt / "train.weights.h5", train_model.save_weights)
        atomic_write(self.ckpt / "state.json", lambda p: p.write_text(json.dumps(s, indent=1)))
        write_history(self.run_dir / "history.csv", s["history"])
        if s["wait"] >= self.patience:
            print(f"early stop: validation loss has not improved for {self.patience} epochs "
                  f"(best {s['best_val_loss']:.4f} at epoch {s['best_epoch']})")
            train_model.stop_training = True


def save_plain(model, path: Path) -> None:
    """Save in float32 whatever policy trained it, so converters see a plain float32 graph."""
    import keras

    if model.dtype_policy.name != "float32":
        policy = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("float32")
        try:
            plain = keras.Model.from_config(_float32_config(model.get_config()))
        finally:
            keras.mixed_precision.set_global_policy(policy)
        plain.set_weights(model.get_weights())
        model = plain
    model.save(path)


def _float32_config(cfg):
    if isinstance(cfg, dict):
        return {k: ("float32" if k == "dtype" and not isinstance(v, str | type(None)) else _float32_config(v))
                for k, v in cfg.items()}
    if isinstance(cfg, list):
        return [_float32_config(v) for v in cfg]
    return cfg


def write_history(path: Path, rows: list[dict]) -> None:
    def write(p):
        with open(p, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    atomic_write(path, write)


# ------------------------------------------------------------------------------------------ run
def apply_recipe(cfg: TrainConfig, say=print) -> None:
    """Fill in what the user left to the model's recipe: augmentation strength and epochs."""
    from edgedigits.train.models import REGISTRY

    spec = REGISTRY[cfg.model]
    if cfg.augment is None:
        cfg.augment = spec.augment
    if not cfg.epochs:
        if cfg.data_source == D.SAMPLE_SOURCE:
            cfg.epochs, why = SAMPLE_EPOCHS, "the default on the bundled sample"
        elif cfg.init_from:
            cfg.epochs, why = SAMPLE_EPOCHS, "the default for fine-tuning"
        else:
            cfg.epochs, why = spec.epochs, f"the '{cfg.model}' recipe for full MNIST"
        say(f"epochs: {cfg.epochs}, {why} (--epochs to change)")


def prepare_data(cfg: TrainConfig, say=print):
    ds = D.load(cfg.data, say)
    if ds.train.labels is None:
        raise EdgeDigitsError(f"{ds.train.source}: has no labels; training needs labelled digits")
    train, val = D.train_val_split(ds.train, cfg.val_fraction, cfg.seed)
    if cfg.limit:
        train = D.stratified(train, cfg.limit, cfg.seed)
        val = D.stratified(val, max(cfg.limit // 5, 50), cfg.seed)
    return ds, train, val


def train(cfg: TrainConfig, run_dir: Path, resume: bool = False, say=print) -> dict:
    """Train (or resume) one run in `run_dir`; returns the metrics that metrics.json holds."""
    from edgedigits.train import device as devices

    ds, train_d, val_d = prepare_data(cfg, say)  # bad data fails here, before the heavy imports
    cfg.backend, cfg.device, cfg.mixed_precision = devices.setup(cfg.backend or None)
    import keras

    from edgedigits.train.augment import build_augmenter
    from edgedigits.train.models import build

    say(f"training '{cfg.model}' on {cfg.device} (Keras {keras.__version__}, {cfg.backend} backend"
        f"{', mixed precision' if cfg.mixed_precision else ''})")
    keras.utils.set_random_seed(cfg.seed)
    cfg.data_source, cfg.data_sha256 = ds.train.source, ds.train.sha256()
    known = D.KNOWN_DATA.get(cfg.data_sha256) or (D.MNIST_DATA if cfg.data_source == D.SAMPLE_SOURCE else None)
    cfg.labels = D.check_class_names(cfg.labels, "--labels") if cfg.labels else \
        list(ds.train.classes or (known.classes if known else D.DIGIT_CLASSES))
    cfg.data_name, cfg.data_licence = (known.name, known.licence) if known else ("", "")
    apply_recipe(cfg, say)
    say(f"data: {ds.train.source}: {len(train_d)} training and {len(val_d)} validation digits"
        + (f" ({cfg.data_name})" if cfg.data_name else ""))
    if cfg.labels != list(D.DIGIT_CLASSES):
        say(f"classes: {', '.join(cfg.labels)}")

    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / "config.json", lambda p: p.write_text(json.dumps(asdict(cfg), indent=1)))

    if cfg.init_from:
        from edgedigits.train.io import load_keras_model

        model = load_keras_model(cfg.init_from)
    else:
        model = build(cfg.model)
    inputs = keras.Input((28, 28, 1), name="digits")
    x = build_augmenter(cfg.seed, float(cfg.augment))(inputs) if cfg.augment else inputs
    train_model = keras.Model(inputs, model(x), name="trainer")

    steps = int(np.ceil(len(train_d) / cfg.batch_size)) * cfg.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate * 0.1, decay_steps=steps, warmup_target=cfg.learning_rate,
        warmup_steps=min(steps // 10, 500), alpha=0.01)
    train_model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
        metrics=["accuracy"])

    state = RunState(run_dir, cfg.patience)
    if resume and state.state["epoch"]:
        train_model.optimizer.build(train_model.trainable_variables)
        try:
            train_model.load_weights(state.ckpt / "train.weights.h5")
        except Exception as e:  # a damaged or foreign checkpoint: h5py and Keras raise many types
            raise EdgeDigitsError(f"{state.ckpt / 'train.weights.h5'}: cannot load the checkpoint "
                                  f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); "
                                  f"start a new run with --out") from None
        say(f"resuming after epoch {state.state['epoch']} of {cfg.epochs}")
    if state.state["wait"] >= cfg.patience or state.state["epoch"] >= cfg.epochs:
        say("this run had already finished training")

    x_train, y_train = to_float(train_d.images), keras.utils.to_categorical(train_d.labels, 10)
    x_val, y_val = to_float(val_d.images), keras.utils.to_categorical(val_d.labels, 10)
    t0 = time.perf_counter()
    if state.state["epoch"] < cfg.epochs and state.state["wait"] < cfg.patience:
        train_model.fit(x_train, y_train, validation_data=(x_val, y_val), batch_size=cfg.batch_size,
                        epochs=cfg.epochs, initial_epoch=state.state["epoch"], shuffle=True,
                        callbacks=[state.callback], verbose=1 if sys.stdout.isatty() else 2)
    return finish(cfg, run_dir, state.state, ds, val_d, time.perf_counter() - t0, say)


def finish(cfg: TrainConfig, run_dir: Path, state: dict, ds: D.Dataset, val_d: D.Digits,
           seconds: float, say=print) -> dict:
    """Evaluate the best model and write curves, confusion matrix, metrics and model card."""
    from edgedigits.train import report
    from edgedigits.train.io import load_keras_model

    if not (run_dir / "model.keras").is_file():
        if np.isfinite(state["best_val_loss"]):
            raise EdgeDigitsError(f"{run_dir / 'model.keras'}: missing from the run folder (removed?); train again")
        last = state["history"][-1]["val_loss"] if state["history"] else None
        raise EdgeDigitsError(f"{run_dir}: no model saved: the validation loss was never finite (last: {last}); "
                              f"training diverged: lower --lr")
    best = load_keras_model(run_dir / "model.keras")
    val_pred = predict(best, val_d.images)
    metrics = {
        "model": cfg.model, "parameters": int(best.count_params()),
        "epochs_trained": state["epoch"], "best_epoch": state["best_epoch"],
        "val_loss": state["best_val_loss"], "val_accuracy": float(np.mean(val_pred == val_d.labels)),
        "val_digits": len(val_d),
        "seconds_per_epoch": float(np.median([h["seconds"] for h in state["history"]])),
        "device": cfg.device, "backend": cfg.backend, "train_seconds_this_session": round(seconds, 1),
    }
    if ds.test is not None and ds.test.labels is not None:  # final report only
        metrics["test_accuracy"] = float(np.mean(predict(best, ds.test.images) == ds.test.labels))
        metrics["test_digits"] = len(ds.test)
        metrics["test_source"] = ds.test.source
    atomic_write(run_dir / "metrics.json", lambda p: p.write_text(json.dumps(metrics, indent=1)))
    report.plot_curves(state["history"], run_dir / "curves.png", title=f"{cfg.model}: {cfg.data_source}")
    report.plot_confusion(val_d.labels, val_pred, run_dir / "confusion.png",
                          title=f"{cfg.model}, validation split ({len(val_d)} digits)")
    report.write_model_card(run_dir / "model_card.md", cfg, metrics)
    say(f"best epoch {metrics['best_epoch']}: val accuracy {metrics['val_accuracy']:.2%}"
        + (f", test accuracy {metrics['test_accuracy']:.2%}" if "test_accuracy" in metrics else ""))
    say(f"run folder: {run_dir}")
    return metrics


def predict(model, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    return np.argmax(model.predict(to_float(images), batch_size=batch_size, verbose=0), axis=1)
