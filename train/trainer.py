"""One training run: data -> model -> run folder.

A run folder holds:
    model.keras        the best model by validation loss (plain Keras layers, loads in safe mode)
    config.json        the TrainConfig, so `--resume` and readers know how it was made
    history.csv        per-epoch loss, accuracy, val_loss, val_accuracy, learning rate, seconds (the
                       epoch, and its training part), wall_seconds (since the run started, data
                       loading and compilation included: time to accuracy is read off this column)
    curves.png         training and validation loss and accuracy per epoch
    confusion.png      confusion matrix on the validation split
    metrics.json       final figures (validation, and test when a test set exists)
    model_card.md      data source and hash, model, parameters, command, versions, device, time
    checkpoint/        last epoch's weights and optimizer state, for `--resume`

Every file is written to a temporary name and renamed, so a killed run leaves complete files only.
On several devices or hosts (distribute.py) every process trains; process 0 alone writes the folder.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgedigits.atomic import atomic_write, atomic_write_bytes
from edgedigits.contract import INPUT_SHAPE, to_float  # (N, 28, 28) uint8 -> (N, 28, 28, 1) float32: the model's input
from edgedigits.errors import EdgeDigitsError
from edgedigits.train import data as D
from edgedigits.train import distribute
from edgedigits.train.io import save_keras


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
    mix: str = ""  # a data source mixed into the training data (fine-tuning: MNIST, so nothing is forgotten)
    devices: int = 0  # devices per process (data parallel, JAX); 0: every local one. Filled in with the count used
    processes: int = 1  # filled in: processes (hosts) that trained together
    until: float = 0.0  # stop once validation accuracy reaches this many percent (0: train every epoch)
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

    def __init__(self, run_dir: Path, patience: int, state: dict | None = None, *, write: bool = True,
                 until: float = 0.0, started: float | None = None):
        """`state`: the checkpoint's state.json when resuming. `write`: False in processes other than 0,
        which keep the same state (the same early stop) but write nothing. `started`: perf_counter()
        when the run (this session of it) started, for the history's wall clock."""
        import keras

        self.run_dir = run_dir
        self.patience, self.write, self.until = patience, write, until
        self.ckpt = run_dir / "checkpoint"
        if write:
            self.ckpt.mkdir(exist_ok=True)
        self.state = state or {"epoch": 0, "best_val_loss": float("inf"), "best_epoch": 0, "wait": 0, "history": []}
        self.started = time.perf_counter() if started is None else started
        # a resumed run's wall clock goes on from where the last session's stopped
        self.wall_before = self.state["history"][-1].get("wall_seconds", 0.0) if self.state["history"] else 0.0
        self.steps = 0  # training steps this process ran, this session

        outer = self

        class _Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t0 = self.t_val = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                outer.steps += 1

            def on_test_begin(self, logs=None):  # validation at the end of an epoch
                self.t_val = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                now = time.perf_counter()
                outer.epoch_end(self.model, epoch, dict(logs or {}), now - self.t0, self.t_val - self.t0)

        self.callback = _Callback()

    def epoch_end(self, train_model, epoch: int, logs: dict, seconds: float, train_seconds: float = 0.0) -> None:
        base = train_model.layers[-1]  # the model being trained, without the augmentation
        opt = train_model.optimizer
        row = {"epoch": epoch + 1, "loss": logs.get("loss"), "accuracy": logs.get("accuracy"),
               "val_loss": logs.get("val_loss"), "val_accuracy": logs.get("val_accuracy"),
               "learning_rate": float(np.asarray(opt.learning_rate)), "seconds": round(seconds, 2),
               "train_seconds": round(train_seconds, 2) if train_seconds > 0 else round(seconds, 2),
               "wall_seconds": round(self.wall_before + time.perf_counter() - self.started, 2)}
        s = self.state
        s["history"].append(row)
        better = row["val_loss"] < s["best_val_loss"]
        if better:
            s.update(best_val_loss=row["val_loss"], best_epoch=epoch + 1, wait=0)
        else:
            s["wait"] += 1
        s["epoch"] = epoch + 1
        if self.write:
            with distribute.local_only():  # this process alone: no collective operations
                if better:
                    save_keras(self.run_dir / "model.keras", lambda f: save_plain(base, f))
                # weights first, then the state that points at them: a kill between the two loses one epoch
                save_keras(self.ckpt / "train.weights.h5", train_model.save_weights)
            atomic_write_bytes(self.ckpt / "state.json", json.dumps(s, indent=1).encode())
            write_history(self.run_dir / "history.csv", s["history"])
        if self.until and row["val_accuracy"] * 100 >= self.until:
            if self.write:
                print(f"validation accuracy {row['val_accuracy']:.2%} reached --until {self.until:g}% "
                      f"after {row['wall_seconds']:.1f} s (epoch {epoch + 1}); stopping")
            train_model.stop_training = True
        elif s["wait"] >= self.patience:
            if self.write:
                print(f"early stop: validation loss has not improved for {self.patience} epochs "
                      f"(best {s['best_val_loss']:.4f} at epoch {s['best_epoch']})")
            train_model.stop_training = True


