"""A test client that sends requests through the production ASGI application
(``config.asgi:application``: the body limit, the ASGI handler, every middleware, the view,
and for worker reports the batch threads), each request in its own transactions as in
production. For the seed endpoints' contract tests, which run with
``django_db(transaction=True)``.

It speaks the part of DRF's ``APIClient`` those tests use: ``credentials``, ``get``,
``post``, ``put``, ``patch``, ``delete`` with ``format="json"`` or ``content_type``, and
answers with responses that have ``status_code``, ``content``, ``json()`` and headers.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import httpx
from asgiref.sync import async_to_sync

from config.asgi import application


class Response:
    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.content = response.content
        self.headers = response.headers

    def json(self) -> Any:
        return json.loads(self.content)

    def __getitem__(self, name: str) -> str:
        return self.headers[name]

    def __contains__(self, name: str) -> bool:
        return name in self.headers

    def has_header(self, name: str) -> bool:
        return name in self.headers


class ASGIClient:
    def __init__(self) -> None:
        self._headers: dict[str, str] = {}

    def credentials(self, **headers: str) -> None:
        """``HTTP_AUTHORIZATION="Bearer …"`` as DRF's client takes it."""
        self._headers = {
            name.removeprefix("HTTP_").replace("_", "-").title(): value
            for name, value in headers.items()
        }

    def get(self, path: str, data: dict[str, Any] | None = None, **extra: Any) -> Response:
        if data:
            path += ("&" if "?" in path else "?") + urlencode(data, doseq=True)
        return self._send("GET", path, None, None)

    def post(self, path: str, data: Any = None, **extra: Any) -> Response:
        return self._send("POST", path, data, extra)

    def put(self, path: str, data: Any = None, **extra: Any) -> Response:
        return self._send("PUT", path, data, extra)

    def patch(self, path: str, data: Any = None, **extra: Any) -> Response:
        return self._send("PATCH", path, data, extra)

    def delete(self, path: str, data: Any = None, **extra: Any) -> Response:
        return self._send("DELETE", path, data, extra)

    def _send(self, method: str, path: str, data: Any, extra: dict[str, Any] | None) -> Response:
        headers = dict(self._headers)
        content: bytes | None = None
        if data is not None:
            options = extra or {}
            content_type = options.get("content_type") or "application/json"
            raw = isinstance(data, bytes | str) and options.get("format") != "json"
            content = (data.encode() if isinstance(data, str) else data) if raw else None
            if content is None:
                content = json.dumps(data).encode()
            headers["Content-Type"] = content_type
        return async_to_sync(self._request)(method, path, headers, content)

    @staticmethod
    async def _request(
        method: str, path: str, headers: dict[str, str], content: bytes | None
    ) -> Response:
        transport = httpx.ASGITransport(app=application, client=("127.0.0.1", 12345))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return Response(await client.request(method, path, headers=headers, content=content))
