"""Keep credentials out of logs.

Browsers cannot set headers on a WebSocket, so clients may send their API key as
``/ws/flows/<id>?token=<key>``. uvicorn logs the path *with* the query string, both in its
access log and in its "WebSocket ... [accepted]" line (logger ``uvicorn.error``). This filter,
installed on those loggers when the app loads, rewrites the value to ``[redacted]``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

REDACTED = "[redacted]"
_SECRET_PARAMS = re.compile(
    r"(?P<name>(?:^|(?<=[?&;\s\"']))(?:token|access_token|api_key)=)[^&;\s\"'#]*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    if "=" not in text:
        return text
    return _SECRET_PARAMS.sub(lambda m: m.group("name") + REDACTED, text)


def _redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class RedactTokensFilter(logging.Filter):
    """Redact ``token=…`` (and ``access_token=``, ``api_key=``) values in a record.

    The shape of ``record.args`` is preserved (uvicorn's access formatter unpacks it).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_redact_value(arg) for arg in args)
        elif isinstance(args, dict):
            record.args = {key: _redact_value(value) for key, value in args.items()}
        return True


# uvicorn (its access log and its "WebSocket <path>" lines) and gunicorn's access log.
REDACTED_LOGGERS = ("uvicorn.access", "uvicorn.error", "gunicorn.access")


def install_token_redaction() -> None:
    """Add the filter to the server loggers that print request paths (idempotent).

    Done on the logger objects rather than in ``settings.LOGGING``: configuring a logger
    there replaces its handlers, which would override uvicorn's own configuration
    (``--no-access-log``, ``--log-config``) and gunicorn's access-log handlers. Filters added
    here survive any later ``dictConfig`` of those loggers, whichever configures first.
    """
    for name in REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokensFilter) for f in logger.filters):
            logger.addFilter(RedactTokensFilter())
