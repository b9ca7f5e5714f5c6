"""python train_one.py CANDIDATE train ...: `edgedigits train ...` with CANDIDATE as its registry model."""
import sys

import cands

cands.install(sys.argv[1])
from edgedigits.cli import main  # noqa: E402

sys.argv = ["edgedigits"] + sys.argv[2:]
sys.exit(main())
