"""The JSON body parser of every API view.

DRF's own parser, plus one rule the database imposes: no string in a body, key or value, may
contain U+0000 or a lone UTF-16 surrogate (``"\\ud800"`` without its pair). PostgreSQL stores
neither in ``text`` nor in ``jsonb``, and a lone surrogate cannot be encoded as UTF-8 in a
response either, so without this check such a body failed with a 500 (at the INSERT on
PostgreSQL, at rendering on SQLite). It is refused up front, on every database alike, as a
422 naming where the character is (``loc`` = ``["body", <key>, <index>, ...]``).

The check costs a substring search of the raw body on the hot path: UTF-8 JSON can spell
these characters only as escapes (``\\u0000``, ``\\ud8xx``...; raw NUL or surrogate bytes
are not valid JSON text), so a body without ``\\u0000`` or ``\\ud``/``\\uD`` is walked no
further.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from io import BytesIO
from typing import Any

from django.conf import settings
from rest_framework import parsers

from flowplatform.exceptions import PayloadTooLarge, ValidationFailed

NUL_MESSAGE = "Strings may not contain the NUL character (U+0000)."
SURROGATE_MESSAGE = "Strings may not contain unpaired UTF-16 surrogates (U+D800-U+DFFF)."
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_ESCAPES = (b"\\u0000", b"\\ud", b"\\uD", b"\x00")


def unstorable_locations(
    value: Any, loc: tuple[str | int, ...] = ("body",)
) -> Iterator[tuple[list[str | int], str]]:
    """``(loc, message)`` for every string of ``value`` (parsed JSON) that holds a NUL or a
    lone surrogate, keys included."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, loc)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if message := _problem(item):
                yield list(where), message
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and (message := _problem(key)):
                    yield [*where, key], message
                stack.append((child, (*where, key)))
        elif isinstance(item, list):
            stack.extend((child, (*where, index)) for index, child in enumerate(item))


def nul_locations(value: Any, loc: tuple[str | int, ...] = ("body",)) -> Iterator[list]:
    """Where ``value`` holds a string with a NUL or a lone surrogate."""
    return (where for where, _ in unstorable_locations(value, loc))


def _problem(text: str) -> str | None:
    match = _UNSTORABLE.search(text)
    if match is None:
        return None
    return NUL_MESSAGE if match.group() == "\x00" else SURROGATE_MESSAGE


def reject_nul(value: Any) -> Any:
    """``value`` unchanged, or ValidationFailed (422) listing every unstorable string."""
    details = [
        {
            "loc": loc,
            "msg": message,
            "type": "null_characters_not_allowed"
            if message == NUL_MESSAGE
            else "surrogate_characters_not_allowed",
        }
        for loc, message in unstorable_locations(value)
    ]
    if details:
        where = ".".join(str(part) for part in details[0]["loc"])
        raise ValidationFailed(f"{where}: {details[0]['msg']}", details=details)
    return value


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:  # noqa: ANN001
        raw = stream.read()
        # Under ASGI, flowplatform.bodylimit refused this before; a WSGI server lands here.
        if len(raw) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise PayloadTooLarge()
        data = super().parse(BytesIO(raw), media_type, parser_context)
        # (A NUL byte in the raw body: UTF-16 or UTF-32 text, which spells escapes otherwise.)
        if any(escape in raw for escape in _ESCAPES):
            reject_nul(data)
        return data
