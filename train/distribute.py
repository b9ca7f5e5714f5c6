"""Data-parallel training on several devices and several hosts, with Keras 3's distribution API.

One process per host. Each process drives its local devices; together they form a 1-D device mesh
(`keras.distribution.DataParallel`), every variable is replicated on every device, and each training
batch is split along the mesh: every device gets `--batch-size` digits, so the global batch is
`--batch-size` x devices x processes. XLA inserts the all-reduce of the gradients. Only the JAX backend
distributes this way (TensorFlow and PyTorch have no `DataParallel` in Keras 3).

Learning rate: a global batch k times larger than `--batch-size` trains with the peak learning rate
multiplied by sqrt(k), the square-root rule for Adam-type optimizers (Malladi et al., "On the SDEs and
Scaling Rules for Adaptive Gradient Algorithms", NeurIPS 2022); linear scaling (Goyal et al., 2017)
is the rule for SGD and overshoots with AdamW. The warm-up stays a tenth of the (fewer) steps.

Several hosts: `jax.distributed` through `keras.distribution.initialize`, from the options
(`--coordinator`, `--num-processes`, `--process-id`) or Keras' environment variables
(KERAS_DISTRIBUTION_JOB_ADDRESSES, KERAS_DISTRIBUTION_NUM_PROCESSES, KERAS_DISTRIBUTION_PROCESS_ID).
Each process loads the data, takes its own shard (`shard`), and trains on it; process 0 alone writes
the run folder and broadcasts what it read back on `--resume` (`from_first`), so the other hosts need
no shared file system.
"""

from __future__ import annotations

import json
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from edgedigits.errors import EdgeDigitsError

ENV = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES", "KERAS_DISTRIBUTION_PROCESS_ID")


@dataclass(frozen=True)
class Cluster:
    """Where this process trains: its index among `processes`, and the devices of the mesh."""

    process: int = 0
    processes: int = 1
    local_devices: int = 1  # devices this process drives
    device_names: tuple = ()  # every device of the mesh, all processes

    @property
    def devices(self) -> int:
        return self.local_devices * self.processes

    @property
    def first(self) -> bool:
        return self.process == 0


COORDINATOR_TIMEOUT_S = 60  # how long a process waits for the coordinator and the others to join


@dataclass(frozen=True)
class Job:
    """The several-process options, checked: every process of one job is started with the same ones."""

    coordinator: str  # HOST:PORT of process 0
    processes: int
    process: int


def _env_int(i: int) -> int | None:
    value = os.environ.get(ENV[i])
    if value is None or not value.strip():
        return None
    if not value.strip().isascii() or not value.strip().lstrip("-").isdigit():
        raise EdgeDigitsError(f"{ENV[i]}={value!r}: must be a whole number")
    return int(value)


def check_address(address: str, what: str) -> str:
    """HOST:PORT (or [IPv6]:PORT), as jax.distributed takes it: no scheme, no path, a port 1..65535."""
    host, sep, port = address.strip().rpartition(":")
    bad = (not sep or not host or "/" in address or "://" in address or any(c.isspace() for c in address)
           or (host.count(":") and not (host.startswith("[") and host.endswith("]"))))
    if bad:
        raise EdgeDigitsError(f"{what} {address!r}: expected HOST:PORT, e.g. 10.0.0.1:1234 (process 0's host "
                              f"and a free port; no http://, no path)")
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise EdgeDigitsError(f"{what} {address!r}: the port {port!r} must be a number 1..65535")
    return address.strip()


def processes_asked(num_processes: int | None) -> int | None:
    """--num-processes, else KERAS_DISTRIBUTION_NUM_PROCESSES (checked to be a number), else None."""
    return num_processes if num_processes is not None else _env_int(1)


