from __future__ import annotations

from django.core.management.base import BaseCommand

from config.bootstrap import DEMO_PASSWORD, DEMO_USERNAME, bootstrap_demo
from flowplatform import tenancy


class Command(BaseCommand):
    help = "Create the demo organization, staff user, API keys and example flow (idempotent)."

    def handle(self, *args, **options) -> None:
        tenancy.bypass_process()  # row-level security: creates rows of the demo organization
        setup = bootstrap_demo()
        self.stdout.write(
            f"organization: {setup.organization.name} ({setup.organization.id})\n"
            f"staff login:  {DEMO_USERNAME} / {DEMO_PASSWORD}  (http://127.0.0.1:8000/admin/)\n"
            f"user key:     {setup.user_key}\n"
            f"service key:  {setup.service_key}\n"
            f"example flow: {setup.flow_id or '-'}\n"
        )
