"""Request bodies larger than ``MAX_REQUEST_BODY_BYTES`` (settings
``DATA_UPLOAD_MAX_MEMORY_SIZE``, default 10 MiB) are refused with 413 in the error envelope,
on every HTTP route, before anything reads them.

Django's own limit does not cover the API: its ASGI handler reads the whole body (into a
temporary file) before any middleware or view runs, and DRF's parsers read ``request.stream``,
which ``DATA_UPLOAD_MAX_MEMORY_SIZE`` does not guard. So a client could make the server take
in any number of bytes. This ASGI middleware sits in front of Django:

- a ``Content-Length`` over the limit is answered at once, nothing read;
- a body sent without one (chunked) is counted as it arrives; past the limit Django is told
  the client went away (it stops reading and answers nothing) and the 413 is sent instead.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from flowplatform.exceptions import PayloadTooLarge, envelope
from flowplatform.renderers import dumps
from flowplatform.request_context import new_request_id, reset_request_id, set_request_id

Scope = dict[str, Any]


def body_limit() -> int:
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


class BodyLimitMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit()
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(scope, send, limit)
            return
        received = 0
        exceeded = False
        started = False

        async def counted_receive() -> dict[str, Any]:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted_receive, tracked_send)
        if exceeded and not started:
            await _too_large(scope, send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers") or ():
        if name == wanted:
            return value.decode("latin-1")
    return None


async def _too_large(scope: Scope, send: Any, limit: int) -> None:
    request_id = new_request_id(_header(scope, b"x-request-id"))
    token = set_request_id(request_id)
    try:
        body = dumps(
            envelope(
                message=f"{PayloadTooLarge.default_message} The limit is {limit} bytes.",
                code=PayloadTooLarge.code,
                details=[{"loc": ["body"], "msg": f"At most {limit} bytes.", "type": "too_large"}],
            )
        )
    finally:
        reset_request_id(token)
    await send(
        {
            "type": "http.response.start",
            "status": PayloadTooLarge.http_status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
