"""The lean path of a worker's report: ``POST /api/task-executions`` (seed 002) served without
DRF and without the browser middleware.

A report is the request workers send for every task, so its fixed costs bound the engine:
DRF's request and response wrappers, the session, CSRF, authentication and messages
middleware (none of which an API-key request uses), and under ASGI the thread that Django
starts for each synchronous request plus a thread hop around each of those middleware.
``WorkerReportMiddleware`` sits before them and answers the usual report itself, doing
exactly what ``TaskExecutionsView.post`` does: authenticate the key, check it may write,
decide the report (``report_and_claim``), render the stored record.

Only the usual report takes this path: an API key that authenticates and may write, a
``application/json`` body of the usual shape (``report_body``). Anything else (no key, a
bad or read-only key, a session, another content type, a body the plain checks do not
accept, one that could hold unstorable characters) passes on to the DRF view, which stays
the reference: it words every refusal, and the OpenAPI schema describes it. Both give the
same answer to the same request (``executions/tests/api/test_report_path.py``).

Under ASGI the request never gets a thread of its own. When its key needs no query (found
and recorded lately: ``principal_without_queries``), it waits in the event loop for the
batch that decides it (``report_and_claim_async``), and only the batches run on threads
kept for them (``batch_executor``): a report decided by another's batch costs no thread
hop. Otherwise the whole answer runs on one of a few threads kept for reports
(``executor``). Either way, reports of one organization arriving together are decided in
one transaction (``group_commit``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted, RequestDataTooBig
from django.core.handlers import asgi
from django.core.handlers.asgi import get_script_prefix
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse
from django.urls import ResolverMatch, resolve, set_script_prefix

from executions.api.task_execution_schemas import report_body
from executions.representations import task_execution_data
from executions.services import task_executions as reports
from flowplatform.authentication import (
    authenticate_raw_key,
    principal_without_queries,
    raw_key_from_headers,
)
from flowplatform.exceptions import Unauthorized, ValidationFailed, json_error_response
from flowplatform.parsers import load_json
from flowplatform.principal import Principal
from flowplatform.renderers import dumps

logger = logging.getLogger(__name__)

PATH = "/api/task-executions"
# What DRF's view answers with (``APIView.default_response_headers``).
ALLOW = "GET, POST, PUT, HEAD, OPTIONS"
_PLAIN = ({}, {"charset": "utf-8"}, {"charset": "UTF-8"})


# Under ASGI the whole answer of a report whose key needs a query runs here. Such a report
# waits on its thread for the batch that decides it (``group_commit``), so there are more
# threads than cores.
executor = ThreadPoolExecutor(
    max_workers=getattr(settings, "REPORT_THREADS", 8), thread_name_prefix="reports"
)
# The batches run on threads of their own: were they queued behind the reports waiting for
# them above, those could wait forever. A thread holds a database connection only while
# it decides.
batch_executor = ThreadPoolExecutor(
    max_workers=getattr(settings, "REPORT_THREADS", 8), thread_name_prefix="report-batches"
)


@functools.cache
def _resolved() -> ResolverMatch:
    """The URL match the DRF view would get: logs and metrics name the same route."""
    return resolve(PATH)


def usual_report(request: HttpRequest) -> tuple[str, dict[str, Any]] | None:
    """``(api key, validated body)`` of a report this path answers; None for anything else.
    Reads and parses the body (Django keeps it for the view if the request passes on); the
    answer is kept on the request."""
    try:
        return request._usual_report  # type: ignore[attr-defined,no-any-return]
    except AttributeError:
        request._usual_report = _usual_report(request)  # type: ignore[attr-defined]
        return request._usual_report  # type: ignore[attr-defined,no-any-return]


def _usual_report(request: HttpRequest) -> tuple[str, dict[str, Any]] | None:
    if request.method != "POST" or request.path_info != PATH:
        return None
    if not getattr(settings, "FLOWPLATFORM_LEAN_REPORTS", True):
        return None
    if request.content_type != "application/json" or request.content_params not in _PLAIN:
        return None
    try:
        raw_key = raw_key_from_headers(request.headers)
    except Unauthorized:
        return None
    if raw_key is None:
        return None
    try:
        raw = request.body
    except RequestDataTooBig:
        return None
    try:
        data = load_json(raw)  # as DRF's parser reads it
    except ValidationFailed:
        return None  # the DRF view words the 422
    body = report_body(data)
    if body is None:
        return None
    return raw_key, body


def answer(request: HttpRequest, raw_key: str, body: dict[str, Any]) -> HttpResponse | None:
    """Authenticate and decide the report; None when the key does not authenticate or may
    not write (the DRF view words that refusal). Runs the service's queries: under ASGI,
    call it on a thread (``sync_to_async``)."""
    try:
        authenticated = authenticate_raw_key(raw_key)
        if authenticated is None:
            return None
        principal: Principal = authenticated[1]
        if principal.read_only:
            return None
        request.principal_for_logs = principal  # type: ignore[attr-defined]
        outcome = reports.report_and_claim(principal=principal, data=body)
    except Exception as exc:  # noqa: BLE001 - every error leaves in the envelope
        return _error(request, exc)
    return _respond(outcome)


async def answer_in_loop(
    request: HttpRequest, principal: Principal, body: dict[str, Any]
) -> HttpResponse:
    """``answer`` for a principal known without queries, waiting in the event loop."""
    request.principal_for_logs = principal  # type: ignore[attr-defined]
    try:
        outcome = await reports.report_and_claim_async(
            principal=principal, data=body, start=_start_batch
        )
    except Exception as exc:  # noqa: BLE001 - every error leaves in the envelope
        return _error(request, exc)
    return _respond(outcome)


def _error(request: HttpRequest, exc: Exception) -> HttpResponse:
    # A database outage included: 503 with Retry-After, which workers retry.
    response = json_error_response(exc)
    if response.status_code == 500:
        logger.error("Unhandled error on %s", request.path, exc_info=exc)
    return _with_allow(response)


def _respond(outcome: reports.ReportOutcome) -> HttpResponse:
    data = task_execution_data(outcome.task)
    if outcome.claimed is not None:
        data["claimed"] = outcome.claimed
    response = HttpResponse(
        dumps(data), status=201 if outcome.created else 200, content_type="application/json"
    )
    return _with_allow(response)


def _with_allow(response: HttpResponse) -> HttpResponse:
    response["Allow"] = ALLOW
    return response


def _start_batch(lead: Any) -> None:
    """Run a batch of reports (``lead``) on a batch thread."""
    batch_executor.submit(_tidily, lead)


def _tidily(run: Any) -> Any:
    """``run()`` on a report or batch thread, whose database connection then goes back (to
    the pool, or closed if broken or too old), as at the end of a request."""
    try:
        return run()
    finally:
        close_old_connections()


def _answer_on_thread(request: HttpRequest, raw_key: str, body: dict[str, Any]) -> Any:
    """``answer`` on a report thread (``executor``)."""
    return _tidily(functools.partial(answer, request, raw_key, body))


class WorkerReportMiddleware:
    """Answers the usual worker report (see the module); passes every other request on."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self.__acall__(request)
        report = usual_report(request)
        if report is not None:
            request.resolver_match = _resolved()
            response = answer(request, *report)
            if response is not None:
                return response
            request.resolver_match = None
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        report = usual_report(request)
        if report is not None:
            request.resolver_match = _resolved()
            raw_key, body = report
            principal = principal_without_queries(raw_key)
            if principal is not None and not principal.read_only:
                return await answer_in_loop(request, principal, body)
            response = await sync_to_async(
                _answer_on_thread, thread_sensitive=False, executor=executor
            )(request, *report)
            if response is not None:
                return response
            request.resolver_match = None
        return await self.get_response(request)


