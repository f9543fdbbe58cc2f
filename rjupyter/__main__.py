"""``python -m rjupyter``: the same as the ``rjupyter`` command."""

import sys

from ._cli import main

sys.exit(main())
