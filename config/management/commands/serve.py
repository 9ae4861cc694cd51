"""Run the embedded flowplatform: migrate, bootstrap the demo, serve ASGI, run a worker."""

from __future__ import annotations

import logging
import threading

import uvicorn
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from config.bootstrap import DEMO_PASSWORD, DEMO_USERNAME, bootstrap_demo
from config.server import websocket_options
from executions.worker.config import WorkerConfig
from executions.worker.runner import Worker
from flowplatform import tenancy

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Serve API, WebSockets and admin on one ASGI server, with an embedded worker."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-worker", action="store_true", help="do not start a worker")
        parser.add_argument("--worker-concurrency", type=int, default=4)

    def handle(
        self, *args, host: str, port: int, no_worker: bool, worker_concurrency: int, **options
    ) -> None:
        if tenancy.owner_configured():
            call_command("setupdbrole", verbosity=0)  # the application's role, when missing
        call_command("migrate", interactive=False, verbosity=0)
        with tenancy.bypass():  # this process serves requests next: transaction-scoped
            setup = bootstrap_demo()
        base = f"http://{host}:{port}"
        self.stdout.write(
            "\nflowplatform is starting\n"
            f"  API docs:     {base}/api/docs\n"
            f"  admin:        {base}/admin/  ({DEMO_USERNAME} / {DEMO_PASSWORD})\n"
            f"  pages:        {base}/\n"
            f"  user key:     {setup.user_key}\n"
            f"  service key:  {setup.service_key}\n"
            f"  example flow: {setup.flow_id or '-'}\n"
        )
        if not no_worker:
            self._start_worker(base, setup.service_key, worker_concurrency)
        uvicorn.run(
            "config.asgi:application",
            host=host,
            port=port,
            log_level="info",
            lifespan="off",
            **websocket_options(),
        )

    def _start_worker(self, url: str, key: str, concurrency: int) -> None:
        config = WorkerConfig(
            url=url,
            key=key,
            concurrency=concurrency,
            python_callables=tuple(settings.FLOWPLATFORM_PYTHON_CALLABLES),
        )
        worker = Worker(config)
        threading.Thread(
            target=worker.run,
            kwargs={"install_signal_handlers": False},
            name="embedded-worker",
            daemon=True,
        ).start()
