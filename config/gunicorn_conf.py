"""gunicorn configuration for production serving (``bin/serve-prod``; docs/deploy.md).

    gunicorn config.asgi:application -c python:config.gunicorn_conf

Environment:

- ``BIND`` (default ``0.0.0.0:$PORT``, ``PORT`` 8000) and ``WEB_CONCURRENCY`` (worker
  processes, default 2): gunicorn's own variable, also honoured without this file.
- ``GRACEFUL_TIMEOUT`` (30 s): how long a worker may take, after SIGTERM, to finish its
  in-flight requests before it is killed.
- ``FORWARDED_ALLOW_IPS`` (``127.0.0.1,::1``): proxies whose ``X-Forwarded-*`` are trusted.
- ``PROMETHEUS_MULTIPROC_DIR``: where the workers write their metric values so ``/metrics``
  sums every process. Emptied at start; when unset a fresh temporary directory is created
  (and removed at exit).
- ``LOG_FORMAT`` (``json`` unless ``DEBUG`` is on), ``LOG_LEVEL``: gunicorn's own lines use the
  same format as the application's.
- ``GUNICORN_CONTROL_SOCKET``: a path to enable gunicorn's control socket (off by default).
- ``PYTHON_SWITCH_INTERVAL`` (0.001): how often, in seconds, a worker's interpreter hands
  the GIL over (``post_worker_init``).
- ``WS_PER_MESSAGE_DEFLATE`` (``false``): read by the worker class
  (``config.server``): whether WebSocket frames are compressed per message.

This module is imported by gunicorn's master process: it must not import Django or
prometheus_client at module level (the workers, forked from the master, must import
prometheus_client only once ``PROMETHEUS_MULTIPROC_DIR`` is set).
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

_TRUE = {"1", "true", "yes", "on", "y", "t"}

worker_class = "config.server.UvicornWorker"
bind = [os.environ.get("BIND") or f"0.0.0.0:{os.environ.get('PORT', '8000')}"]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "30"))
timeout = 60  # a worker silent this long (a stuck event loop) is restarted
keepalive = 5
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
proc_name = "flowplatform"
accesslog = None  # the application logs one line per request (flowplatform.middleware)
# gunicorn's runtime control socket (``gunicornc``) defaults to one path per user, which
# several instances on one host would share: off unless a path is given.
if os.environ.get("GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
else:
    control_socket_disable = True

_debug = os.environ.get("DEBUG", "true").strip().lower() in _TRUE
_log_format = os.environ.get("LOG_FORMAT") or ("text" if _debug else "json")
loglevel = os.environ.get("LOG_LEVEL", "INFO").lower()
if _log_format == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "flowplatform.logging.JsonFormatter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": loglevel.upper(), "handlers": ["stderr"]},
        # uvicorn's loggers take these handlers in the workers (uvicorn's worker class).
        "loggers": {
            "gunicorn.error": {
                "level": loglevel.upper(),
                "handlers": ["stderr"],
                "propagate": False,
            },
            # No access log: the application logs each API request with its request id,
            # organization, route, status and duration (flowplatform.middleware).
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
        },
    }


def on_starting(server: Any) -> None:
    """Once, in the master, before any worker is forked."""
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # values of a previous run would be summed in
            stale.unlink()
    else:
        path = Path(tempfile.mkdtemp(prefix="flowplatform-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
        server.flowplatform_metrics_dir = path
    server.log.info("metrics of all workers are collected in %s", path)


def child_exit(server: Any, worker: Any) -> None:
    """A worker ended: its live gauges no longer count (its counters still do)."""
    # Not imported at the top: the workers must import prometheus_client only once
    # PROMETHEUS_MULTIPROC_DIR is set (see the module's docstring).
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    path = getattr(server, "flowplatform_metrics_dir", None)
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def post_worker_init(worker: Any) -> None:
    """Once per worker, after it loaded the application.

    - Everything loading the application allocated (Django, the URL configuration, the
      apps) is moved out of the garbage collector's reach: its full collections then scan
      only what requests allocate, instead of pausing the worker for tens of milliseconds
      over objects that live as long as the process.
    - The interpreter hands the GIL over every ``PYTHON_SWITCH_INTERVAL`` seconds (default
      0.001; Python's own is 0.005): the event loop, which reads requests and sends answers,
      then waits less for the threads deciding reports, which shortens the tail of request
      latency (``bench/README.md``, "The worker report path").
    """
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(float(os.environ.get("PYTHON_SWITCH_INTERVAL") or "0.001"))
