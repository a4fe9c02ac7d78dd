"""`python -m pipeline.cli`: the `leanline` command without its entry-point script."""

import sys

from pipeline.cli import main

sys.exit(main())