def save_plain(model, path) -> None:
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
            # every column any row has: a run resumed by a newer version gains columns
            w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
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
        elif cfg.init_from and cfg.mix:
            cfg.epochs, why = MIX_EPOCHS, "the default for fine-tuning on your digits"
        elif cfg.init_from:
            cfg.epochs, why = SAMPLE_EPOCHS, "the default for fine-tuning"
        else:
            cfg.epochs, why = spec.epochs, f"the '{cfg.model}' recipe for full MNIST"
        say(f"epochs: {cfg.epochs}, {why} (--epochs to change)")


MIX_OWN = 2000  # fine-tuning with --mix: a user's digits are repeated to at least this many per epoch ...
MIX_SHARE = 6  # ... beside this many times as many digits of the mixed-in data (their classes in equal shares)
MIX_EPOCHS = 3  # the default epochs then (tests/train/test_finetune.py: a new handwriting learned, MNIST kept)


def prepare_data(cfg: TrainConfig, say=print):
    ds = D.load(cfg.data, say)
    if ds.train.labels is None:
        raise EdgeDigitsError(f"{ds.train.source}: has no labels; training needs labelled digits")
    if cfg.mix:
        return mixed_data(cfg, ds.train, say)
    train, val = D.train_val_split(ds.train, cfg.val_fraction, cfg.seed)
    if cfg.limit:
        train = D.stratified(train, cfg.limit, cfg.seed)
        val = D.stratified(val, max(cfg.limit // 5, 50), cfg.seed)
    return ds, train, val


def mixed_data(cfg: TrainConfig, own: D.Digits, say=print):
    """A user's digits (a few hundred crops from `deploy --collect`) mixed with `cfg.mix` (MNIST) so that
    fine-tuning learns them without forgetting the rest: each epoch sees the user's training digits
    repeated to at least MIX_OWN, beside MIX_SHARE times as many of the mixed-in digits. Validation holds
    the user's held-out share and as many mixed-in digits; the test set is the mixed-in data's (MNIST's
    test set: the "nothing forgotten" figure). Returns (dataset, train, val) as prepare_data does."""
    if own.classes and list(own.classes) != list(D.DIGIT_CLASSES):
        raise EdgeDigitsError(f"{own.source}: sub-folders {', '.join(own.classes)} are not the classes "
                              f"{', '.join(D.DIGIT_CLASSES)} of the digits --mix {cfg.mix} adds; name them 0 .. 9, "
                              f"or fine-tune without mixing (--mix none)")
    base = D.load(cfg.mix, say)
    if base.train.labels is None:
        raise EdgeDigitsError(f"--mix {cfg.mix}: has no labels; mixing needs labelled digits")
    try:
        own_train, own_val = D.train_val_split(own, cfg.val_fraction, cfg.seed)
    except D.DataError:  # too few to hold any out: all of them to training, validation on the mixed-in digits
        own_train, own_val = own, own.subset(np.zeros(0, np.int64))
    base_train, base_val = D.train_val_split(base.train, cfg.val_fraction, cfg.seed)
    repeats = -(-MIX_OWN // len(own_train))
    base_train = D.stratified(base_train, min(len(base_train), MIX_SHARE * repeats * len(own_train)), cfg.seed)
    base_val = D.stratified(base_val, min(len(base_val), max(len(own_val), 500)), cfg.seed)
    source = f"{own.source} mixed with {base.train.source}"

    def join(parts, what):
        return D.Digits(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]),
                        f"{source} [{what}]")

    train = join([own_train] * repeats + [base_train], "train split")
    val = join([own_val, base_val], "val split")
    say(f"mixing: {len(own_train)} of your digits x {repeats} with {len(base_train)} of {base.train.source}; "
        f"validation: {len(own_val)} of yours and {len(base_val)} of theirs")
    return D.Dataset(D.Digits(own.images, own.labels, source, own.classes, own.ids), base.test), train, val


def train(cfg: TrainConfig, run_dir: Path, resume: bool = False, say=print) -> dict:
    """Train (or resume) one run in `run_dir`; returns the metrics that metrics.json holds.

    On several processes (distribute.initialize called first) every process calls this; process 0
    writes the run folder and returns the metrics, the others return what they did."""
    from edgedigits.train import device as devices

    started = time.perf_counter()  # the run's wall clock: imports, data loading and compilation count
    ds, train_d, val_d = prepare_data(cfg, say)  # bad data fails here, before the heavy imports
    cfg.backend, cfg.device, cfg.mixed_precision = devices.setup(cfg.backend or None)
    saved_devices = (cfg.devices, cfg.processes)
    cluster = distribute.setup(cfg.backend, cfg.devices, say)
    if resume and saved_devices[0] and saved_devices != (cluster.local_devices, cluster.processes):
        raise EdgeDigitsError(f"{run_dir}: trained on {saved_devices[0]} device(s) in each of {saved_devices[1]} "
                              f"process(es); resume it on the same (here {cluster.local_devices} x {cluster.processes}): "
                              "the global batch and learning rate depend on the count")
    cfg.devices, cfg.processes = cluster.local_devices, cluster.processes
    if cluster.devices > 1:
        cfg.device = f"{cluster.devices} x {cfg.device}" + (f" in {cluster.processes} processes" if cluster.processes > 1 else "")
    if not cluster.first:
        say = lambda *_: None  # noqa: E731  process 0 speaks for all
    import keras

    say(f"training '{cfg.model}' on {cfg.device} (Keras {keras.__version__}, {cfg.backend} backend"
        f"{', mixed precision' if cfg.mixed_precision else ''})")
    keras.utils.set_random_seed(cfg.seed)  # the same in every process: the replicas start equal
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
    # this process's share; with one process and one device, all of it
    my_train = train_d.subset(distribute.shard(len(train_d), cluster))
    my_val = val_d.subset(distribute.shard(len(val_d), cluster))
    batch = cfg.batch_size * cluster.local_devices  # this process's part of the global batch
    peak_lr = cfg.learning_rate * distribute.lr_scale(cluster)
    if cluster.devices > 1:
        say(f"data parallel: {cluster.devices} devices, {cfg.batch_size} digits each, global batch "
            f"{cfg.batch_size * cluster.devices}; peak learning rate {cfg.learning_rate:g} x sqrt({cluster.devices}) "
            f"= {peak_lr:.3g}; {len(my_train)} training digits per process")

    if cluster.first:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(run_dir / "config.json", json.dumps(asdict(cfg), indent=1).encode())

    steps = int(np.ceil(len(my_train) / batch)) * cfg.epochs
    train_model = compiled_model(cfg, steps, peak_lr)

    state_file = run_dir / "checkpoint" / "state.json"
    saved = distribute.from_first(lambda: json.loads(state_file.read_text()) if state_file.exists() else None, cluster)
    state = RunState(run_dir, cfg.patience, saved, write=cluster.first, until=cfg.until, started=started)
    if resume and state.state["epoch"]:
        train_model.optimizer.build(train_model.trainable_variables)
        if cluster.processes == 1:
            load_checkpoint(train_model, state.ckpt / "train.weights.h5")
        else:  # process 0 reads the checkpoint into a model of its own, then hands the values to all
            values = None
            if cluster.first:
                with distribute.local_only():
                    local = compiled_model(cfg, steps, peak_lr)
                    local.optimizer.build(local.trainable_variables)
                    load_checkpoint(local, state.ckpt / "train.weights.h5")
                    values = [np.asarray(v.value) for v in local.variables + local.optimizer.variables]
            distribute.sync_variables(train_model.variables + train_model.optimizer.variables, values, cluster)
        say(f"resuming after epoch {state.state['epoch']} of {cfg.epochs}")
    history = state.state["history"]
    reached = bool(cfg.until and history and history[-1]["val_accuracy"] * 100 >= cfg.until)
    done = state.state["wait"] >= cfg.patience or state.state["epoch"] >= cfg.epochs or reached
    if done:
        say("this run had already finished training")

    # (N, 28, 28, 1) float32 and (N, 10) one-hot: this process's shard
    x_train, y_train = to_float(my_train.images), keras.utils.to_categorical(my_train.labels, 10)

    x_val, y_val = to_float(my_val.images), keras.utils.to_categorical(my_val.labels, 10)
    t0 = time.perf_counter()
    setup_seconds = t0 - started
    if not done:
        train_model.fit(x_train, y_train, validation_data=(x_val, y_val), batch_size=batch,
                        epochs=cfg.epochs, initial_epoch=state.state["epoch"], shuffle=True,
                        callbacks=[state.callback], verbose=(1 if sys.stdout.isatty() else 2) if cluster.first else 0)
    seconds = time.perf_counter() - t0
    steps_done = distribute.gather(state.steps, cluster)  # measured in each process, not assumed
    if cluster.devices > 1:
        keras.distribution.set_distribution(None)  # process 0 evaluates alone, on its own devices
    if not cluster.first:
        print(f"process {cluster.process} of {cluster.processes}: {state.steps} training steps on its "
              f"{len(my_train)} digits in {seconds:.1f} s; process 0 writes the run folder")
        return {"process": cluster.process, "steps": state.steps, "train_digits": len(my_train)}
    extra = {"devices": cluster.devices, "processes": cluster.processes, "mesh": list(cluster.device_names),
             "global_batch": cfg.batch_size * cluster.devices, "peak_learning_rate": peak_lr,
             "train_digits": len(my_train) * cluster.processes, "steps_per_process": [int(n) for n in steps_done],
             "setup_seconds": round(setup_seconds, 2)}
    return finish(cfg, run_dir, state.state, ds, val_d, seconds, say, extra)


def load_checkpoint(model, path: Path) -> None:
    try:
        model.load_weights(path)
    except Exception as e:  # a damaged or foreign checkpoint: h5py and Keras raise many types
        raise EdgeDigitsError(f"{path}: cannot load the checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200] if str(e) else ''}); start a new run with --out") from None


def compiled_model(cfg: TrainConfig, steps: int, peak_lr: float):
    """The model to train: augmentation (training only) then the registry model, compiled with AdamW on
    a cosine schedule of `steps` steps peaking at `peak_lr`."""
    import keras

    from edgedigits.train.augment import build_augmenter
    from edgedigits.train.models import build

    if cfg.init_from:
        from edgedigits.train.io import load_keras_model

        model = load_keras_model(cfg.init_from)
        pools = [i for i, layer in enumerate(model.layers) if isinstance(layer, keras.layers.MaxPooling2D)]
        for i, layer in enumerate(model.layers if cfg.mix else []):  # fine-tuning on a user's digits mixed
            # with MNIST: batch norm keeps the statistics of the data it learned (frozen, it normalizes as in
            # inference), and the layers before the last pooling their features; the last block and the
            # head learn the new handwriting (MNIST test accuracy kept within 0.1 pp: test_finetune.py)
            if isinstance(layer, keras.layers.BatchNormalization) or (pools and i < pools[-1]):
                layer.trainable = False
    else:
        model = build(cfg.model)
    inputs = keras.Input(INPUT_SHAPE, name="digits")
    x = build_augmenter(cfg.seed, float(cfg.augment))(inputs) if cfg.augment else inputs
    train_model = keras.Model(inputs, model(x), name="trainer")
    schedule = keras.optimizers.schedules.CosineDecay(
        peak_lr * 0.1, decay_steps=steps, warmup_target=peak_lr,
        warmup_steps=min(steps // 10, 500), alpha=0.01)
    train_model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
        metrics=["accuracy"])
    return train_model


def time_to_accuracy(history: list[dict], percent: float) -> dict | None:
    """The first epoch whose validation accuracy reached `percent`, and the wall clock then."""
    for row in history:
        if row["val_accuracy"] * 100 >= percent and row.get("wall_seconds") is not None:
            return {"percent": percent, "epoch": row["epoch"], "wall_seconds": row["wall_seconds"]}
    return None


def finish(cfg: TrainConfig, run_dir: Path, state: dict, ds: D.Dataset, val_d: D.Digits,
           seconds: float, say=print, extra: dict | None = None) -> dict:
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
        **(extra or {}),
    }
    history = state["history"]
    # the median epoch's training part (validation left out), past the first (compilation) when there are more
    train_seconds = [h["train_seconds"] for h in history[1:] or history if h.get("train_seconds")]
    if train_seconds and "train_digits" in metrics:
        metrics["images_per_second"] = round(metrics["train_digits"] / float(np.median(train_seconds)), 1)
    if history:
        metrics["first_epoch_seconds"] = history[0]["seconds"]  # compilation included
    if history and history[-1].get("wall_seconds") is not None:
        metrics["wall_seconds"] = history[-1]["wall_seconds"]
    if cfg.until:
        metrics["time_to_accuracy"] = time_to_accuracy(history, cfg.until)
    if ds.test is not None and ds.test.labels is not None:  # final report only
        metrics["test_accuracy"] = float(np.mean(predict(best, ds.test.images) == ds.test.labels))
        metrics["test_digits"] = len(ds.test)
        metrics["test_source"] = ds.test.source
    atomic_write_bytes(run_dir / "metrics.json", json.dumps(metrics, indent=1).encode())
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
