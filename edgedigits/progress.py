"""Progress bars for long work (convert's formats, benchmark's rows, predict's batches), with tqdm.

Bars go to stderr and only where stderr is a terminal: in a pipe, a log or CI the output stays the
lines the command prints, without carriage returns. `quiet=True` turns them off everywhere.
"""

from __future__ import annotations

import sys


def progress(iterable=None, *, total: int | None = None, desc: str = "", unit: str = "it", quiet: bool = False):
    """tqdm over `iterable` (or a manual bar with `total`); off when quiet or when stderr is no terminal."""
    from tqdm import tqdm

    # disable=None is tqdm's own rule: no bar unless the file is a TTY
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                dynamic_ncols=True, disable=True if quiet else None)


def say_above(bar, say):
    """A `say` that prints above a running bar instead of through it (tqdm.write), else `say`."""
    if bar is None or getattr(bar, "disable", True):
        return say
    from tqdm import tqdm

    return lambda msg: tqdm.write(str(msg), file=sys.stdout) if say is print else say(msg)
