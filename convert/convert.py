"""`edgedigits convert`: a .keras model -> every format in formats.FORMATS, each checked, and a manifest.

Each artifact is loaded in its own runtime right after it is written and run on held-out labelled
digits (the validation split of the training data, never the calibration digits); its accuracy and
top-1 agreement are compared with the Keras model's on the same digits. An artifact that loses more
than the tolerance is marked `check_failed` and the command exits non-zero, after writing the rest.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedigits.convert import export as X
from edgedigits.formats import Format, resolve
from edgedigits.contract import LABELS, PREPROCESSING, to_float  # the input contract, shared by every stage
from edgedigits.manifest import NAME, load_manifest, sha256_file, write_manifest
from edgedigits.deploy.runners import open_runner  # each artifact is checked by the runner a device uses
from edgedigits.atomic import atomic_folder, atomic_write, folder_lock, is_disk_full
from edgedigits.errors import EdgeDigitsError


@dataclass
class ConvertConfig:
    formats: list[str] | None = None  # None: every format
    data: str = "auto"  # where calibration and check digits come from (see edgedigits.train.data)
    calibration_size: int = 300  # stratified, from the training split
    check_split: str = "val"  # "val": validation split of the training data; "test": the test set (final reports)
    check_limit: int = 0  # 0: all check digits
    tolerance_pp: float = 0.3  # allowed accuracy loss against Keras, in percentage points
    opset: int = X.ONNX_OPSET
    int8_io: str = "int8"
    explain: bool = False
    quiet: bool = False  # no progress bar (the CLI's --quiet also drops the per-format lines)


def training_split(model_path: Path) -> dict | None:
    """How the model's run split its data, from the run folder's config.json beside model.keras:
    {"data", "data_source", "data_sha256", "val_fraction", "seed"}; None without one."""
    import json

    path = Path(model_path).with_name("config.json")
    try:
        run = json.loads(path.read_text())
        return {"config": str(path), **{k: run[k] for k in ("data", "data_source", "data_sha256", "val_fraction", "seed")}}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_classes(model_path: Path) -> tuple[list[str], dict]:
    """The class names a run trained with, and its data's name and licence, from config.json beside
    the model; the digits and {} for a model without one (or a run from before class names)."""
    import json

    try:
        run = json.loads(Path(model_path).with_name("config.json").read_text())
    except (OSError, ValueError):
        run = {}
    labels = run.get("labels") if isinstance(run, dict) else None
    data = {k: run[k] for k in ("data_name", "data_licence") if run.get(k)} if isinstance(run, dict) else {}
    return (list(labels) if labels else list(LABELS)), data or card_licence(Path(model_path).with_name("model_card.md"))


def card_licence(card: Path) -> dict:
    """{"data_name", "data_licence"} from a model card's "Licence of the data: NAME, LICENCE." line (the
    shipped models keep their card, not their run's config.json); {} without one."""
    import re

    try:
        m = re.search(r"^Licence of the data: (.+), ([^,]+?)\.?$", card.read_text(), re.M)
    except (OSError, UnicodeDecodeError):
        return {}
    if not m or "not known" in m[1]:
        return {}
    return {"data_name": m[1].strip(), "data_licence": m[2].strip()}


def check_digits(cfg: ConvertConfig, model_path: Path | None = None, say=print):
    """(calibration float32 (N,28,28,1), check Digits, how the split was defined) from the configured data.

    The check digits are the validation split training held out: its fraction and seed come from the
    run's config.json, and so does the data when --data is not given. A model without a run folder is
    split with the training defaults, and the report says so: those may not be the digits it held out."""
    from edgedigits.train import data as D
    from edgedigits.train.trainer import TrainConfig

    run = training_split(model_path) if model_path else None
    ds, data, other = D.load_trained_on(cfg.data, run, say)
    if other:
        what = f"the model was trained on {run['data_source']} ({run['config']}), but these digits are {other}"
        if cfg.data == "auto":
            raise EdgeDigitsError(f"{what}: give the training data with --data so that the check uses digits "
                                  f"it held out (or --data X to check on other data on purpose)")
        say(f"notice: {what}; checking on them as --data asks: their split is not the one training held out")
    if run:
        fraction, seed = run["val_fraction"], run["seed"]
        split = {"val_fraction": fraction, "seed": seed, "from": run["config"]}
    else:
        fraction, seed = TrainConfig.val_fraction, TrainConfig.seed
        split = {"val_fraction": fraction, "seed": seed, "from": "training defaults (no config.json beside the model)"}
    train, val = D.train_val_split(ds.train, fraction, seed=seed)
    calib = D.stratified(train, cfg.calibration_size, seed=1)
    if cfg.check_split == "test":
        if ds.test is None:
            raise EdgeDigitsError(f"{data}: has no test set; use --check-split val")
        check = ds.test
    else:
        check = val
    if cfg.check_limit and cfg.check_limit < len(check):
        check = D.stratified(check, cfg.check_limit, seed=2)
    return to_float(calib.images), check, split


