"""API keys in WebSocket URLs never reach the logs."""

from __future__ import annotations

import logging

from realtime.logging import RedactTokensFilter, redact

KEY = "fpk_S3cretKeyValue-_abc"


def _record(msg: str, args: tuple) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, msg, args, None)


def test_access_log_record_keeps_its_shape_without_the_key():
    record = _record(
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/ws/flows/x?a=1&token={KEY}&b=2", "1.1", 101),
    )
    assert RedactTokensFilter().filter(record) is True
    assert record.args[2] == "/ws/flows/x?a=1&token=[redacted]&b=2"
    assert len(record.args) == 5 and record.args[4] == 101  # uvicorn's formatter unpacks these
    assert KEY not in record.getMessage()


def test_websocket_accepted_line_and_preformatted_messages():
    record = _record(
        '%s - "WebSocket %s" [accepted]', ("127.0.0.1:5000", f"/ws/summaries?token={KEY}")
    )
    RedactTokensFilter().filter(record)
    assert (
        record.getMessage()
        == '127.0.0.1:5000 - "WebSocket /ws/summaries?token=[redacted]" [accepted]'
    )
    record = _record(f"GET /ws/summaries?TOKEN={KEY} 101", ())
    RedactTokensFilter().filter(record)
    assert KEY not in record.getMessage()


def test_redact_leaves_other_parameters_alone():
    assert redact("/x?mytoken=1&tokens=2&q=token") == "/x?mytoken=1&tokens=2&q=token"
    assert redact(f"/x?access_token={KEY}") == "/x?access_token=[redacted]"


def test_the_app_installs_the_filter_on_server_loggers_and_uvicorn_config_keeps_it():
    import copy
    import logging.config

    from uvicorn.config import LOGGING_CONFIG

    names = ("uvicorn", "uvicorn.access", "uvicorn.error")
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate) for n in names}
    try:
        # uvicorn configures its loggers after Django did (``manage.py serve``)
        logging.config.dictConfig(copy.deepcopy(LOGGING_CONFIG))
        for name in ("uvicorn.access", "uvicorn.error", "gunicorn.access"):
            filters = logging.getLogger(name).filters
            assert [f for f in filters if isinstance(f, RedactTokensFilter)], name
        assert logging.getLogger("uvicorn.access").handlers  # its own handler is untouched
    finally:
        for name, (handlers, propagate) in saved.items():
            logging.getLogger(name).handlers = handlers
            logging.getLogger(name).propagate = propagate


def test_uvicorn_access_line_through_the_configured_logger(caplog):
    logger = logging.getLogger("uvicorn.access")
    propagate, logger.propagate = logger.propagate, True  # let caplog see the record
    try:
        with caplog.at_level(logging.INFO, logger="uvicorn.access"):
            logger.info('%s - "%s %s HTTP/%s" %d', "c", "GET", f"/ws/x?token={KEY}", "1.1", 101)
    finally:
        logger.propagate = propagate
    assert "token=[redacted]" in caplog.text
    assert KEY not in caplog.text
