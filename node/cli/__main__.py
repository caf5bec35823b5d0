"""``python -m node.cli``: the same as the ``xnode`` executable."""

import sys

from node.cli import main

sys.exit(main())
