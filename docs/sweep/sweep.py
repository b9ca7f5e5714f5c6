"""Train every candidate at once on one GPU within a wall-clock budget; choose on validation only.

Phase 1 (probe): each candidate trains 2 short epochs (--limit) concurrently, to time an epoch under
the same contention. Phase 2: each trains on the full training split for as many epochs as fit the
budget (capped), concurrently. Selection per family: highest validation accuracy, then lowest
validation loss. Run folders are packed into $OUT.
"""
import csv, json, os, signal, subprocess, sys, tarfile, time
from pathlib import Path

T0 = time.time()
BUDGET = float(os.environ.get("SWEEP_SECONDS", 530))
LIMIT = int(os.environ.get("SWEEP_LIMIT", 0))          # local rehearsal: fewer digits
PROBE_LIMIT = int(os.environ.get("SWEEP_PROBE_LIMIT", 10000))
OUT = Path(os.environ.get("OUT", "/tmp/sweep-out"))
WORK = Path(os.environ.get("SWEEP_WORK", "/tmp/sweep"))
DATA = os.environ.get("SWEEP_DATA", ".gpu/mnist")
TRAIN_DIGITS = 54000

# id, candidate, augment strength, seed, epoch cap
RUNS = [
    ("s1", "standard", 1.0, 0, 80), ("s2", "standard", 1.0, 1, 80),
    ("s3", "standard", 0.7, 0, 80), ("s4", "standard", 0.7, 1, 80),
    ("t1", "tiny_a", 0.5, 0, 80), ("t2", "tiny_b", 0.5, 0, 80), ("t3", "tiny_c", 0.5, 0, 80),
    ("t4", "tiny_b", 1.0, 0, 80), ("t5", "tiny_c", 1.0, 0, 80), ("t6", "tiny_c", 0.25, 0, 80),
]
ONLY = os.environ.get("SWEEP_ONLY")
if ONLY:
    RUNS = [r for r in RUNS if r[0] in ONLY.split(",")]


def log(*a):
    print(f"[{time.time() - T0:6.1f}s]", *a, flush=True)


def launch(run, epochs, out, limit):
    rid, cand, aug, seed, _ = run
    family = cand.split("_")[0]
    cmd = [sys.executable, ".gpu/train_one.py", cand, "train", "--model", family, "--data", DATA,
           "--epochs", str(epochs), "--augment", str(aug), "--seed", str(seed), "--patience", "20",
           "--backend", "jax", "--out", str(out)] + (["--limit", str(limit)] if limit else [])
    f = open(WORK / f"{out.name}.log", "w")
    return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def wait_all(procs, deadline):
    while time.time() < deadline and any(p.poll() is None for p in procs.values()):
        time.sleep(2)
    for rid, p in procs.items():
        if p.poll() is None:
            log(f"{rid}: still running at the deadline, killed")
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def history(run_dir):
    f = run_dir / "history.csv"
    return list(csv.DictReader(open(f))) if f.exists() else []


def main():
    WORK.mkdir(parents=True, exist_ok=True)
    OUT.mkdir(parents=True, exist_ok=True)
    # phase 1: probe
    procs = {r[0]: launch(r, 2, WORK / f"probe-{r[0]}", PROBE_LIMIT) for r in RUNS}
    t_launch = time.time()
    wait_all(procs, T0 + BUDGET * 0.35)
    probe_wall = time.time() - t_launch
    per_epoch, overhead = {}, {}
    for r in RUNS:
        h = history(WORK / f"probe-{r[0]}")
        if len(h) < 2:
            log(f"{r[0]}: probe failed; see", WORK / f"probe-{r[0]}.log")
            print(open(WORK / f"probe-{r[0]}.log").read()[-3000:])
            continue
        train_n = LIMIT or TRAIN_DIGITS
        per_epoch[r[0]] = float(h[1]["seconds"]) * train_n / PROBE_LIMIT * 1.15
        overhead[r[0]] = probe_wall - sum(float(x["seconds"]) for x in h)
        log(f"{r[0]}: probe epoch {h[1]['seconds']} s -> full epoch ~{per_epoch[r[0]]:.1f} s, "
            f"overhead {overhead[r[0]]:.0f} s")
    # phase 2: full runs
    left = T0 + BUDGET - time.time()
    procs = {}
    for r in RUNS:
        if r[0] not in per_epoch:
            continue
        epochs = int(max(8, min(r[4], (left - overhead[r[0]] - 45) / per_epoch[r[0]])))
        log(f"{r[0]}: {r[1]} augment {r[2]} seed {r[3]}: {epochs} epochs")
        procs[r[0]] = launch(r, epochs, WORK / r[0], LIMIT)
    wait_all(procs, T0 + BUDGET)
    # report and choose on validation
    rows = []
    for r in RUNS:
        d = WORK / r[0]
        m = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").exists() else {}
        h = history(d)
        rows.append((r, m, h))
        log(r[0], r[1:4], f"epochs {len(h)}", {k: m.get(k) for k in (
            "parameters", "best_epoch", "val_accuracy", "val_loss", "seconds_per_epoch", "device")})
    for fam in ("standard", "tiny"):
        done = [(r, m) for r, m, h in rows if r[1].startswith(fam) and m]
        if done:
            r, m = max(done, key=lambda rm: (rm[1]["val_accuracy"], -rm[1]["val_loss"]))
            log(f"chosen {fam}: {r[0]} {r[1:4]} val {m['val_accuracy']:.4%} loss {m['val_loss']:.4f}")
    for fam in ("s", "t"):
        with tarfile.open(OUT / f"runs-{fam}.tar.gz", "w:gz") as tar:
            for r in RUNS:
                if r[0].startswith(fam):
                    for p in [WORK / r[0], WORK / f"{r[0]}.log", WORK / f"probe-{r[0]}.log"]:
                        if p.exists():
                            tar.add(p, arcname=p.name, filter=lambda ti: None if ti.name.endswith(".h5") else ti)  # checkpoint weights
    log("packed", sorted(x.name for x in OUT.iterdir()))


main()
