import sys

from edgedigits.cli import main

sys.exit(main())
