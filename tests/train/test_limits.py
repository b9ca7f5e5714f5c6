"""Hostile files cost little memory: a gzip bomb in an IDX folder is refused while streaming, long
before it is inflated, and an image's size is checked from its header before it is decoded."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys

MEASURE = """
import resource, sys
from edgedigits.errors import DataError
from edgedigits.train.data import IMAGE_MAGIC, load_idx

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_idx(sys.argv[1], IMAGE_MAGIC)
except DataError as e:
    print(e)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_a_gzip_bomb_is_refused_in_little_memory(tmp_path):
    """A real header (60,000 digits, 47 MB) followed by 512 MiB of zeros: 0.5 MB compressed. Before the
    fix the whole file was inflated into memory first (7.1 GB for a 3 GB bomb)."""
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as f:
        f.write(struct.pack(">IIII", 2051, 60000, 28, 28))
        block = bytes(16 << 20)
        for _ in range(32 + 3):
            f.write(block)
    proc = subprocess.run([sys.executable, "-c", MEASURE, str(bomb)], capture_output=True, text=True, check=True)
    message, grown_mb = proc.stdout.splitlines()
    assert "header says (60000, 28, 28)" in message and "trailing bytes" in message
    assert int(grown_mb) < 150, f"{grown_mb} MB to refuse it"  # the 47 MB the header announces, and buffers
