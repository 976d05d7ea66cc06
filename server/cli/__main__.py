"""`python -m server.cli`: the `tetra` command (the tests run it this way)."""

import sys

from server.cli import main

sys.exit(main())