class ASGIHandler(asgi.ASGIHandler):
    """Django's ASGI handler, which serves the usual worker report without its per-request
    costs: a thread started for the ``request_started`` signal's receivers and another hop
    to close the response, and a task listening for a disconnect. Those receivers only
    tidy the database connections of the request's thread, and this request opens none
    there (its report thread tidies its own, ``_answer_on_thread``): they are sent here in
    the event loop. Every other request, and a report this path turns out not to answer,
    is handled as Django handles it."""

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("method") != "POST" or scope.get("path") != PATH:
            await super().handle(scope, receive, send)
            return
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        request, _ = self.create_request(scope, body_file)  # an error: Django answers it
        if request is None or usual_report(request) is None:
            await super().handle(scope, _replay(_body_of(request, body_file)), send)
            body_file.close()
            return
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        response = await self.run_get_response(request)
        await self.send_response(response, send)
        response.close()  # request_finished: no connection of this thread to tidy
        body_file.close()


def _body_of(request: HttpRequest | None, body_file: Any) -> bytes:
    if request is not None and hasattr(request, "_body"):
        return request.body  # read already (which closed the file)
    body_file.seek(0)
    return body_file.read()


def _replay(body: bytes) -> Any:
    """A ``receive`` that hands Django the body already read, then waits for the client to
    disconnect, as the server's would."""
    sent = False
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    return receive
