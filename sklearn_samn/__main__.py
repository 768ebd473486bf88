"""``python -m sklearn_samn``: see ``python -m sklearn_samn --help``."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
