"""The current request id, visible to logging and the error envelope (async-safe)."""

from __future__ import annotations

import re
from contextvars import ContextVar

from ulid import ULID

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_ULID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def new_request_id(incoming: str | None = None) -> str:
    """Reuse a well-formed incoming ULID (so a caller can trace its own id), else mint one."""
    if incoming and _ULID_RE.match(incoming.upper()) and incoming[0] in "01234567":
        return incoming.upper()
    return str(ULID())


def set_request_id(value: str | None):  # noqa: ANN201 - contextvars.Token
    return _request_id.set(value)


def reset_request_id(token) -> None:  # noqa: ANN001
    _request_id.reset(token)


def current_request_id() -> str | None:
    return _request_id.get()
