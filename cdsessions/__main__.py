"""``python -m cdsessions``: the same as the ``cdsessions`` command."""

import sys

from cdsessions._cli.main import main

sys.exit(main())