def check_job(coordinator: str | None, num_processes: int | None, process_id: int | None) -> Job | None:
    """The options (or Keras' environment variables) checked before JAX starts. None: one process."""
    n = processes_asked(num_processes)
    pid = process_id if process_id is not None else _env_int(2)
    address = coordinator or os.environ.get(ENV[0]) or None
    n_what = "--num-processes" if num_processes is not None else ENV[1]
    if n is not None and n < 1:
        raise EdgeDigitsError(f"{n_what} {n}: must be at least 1")
    if n is None or n == 1:
        given = [w for w, v in (("--coordinator", coordinator), ("--process-id", process_id)) if v is not None]
        if given and n is None:  # alone, they would train one process without a word
            raise EdgeDigitsError(f"{given[0]}: give --num-processes N too (how many processes the job has)")
        if pid not in (None, 0):
            raise EdgeDigitsError(f"--process-id {pid}: must be 0 in a job of one process")
        return None
    if not address:
        raise EdgeDigitsError("several processes need the coordinator's address: --coordinator HOST:PORT "
                              f"(process 0's host and a free port) or {ENV[0]}")
    where = "--coordinator" if coordinator else ENV[0]
    addresses = [check_address(a, where) for a in address.split(",")]
    if len(addresses) > 1 and len(addresses) != n:
        raise EdgeDigitsError(f"{where} {address!r}: {len(addresses)} addresses for {n} processes")
    if pid is None or not 0 <= pid < n:
        raise EdgeDigitsError(f"--process-id {pid}: must be one of 0..{n - 1} (this process's index among "
                              f"--num-processes {n}; 0 is the coordinator)")
    return Job(addresses[0], n, pid)


def initialize(job: Job, timeout_s: float = COORDINATOR_TIMEOUT_S) -> None:
    """Join the other processes (`jax.distributed`). Call before anything touches a JAX device.

    jax.distributed blocks in C++ until every process has joined, where Python runs no signal handler:
    SIGTERM and Ctrl-C take their default action (the process ends) until it returns, and a watchdog
    ends the process with one line naming the address when nobody answers within timeout_s (JAX's
    own timeout, later, aborts with a C++ stack)."""
    import signal
    import sys
    import threading

    os.environ["KERAS_BACKEND"] = "jax"
    import jax
    import keras

    if keras.backend.backend() != "jax":
        raise EdgeDigitsError(f"training on several processes needs the JAX backend; Keras was already "
                              f"imported with '{keras.backend.backend()}'")
    if jax.distributed.is_initialized():
        return

    def give_up():
        print(f"error: --coordinator {job.coordinator}: no answer within {timeout_s:g} s (process {job.process} "
              f"of {job.processes}); check that process 0 runs there, the port is free and reachable, and every "
              f"process was started (--coordinator-timeout to wait longer)", file=sys.stderr, flush=True)
        os._exit(1)

    watchdog = threading.Timer(timeout_s, give_up)
    watchdog.daemon = True
    main = threading.current_thread() is threading.main_thread()
    before = {s: signal.signal(s, signal.SIG_DFL) for s in (signal.SIGTERM, signal.SIGINT)} if main else {}
    watchdog.start()
    try:
        jax.distributed.initialize(coordinator_address=job.coordinator, num_processes=job.processes,
                                   process_id=job.process, initialization_timeout=int(timeout_s) + 30)
    finally:
        watchdog.cancel()
        for sig, handler in before.items():
            signal.signal(sig, handler)
    try:  # what keras.distribution.initialize does after joining: one random seed in every process
        from keras.src.backend.jax.distribution_lib import initialize_rng
    except ImportError:
        pass
    else:
        initialize_rng()
    if main:
        _end_on_sigterm()
    # every process's own --num-processes, in process order: a process started with 3 can join a job of 2
    # (JAX counts the coordinator's), so each one checks them all, and all stop together
    from jax.experimental import multihost_utils

    counts = [int(n) for n in np.asarray(multihost_utils.process_allgather(np.int32(job.processes))).ravel()]
    if set(counts) != {jax.process_count()}:
        raise EdgeDigitsError(f"--num-processes: the job at {job.coordinator} has {jax.process_count()} processes, "
                              f"started with --num-processes {', '.join(map(str, counts))} (process 0 first); "
                              f"start every process with the same count")


SIGTERM_GRACE_S = 5.0


def _end_on_sigterm() -> None:
    """SIGTERM ends the process even while a collective waits for a process that is gone.

    The handler (a KeyboardInterrupt, cli.py) runs only when the main thread is back in Python, which a
    blocked collective never lets happen. The C-level handler still writes the signal's number to the
    wakeup fd at once: a thread reading it gives the main thread SIGTERM_GRACE_S to clean up, then ends
    the process with one line."""
    import signal
    import sys
    import threading

    read, write = os.pipe()
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)

    def watch():
        while signal.SIGTERM not in os.read(read, 64):
            pass
        threading.Event().wait(SIGTERM_GRACE_S)
        print("error: terminated while waiting for the other processes (SIGTERM); nothing more was written",
              file=sys.stderr, flush=True)
        os._exit(128 + signal.SIGTERM)

    threading.Thread(target=watch, name="sigterm", daemon=True).start()


def this_process() -> Cluster:
    """This process's index and the process count, before the mesh is built (no device touched)."""
    import sys

    if "jax" in sys.modules and sys.modules["jax"].distributed.is_initialized():
        import jax

        return Cluster(jax.process_index(), jax.process_count())
    return Cluster()


