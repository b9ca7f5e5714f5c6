# Time to 99.6% validation accuracy of 'standard' on one GPU (issue 14): `edgedigits benchmark train`
# on full MNIST, JAX backend, the wall clock from the start of each run (imports, data loading,
# augmentation, compilation and validation included), read off the run's history.
#
# For a machine with one GPU, Python 3.12, JAX with CUDA, no TensorFlow and no network. Run from the
# repository root, with two folders that .gitignore ignores, carried along:
#   .whl/    exactly keras==3.15.1 namex==0.1.0 optree==0.20.0 (cp312 manylinux x86_64), the packages
#            Keras needs that such a machine lacks; absl-py, h5py, ml-dtypes, numpy, packaging, rich,
#            typing-extensions, matplotlib and pillow are there already. On the machine with pip:
#              python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#                --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#                --platform manylinux2014_x86_64 -d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0
#   .mnist/  the four MNIST .gz files (mkdir .mnist && cp ../shared/data/mnist/*.gz .mnist/)
# then:  bash docs/sweep/time_to_accuracy.sh      (about 3 to 4 minutes; figures at the end and in $OUT)
#
# Each configuration stops as soon as validation accuracy reaches UNTIL, so a fast one is cheap; the
# next starts only while the budget (BUDGET seconds since this script started) allows, and each run
# is cut at RUN_LIMIT seconds (its history.csv still holds every epoch it finished).
set -u
T0=$(date +%s)
W=${W:-/tmp/tta}    # scratch: installed packages, this package, MNIST
OUT=${OUT:-$W/out}; mkdir -p "$OUT" "$W"
UNTIL=${UNTIL:-99.6}; BUDGET=${BUDGET:-150}; RUN_LIMIT=${RUN_LIMIT:-110}
# epochs (the cosine schedule's length) and batch per step; the first is the main measurement
CONFIGS=${CONFIGS:-"20:128 30:128 15:256"}
EXTRA=${EXTRA:-}    # more options for every run, e.g. "--limit 2000" for a rehearsal on a CPU

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $W/site .whl/*.whl || exit 1
# this package, laid out as installed (train/ is edgedigits.train, ...), without building a wheel
rm -rf $W/pkg && mkdir -p $W/pkg/edgedigits && cp -r edgedigits/. $W/pkg/edgedigits/ || exit 1
for d in train convert deploy tools; do cp -r "$d" "$W/pkg/edgedigits/$d" || exit 1; done
rm -rf $W/mnist && cp -r .mnist $W/mnist || exit 1
export PYTHONPATH=$W/pkg:$W/site PYTHONUNBUFFERED=1 KERAS_BACKEND=jax TF_CPP_MIN_LOG_LEVEL=3
cd "$W"  # not the checkout, whose edgedigits/ folder (without the stages) would shadow the laid-out package

nvidia-smi -L
python3 - <<'EOF' || exit 1
import importlib.util, jax, keras
print("jax", jax.__version__, jax.devices(), "keras", keras.__version__,
      "tensorflow installed:", importlib.util.find_spec("tensorflow") is not None)
EOF

n=0
for c in $CONFIGS; do
  n=$((n + 1)); epochs=${c%%:*}; batch=${c##*:}
  elapsed=$(( $(date +%s) - T0 ))
  if [ "$n" -gt 1 ] && [ "$elapsed" -gt "$BUDGET" ]; then echo "budget: skipping $c ($elapsed s gone)"; continue; fi
  echo "=== run $n: --epochs $epochs --batch-size $batch --until $UNTIL ($elapsed s gone)"
  timeout "$RUN_LIMIT" python3 -m edgedigits benchmark train --data $W/mnist --model standard $EXTRA \
    --until "$UNTIL" --epochs "$epochs" --batch-size "$batch" --json "$OUT/tta$n.json" 2>&1  # ($OUT: at most 8 files come back)
  h=$(ls -dt runs/bench/standard-*/ 2>/dev/null | head -1)
  if [ -n "$h" ]; then
    cp "$h/history.csv" "$OUT/history$n.csv"
    python3 - "$h/history.csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print("epoch  val_acc  seconds  train_s  wall_s")
for r in rows:
    print(f"{r['epoch']:>5} {float(r['val_accuracy']):8.2%} {float(r['seconds']):8.2f} "
          f"{float(r['train_seconds']):8.2f} {float(r['wall_seconds']):7.1f}")
EOF
  fi
done
echo "total $(( $(date +%s) - T0 )) s"