def io_details(runner) -> tuple[list[dict], list[dict]]:
    """Names, shapes, dtypes and quantization of a runner's inputs and outputs, for the manifest."""
    if hasattr(runner, "interpreter"):
        def d(t):
            scale, zp = t["quantization"]
            return {"name": t["name"], "shape": [int(v) for v in t["shape_signature"]],
                    "dtype": np.dtype(t["dtype"]).name,
                    "quantization": {"scale": float(scale), "zero_point": int(zp)} if scale else None}
        it = runner.interpreter
        return [d(t) for t in it.get_input_details()], [d(t) for t in it.get_output_details()]

    def o(t):
        return {"name": t.name, "shape": [v if isinstance(v, int) else -1 for v in t.shape],
                "dtype": t.type.replace("tensor(", "").rstrip(")").replace("float", "float32"),
                "quantization": None}
    s = runner.session
    return [o(t) for t in s.get_inputs()], [o(t) for t in s.get_outputs()]


def check_artifact(path: Path, fmt: Format, check, keras_pred: np.ndarray, tolerance_pp: float) -> dict:
    runner = open_runner(path, fmt.runtime)  # the runtime the format's row names (the Edge TPU's file on the CPU)
    probs = runner(check.images)
    pred = probs.argmax(1)
    acc = float(np.mean(pred == check.labels))
    keras_acc = float(np.mean(keras_pred == check.labels))
    inputs, outputs = io_details(runner)
    entry = {"inputs": inputs, "outputs": outputs, "accuracy": acc,
             "delta_pp": round(100 * (acc - keras_acc), 4), "agreement": float(np.mean(pred == keras_pred))}
    # counted in whole digits: a loss of exactly the tolerance passes (100 * (0.875 - 0.85), one digit of
    # 40, is 2.5000000000000022 in floats), and the tolerance's own float error is far below one digit
    lost = int(np.sum(keras_pred == check.labels)) - int(np.sum(pred == check.labels))
    if 100 * lost > tolerance_pp * len(pred) * (1 + 1e-12):
        entry.update(status="check_failed", reason=f"accuracy {acc:.2%} is {100 * (keras_acc - acc):.2f} points "
                     f"below Keras ({keras_acc:.2%}); tolerance {tolerance_pp} points")
    else:
        entry.update(status="passed", reason="")
    return entry


# what a conversion of model NAME may write beside the formats' files (NAME + suffix): the Keras source,
# the model the Edge TPU compiler reads and its log, the --explain table
EXTRA_SUFFIXES = (".keras", ".edgetpu-ready.tflite", ".edgetpu-ready_edgetpu.log", ".int8-layers.csv")


def written_names(model_name: str) -> set[str]:
    """Every file name a conversion of `model_name` may write into its folder."""
    from edgedigits.formats import FORMATS

    return {NAME} | {model_name + f.suffix for f in FORMATS.values()} | {model_name + s for s in EXTRA_SUFFIXES}


def check_out(out: Path) -> Path:
    """The output folder, checked before any work: a new folder, an empty one, or an earlier conversion
    (whose files are replaced at the end; the user's other files there are kept). A folder holding
    files but no manifest is refused: which of them a conversion wrote cannot be known."""
    from edgedigits import checks

    out = Path(out)
    checks.output_folder("--out", out)
    if out.is_symlink():  # the folder it points to is replaced, not the link
        out = out.resolve()
    if out.is_dir():
        entries = sorted(out.iterdir())
        if entries and not (out / NAME).is_file():
            raise EdgeDigitsError(f"--out {out}: holds {entries[0].name}, which is not part of a conversion; convert "
                                  f"into a new or empty folder, or an earlier conversion's")
        if entries:
            earlier_files(out)  # an unreadable manifest: refused now, not after the work
        checks.output_folder("--out", out.parent)  # the new folder is written beside the old one
    return out


def earlier_files(out: Path) -> set[str]:
    """The names of an earlier conversion in `out`: its manifest, every file it lists, and what a
    conversion of its model writes. Everything else there is the user's, and is kept."""
    if not (out / NAME).is_file():
        return set()
    try:
        m = load_manifest(out, verify_files=False)
    except EdgeDigitsError as e:
        raise EdgeDigitsError(f"--out {out}: holds a manifest that cannot be read, so which files are the "
                              f"earlier conversion's is not known ({e}); choose another folder") from None
    return written_names(m.data["source"]["model"]) | {m.data["source"]["file"]} | {
        a["file"] for a in m.artifacts if a.get("file")}


