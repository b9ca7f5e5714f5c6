"""`edgedigits benchmark`: the Keras model and every artifact of a manifest, side by side, in one run.

Each row runs in a fresh worker process of its own, one after another, so every format starts under
the same conditions and its load time and peak memory are its own. Latency is measured the way a
device calls the model: one image at a time through the deploy runner, with the thread count stated.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from edgedigits.errors import EdgeDigitsError


def cpu_name() -> str:
    """The CPU's model as the kernel names it, and its widest vector instructions ("AMD EPYC 7B13, AVX2",
    "Intel(R) Xeon(R) Processor, AVX-512 VNNI"): speed figures are a machine's, and these shared machines
    differ (int8 runs on int8 dot products, VNNI, where the CPU has them). platform.processor() where
    /proc/cpuinfo has no model name (macOS, Windows, some ARM boards)."""
    try:
        info = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        info = []
    name = next((" ".join(line.split(":", 1)[1].split()) for line in info
                 if line.lower().startswith(("model name", "hardware")) and ":" in line), "")
    flags = next((set(line.split(":", 1)[1].split()) for line in info if line.startswith("flags")), set())
    isa = ("AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "") + \
        (" VNNI" if flags & {"avx512_vnni", "avx_vnni"} else "")
    if name:
        return f"{name}, {isa}" if isa else name
    return platform.processor() or platform.machine()


SCHEMA_VERSION = 1
KERAS = "keras"


@dataclass
class BenchConfig:
    threads: int = 1
    runs: int = 500  # batch-1 latency samples after warm-up
    warmup: int = 50
    batches: tuple[int, ...] = (32, 256)  # throughput batch sizes
    data: str = "auto"  # test digits: full MNIST test set when cached, else the bundled sample's
    limit: int = 0
    target: str = "cpu"


# ------------------------------------------------------------------------------ the worker (a child)
def _percentiles(samples: list[float]) -> dict:
    ms = np.asarray(samples) * 1000
    return {f"p{q}_ms": float(np.percentile(ms, q)) for q in (50, 95, 99)}


def _load(kind: str, path: str, threads: int, target: str):
    """A callable (N,28,28) uint8 -> (N,10) for one row, and a batch-1 callable for latency."""
    from edgedigits.contract import to_float
    from edgedigits.deploy.runners import open_runner
    from edgedigits.formats import FORMATS

    if kind == KERAS:
        from edgedigits.quiet import import_tensorflow

        tf = import_tensorflow()

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        from edgedigits.train.io import load_keras_model

        model = load_keras_model(path)

        def run(d):  # predict_on_batch: Keras' lowest-overhead call, the fair baseline
            return np.asarray(model.predict_on_batch(to_float(d)))
        return run
    return open_runner(path, FORMATS[kind].runtime, threads, "edgetpu" if kind == "edgetpu" and target == "edgetpu" else "cpu")


def memory_mb() -> dict:
    """This process's resident memory now (VmRSS) and its peak (VmHWM), in MB, from /proc/self/status.

    Not ru_maxrss: Linux carries the parent's maximum across fork and exec, so a child started by a
    313 MB parent reports at least 313 MB whatever it does. VmHWM belongs to the process's own memory
    map, which exec replaces. Empty where /proc is missing (not Linux)."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM") if k in fields}  # kB -> MB


