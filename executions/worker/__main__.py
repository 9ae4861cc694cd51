"""``python -m executions.worker --url URL --key KEY``: the worker without Django."""

from __future__ import annotations

import sys

from executions.worker.cli import main

if __name__ == "__main__":
    sys.exit(main())
