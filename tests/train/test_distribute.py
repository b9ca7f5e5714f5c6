"""Data-parallel training without a GPU: two XLA host devices in one process, and two processes on
127.0.0.1 (JAX's CPU collectives). Each is a short run on the bundled sample, checked against a
single-device run of the same global batch and learning rate, and its model loads under TensorFlow."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import QUICK_XLA, run_cli

pytest.importorskip("jax")

# tiny on 1,000 digits, 2 epochs; per device 32 digits, so the global batch is 64 on two devices
RUN = ["train", "--backend", "jax", "--model", "tiny", "--data", "sample", "--limit", "1000", "--epochs", "2"]
TWO_HOST_DEVICES = {"XLA_FLAGS": f"--xla_force_host_platform_device_count=2 {QUICK_XLA}", "KERAS_BACKEND": "jax"}


def _history(run_dir):
    return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(open(run_dir / "history.csv"))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _matches(run, reference):
    """The same training within noise: the same global batch, steps and learning rate; only the order
    of floating-point sums differs (and, across processes, the shuffling of each shard). Compared over
    the epochs `run` trained."""
    a, b = _history(run), _history(reference)
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b][: len(a)]
    for x, y in zip(a, b):
        # measured: loss within 0.023 and training accuracy within 4.4 points (two processes' shards,
        # first epoch); two devices of one process within 0.002 and 0.4. A run whose devices did not
        # average their gradients, or whose steps or data differ, is further apart
        assert abs(x["loss"] - y["loss"]) < 0.05, (a, b)
        assert abs(x["accuracy"] - y["accuracy"]) < 0.06, (a, b)
        assert x["learning_rate"] == pytest.approx(y["learning_rate"], rel=1e-5)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (run, reference))
    # validation accuracy is not compared: after 32 steps BatchNorm's moving statistics still hold their
    # start, and every run here reads the 200 validation digits at chance (10%)
    return ma


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    """One device, global batch 64, the learning rate that two devices of 32 train with (3e-3 x sqrt 2)."""
    out = tmp_path_factory.mktemp("dist") / "one"
    code, _, err = run_cli(*RUN, "--devices", "1", "--batch-size", "64", "--lr", str(3e-3 * 2**0.5),
                           "--out", str(out), env=TWO_HOST_DEVICES)
    assert code == 0, err
    return out


@pytest.mark.slow
def test_two_devices_split_each_batch_and_match_one(one_device, tmp_path):
    """Through `benchmark train`, which then also shows time to accuracy: every device JAX sees is used
    (two here), 32 digits each; --until 1 is reached after the first epoch, which stops the run."""
    code, out, err = run_cli("benchmark", "train", "--model", "tiny", "--data", "sample", "--limit", "1000",
                             "--epochs", "2", "--batch-size", "32", "--until", "1", "--json", str(tmp_path / "t.json"),
                             env=TWO_HOST_DEVICES, cwd=tmp_path)
    assert code == 0, err
    assert "data parallel: 2 devices, 32 digits each, global batch 64" in out
    assert "reached --until 1%" in out and "to 1%" in out and "2 x CPU" in out
    row, = json.loads((tmp_path / "t.json").read_text())["rows"]
    run = tmp_path / row["run_dir"]
    m = _matches(run, one_device)  # its one epoch against the one-device run's first
    assert m["devices"] == 2 and m["mesh"] == ["cpu:0", "cpu:1"] and m["global_batch"] == 64
    assert m["peak_learning_rate"] == pytest.approx(3e-3 * 2**0.5)
    assert m["steps_per_process"] == [16] and m["epochs_trained"] == 1  # 1,000 digits / 64; stopped at --until
    assert m["time_to_accuracy"] == {"percent": 1.0, "epoch": 1, "wall_seconds": _history(run)[0]["wall_seconds"]}
    assert m["images_per_second"] > 0 and m["first_epoch_seconds"] > 0 and m["setup_seconds"] > 0
    assert json.loads((run / "config.json").read_text())["devices"] == 2
    one = _history(one_device)
    assert 0 < one[0]["wall_seconds"] < one[1]["wall_seconds"] and one[1]["train_seconds"] <= one[1]["seconds"]

    # the model is a plain single-device model: it loads under TensorFlow and converts
    import keras

    from edgedigits.convert.convert import ConvertConfig, convert

    assert keras.backend.backend() == "tensorflow"
    manifest, passed = convert(run / "model.keras", tmp_path / "c", ConvertConfig(
        data="sample", formats=["tflite_fp32"], calibration_size=50, check_limit=200),
        say=lambda *_: None)
    assert passed and manifest.is_file() and (tmp_path / "c" / "tiny.fp32.tflite").is_file()


@pytest.mark.slow
def test_two_processes_shard_the_data_resume_and_match_one(one_device, tmp_path):
    """Two processes of one device each (global batch 64): each trains on its half; process 0 alone
    writes the run folder. Killed after the first epoch and resumed, the other process reading no file."""
    run_dir, elsewhere = tmp_path / "run", tmp_path / "process1-has-no-folder"
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3", "XLA_FLAGS": QUICK_XLA}

    def start(i, port, *extra):
        args = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i)]
        return subprocess.Popen([sys.executable, "-m", "edgedigits", *extra, *args], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    port = _free_port()
    procs = [start(i, port, *RUN, "--batch-size", "32", "--out", str(d)) for i, d in enumerate((run_dir, elsewhere))]
    state = run_dir / "checkpoint" / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline and not (state.exists() and json.loads(state.read_text())["epoch"] >= 1):
        assert all(p.poll() is None for p in procs), [p.communicate()[0][-3000:] for p in procs]
        time.sleep(0.2)
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert json.loads(state.read_text())["epoch"] == 1 and not elsewhere.exists()

    port = _free_port()
    procs = [start(i, port, "train", "--resume", str(d)) for i, d in enumerate((run_dir, elsewhere))]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[-3000:] for o in outs]
    assert "resuming after epoch 1 of 2" in outs[0]
    assert "process 1 of 2: 16 training steps on its 500 digits" in outs[1]  # its half, epoch 2
    assert not elsewhere.exists()
    m = _matches(run_dir, one_device)
    assert m["processes"] == 2 and m["devices"] == 2 and m["steps_per_process"] == [16, 16]
    assert m["epochs_trained"] == 2 and m["wall_seconds"] > _history(run_dir)[0]["wall_seconds"]

    import keras

    from edgedigits.train.io import load_keras_model

    assert keras.backend.backend() == "tensorflow"
    model = load_keras_model(run_dir / "model.keras")
    probs = model.predict(np.zeros((2, 28, 28, 1), np.float32), verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-4)


@pytest.mark.parametrize("args, env, message", [
    (["--backend", "tensorflow", "--devices", "2"], {},
     "--devices 2: data-parallel training needs the JAX backend (Keras 3 distributes on JAX only); "
     "this run uses tensorflow: add --backend jax"),
    (["--backend", "jax", "--devices", "3"], TWO_HOST_DEVICES, "--devices 3: this machine has 2 CPU device(s)"),
    (["--backend", "tensorflow", "--num-processes", "2"], {}, "training on several processes needs the JAX backend"),
    (["--backend", "jax", "--num-processes", "2", "--process-id", "0"], {}, "several processes need the coordinator's address"),
    (["--backend", "jax", "--num-processes", "2", "--coordinator", "127.0.0.1:1", "--process-id", "2"], {},
     "--process-id 2: must be one of 0..1"),
])
def test_distribution_errors_are_one_line(args, env, message, tmp_path):
    code, out, err = run_cli("train", "--data", "sample", "--limit", "100", "--epochs", "1",
                             "--out", str(tmp_path / "r"), *args, env=env)
    assert code == 2, (out, err)
    assert message in err and "Traceback" not in err


def test_time_to_accuracy_is_read_off_the_history():
    from edgedigits.train.trainer import time_to_accuracy

    history = [{"epoch": 1, "val_accuracy": 0.95, "wall_seconds": 12.0},
               {"epoch": 2, "val_accuracy": 0.9961, "wall_seconds": 15.5},
               {"epoch": 3, "val_accuracy": 0.9970, "wall_seconds": 18.0}]
    assert time_to_accuracy(history, 99.6) == {"percent": 99.6, "epoch": 2, "wall_seconds": 15.5}
    assert time_to_accuracy(history, 99.8) is None


def _start(i: int, n: int, port: int, out, *extra):
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3", "XLA_FLAGS": QUICK_XLA}
    args = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(n), "--process-id", str(i)]
    return subprocess.Popen([sys.executable, "-m", "edgedigits", *RUN, *args, "--out", str(out), *extra], env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_a_process_started_with_another_count_stops_the_job(tmp_path):
    """Process 1 started with --num-processes 3 joins process 0's job of 2 (JAX counts the coordinator's):
    both stop with the same line, before anything is written, and neither hangs at exit."""
    port = _free_port()
    procs = [_start(0, 2, port, tmp_path / "r0"), _start(1, 3, port, tmp_path / "r1")]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 2, (out[-2000:], err[-2000:])
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert errors == [f"error: --num-processes: the job at 127.0.0.1:{port} has 2 processes, started with "
                          "--num-processes 2, 3 (process 0 first); start every process with the same count"], err
        assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def _wait_for(proc, what, seconds: float):
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None and not what():
        time.sleep(0.2)
    return what()


@pytest.mark.slow
def test_sigterm_ends_a_process_waiting_for_the_coordinator(tmp_path):
    """Nobody listens at the coordinator's address: the process waits (in C++, where Python's handlers do
    not run), and SIGTERM ends it at once, long before --coordinator-timeout."""
    proc = _start(1, 2, _free_port(), tmp_path / "r", "--coordinator-timeout", "120")
    time.sleep(20)  # past the imports, into jax.distributed.initialize
    assert proc.poll() is None, proc.communicate()
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert time.time() - t0 < 10, err[-2000:]
    assert proc.returncode != 0 and "Traceback" not in err, err[-2000:]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_sigterm_ends_a_process_whose_peer_is_gone(tmp_path):
    """Both processes joined; process 1 is killed, so process 0 waits in a collective that never ends.
    SIGTERM ends it within the grace it gives its own clean-up, with one line."""
    from edgedigits.train.distribute import SIGTERM_GRACE_S

    port = _free_port()
    procs = [_start(0, 2, port, tmp_path / "r0"), _start(1, 2, port, tmp_path / "r1")]
    started = lambda: (tmp_path / "r0" / "config.json").exists()  # noqa: E731  joined, and training
    assert _wait_for(procs[0], started, 240), [p.poll() for p in procs]
    procs[1].kill()
    procs[1].wait()
    time.sleep(2)  # process 0 reaches a collective that waits for process 1
    t0 = time.time()
    procs[0].send_signal(signal.SIGTERM)
    try:
        out, err = procs[0].communicate(timeout=SIGTERM_GRACE_S + 10)
    finally:
        procs[0].kill()
    assert time.time() - t0 < SIGTERM_GRACE_S + 10, err[-2000:]
    assert procs[0].returncode != 0 and "Traceback" not in err, err[-2000:]
