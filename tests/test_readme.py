"""Every shell and Python example of the README runs as written, in a fresh copy of the checkout (what a
user has after `git clone`), with the installed `edgedigits` command. A block that cannot run here (a
webcam, a GPU, the network, minutes of work) is marked in the README by a comment right before it:

    <!-- skip-test: needs a webcam -->

and is reported as skipped with that reason. A block that runs, but for a minute or more, is marked

    <!-- slow-test: trains, converts and benchmarks -->

and runs with the slow tests (`make test-slow`), not in `make test`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(?:<!-- (?P<kind>skip|slow)-test: (?P<why>[^\n]+?) -->\n)?```(?P<lang>sh|python)\n"
                   r"(?P<code>.*?)^```$", re.M | re.S)
NOT_COPIED = {".git", ".venv", "node_modules", "runs", "out", "__pycache__", ".pytest_cache"}


def examples(text: str) -> list:
    """pytest params, one per ```sh or ```python block: (language, code), skipped where marked."""
    params = []
    for m in FENCE.finditer(text):
        line = text[:m.start("code")].count("\n") + 1
        marks = {"skip": [pytest.mark.skip(reason=f"README line {line}: {m['why']}")], "slow": [pytest.mark.slow],
                 None: []}[m["kind"]]
        params.append(pytest.param(m["lang"], m["code"], id=f"{m['lang']}-line{line}", marks=marks))
    return params


def test_the_readme_has_examples_and_marks():
    params = examples((ROOT / "README.md").read_text())
    assert len(params) >= 10
    runnable = [p for p in params if not any(m.name == "skip" for m in p.marks)]
    assert len(runnable) >= 4  # convert, deploy, the two Python blocks
    assert any(not p.marks for p in runnable)  # and some run in `make test`


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A fresh copy of the checkout, without the venv, git's files or anything a run wrote."""
    dest = tmp_path_factory.mktemp("readme") / "edgedigits"
    shutil.copytree(ROOT, dest, ignore=lambda d, names: [n for n in names if n in NOT_COPIED
                                                          or n.endswith(".egg-info")], symlinks=True)
    return dest


@pytest.mark.parametrize("lang, code", examples((ROOT / "README.md").read_text()))
def test_readme_example_runs_as_written(lang, code, clone):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "EDGEDIGITS_DATA": str(clone / ".data")}  # no MNIST cache: nothing downloads unless asked
    cmd = ["bash", "-euo", "pipefail", "-c", code] if lang == "sh" else [sys.executable, "-c", code]
    proc = subprocess.run(cmd, cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{code}\nexit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"


def test_the_readme_split_counts_are_the_codes(mnist_dir):
    """The training / validation counts the README gives for the shipped models are what train's split
    of the 60,000 MNIST training digits makes (TrainConfig's val_fraction and seed)."""
    from edgedigits.train.data import load_idx_folder, train_val_split
    from edgedigits.train.trainer import TrainConfig

    cfg = TrainConfig()
    train, val = train_val_split(load_idx_folder(mnist_dir).train, cfg.val_fraction, cfg.seed)
    text = (ROOT / "README.md").read_text()
    assert f"full MNIST ({len(train):,} training / {len(val):,} validation digits, seed {cfg.seed})" in text
    assert (len(train), len(val)) == (54_001, 5_999)


def test_the_readme_edgetpu_counts_are_the_shipped_estimates():
    import json

    text = " ".join((ROOT / "README.md").read_text().split())
    for model in ("standard", "tiny"):
        m = json.loads((ROOT / "deploy" / "models" / model / "manifest.json").read_text())
        d = next(a for a in m["artifacts"] if a["format"] == "edgetpu")["details"]
        n = d["estimated_ops_on_edgetpu"]
        assert d["maps_fully"] and n == len(d["ops"]) and f"{n} of {n} for `{model}`" in text
    assert "edgedigits' own estimate" in text
