"""``python -m research_lib`` — the same as the ``research-lib`` command."""

import sys

from research_lib.cli import main

sys.exit(main())
