"""``python -m okapi_hf.cli``: what ``accelerate launch -m okapi_hf.cli train ...`` runs."""

import sys

from okapi_hf.cli import main

if __name__ == "__main__":
    sys.exit(main())
