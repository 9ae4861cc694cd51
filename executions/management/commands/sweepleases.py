"""``manage.py sweepleases``: fail running task executions whose lease expired.

Claims already sweep their organization's expired leases; run this from cron (or with
``--interval``) so expiries are handled even while no worker is claiming.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from executions.engine import leases
from flowplatform import tenancy


class Command(BaseCommand):
    help = "Fail running task executions whose lease has expired (and apply retries)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--interval", type=float, default=0, help="repeat every N seconds (0: once)"
        )

    def handle(self, *args: Any, interval: float = 0, **options: Any) -> None:
        tenancy.bypass_process()  # row-level security: sweeps every organization
        while True:
            total = 0
            while swept := leases.sweep_expired_leases():
                total += swept
            self.stdout.write(f"expired {total} lease(s)")
            if interval <= 0:
                return
            time.sleep(interval)
