"""Django's ASGI handler, with each request's thread kept for reuse and used only if needed.

Under ASGI, Django runs a request's thread-sensitive work (a synchronous view, the receivers
of ``request_started`` and ``request_finished``, closing the response) on a thread of the
request's own: asgiref's ``ThreadSensitiveContext`` without an executor starts one for each
request and another to join it afterwards, and the request's signals hop to it and back
even when its view is asynchronous and never touches it. For a small API request under
ASGI (a worker's report) that cost more than the view.

Here, with asgiref's own means (``ThreadSensitiveContext(executor=...)``: the caller owns a
one-thread executor, which is not shut down on exit):

- each request takes a one-thread executor from a free list and gives it back after;
- the ``request_started`` receivers (they tidy the database connections of the thread
  that will run the request's synchronous code) run on that thread just before its first
  work of the request, and the response is closed there (``request_finished``: the same
  tidying) only if the request used it. A request that never left the event loop opened no
  connection there: its response is closed in the loop.

``handle`` is Django 5.2's ``ASGIHandler.handle`` with those two changes (marked).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import asgi
from django.urls import set_script_prefix

# Idle threads kept beyond this are let go.
MAX_IDLE_THREADS = 64


class RequestThread(ThreadPoolExecutor):
    """One thread, lent to one request at a time. Before the first work a request gives
    it, the ``request_started`` receivers run on it."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="request")
        self.used = False
        self.scope: dict[str, Any] = {}

    def lend(self, scope: dict[str, Any]) -> RequestThread:
        self.used, self.scope = False, scope
        return self

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if not self.used:
            self.used = True
            return super().submit(_started_then, self.scope, fn, *args, **kwargs)
        return super().submit(fn, *args, **kwargs)


def _started_then(scope: dict[str, Any], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    signals.request_started.send(sender=ASGIHandler, scope=scope)
    return fn(*args, **kwargs)


class _Threads:
    def __init__(self) -> None:
        self._idle: list[RequestThread] = []
        self._lock = threading.Lock()

    def take(self, scope: dict[str, Any]) -> RequestThread:
        with self._lock:
            thread = self._idle.pop() if self._idle else None
        return (thread or RequestThread()).lend(scope)

    def give_back(self, thread: RequestThread) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE_THREADS:
                self._idle.append(thread)
                return
        thread.shutdown(wait=False)

    def take_all(self) -> list[RequestThread]:
        """Every idle thread, taken out of the free list."""
        with self._lock:
            idle, self._idle = self._idle, []
        return idle


_threads = _Threads()


class ASGIHandler(asgi.ASGIHandler):
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        thread = _threads.take(scope)
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self._handle(scope, receive, send, thread)
        finally:
            _threads.give_back(thread)

    async def _handle(self, scope: Any, receive: Any, send: Any, thread: RequestThread) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(asgi.get_script_prefix(scope))
        # (changed) No ``request_started`` here: ``RequestThread`` sends it on its thread.
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            await self._close(error_response, thread)
            return

        async def process_request(request: Any, send: Any) -> Any:
            response = await self.run_get_response(request)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass  # the client disconnected during send_response
            return response

        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.__class__)
        else:
            await self._close(response, thread)
        body_file.close()

    @staticmethod
    async def _close(response: Any, thread: RequestThread) -> None:
        # (changed) On the request's thread only if the request used it.
        if thread.used:
            await sync_to_async(response.close)()
        else:
            response.close()