def _keep_user_files(out: Path, stage: Path, earlier: set[str]) -> None:
    """Hard-link (else copy) the user's files of `out` into the new folder before it takes out's place."""
    for p in sorted(out.iterdir()) if out.is_dir() else []:
        if p.name in earlier:
            continue
        if (stage / p.name).exists() or (stage / p.name).is_symlink():  # refused in convert(); a last guard
            raise EdgeDigitsError(f"--out {out}: {p.name} is not part of the earlier conversion, and this one "
                                  f"writes a file of that name; move it away first")
        if p.is_dir() and not p.is_symlink():
            shutil.copytree(p, stage / p.name, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(p, stage / p.name)


def _link_or_copy(src, dst) -> None:
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def check_config(model_path: Path, cfg: ConvertConfig) -> None:
    """The options, checked before any work (the CLI and api.convert both call it): one line naming the
    option and what would be valid."""
    from edgedigits import checks

    if cfg.calibration_size < 10:
        raise EdgeDigitsError(f"--calibration-size {cfg.calibration_size}: use at least 10 digits")
    checks.at_least("--check-limit", cfg.check_limit, 0)
    checks.finite("--tolerance", cfg.tolerance_pp, 0)
    checks.in_range("--opset", cfg.opset, X.ONNX_OPSETS.start, X.ONNX_OPSETS.stop - 1,
                    " (tf2onnx writes up to 18; per-channel int8 needs 13)")
    if cfg.int8_io not in ("int8", "uint8"):
        raise EdgeDigitsError(f"--int8-io {cfg.int8_io}: choose int8 or uint8")
    if cfg.check_split not in ("val", "test"):
        raise EdgeDigitsError(f"--check-split {cfg.check_split}: choose val or test")
    resolve(cfg.formats)  # unknown names
    model_path = Path(model_path)
    if not model_path.is_file():
        raise EdgeDigitsError(f"{model_path}: {'not a file' if model_path.exists() else 'no such model file'}; "
                              f"give a .keras model (e.g. a run folder's model.keras)")


def convert(model_path: Path, out: Path, cfg: ConvertConfig, say=print) -> tuple[Path, bool]:
    """Convert, check and write the manifest. Returns (manifest path, every artifact passed).

    Everything is written into a new folder beside `out`, which takes the place of `out` in one step
    once the manifest is written and read back: Ctrl-C or a kill at any moment leaves the earlier
    conversion whole (or no folder), never some of its files replaced. The user's own files in `out`
    (those no conversion wrote) are linked into the new folder first, so they stay. A second convert
    into the same folder while this one runs is refused (a lock beside the folder)."""
    from edgedigits.train.io import load_keras_model

    out = check_out(out)
    formats = resolve(cfg.formats)
    try:  # --out out/tiny where out/ is missing: made here, as train and deploy make theirs
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EdgeDigitsError(f"--out {out}: cannot create the folder {out.parent}: {e.strerror or e}") from None
    with folder_lock(out):
        earlier = earlier_files(out)
        model = load_keras_model(model_path)
        mine = sorted(p.name for p in out.iterdir() if p.name not in earlier) if out.is_dir() else []
        clash = sorted(set(mine) & written_names(model.name))
        if clash:
            raise EdgeDigitsError(f"--out {out}: holds {clash[0]}, which the earlier conversion did not write and "
                                  f"this one would replace; move it away or choose another folder")
        with atomic_folder(out) as stage:
            ok = _convert_into(stage, model, Path(model_path), formats, cfg, say)
            _keep_user_files(out, stage, earlier)
    manifest = out / NAME
    say(f"manifest: {manifest}")
    return manifest, ok


def _convert_into(out: Path, model, model_path: Path, formats, cfg: ConvertConfig, say) -> bool:
    name = model.name
    calib, check, split = check_digits(cfg, model_path, say)
    say(f"converting {model_path} ({name}, {model.count_params():,} parameters) to "
        f"{', '.join(f.name for f in formats)}")
    how = "" if cfg.check_split == "test" else \
        f" (fraction {split['val_fraction']}, seed {split['seed']}, from {split['from']})"
    say(f"calibration: {len(calib)} training digits; check: {len(check)} digits of {check.source}{how}")
    keras_pred = np.argmax(model.predict(to_float(check.images), batch_size=1000, verbose=0), axis=1)
    keras_acc = float(np.mean(keras_pred == check.labels))

    source = out / f"{name}.keras"
    atomic_write(source, lambda tmp: shutil.copyfile(model_path, tmp))
    card = model_path.with_name("model_card.md")
    labels, data_id = run_classes(model_path)
    metadata = {"labels": labels, "preprocessing": PREPROCESSING, "source_sha256": sha256_file(source), **data_id}
    entries = []
    from edgedigits.progress import progress, say_above

    with X.new_workdir(out) as work:
        ctx = X.ExportContext(model, calib, Path(work), cfg.opset, cfg.int8_io, metadata)
        bar = progress(formats, desc="convert", unit="format", quiet=cfg.quiet)
        row_say = say_above(bar, say)
        for f in bar:
            bar.set_postfix_str(f.name, refresh=True)
            t0 = time.perf_counter()
            entry = {"format": f.name, "precision": f.precision, "runtime": f.runtime, "devices": f.devices}
            try:
                path = X.EXPORTS[f.name](ctx, out / f"{name}{f.suffix}")
            except EdgeDigitsError as e:
                entry.update(status="export_failed", reason=str(e), file=None)
            except Exception as e:  # a converter's own failure: recorded in the row, the others go on
                if is_disk_full(e):  # not the converter's: the whole conversion stops, the earlier one kept
                    raise
                entry.update(status="export_failed", reason=f"{type(e).__name__}: {X.first_line(e)}", file=None)
            else:
                ctx.artifacts[f.name] = path
                entry.update(file=path.name, sha256=sha256_file(path), size_bytes=path.stat().st_size)
                entry.update(check_artifact(path, f, check, keras_pred, cfg.tolerance_pp))
                if f.name in ctx.reports:
                    entry["details"] = ctx.reports[f.name].summary()
            entry["seconds"] = round(time.perf_counter() - t0, 2)
            entries.append(entry)
            row_say(_row(entry))
        if cfg.explain and "tflite_int8" in ctx.artifacts:
            from edgedigits.convert.explain import explain_int8

            say(explain_int8(ctx, out / f"{name}.int8-layers.csv"))

    manifest = write_manifest(out, {  # the manifest module adds the schema, the time and the version
        "labels": labels, "preprocessing": PREPROCESSING,
        "source": {"file": source.name, "sha256": sha256_file(source), "model": name,
                   "parameters": int(model.count_params()),
                   # as text: no HTML tag of a class name or path written by an older version stays live
                   "card": card.read_text().replace("<", "&lt;") if card.is_file() else "",
                   "training_data": {**{k: v for k, v in (training_split(model_path) or {}).items()
                                        if k in ("data", "data_source", "data_sha256")}, **data_id} or None},
        "check": {"data": check.source, "digits": len(check), "split": cfg.check_split,
                  "val_split": None if cfg.check_split == "test" else split,
                  "tolerance_pp": cfg.tolerance_pp, "keras_accuracy": keras_acc},
        "artifacts": entries,
    })
    load_manifest(manifest)  # read back what deploy will read
    say(summary_table(entries, keras_acc, len(check)))
    if "edgetpu" in ctx.reports:
        say(ctx.reports["edgetpu"].text())
    failed = [e for e in entries if e["status"] != "passed"]
    if any(e["format"] == "tflite_int8" and e["status"] == "check_failed" for e in entries) and not cfg.explain:
        say("int8 lost accuracy: run again with --explain to see the per-layer quantization error")
    return not failed


def _row(e: dict) -> str:
    if e["status"] == "export_failed":
        return f"  {e['format']:<17} export failed: {e['reason']}"
    return (f"  {e['format']:<17} {e['file']:<32} {e['size_bytes'] / 1024:7.1f} KiB  acc {e['accuracy']:.2%}  "
            f"{e['status']}  ({e['seconds']:.1f} s)")


def summary_table(entries: list[dict], keras_acc: float, n: int) -> str:
    lines = [f"\n{'format':<17} {'size KiB':>9} {'accuracy':>9} {'delta pp':>9} {'agreement':>10}  status",
             f"{'keras':<17} {'':>9} {keras_acc:>9.2%} {'':>9} {'':>10}  baseline ({n} digits)"]
    for e in entries:
        if e["status"] == "export_failed":
            lines.append(f"{e['format']:<17} {'-':>9} {'-':>9} {'-':>9} {'-':>10}  export_failed: {e['reason'][:80]}")
            continue
        lines.append(f"{e['format']:<17} {e['size_bytes'] / 1024:>9.1f} {e['accuracy']:>9.2%} {e['delta_pp']:>+9.2f} "
                     f"{e['agreement']:>10.2%}  {e['status']}{': ' + e['reason'] if e['reason'] else ''}")
    return "\n".join(lines)
