"""The figures the reliability suite reports (issue 11): printed, and collected in one file.

Each test calls ``figure(row, name, **values)``: the line is printed (``pytest -s`` shows it)
and appended to ``test-artifacts/reliability-figures.jsonl`` (one JSON object per line, with
the database vendor), so a CI run leaves every figure in one place.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
FIGURES_FILE = Path(
    os.environ.get("RELIABILITY_FIGURES", ROOT / "test-artifacts" / "reliability-figures.jsonl")
)


def _vendor() -> str:
    try:
        from django.db import connection

        return connection.vendor
    except Exception:  # noqa: BLE001 - outside Django (bench scripts)
        return os.environ.get("DATABASE_URL", "sqlite").split(":", 1)[0]


def figure(row: int, name: str, **values: Any) -> dict[str, Any]:
    record = {"row": row, "name": name, "database": _vendor(), **values, "at": time.time()}
    shown = ", ".join(f"{key} {value}" for key, value in values.items())
    print(f"\nFIGURE row {row} [{record['database']}] {name}: {shown}")
    try:
        FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
        with FIGURES_FILE.open("a") as out:
            out.write(json.dumps(record, default=str) + "\n")
    except OSError:
        pass  # a read-only checkout: the printed line is the record
    return record
