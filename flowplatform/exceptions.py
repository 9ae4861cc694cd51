"""One exception hierarchy and one handler that shapes every API error into the envelope:

``{"error": {"message", "code", "details"}, "request_id"}``
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from flowplatform.request_context import current_request_id

logger = logging.getLogger("flowplatform.errors")


class FlowplatformError(Exception):
    code = "internal_error"
    http_status = 500
    default_message = "An unexpected error occurred."

    def __init__(self, message: str | None = None, *, details: list[Any] | None = None) -> None:
        self.message = message or self.default_message
        self.details = details or []
        super().__init__(self.message)


class BadRequest(FlowplatformError):
    code, http_status, default_message = "bad_request", 400, "The request is invalid."


class Unauthorized(FlowplatformError):
    code, http_status = "unauthorized", 401
    default_message = "Authentication credentials were missing or invalid."


class Forbidden(FlowplatformError):
    code, http_status = "forbidden", 403
    default_message = "You are not allowed to perform this action."


class NotFound(FlowplatformError):
    code, http_status, default_message = "not_found", 404, "Not found."


class Conflict(FlowplatformError):
    code, http_status = "conflict", 409
    default_message = "The resource was changed by someone else."


class PayloadTooLarge(FlowplatformError):
    code, http_status, default_message = "payload_too_large", 413, "The request body is too large."


class ValidationFailed(FlowplatformError):
    code, http_status, default_message = "validation_error", 422, "The request is not valid."


class ServiceUnavailable(FlowplatformError):
    code, http_status, default_message = "service_unavailable", 503, "Service unavailable."


def envelope(*, message: str, code: str, details: list[Any] | None = None) -> dict[str, Any]:
    return {
        "error": {"message": message, "code": code, "details": details or []},
        "request_id": current_request_id(),
    }


def validation_details(detail: Any, loc: list[str | int]) -> list[dict[str, Any]]:
    """Flatten DRF's nested error structure into ``[{loc, msg, type}]`` entries."""
    if isinstance(detail, Mapping):
        out: list[dict[str, Any]] = []
        for key, value in detail.items():
            sub = loc if key == "non_field_errors" else [*loc, key]
            out.extend(validation_details(value, sub))
        return out
    if isinstance(detail, list | tuple):
        out = []
        for index, value in enumerate(detail):
            if isinstance(value, Mapping | list | tuple):
                out.extend(validation_details(value, [*loc, index]))
            else:
                out.extend(validation_details(value, loc))
        return out
    code = getattr(detail, "code", None) or "invalid"
    return [{"loc": list(loc), "msg": str(detail), "type": str(code)}]


def raise_validation(errors: Any, *, location: str = "body") -> None:
    details = validation_details(errors, [location])
    raise ValidationFailed(_summarise(details), details=details)


def _summarise(details: Iterable[Mapping[str, Any]]) -> str:
    details = list(details)
    if not details:
        return ValidationFailed.default_message
    first = details[0]
    where = ".".join(str(p) for p in first["loc"])
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return f"{where}: {first['msg']}{more}"


_DRF_MAP: list[tuple[type[Exception], int, str]] = [
    (drf.NotAuthenticated, 401, "unauthorized"),
    (drf.AuthenticationFailed, 401, "unauthorized"),
    (drf.PermissionDenied, 403, "forbidden"),
    (drf.NotFound, 404, "not_found"),
    (drf.MethodNotAllowed, 405, "method_not_allowed"),
    (drf.NotAcceptable, 406, "not_acceptable"),
    (drf.UnsupportedMediaType, 415, "unsupported_media_type"),
    (drf.Throttled, 429, "rate_limited"),
]


# The database cannot be reached or gave up on the transaction (connection lost, server
# restarting, deadlock, serialization failure, SQLite busy): nothing is wrong with the request
# and it was not applied, so clients and workers should retry (workers retry 503, not 500).
RETRY_AFTER_SECONDS = 1
UNAVAILABLE_MESSAGE = "The database is unavailable; nothing was changed. Retry shortly."


def _as_error(exc: Exception) -> tuple[int, dict[str, Any]] | None:
    if isinstance(exc, DatabaseOperationalError | DatabaseInterfaceError):
        logger.warning("Database unavailable: %s", exc.__class__.__name__)
        return 503, envelope(message=UNAVAILABLE_MESSAGE, code=ServiceUnavailable.code)
    if isinstance(exc, FlowplatformError):
        return exc.http_status, envelope(message=exc.message, code=exc.code, details=exc.details)
    if isinstance(exc, Http404):
        return 404, envelope(message="Not found.", code="not_found")
    if isinstance(exc, DjangoPermissionDenied):
        return 403, envelope(message=Forbidden.default_message, code="forbidden")
    if isinstance(exc, RequestDataTooBig):
        return 413, envelope(message=PayloadTooLarge.default_message, code="payload_too_large")
    if isinstance(exc, drf.ParseError):
        msg = f"Malformed request body: {exc.detail}"
        details = [{"loc": ["body"], "msg": str(exc.detail), "type": "json_invalid"}]
        return 422, envelope(message=msg, code="validation_error", details=details)
    if isinstance(exc, drf.ValidationError):
        details = validation_details(exc.detail, ["body"])
        return 422, envelope(message=_summarise(details), code="validation_error", details=details)
    for cls, status, code in _DRF_MAP:
        if isinstance(exc, cls):
            return status, envelope(message=str(exc.detail), code=code)  # type: ignore[attr-defined]
    if isinstance(exc, drf.APIException):
        return exc.status_code, envelope(message=str(exc.detail), code=str(exc.default_code))
    return None


def api_exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: every error, expected or not, leaves in the envelope."""
    from rest_framework.views import set_rollback  # DRF imports this module while loading

    shaped = _as_error(exc)
    headers: dict[str, str] = {}
    if shaped is None:
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
        shaped = 500, envelope(message=FlowplatformError.default_message, code="internal_error")
    status, body = shaped
    if isinstance(exc, drf.APIException):
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
    if status == 401 and "WWW-Authenticate" not in headers:
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
    if status == 503:
        headers.setdefault("Retry-After", str(RETRY_AFTER_SECONDS))
    if _has_request_transaction(context.get("view")):
        set_rollback()
    return Response(body, status=status, headers=headers)


def _has_request_transaction(view: Any) -> bool:
    """Whether the view runs in a request transaction (``ATOMIC_REQUESTS``) to roll back. A
    view exempt from it (``non_atomic_requests``) opens and ends its own transactions: an
    atomic block still open around it is a caller's (the test suite's), not the view's."""
    dispatch = getattr(type(view), "dispatch", None)
    return not getattr(dispatch, "_non_atomic_requests", ())


def json_error_response(exc: Exception) -> JsonResponse:
    """The same envelope for errors raised outside DRF views (middleware, plain views)."""
    shaped = _as_error(exc)
    if shaped is None:
        shaped = 500, envelope(message=FlowplatformError.default_message, code="internal_error")
    status, body = shaped
    response = JsonResponse(body, status=status)
    if status == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
