"""JSON documents as the API accepts them, and the JSON body parser of every API view.

A client's JSON (a body, a YAML body read into the same data, a definition's text, a browser
form's input) is accepted only if everything stored from it can be written back: in a
response, an event, a replay. ``check_document`` refuses, with a 422 naming each place
(``loc`` = ``["body", <key>, <index>, ...]``):

- nesting deeper than ``MAX_JSON_DEPTH`` (default 100): the renderer (orjson) stops at 254
  levels, and a stored value is written inside a few more (a list, a detail, an event);
- integers outside 64 bits and non-finite numbers: the renderer writes neither, PostgreSQL's
  ``jsonb`` has no infinity, and most clients lose such integers anyway;
- strings, keys included, holding U+0000 or a lone UTF-16 surrogate: PostgreSQL stores
  neither, and a lone surrogate cannot be encoded as UTF-8 in a response.

``load_json`` parses text with those rules: nesting too deep for the parser itself, or an
integer longer than Python reads, is the same 422, never a 500.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from rest_framework import parsers

from flowplatform.exceptions import PayloadTooLarge, ValidationFailed

DEFAULT_MAX_JSON_DEPTH = 100
MIN_INTEGER, MAX_INTEGER = -(2**63), 2**64 - 1

NUL_MESSAGE = "Strings may not contain the NUL character (U+0000)."
SURROGATE_MESSAGE = "Strings may not contain unpaired UTF-16 surrogates (U+D800-U+DFFF)."
INTEGER_MESSAGE = "Integers must lie between -2**63 and 2**64-1."
NUMBER_MESSAGE = "Numbers must be finite."
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def max_depth() -> int:
    return int(getattr(settings, "MAX_JSON_DEPTH", DEFAULT_MAX_JSON_DEPTH))


def depth_message() -> str:
    return f"Nested more than {max_depth()} levels deep."


def document_problems(
    value: Any, loc: tuple[str | int, ...] = ("body",)
) -> Iterator[dict[str, Any]]:
    """``{loc, msg, type}`` for every place of ``value`` (parsed JSON) that the API refuses;
    a subtree nested too deeply is one problem, at the level where it passes the bound."""
    limit = max_depth()
    stack: list[tuple[Any, tuple[str | int, ...], int]] = [(value, loc, 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= limit:
                yield _problem(where, depth_message(), "too_deep")
                continue
            if isinstance(item, dict):
                for key, child in item.items():
                    if isinstance(key, str) and (message := _text_problem(key)):
                        yield _problem([*where, key], message, _text_type(message))
                    stack.append((child, (*where, key), depth + 1))
            else:
                stack.extend((child, (*where, i), depth + 1) for i, child in enumerate(item))
        elif isinstance(item, str):
            if message := _text_problem(item):
                yield _problem(where, message, _text_type(message))
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not MIN_INTEGER <= item <= MAX_INTEGER:
                yield _problem(where, INTEGER_MESSAGE, "integer_out_of_range")
        elif isinstance(item, float) and item - item != 0.0:  # inf or nan
            yield _problem(where, NUMBER_MESSAGE, "number_not_finite")


def check_document(value: Any, loc: tuple[str | int, ...] = ("body",)) -> Any:
    """``value`` unchanged, or ValidationFailed (422) listing every place it refuses."""
    details = list(document_problems(value, loc))
    if details:
        first = details[0]
        where = ".".join(str(part) for part in first["loc"])
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        raise ValidationFailed(f"{where}: {first['msg']}{more}", details=details)
    return value


def load_json(raw: bytes | str, loc: tuple[str | int, ...] = ("body",)) -> Any:
    """Parse JSON text (NaN and Infinity refused, as JSON has neither) and check it."""
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise _unreadable(loc, depth_message(), "too_deep") from None
    except ValueError as exc:  # malformed, or an integer longer than Python reads
        raise _unreadable(loc, f"Malformed JSON: {exc}", "json_invalid") from None
    return check_document(value, loc)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _unreadable(loc: tuple[str | int, ...], message: str, type_: str) -> ValidationFailed:
    where = ".".join(str(part) for part in loc)
    return ValidationFailed(f"{where}: {message}", details=[_problem(loc, message, type_)])


def _problem(loc: Any, message: str, type_: str) -> dict[str, Any]:
    return {"loc": list(loc), "msg": message, "type": type_}


def _text_problem(text: str) -> str | None:
    match = _UNSTORABLE.search(text)
    if match is None:
        return None
    return NUL_MESSAGE if match.group() == "\x00" else SURROGATE_MESSAGE


def _text_type(message: str) -> str:
    if message == NUL_MESSAGE:
        return "null_characters_not_allowed"
    return "surrogate_characters_not_allowed"


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:  # noqa: ANN001
        raw = stream.read()
        # Under ASGI, flowplatform.bodylimit refused this before; a WSGI server lands here.
        if len(raw) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise PayloadTooLarge()
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise _unreadable(("body",), f"Not {encoding} text: {exc}", "json_invalid") from None
        return load_json(text)
