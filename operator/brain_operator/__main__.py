"""``python -m brain_operator``: the operator entry point (see operator_main)."""

import sys

from .operator_main import main

if __name__ == "__main__":
    sys.exit(main())
