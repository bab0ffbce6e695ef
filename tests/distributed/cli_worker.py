"""``mpiexec -n K python cli_worker.py ARGS...``: the ``handgrad`` command (``ARGS`` as on the
command line) with every rank's writes and output recorded (``audit.py``)."""
from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import audit

    audit.install()
    from handgrad.cli import main

    sys.exit(main(sys.argv[1:]))
