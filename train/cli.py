"""`edgedigits train`."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from dataclasses import fields
from pathlib import Path

from edgedigits.errors import EdgeDigitsError



def add_train(make, sub) -> None:
    from edgedigits.train.models import REGISTRY
    from edgedigits.train.trainer import SAMPLE_EPOCHS, TrainConfig

    d = TrainConfig()
    p = make(sub, "train", "Train a digit CNN and write a run folder (model, curves, metrics, model card).", """\
        examples:
          edgedigits train                               # 'standard' on full MNIST (or the bundled sample offline)
          edgedigits train --model tiny --epochs 20
          edgedigits train --data my_digits/ --from runs/train/standard-x/model.keras --epochs 5
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
    p.add_argument("--from", dest="init_from", metavar="MODEL.keras", help="fine-tune this model instead of a new one")
    p.add_argument("--backend", choices=["tensorflow", "jax", "torch"], help="Keras backend (default: $KERAS_BACKEND, else one that sees a GPU)")
    p.add_argument("--devices", type=int, metavar="N",
                   help="data parallel on N devices of this machine (JAX backend; default: every one JAX sees)")
    p.add_argument("--coordinator", metavar="HOST:PORT", help="several machines: process 0's address and a free port")
    p.add_argument("--num-processes", type=int, metavar="N", help="several machines: how many processes (one per host)")
    p.add_argument("--process-id", type=int, metavar="I", help="several machines: this process's index, 0 on the coordinator")
    p.add_argument("--out", type=Path, help="run folder (default: runs/train/<model>-<time>)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    p.set_defaults(run=run_train)


def run_train(args) -> int:
    from edgedigits.train import distribute
    from edgedigits.train.trainer import TrainConfig, train

    command = "edgedigits " + shlex.join(sys.argv[1:])
    if args.devices is not None and args.devices < 1:
        raise EdgeDigitsError(f"--devices {args.devices}: must be at least 1")
    if distribute.wants_several_processes(args.num_processes):
        if (args.backend or os.environ.get("KERAS_BACKEND", "jax")) != "jax":
            raise EdgeDigitsError(f"--num-processes: training on several processes needs the JAX backend, "
                                  f"not {args.backend or os.environ['KERAS_BACKEND']}; use --backend jax")
        distribute.initialize(args.coordinator, args.num_processes, args.process_id)
    me = distribute.this_process()
    if args.resume:
        def read_config():
            cfg_file = args.resume / "config.json"
            if not cfg_file.is_file():
                raise EdgeDigitsError(f"{args.resume}: not a run folder (no config.json); nothing to resume")
            return json.loads(cfg_file.read_text())

        saved = distribute.from_first(read_config, me)  # the other hosts need no copy of the folder
        cfg = TrainConfig(**{f.name: saved[f.name] for f in fields(TrainConfig) if f.name in saved})
        cfg.command = saved.get("command", command)
        train(cfg, args.resume, resume=True)
        return 0
    augment = 0.0 if args.no_augment else args.augment
    if args.epochs is not None and args.epochs < 1:
        raise EdgeDigitsError(f"--epochs {args.epochs}: must be at least 1")
    if augment is not None and augment < 0:
        raise EdgeDigitsError(f"--augment {augment}: must be 0 (off) or more")
    if not 0 < args.val_fraction < 1:
        raise EdgeDigitsError(f"--val-fraction {args.val_fraction}: must be between 0 and 1")
    cfg = TrainConfig(model=args.model, data=args.data, epochs=args.epochs or 0, batch_size=args.batch_size,
                      learning_rate=args.lr, patience=args.patience, val_fraction=args.val_fraction,
                      seed=args.seed, limit=args.limit, augment=augment, devices=args.devices or 0,
                      init_from=str(args.init_from or ""), backend=args.backend or "", command=command)
    if cfg.init_from:
        cfg.learning_rate = args.lr if args.lr != TrainConfig.learning_rate else args.lr / 10
    out = args.out or Path("runs/train") / f"{args.model}-{time.strftime('%Y%m%d-%H%M%S')}"

    def check_out():
        if (out / "config.json").exists():
            raise EdgeDigitsError(f"{out}: already holds a run; use --resume {out} or another --out")

    distribute.from_first(check_out, me)
    train(cfg, out)
    return 0
