"""Real HTTP servers on 127.0.0.1 for the worker's tests (no mocks of the network).

* ``serve(handler)`` runs any ``BaseHTTPRequestHandler`` in a thread on a free port;
* ``EchoHandler`` answers what the executors need (echo, chosen status, text, slow);
* ``ScriptedHandler`` plays a list of canned answers, to test the client's retry policy.

The fake flowplatform API used by the runner tests lives in ``fake_api.py``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real server
    # Headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        pass

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send(
        self,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
    ) -> None:
        payload = raw if raw is not None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up early (timeouts under test) are expected, not errors.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def serve(handler: type[BaseHTTPRequestHandler], **attributes: Any) -> Iterator[str]:
    """Serve ``handler`` on a free port; yield the base URL.  ``attributes`` are set on
    the server object, where handlers find their shared state (``self.server``)."""
    server = _Server(("127.0.0.1", 0), handler)
    for name, value in attributes.items():
        setattr(server, name, value)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)


class EchoHandler(QuietHandler):
    """``/echo`` reflects the request; ``/status/N`` answers N; ``/text``; ``/slow``."""

    def handle_any(self) -> None:
        url = urlsplit(self.path)
        body = self.read_body()
        if url.path == "/echo":
            parsed: Any = None
            if body and self.headers.get("Content-Type", "").startswith("application/json"):
                parsed = json.loads(body)
            self.send(
                200,
                {
                    "method": self.command,
                    "path": url.path,
                    "query": parse_qs(url.query),
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode(),
                    "json": parsed,
                },
            )
        elif url.path.startswith("/status/"):
            code = int(url.path.rsplit("/", 1)[1])
            self.send(code, {"status": code})
        elif url.path == "/text":
            self.send(200, raw=b"hello, worker", content_type="text/plain; charset=utf-8")
        elif url.path == "/slow":
            time.sleep(1.0)
            self.send(200, {"slow": True})
        else:
            self.send(404, {"error": "no such path"})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any


@dataclass
class Scripted:
    """One canned answer; ``drop=True`` closes the connection without answering."""

    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class ScriptedHandler(QuietHandler):
    """Answers from ``server.script`` in order (the last one repeats); records requests."""

    def handle_any(self) -> None:
        body = self.read_body()
        server: Any = self.server
        with server.lock:
            server.requests.append(
                RecordedRequest(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    json.loads(body) if body else None,
                )
            )
            index = min(len(server.requests) - 1, len(server.script) - 1)
            answer: Scripted = server.script[index]
        if answer.drop:
            self.close_connection = True
            return
        self.send(answer.status, answer.body, headers=answer.headers)

    do_GET = do_POST = handle_any


@contextmanager
def scripted(*script: Scripted) -> Iterator[tuple[str, list[RecordedRequest]]]:
    requests: list[RecordedRequest] = []
    with serve(
        ScriptedHandler, script=list(script), requests=requests, lock=threading.Lock()
    ) as url:
        yield url, requests
