"""``python -m cdsessions``: the same as the ``cdsessions`` command."""

import sys

from cdsessions.cli import main

sys.exit(main())