def _reset_peak() -> bool:
    """Start VmHWM afresh from the current resident memory (Linux 4.0+: write 5 to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def worker(spec: dict) -> dict:
    """Measure one row. spec: kind, path, threads, runs, warmup, batches, data(npz path), target."""
    with np.load(spec["data"]) as z:
        x, y = z["x"], z["y"]
    # the baseline: this worker with its digits loaded, before the runtime is imported
    base = memory_mb()
    _reset_peak()  # so the peak below is reached after the baseline, by the runtime
    t0 = time.perf_counter()
    run = _load(spec["kind"], spec["path"], spec["threads"], spec["target"])
    load_s = time.perf_counter() - t0
    loaded = memory_mb()
    t0 = time.perf_counter()
    run(x[:1])
    first_s = time.perf_counter() - t0
    for i in range(spec["warmup"]):
        run(x[i % len(x): i % len(x) + 1])
    lat = []
    for i in range(spec["runs"]):
        j = i % len(x)
        t0 = time.perf_counter()
        run(x[j:j + 1])
        lat.append(time.perf_counter() - t0)
    throughput = {}
    for b in spec["batches"]:
        xb = x[:b] if len(x) >= b else np.resize(x, (b, *x.shape[1:]))
        run(xb)  # warm-up at this size (a resize for LiteRT)
        reps = max(3, 2000 // b)
        t0 = time.perf_counter()
        for _ in range(reps):
            run(xb)
        throughput[str(b)] = b * reps / (time.perf_counter() - t0)
    bs = 256
    pred = np.concatenate([run(x[i:i + bs]).argmax(1) for i in range(0, len(x), bs)])
    end = memory_mb()
    out = {"load_ms": load_s * 1000, "first_inference_ms": first_s * 1000, **_percentiles(lat),
           "throughput": throughput, "accuracy": float(np.mean(pred == y)), "pred": pred.tolist()}
    if base and end:
        # runtime_mb: what this runtime added to the worker at its peak (import, model, runs up to
        # batch 256), above the baseline; the other figures are the whole worker's, for reference
        out.update(baseline_rss_mb=base["VmRSS"], loaded_rss_mb=loaded["VmRSS"], end_rss_mb=end["VmRSS"],
                   peak_rss_mb=end["VmHWM"], runtime_mb=end["VmHWM"] - base["VmRSS"])
    return out


def _worker_main() -> None:
    spec = json.loads(sys.argv[2])
    try:
        out = worker(spec)
    except Exception as e:  # report in the row; the parent carries on with the others
        out = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
    print("@@RESULT@@" + json.dumps(out))


# ----------------------------------------------------------------------------------- the parent
def run_row(kind: str, path: Path, data_npz: Path, cfg: BenchConfig, timeout_s: int = 600) -> dict:
    spec = {"kind": kind, "path": str(path), "threads": cfg.threads, "runs": cfg.runs, "warmup": cfg.warmup,
            "batches": list(cfg.batches), "data": str(data_npz), "target": cfg.target}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": str(cfg.threads)}
    try:
        proc = subprocess.run([sys.executable, "-m", "edgedigits.tools.benchmark", "--worker", json.dumps(spec)],
                              capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("@@RESULT@@"):
            return json.loads(line[len("@@RESULT@@"):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"worker exited {proc.returncode}: {tail}"}


def test_digits(cfg: BenchConfig, say=print, trained_on: dict | None = None):
    """The test digits. Without --data, those of the data the model was trained on, when the manifest
    says which (a model trained on other digits than MNIST is not benchmarked on MNIST by default)."""
    from edgedigits.train import data as D

    ds, data, other = D.load_trained_on(cfg.data, trained_on, say)
    if other:
        what = f"the model was trained on {trained_on['data_source']}, but '{data}' holds {other}"
        if cfg.data == "auto":
            raise EdgeDigitsError(f"{what}: give the test digits to benchmark on with --data")
        say(f"notice: {what}; benchmarking on its test set as --data asks")
    if ds.test is None:
        raise EdgeDigitsError(f"{data}: has no test set to benchmark on")
    test = ds.test if not cfg.limit or cfg.limit >= len(ds.test) else D.stratified(ds.test, cfg.limit, seed=3)
    return test


def library_versions() -> dict:
    out = {"python": platform.python_version()}
    for n in ("edgedigits", "tensorflow", "keras", "ai-edge-litert", "tflite-runtime", "onnxruntime", "numpy", "opencv-python"):
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    return out


def benchmark(manifest_path: Path, cfg: BenchConfig, workdir: Path, say=print, quiet: bool = False) -> dict:
    """The report; a progress bar per row on a terminal unless quiet."""
    from edgedigits.manifest import load_manifest

    m = load_manifest(manifest_path)
    test = test_digits(cfg, say, m.data["source"].get("training_data"))
    data_npz = workdir / "bench_digits.npz"
    np.savez(data_npz, x=test.images, y=test.labels)
    say(f"benchmarking {m.path} on {len(test)} digits of {test.source}; {cfg.threads} thread(s), "
        f"{cfg.runs} batch-1 runs per row")
    rows = []
    baseline_pred = None
    entries = [{"format": KERAS, "file": m.data["source"]["file"], "precision": "float32", "runtime": "keras",
                "status": "passed", "reason": ""}] + m.artifacts
    from edgedigits.progress import progress, say_above

    bar = progress(entries, desc="benchmark", unit="row", quiet=quiet)
    say = say_above(bar, say)
    for e in bar:
        bar.set_postfix_str(e["format"], refresh=True)
        row = {k: e.get(k) for k in ("format", "file", "precision", "runtime")}
        row["status"], row["reason"] = e["status"], e.get("reason", "")
        path = m.folder / e["file"] if e.get("file") else None
        row["size_bytes"] = path.stat().st_size if path else None
        if e["status"] == "export_failed":
            rows.append(row)
            say(f"  {row['format']:<17} export failed: {row['reason']}")
            continue
        kind = e["format"]  # keras, or a row of the format table: its runtime runs it
        if kind == "edgetpu" and cfg.target != "edgetpu":
            row.update(status="skipped", reason="Edge TPU rows run with --target edgetpu")
            rows.append(row)
            continue
        if kind == "edgetpu" and not (e.get("details") or {}).get("compiled"):
            # the .edgetpu-ready file is plain int8 TFLite: timed, it would be the CPU under the Edge TPU's name
            row.update(status="skipped", reason=f"{e['file']} is not compiled for the Edge TPU (edgetpu_compiler "
                       "was not installed at conversion); compile it and convert again")
            rows.append(row)
            say(f"  {row['format']:<17} skipped: {row['reason']}")
            continue
        r = run_row(kind, path, data_npz, cfg)
        if "error" in r:
            if kind == "edgetpu":
                row.update(status="skipped", reason=f"no Edge TPU: {r['error']}")
            else:
                row.update(status="run_failed", reason=r["error"])
            rows.append(row)
            say(f"  {row['format']:<17} {row['status']}: {row['reason']}")
            continue
        pred = np.asarray(r.pop("pred"))
        if baseline_pred is None and e["format"] == KERAS:
            baseline_pred = pred
        row.update(r)
        row["agreement"] = float(np.mean(pred == baseline_pred)) if baseline_pred is not None else None
        rows.append(row)
        say(f"  {row['format']:<17} acc {row['accuracy']:.2%}  p50 {row['p50_ms']:.3f} ms")
    base = rows[0] if rows and rows[0]["format"] == KERAS and "accuracy" in rows[0] else None
    for row in rows:
        if base and "accuracy" in row:
            row["delta_pp"] = 100 * (row["accuracy"] - base["accuracy"])
            row["speedup_vs_keras"] = base["p50_ms"] / row["p50_ms"]
    return {"schema_version": SCHEMA_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "manifest": str(m.path), "model": m.data["source"]["model"], "data": test.source,
            "digits": len(test), "threads": cfg.threads, "runs": cfg.runs,
            "options": {**asdict(cfg), "batches": list(cfg.batches)},  # what shaped this report
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpu": cpu_name(), "cpus": os.cpu_count()},
            "libraries": library_versions(), "rows": rows}


# ---------------------------------------------------------------------------------- reporting
COLUMNS = [("format", "{}"), ("precision", "{}"), ("size KiB", "{:.1f}"), ("accuracy", "{:.2%}"),
           ("delta pp", "{:+.2f}"), ("agree", "{:.2%}"), ("load ms", "{:.1f}"), ("first ms", "{:.2f}"),
           ("p50 ms", "{:.3f}"), ("p95 ms", "{:.3f}"), ("p99 ms", "{:.3f}"), ("x keras", "{:.1f}"),
           ("img/s b32", "{:.0f}"), ("img/s b256", "{:.0f}"), ("mem MB", "{:.1f}"), ("status", "{}")]


def _cells(row: dict) -> list[str]:
    vals = [row["format"], (row.get("precision") or "").split(",")[0],
            row["size_bytes"] / 1024 if row.get("size_bytes") else None, row.get("accuracy"),
            row.get("delta_pp"), row.get("agreement"), row.get("load_ms"), row.get("first_inference_ms"),
            row.get("p50_ms"), row.get("p95_ms"), row.get("p99_ms"), row.get("speedup_vs_keras"),
            (row.get("throughput") or {}).get("32"), (row.get("throughput") or {}).get("256"),
            row.get("runtime_mb"), row["status"] + (f" ({row['reason'][:60]})" if row.get("reason") else "")]
    return ["-" if v is None else fmt.format(v) for v, (_, fmt) in zip(vals, COLUMNS)]


def table(report: dict) -> str:
    cells = [[c for c, _ in COLUMNS]] + [_cells(r) for r in report["rows"]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) if i in (0, 1, len(COLUMNS) - 1) else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))) for r in cells)


def markdown(report: dict, command: str = "") -> str:
    """The report as Markdown: every value the user named (model, data, a failure's reason) as text."""
    from edgedigits.markdown import code, text

    head = "| " + " | ".join(c for c, _ in COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    body = "".join("| " + " | ".join(map(text, _cells(r))) + " |\n" for r in report["rows"])
    libs = text(", ".join(f"{k} {v}" for k, v in report["libraries"].items()))
    return (f"Model {code(report['model'])}, {report['digits']} digits of {text(report['data'])}; batch-1 latency over "
            f"{report['runs']} runs with {report['threads']} thread(s); each row in a fresh process. mem MB: "
            f"the row's runtime at its peak (import, model, runs up to batch 256), above the worker's own "
            f"resident memory before it imported the runtime (VmHWM - VmRSS, /proc/self/status).\n\n"
            + head + body + f"\nMachine: {text(report['machine'].get('cpu') or report['machine']['processor'])}, "
            f"{report['machine']['cpus']} CPUs, "
            f"{text(report['machine']['platform'])}. Libraries: {libs}. Generated {report['created']}"
            + (f" by {code(command)}" if command else "") + ".\n")


def plot(report: dict, path: Path) -> list:
    """Accuracy against latency as PNG. Returns the labels' boxes in pixels (no two overlap)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.text import Text
    from matplotlib.ticker import FuncFormatter

    rows = sorted((r for r in report["rows"] if "p50_ms" in r), key=lambda r: r["p50_ms"])
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for r in rows:
        ax.scatter(r["p50_ms"], 100 * r["accuracy"], s=max(20, r["size_bytes"] / 1024), alpha=0.6)
    accs = [100 * r["accuracy"] for r in rows]
    ax.set_ylim(min(accs) - 0.15, max(accs) + 0.15)
    ax.set(xscale="log", xlabel=f"batch-1 latency p50, ms (log scale; {report['threads']} thread)",
           ylabel=f"accuracy on {report['digits']} test digits, %",
           title=f"{report['model']}: accuracy against latency (marker area: file size)")
    def tick(x, _, minor=False):  # plain numbers; between powers of ten only 2, 3 and 5 (no crowding)
        mantissa = x / 10 ** np.floor(np.log10(x))
        return f"{x:g}" if not minor or any(abs(mantissa - m) < 1e-6 for m in (2, 3, 5)) else ""

    ax.xaxis.set_major_formatter(FuncFormatter(tick))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, pos: tick(x, pos, minor=True)))
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    # Formats often share an accuracy and sit close in latency: place each label at the first height
    # (above, below, further out) where it overlaps no label placed before it, with a line to its point.
    renderer = fig.canvas.get_renderer()
    placed = []
    right = ax.get_window_extent(renderer).x1
    for r in rows:
        xy = (r["p50_ms"], 100 * r["accuracy"])
        left = ax.transData.transform(xy)[0] > right - 150  # near the right edge: label to the left
        for dy in (10, -16, 26, -32, 42, -48, 58, -64, 74, -80):
            ann = ax.annotate(f"{r['format']} ({r['size_bytes'] / 1024:.0f} KiB)", xy, fontsize=8,
                              xytext=(-6 if left else 6, dy), textcoords="offset points", va="center",
                              ha="right" if left else "left",
                              arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.6}, annotation_clip=False)
            ann.update_positions(renderer)
            box = Text.get_window_extent(ann, renderer)  # the text alone, without its line
            if not any(box.overlaps(b) for b in placed):
                break
            ann.remove()
        else:
            ann = ax.annotate(r["format"], xy, fontsize=8)
            box = Text.get_window_extent(ann, renderer)
        placed.append(box)
    from edgedigits.atomic import atomic_write

    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return [tuple(b.bounds) for b in placed]


# --------------------------------------------------------------------------------------- gates
def gates(report: dict, min_accuracy: float | None, max_drop: float | None, compare: dict | None,
          tolerance: float = 0.25, accuracy_tolerance_pp: float = 0.1) -> list[str]:
    """Failures, as sentences. min_accuracy in percent; max_drop in points against the Keras row."""
    if min_accuracy is None and max_drop is None and compare is None:
        return []  # no gate asked for: the table reports, it does not judge
    fails = []
    rows = {r["format"]: r for r in report["rows"]}
    for r in report["rows"]:
        if r["status"] in ("check_failed", "export_failed", "run_failed"):
            fails.append(f"{r['format']}: {r['status']}: {r.get('reason', '')}")
        if "accuracy" not in r:
            continue
        if min_accuracy is not None and 100 * r["accuracy"] < min_accuracy:
            fails.append(f"{r['format']}: accuracy {r['accuracy']:.2%} is below --min-accuracy {min_accuracy}%")
        if max_drop is not None and r.get("delta_pp") is not None and -r["delta_pp"] > max_drop:
            fails.append(f"{r['format']}: {-r['delta_pp']:.2f} points below Keras, more than --max-drop {max_drop}")
    for old in (compare or {}).get("rows", []):
        new = rows.get(old["format"])
        if not new or "accuracy" not in new or "accuracy" not in old:
            continue
        if 100 * (old["accuracy"] - new["accuracy"]) > accuracy_tolerance_pp:
            fails.append(f"{old['format']}: accuracy fell from {old['accuracy']:.2%} to {new['accuracy']:.2%}")
        # latency is compared as the ratio to Keras measured in the same run: machines differ, ratios hold
        if old.get("speedup_vs_keras") and new.get("speedup_vs_keras") and old["format"] != KERAS:
            if new["speedup_vs_keras"] < old["speedup_vs_keras"] * (1 - tolerance):
                fails.append(f"{old['format']}: {new['speedup_vs_keras']:.1f}x Keras, was "
                             f"{old['speedup_vs_keras']:.1f}x (more than {tolerance:.0%} slower)")
    return fails


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "--worker":
    _worker_main()
