"""Command line of the worker, shared by ``python -m executions.worker`` and
``manage.py flowworker`` so both accept the same flags with the same defaults."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Iterable, Sequence

from executions.worker.config import WorkerConfig
from executions.worker.runner import Worker

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "FLOWPLATFORM_URL"
KEY_ENV = "FLOWPLATFORM_WORKER_KEY"


class UsageError(ValueError):
    """The command line cannot make a working worker."""


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get(URL_ENV, DEFAULT_URL),
        help=f"API base URL (env {URL_ENV}; default {DEFAULT_URL})",
    )
    parser.add_argument(
        "--key", default=os.environ.get(KEY_ENV), help=f"service API key (env {KEY_ENV})"
    )
    parser.add_argument(
        "--executors",
        default=None,
        help="comma-separated executor names to claim (default: every claimable one)",
    )
    parser.add_argument("--concurrency", type=int, default=4, help="tasks run at once")
    parser.add_argument(
        "--wait-seconds", type=float, default=20.0, help="claim long-poll, 0..30 (default 20)"
    )
    parser.add_argument("--worker-id", default=None, help="default: host-pid-random")
    parser.add_argument(
        "--python-callable",
        action="append",
        default=[],
        metavar="MODULE:FUNCTION",
        help="allow the python executor to call this (repeatable)",
    )
    parser.add_argument(
        "--shutdown-grace-seconds",
        type=float,
        default=30.0,
        help="on SIGTERM, how long running tasks may finish before being released",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first; it registers executors with register_executor()",
    )


def config_from_args(
    args: argparse.Namespace, *, extra_python_callables: Iterable[str] = ()
) -> WorkerConfig:
    """Turn parsed flags into a ``WorkerConfig``; raises ``UsageError`` on bad input."""
    if not args.key:
        raise UsageError(f"an API key is required: --key or {KEY_ENV}")
    executors = None
    if args.executors:
        executors = tuple(name.strip() for name in args.executors.split(",") if name.strip())
    callables = tuple(dict.fromkeys([*extra_python_callables, *args.python_callable]))
    optional = {"worker_id": args.worker_id} if args.worker_id else {}
    try:
        return WorkerConfig(
            url=args.url,
            key=args.key,
            executors=executors,
            concurrency=args.concurrency,
            wait_seconds=args.wait_seconds,
            python_callables=callables,
            shutdown_grace_seconds=args.shutdown_grace_seconds,
            log_level=args.log_level,
            **optional,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def configure_logging(level: str) -> None:
    """Plain timestamped lines on stderr, unless the host (Django) already set logging up."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("flowplatform.worker").setLevel(level.upper())
    # httpx logs every request at INFO: far too loud for a worker's claim loop.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def run_from_args(args: argparse.Namespace, *, extra_python_callables: Iterable[str] = ()) -> int:
    """Import plugins, build the worker and run it in this (main) thread."""
    for module in args.plugin:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UsageError(f"cannot import plugin {module!r}: {exc}") from exc
    config = config_from_args(args, extra_python_callables=extra_python_callables)
    configure_logging(config.log_level)
    try:
        worker = Worker(config)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return worker.run()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m executions.worker",
        description="flowplatform worker: claims task executions over HTTP and runs them.",
    )
    add_worker_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
