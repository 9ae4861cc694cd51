"""Request ids on every response, the error envelope for failures outside DRF, static files."""

from __future__ import annotations

import logging
import time
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as message_middleware
from django.contrib.messages.storage import default_storage
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest, HttpResponse
from django.middleware import clickjacking, common, csrf, security
from django.utils.functional import SimpleLazyObject, empty
from whitenoise.middleware import WhiteNoiseMiddleware

from flowplatform.exceptions import json_error_response
from flowplatform.metrics import observe_request
from flowplatform.request_context import new_request_id, reset_request_id, set_request_id

logger = logging.getLogger("flowplatform.request")


class RequestIdMiddleware:
    """Give each request a ULID (``X-Request-ID``), log one line per API request and
    answer unexpected errors on API paths with the JSON envelope instead of an HTML page."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:  # noqa: ANN001
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):  # noqa: ANN204
        if self._async:
            return self.__acall__(request)
        token, started = self._begin(request)
        try:
            response = self.get_response(request)
        finally:
            reset_request_id(token)
        return self._finish(request, response, started)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        token, started = self._begin(request)
        try:
            response = await self.get_response(request)
        finally:
            reset_request_id(token)
        return self._finish(request, response, started)

    def _begin(self, request: HttpRequest):  # noqa: ANN202
        request_id = new_request_id(request.headers.get("X-Request-ID"))
        request.request_id = request_id  # type: ignore[attr-defined]
        return set_request_id(request_id), time.perf_counter()

    def _finish(self, request: HttpRequest, response: HttpResponse, started: float) -> HttpResponse:
        response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
        elapsed = time.perf_counter() - started
        observe_request(
            method=request.method or "-",
            route=_route(request),
            status=response.status_code,
            seconds=elapsed,
        )
        if request.path.startswith("/api/"):
            principal = getattr(request, "principal_for_logs", None)
            logger.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "request_id": request.request_id,  # type: ignore[attr-defined]
                    "http_method": request.method,
                    "route": _route(request),
                    "status": response.status_code,
                    "duration_ms": round(elapsed * 1000, 2),
                    "organization_id": str(principal.organization_id) if principal else None,
                },
            )
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith("/api/"):
            return None
        logger.exception("Unhandled error on %s", request.path)
        token = set_request_id(getattr(request, "request_id", None))
        try:
            return json_error_response(exception)
        finally:
            reset_request_id(token)


def _route(request: HttpRequest) -> str:
    """The URL pattern, not the path, so metrics and logs don't grow a label per id."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    return "/" + match.route if match.route else match.view_name or "-"


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise's static files, in a middleware that can also run async.

    WhiteNoise's own middleware is synchronous only, and one synchronous middleware makes
    Django's ASGI handler switch between the event loop and a thread around it on every
    request, static or not: three thread hops instead of one for the API's synchronous views,
    about a quarter of the server's CPU per request under load (``bench/README.md``). Under
    ASGI this one looks up the path and passes every other request on without leaving the
    event loop."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response, settings=settings) -> None:  # noqa: ANN001
        super().__init__(get_response, settings)
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):  # noqa: ANN204
        if self._async:
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        if self.autorefresh:  # development: looks at the disk
            static_file = await sync_to_async(self.find_file)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve)(static_file, request)
        return await self.get_response(request)


class InEventLoop:
    """For a ``MiddlewareMixin`` middleware whose hooks do no I/O of their own: under ASGI
    they run in the event loop. Django's mixin runs each hook on a thread
    (``sync_to_async``), two thread hops per middleware and request (and one more for a
    ``process_view``), which cost an API request more than its view. A response hook that
    may write what the view touched (``touched_storage``: the session, messages) still runs
    on a thread; the view that touched it ran on one anyway."""

    def __init__(self, get_response: Any) -> None:
        super().__init__(get_response)  # type: ignore[call-arg]
        if iscoroutinefunction(get_response) and hasattr(self, "process_view"):
            # Django adapts a synchronous ``process_view`` with a thread hop.
            process_view = self.process_view

            async def in_loop(*args: Any) -> Any:
                return process_view(*args)

            self.process_view = in_loop  # type: ignore[method-assign]

    def touched_storage(self, request: HttpRequest) -> bool:
        return False

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            if self.touched_storage(request):
                response = await sync_to_async(self.process_response, thread_sensitive=True)(
                    request, response
                )
            else:
                response = self.process_response(request, response)
        return response


def _session_accessed(request: HttpRequest) -> bool:
    session = getattr(request, "session", None)
    return bool(session is not None and session.accessed)


class SecurityMiddleware(InEventLoop, security.SecurityMiddleware):
    """Django's, in the event loop under ASGI (headers and an HTTPS redirect only)."""


class CommonMiddleware(InEventLoop, common.CommonMiddleware):
    """Django's, in the event loop under ASGI (URL checks and headers only)."""


class XFrameOptionsMiddleware(InEventLoop, clickjacking.XFrameOptionsMiddleware):
    """Django's, in the event loop under ASGI (one header)."""


class SessionMiddleware(InEventLoop, sessions.SessionMiddleware):
    """Django's, in the event loop under ASGI: the session loads lazily (in the view that
    reads it); saving it runs on a thread."""

    def touched_storage(self, request: HttpRequest) -> bool:
        return _session_accessed(request)


class CsrfViewMiddleware(InEventLoop, csrf.CsrfViewMiddleware):
    """Django's, in the event loop under ASGI (cookies and the form's token; sessions do
    not hold CSRF secrets here)."""


class AuthenticationMiddleware(InEventLoop, auth.AuthenticationMiddleware):
    """Django's, in the event loop under ASGI: ``request.user`` loads lazily."""


class MessageMiddleware(InEventLoop, message_middleware.MessageMiddleware):
    """Django's, in the event loop under ASGI, with the message storage built only when a
    view uses it (an API request never does); storing messages runs on a thread."""

    def process_request(self, request: HttpRequest) -> None:
        request._messages = SimpleLazyObject(lambda: default_storage(request))  # type: ignore[attr-defined]

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        storage = getattr(request, "_messages", None)
        if isinstance(storage, SimpleLazyObject) and storage._wrapped is empty:
            return response  # never used
        return super().process_response(request, response)

    def touched_storage(self, request: HttpRequest) -> bool:
        storage = getattr(request, "_messages", None)
        if isinstance(storage, SimpleLazyObject) and storage._wrapped is empty:
            return _session_accessed(request)
        used = storage is not None and (storage.used or storage.added_new)
        return bool(used or _session_accessed(request))
