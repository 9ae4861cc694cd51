"""A JSON renderer backed by orjson: the same output as DRF's, several times faster."""

from __future__ import annotations

import json
from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

_encoder = JSONEncoder()


def dumps(data: Any) -> bytes:
    try:
        return orjson.dumps(data, default=_encoder.default)
    except TypeError as exc:
        if str(exc) != WIDE_INTEGER:
            raise
        return wide_dumps(data)


# orjson encodes 64-bit integers only; JSON has no limit and the JSON-valued fields (input,
# output, summary, ...) accept any number, which PostgreSQL's jsonb keeps exactly. Such
# documents (rare) are written by the standard library instead of failing with a 500.
WIDE_INTEGER = "Integer exceeds 64-bit range"


def wide_dumps(data: Any) -> bytes:
    text = json.dumps(
        data, cls=JSONEncoder, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )
    return text.encode()


class FastJSONRenderer(JSONRenderer):
    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context=None
    ) -> bytes:  # noqa: ANN001
        if data is None:
            return b""
        return dumps(data)
