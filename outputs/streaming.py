"""Streaming a query result as one JSON array, with memory flat in the row count.

``[`` + rows joined by ``,`` + ``]``, encoded with orjson a batch at a time, read from a
server-side cursor: on PostgreSQL ``QuerySet.iterator()`` declares a named cursor, and it
runs inside a transaction so the cursor is ``WITHOUT HOLD`` and rows are produced as they are
fetched (outside one, Django declares a holdable cursor that PostgreSQL materialises whole
before the first row). On SQLite the same iterator reads the statement in ``fetchmany``
chunks; no transaction there, which would take SQLite's write lock for the whole download.

Django consumes a *synchronous* streaming iterator into a list before sending it when it is
served over ASGI, so under ASGI the stream is wrapped in an async iterator that runs each
fetch through ``sync_to_async(thread_sensitive=True)``: every fetch, and the transaction
around them, stays on the request's one thread and database connection.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from itertools import islice
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import connections, transaction
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse

from flowplatform import tenancy
from flowplatform.renderers import dumps

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 1000
# The first piece is kept small so the first byte leaves early; the cursor still fetches
# ``chunk_size`` rows at a time.
FIRST_PIECE_ROWS = 100


class JsonArrayStream:
    """A synchronous iterator of ``bytes`` pieces of a JSON array, one per batch of rows.

    ``rows`` is a lazy queryset of value tuples; ``render`` turns one tuple into the dict
    to encode. Nothing touches the database until the first ``next()``.
    """

    def __init__(
        self,
        rows: QuerySet,
        render: Callable[[tuple[Any, ...]], Any],
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        organization_id: Any = None,
    ) -> None:
        self._rows = rows
        # Streaming outlives the view's transaction: its own is scoped to this organization
        # (row-level security, ``flowplatform.tenancy``).
        self._organization_id = organization_id
        self._render = render
        self._chunk_size = chunk_size
        self._using = rows.db
        self._iterator: Any = None
        self._atomic: Any = None
        self._thread: int | None = None
        self._state = "new"  # new -> open -> done
        self._emitted = False
        self.chunks = 0  # pieces produced so far (for tests and logs)

    def __iter__(self) -> JsonArrayStream:
        return self

    def __next__(self) -> bytes:
        piece = self.next_piece()
        if piece is None:
            raise StopIteration
        return piece

    def next_piece(self) -> bytes | None:
        """The next piece of the array, or None after the closing bracket."""
        if self._state == "done":
            return None
        try:
            if self._state == "new":
                self._open()
            size = self._chunk_size if self._emitted else min(FIRST_PIECE_ROWS, self._chunk_size)
            batch = list(islice(self._iterator, size))
            encoded = dumps([self._render(values) for values in batch])[1:-1] if batch else b""
        except BaseException:
            self._finish(sys.exc_info())
            raise
        self.chunks += 1
        if not batch:
            self._finish()
            return b"]" if self._emitted else b"[]"
        piece = (b"," if self._emitted else b"[") + encoded
        self._emitted = True
        return piece

    def close(self) -> None:
        """Release the cursor and end the transaction (the response calls this when done)."""
        if self._state != "open":
            self._state = "done"
            return
        if threading.get_ident() != self._thread:
            # Only the request's thread may touch its connection. Django closes that
            # connection at request end anyway, since it is left inside a transaction.
            logger.warning("Abandoning a streamed response from another thread.")
            self._state, self._iterator, self._atomic = "done", None, None
            return
        self._finish()

    def _open(self) -> None:
        self._thread = threading.get_ident()
        if connections[self._using].vendor == "postgresql":
            atomic: Any = (
                tenancy.activate(self._organization_id, using=self._using, atomic=True)
                if self._organization_id is not None
                else transaction.atomic(using=self._using)
            )
            atomic.__enter__()
            self._atomic = atomic
        self._state = "open"
        self._iterator = self._rows.iterator(chunk_size=self._chunk_size)

    def _finish(self, exc_info: Any = (None, None, None)) -> None:
        self._state = "done"
        iterator, self._iterator = self._iterator, None
        atomic, self._atomic = self._atomic, None
        try:
            if iterator is not None:
                iterator.close()  # closes the cursor before the transaction ends
        finally:
            if atomic is not None:
                atomic.__exit__(*exc_info)


class AsyncJsonArrayStream:
    """``JsonArrayStream`` for ASGI: an async iterator (so Django streams it instead of
    buffering it) whose every fetch runs on the request's thread."""

    def __init__(self, stream: JsonArrayStream) -> None:
        self._stream = stream
        self._next = sync_to_async(stream.next_piece, thread_sensitive=True)

    def __aiter__(self) -> AsyncJsonArrayStream:
        return self

    async def __anext__(self) -> bytes:
        piece = await self._next()
        if piece is None:
            raise StopAsyncIteration
        return piece

    def close(self) -> None:
        # HttpResponse.close() runs through sync_to_async on the request thread.
        self._stream.close()


def json_array_response(
    request: HttpRequest,
    rows: QuerySet,
    render: Callable[[tuple[Any, ...]], Any],
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    organization_id: Any = None,
) -> StreamingHttpResponse:
    stream = JsonArrayStream(rows, render, chunk_size=chunk_size, organization_id=organization_id)
    content: Any = AsyncJsonArrayStream(stream) if isinstance(request, ASGIRequest) else stream
    response = StreamingHttpResponse(content, content_type="application/json")
    response.json_stream = stream  # type: ignore[attr-defined]
    return response
