"""Moved to okapi_hf.hub.cards; this name keeps old imports (and ``python -m okapi_hf.cards``) working."""

import sys

from okapi_hf.hub import cards as _moved

if __name__ == "__main__":  # run as a script: do what the new module does, keep __main__ as it is
    _moved.main()
else:  # the old name is the same module object, so monkeypatching it patches the real one
    sys.modules[__name__] = _moved