def setup(backend: str, devices: int, say=print) -> Cluster:
    """Build the device mesh and make it Keras' distribution. `devices`: local devices to use, 0 all."""
    if backend != "jax":
        if devices > 1:
            raise EdgeDigitsError(f"--devices {devices}: data-parallel training needs the JAX backend "
                                  f"(Keras 3 distributes on JAX only); this run uses {backend}: add --backend jax")
        if _gpu_count(backend) > 1:
            say(f"note: the {backend} backend trains on one GPU of {_gpu_count(backend)}; --backend jax trains on all")
        return Cluster(device_names=("default",))
    import jax
    import keras

    local = jax.local_devices()
    if devices > len(local):
        raise EdgeDigitsError(f"--devices {devices}: this machine has {len(local)} "
                              f"{local[0].platform.upper()} device(s) that JAX can use")
    use = devices or len(local)
    cluster = Cluster(jax.process_index(), jax.process_count(), use)
    # the mesh: the first `use` local devices of every process, process by process
    mesh = [d for p in range(cluster.processes) for d in
            sorted((d for d in jax.devices() if d.process_index == p), key=lambda d: d.id)[:use]]
    cluster = Cluster(cluster.process, cluster.processes, use, tuple(str(d) for d in mesh))
    if cluster.devices > 1:
        # auto_shard_dataset=False: each process feeds its own shard (`shard`), as NumPy arrays
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=mesh, auto_shard_dataset=False))
    return cluster


def _gpu_count(backend: str) -> int:
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return len(tf.config.list_physical_devices("GPU"))
        import torch

        return torch.cuda.device_count()
    except Exception:  # a broken GPU install: the run goes on, on whatever the backend uses
        return 0


def lr_scale(cluster: Cluster) -> float:
    """The square-root rule (module docstring): the global batch is `devices` per-device batches."""
    return math.sqrt(cluster.devices)


def shard(n: int, cluster: Cluster) -> np.ndarray:
    """Indices of this process's share of n items: every processes-th item from its own index, the
    same count in every process (each must run the same number of steps), and a multiple of its
    devices (each batch, the last too, splits evenly). At most processes x devices - 1 items are left
    out in all."""
    each = n // cluster.processes // cluster.local_devices * cluster.local_devices
    return np.arange(cluster.process, n, cluster.processes)[:each]


def from_first(make, cluster: Cluster):
    """Process 0's `make()` (JSON-able), in every process. An error in process 0 is raised in all."""
    if cluster.processes == 1:
        return make()
    from jax.experimental import multihost_utils

    if cluster.first:
        try:
            obj = {"ok": make()}
        except EdgeDigitsError as e:
            obj = {"error": str(e)}
        data = np.frombuffer(json.dumps(obj).encode(), np.uint8).astype(np.int32)
    else:
        data = np.zeros(0, np.int32)
    size = int(multihost_utils.broadcast_one_to_all(np.int32(len(data))))
    buf = np.zeros(size, np.int32)
    buf[: len(data)] = data
    obj = json.loads(bytes(np.asarray(multihost_utils.broadcast_one_to_all(buf)).astype(np.uint8)).decode())
    if "error" in obj:
        raise EdgeDigitsError(obj["error"] if cluster.first else f"process 0: {obj['error']}")
    return obj["ok"]


@contextmanager
def local_only():
    """Keras without the distribution, for what one process does alone (saving, reading a checkpoint).

    With several processes, creating or assigning a variable under the distribution is a collective
    operation (JAX checks that every process passes the same value), and Keras creates throw-away
    variables while saving; one process doing that alone would wait for the others forever."""
    import keras

    before = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(before)


def sync_variables(variables, values: list | None, cluster: Cluster) -> None:
    """Assign process 0's `values` (NumPy, read by process 0 alone) to `variables` in every process."""
    from jax.experimental import multihost_utils

    templates = values if cluster.first else [np.zeros(v.shape, v.dtype) for v in variables]
    values = multihost_utils.broadcast_one_to_all(templates)
    for v, x in zip(variables, values):
        v.assign(x)  # every process assigns the same value: a consistent collective


def gather(value: float, cluster: Cluster) -> list:
    """One number from every process, in process order (e.g. the steps each one ran)."""
    if cluster.processes == 1:
        return [value]
    from jax.experimental import multihost_utils

    return [float(x) for x in np.asarray(multihost_utils.process_allgather(np.float32(value))).ravel()]
