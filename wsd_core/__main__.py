"""``python -m wsd_core`` is the ``wsd`` command (for an environment whose scripts are not on PATH)."""

import sys

from wsd_core.cli import main

if __name__ == "__main__":  # importing the module (the docs' inspection does) runs nothing
    sys.exit(main())
