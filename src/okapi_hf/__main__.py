"""``python -m okapi_hf``: the ``okapi-hf`` command."""

import sys

from okapi_hf.cli import main

if __name__ == "__main__":
    sys.exit(main())
