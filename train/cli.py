"""`edgedigits train`."""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import sys
import time
from contextlib import ExitStack
from dataclasses import fields
from pathlib import Path

from edgedigits import checks
from edgedigits.atomic import folder_lock
from edgedigits.errors import EdgeDigitsError, Interrupted


def add_train(make, sub) -> None:
    from edgedigits.train import distribute
    from edgedigits.train.models import REGISTRY
    from edgedigits.train.trainer import SAMPLE_EPOCHS, TrainConfig

    d = TrainConfig()
    p = make(sub, "train", "Train a digit CNN and write a run folder (model, curves, metrics, model card).", """\
        examples:
          edgedigits train                               # 'standard' on full MNIST (or the bundled sample offline)
          edgedigits train --model tiny --epochs 20
          edgedigits train --data my_digits/ --from deploy/models/standard --epochs 3 --mix mnist   # your handwriting
          edgedigits train --resume runs/train/standard-20261127-101500   # after a crash or Ctrl-C
          edgedigits train --backend jax                 # every GPU of this machine, data parallel

        several machines (JAX backend; the same command on each, only --process-id differs):
          host-a$ edgedigits train --backend jax --coordinator host-a:1234 --num-processes 2 --process-id 0
          host-b$ edgedigits train --backend jax --coordinator host-a:1234 --num-processes 2 --process-id 1
          each host reads its shard of --data; process 0 writes the run folder (--resume it on process 0's
          host, the others need no copy). Instead of the options: KERAS_DISTRIBUTION_JOB_ADDRESSES,
          KERAS_DISTRIBUTION_NUM_PROCESSES, KERAS_DISTRIBUTION_PROCESS_ID.

        data sources (--data):
          auto      full MNIST if cached or downloadable, else the bundled sample (with a notice)
          mnist     full MNIST; cache in $EDGEDIGITS_DATA/mnist (default ~/.cache/edgedigits/mnist)
          sample    the bundled 5,000-digit subset of MNIST
          DIR       the four MNIST IDX files (.gz or raw), or sub-folders 0/ .. 9/ of your own images
          FILE.csv  Kaggle Digit Recognizer train.csv;  FILE.npz  Keras' mnist.npz layout""")
    p.add_argument("--model", choices=sorted(REGISTRY), default=d.model, help="registry model to build")
    p.add_argument("--data", default=d.data, help="data source (see below)")
    p.add_argument("--epochs", type=int, help="maximum epochs, early stopping may end sooner (default: the "
                   f"model's recipe for full MNIST, {SAMPLE_EPOCHS} on the bundled sample)")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="digits per training step on each device (the global batch is this x devices)")
    p.add_argument("--lr", type=float, default=d.learning_rate,
                   help="peak learning rate (cosine schedule) for one device; on k devices x sqrt(k)")
    p.add_argument("--patience", type=int, default=d.patience, help="early stop after this many epochs without a better validation loss")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction, help="share of the training data held out for validation")
    p.add_argument("--seed", type=int, default=d.seed, help="seed for the validation split, weights and augmentation")
    p.add_argument("--limit", type=int, default=d.limit, help="train on only this many digits (0: all)")
    p.add_argument("--augment", type=float, metavar="STRENGTH",
                   help="augmentation strength: 1 = +-12 deg rotation, +-12%% zoom, +-10%% shift, stroke width; "
                        "0.5 halves every range (default: the model's own, see the registry)")
    p.add_argument("--no-augment", action="store_true", help="train without augmentation (--augment 0)")
    p.add_argument("--labels", type=Path, metavar="FILE",
                   help="class names, one per line in output order (default: the data's own, else 0..9)")
    p.add_argument("--from", dest="init_from", metavar="MODEL",
                   help="fine-tune this model instead of a new one: a .keras file, or a manifest (or its folder) "
                        "from `edgedigits convert`, whose source .keras lies beside it")
    p.add_argument("--mix", metavar="DATA",
                   help="fine-tuning on a folder of your digits (--from): the data mixed in so nothing is forgotten "
                        "(default: auto, MNIST or the bundled sample; none: your digits alone)")
    p.add_argument("--backend", choices=["tensorflow", "jax", "torch"], help="Keras backend (default: $KERAS_BACKEND, else one that sees a GPU)")
    p.add_argument("--devices", type=int, metavar="N",
                   help="data parallel on N devices of this machine (JAX backend; default: every one JAX sees)")
    p.add_argument("--coordinator", metavar="HOST:PORT", help="several machines: process 0's address and a free port")
    p.add_argument("--num-processes", type=int, metavar="N", help="several machines: how many processes (one per host)")
    p.add_argument("--process-id", type=int, metavar="I", help="several machines: this process's index, 0 on the coordinator")
    p.add_argument("--coordinator-timeout", type=float, metavar="SECONDS", default=distribute.COORDINATOR_TIMEOUT_S,
                   help="several machines: give up when the coordinator and the other processes have not all "
                        "joined within this time")
    p.add_argument("--out", type=Path, help="run folder (default: runs/train/<model>-<time>)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    p.set_defaults(run=run_train)


def run_train(args) -> int:
    from edgedigits.train import distribute
    from edgedigits.train.trainer import TrainConfig, train

    command = "edgedigits " + shlex.join(sys.argv[1:])
    if args.devices is not None and args.devices < 1:
        raise EdgeDigitsError(f"--devices {args.devices}: must be at least 1")
    checks.finite("--coordinator-timeout", args.coordinator_timeout, 0, above=True)
    if (distribute.processes_asked(args.num_processes) or 1) > 1 and \
            (args.backend or os.environ.get("KERAS_BACKEND", "jax")) != "jax":
        raise EdgeDigitsError(f"--num-processes: training on several processes needs the JAX backend, "
                              f"not {args.backend or os.environ['KERAS_BACKEND']}; use --backend jax")
    job = distribute.check_job(args.coordinator, args.num_processes, args.process_id)  # before JAX starts
    if job:
        distribute.initialize(job, args.coordinator_timeout)
    me = distribute.this_process()
    if args.resume:
        from dataclasses import asdict

        def saved_config():  # process 0, which alone writes the folder, checks it under its lock
            if args.resume.is_dir():
                held.enter_context(folder_lock(args.resume, "--resume"))
            return asdict(_saved_config(args.resume))

        with ExitStack() as held:
            cfg = TrainConfig(**distribute.from_first(saved_config, me))
            cfg.command = cfg.command or command
            _train_or_clean_up(train, cfg, args.resume, resume=True)
        return 0
    augment = 0.0 if args.no_augment else args.augment
    init_from = model_file(args.init_from) if args.init_from else ""
    mix = args.mix or ("auto" if init_from and _image_folder(args.data) else "")
    cfg = TrainConfig(model=args.model, data=args.data, epochs=args.epochs or 0, batch_size=args.batch_size,
                      learning_rate=args.lr, patience=args.patience, val_fraction=args.val_fraction,
                      seed=args.seed, limit=args.limit, augment=augment, devices=args.devices or 0,
                      init_from=str(init_from), mix="" if mix == "none" else mix, backend=args.backend or "",
                      command=command)
    if args.epochs is not None and args.epochs < 1:
        raise EdgeDigitsError(f"--epochs {args.epochs}: must be at least 1")
    _check(cfg, lambda name: OPTIONS[name])
    if args.labels:
        from edgedigits.train.data import read_labels

        cfg.labels = read_labels(args.labels)
    if cfg.init_from:
        cfg.learning_rate = args.lr if args.lr != TrainConfig.learning_rate else args.lr / 10
    out = args.out or Path("runs/train") / f"{args.model}-{time.strftime('%Y%m%d-%H%M%S')}"

    created = []  # the folders made for the run folder (process 0)

    def check_out():  # process 0, which alone writes the run folder, checks it under its lock
        checks.output_folder("--out", out)
        created.extend(p for p in out.parents if not p.exists())
        try:
            out.parent.mkdir(parents=True, exist_ok=True)  # the lock goes beside the run folder
        except OSError as e:
            raise EdgeDigitsError(f"--out {out}: cannot create the folder {out.parent}: {e.strerror or e}") from None
        held.enter_context(folder_lock(out))  # a second run into this folder is refused, not mixed with this one
        if (out / "config.json").exists():
            raise EdgeDigitsError(f"{out}: already holds a run; use --resume {out} or another --out")
        theirs = sorted(name for name in RUN_FILES if (out / name).exists())
        if theirs:  # not a run of ours (no config.json), so not ours to replace
            raise EdgeDigitsError(f"--out {out}: holds {out / theirs[0]}, which a run would replace; it is not a run "
                                  f"folder (no config.json): choose another --out, or move it away")

    try:
        with ExitStack() as held:
            distribute.from_first(check_out, me)  # only process 0 writes the run folder
            _train_or_clean_up(train, cfg, out)
    except BaseException:
        for parent in created:  # empty once the run folder went
            if parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
        raise
    return 0


def model_file(spec: str) -> Path:
    """--from: a .keras file, or a manifest (or its folder) whose source .keras lies beside it."""
    from edgedigits.manifest import load_manifest, sha256_file

    path = Path(spec)
    if not (path.is_dir() or path.name == "manifest.json"):
        return path  # checked with the other options (_check)
    m = load_manifest(path, verify_files=False)
    source = m.folder / m.data["source"]["file"]
    if not source.is_file():
        raise EdgeDigitsError(f"--from {spec}: the manifest's source model {source.name} is not beside it; "
                              f"give the .keras file it was converted from")
    if sha256_file(source) != m.data["source"]["sha256"]:
        raise EdgeDigitsError(f"--from {spec}: {source} differs from the model the manifest was converted from "
                              f"(SHA-256); give the .keras file you mean")
    return source


def _image_folder(data: str) -> bool:
    """A folder of a user's own images (not an IDX folder): what --from fine-tunes on, mixed with MNIST."""
    path = Path(data)
    return path.is_dir() and not any(path.glob("train-images-idx3-ubyte*"))


# what a run writes into its folder (trainer.py); a folder holding any of them without config.json is refused
RUN_FILES = ("config.json", "history.csv", "model.keras", "checkpoint", "metrics.json", "curves.png",
             "confusion.png", "model_card.md")

# TrainConfig field -> the option that sets it, for messages
OPTIONS = {"batch_size": "--batch-size", "learning_rate": "--lr", "patience": "--patience", "limit": "--limit",
           "seed": "--seed", "augment": "--augment", "val_fraction": "--val-fraction", "epochs": "--epochs",
           "init_from": "--from", "model": "--model", "mix": "--mix"}


def _check(cfg, name) -> None:
    """The values a run needs, named as options (a new run) or as config.json keys (--resume)."""
    from edgedigits.train.models import REGISTRY

    if cfg.model not in REGISTRY:
        raise EdgeDigitsError(f"{name('model')} {cfg.model!r}: not a registry model ({', '.join(sorted(REGISTRY))})")
    checks.at_least(name("epochs"), cfg.epochs, 0)
    checks.at_least(name("batch_size"), cfg.batch_size, 1)
    checks.finite(name("learning_rate"), cfg.learning_rate, 0, above=True)
    checks.at_least(name("patience"), cfg.patience, 1)
    checks.at_least(name("limit"), cfg.limit, 0)
    checks.in_range(name("seed"), cfg.seed, 0, 2**32 - 1)
    checks.finite(name("augment"), cfg.augment)
    if cfg.augment is not None and cfg.augment < 0:
        raise EdgeDigitsError(f"{name('augment')} {cfg.augment}: must be 0 (off) or more")
    checks.finite(name("val_fraction"), cfg.val_fraction)
    if not 0 < cfg.val_fraction < 1:
        raise EdgeDigitsError(f"{name('val_fraction')} {cfg.val_fraction}: must be between 0 and 1")
    if cfg.init_from and not Path(cfg.init_from).is_file():
        raise EdgeDigitsError(f"{name('init_from')} {cfg.init_from}: no such model file")


def _saved_config(run_dir: Path):
    """The TrainConfig of a run folder, every field checked for its type and value."""
    from edgedigits.train.trainer import TrainConfig

    cfg_file = run_dir / "config.json"
    if not cfg_file.is_file():
        raise EdgeDigitsError(f"{run_dir}: not a run folder (no config.json); nothing to resume")
    try:
        saved = json.loads(cfg_file.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise EdgeDigitsError(f"{cfg_file}: not a readable run config ({type(e).__name__}: "
                              f"{str(e)[:200]}); start a new run with --out") from None
    if not isinstance(saved, dict):
        raise EdgeDigitsError(f"{cfg_file}: expected a JSON object, got {type(saved).__name__}")
    default = TrainConfig()
    for f in fields(TrainConfig):
        if f.name not in saved:
            continue
        value, want = saved[f.name], getattr(default, f.name)
        if f.name == "labels":  # class names: a list of strings, or null
            if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise EdgeDigitsError(f"{cfg_file}: 'labels' is {value!r}, expected a list of class names or null")
            continue
        types = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}[type(want)] if want is not None \
            else (int, float, type(None))
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise EdgeDigitsError(f"{cfg_file}: '{f.name}' is {value!r} ({type(value).__name__}), expected "
                                  f"{' or '.join(t.__name__ for t in types)}")
    cfg = TrainConfig(**{f.name: saved[f.name] for f in fields(TrainConfig) if f.name in saved})
    _check(cfg, lambda key: f"{cfg_file}: '{key}' is")
    _check_state(run_dir / "checkpoint" / "state.json")
    return cfg


def _check_state(state_file: Path) -> None:
    """The checkpoint's bookkeeping, which --resume continues from."""
    if not state_file.exists():
        return
    try:
        state = json.loads(state_file.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise EdgeDigitsError(f"{state_file}: not a readable checkpoint state ({type(e).__name__}); "
                              f"start a new run with --out") from None
    kinds = {"epoch": int, "best_val_loss": (int, float), "best_epoch": int, "wait": int, "history": list}
    for key, kind in kinds.items():
        if not isinstance(state, dict) or not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            raise EdgeDigitsError(f"{state_file}: '{key}' is missing or of the wrong type; "
                                  f"start a new run with --out")
    if state["epoch"] < 0 or not all(isinstance(h, dict) and isinstance(h.get("seconds"), (int, float))
                                      for h in state["history"]):
        raise EdgeDigitsError(f"{state_file}: 'epoch' or 'history' is damaged; start a new run with --out")


def _train_or_clean_up(train, cfg, out: Path, resume: bool = False) -> None:
    """Train; a run that fails or is interrupted before its first checkpoint leaves nothing behind
    (so the same command can run again), one interrupted later says how to resume it."""
    made = not out.exists()  # the run makes the folder: on failure, it goes whole
    there = {name for name in RUN_FILES if (out / name).exists()}  # never removed: this run did not write them
    checkpoint = out / "checkpoint" / "state.json"
    try:
        train(cfg, out, resume=resume)
    except BaseException as e:
        if not resume and not checkpoint.is_file():
            if made:
                shutil.rmtree(out, ignore_errors=True)
            else:
                for name in set(RUN_FILES) - there - {"checkpoint"}:
                    (out / name).unlink(missing_ok=True)
                if "checkpoint" not in there:
                    shutil.rmtree(out / "checkpoint", ignore_errors=True)
        if isinstance(e, KeyboardInterrupt):
            if checkpoint.is_file():
                raise Interrupted(f"interrupted; {out} keeps every finished epoch: continue with "
                                  f"`edgedigits train --resume {out}`") from None
            if resume:
                raise Interrupted(f"interrupted; continue with `edgedigits train --resume {out}`") from None
            raise Interrupted("interrupted before the first epoch ended; nothing was kept") from None
        if isinstance(e, OSError) and e.errno == errno.ENOSPC and checkpoint.is_file():
            raise OSError(e.errno, f"{e.strerror}; {out} keeps every finished epoch: free some space and "
                                   f"continue with `edgedigits train --resume {out}`", e.filename) from None
        raise
