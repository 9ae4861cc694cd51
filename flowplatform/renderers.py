"""A JSON renderer backed by orjson: the same output as DRF's, several times faster."""

from __future__ import annotations

from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

_encoder = JSONEncoder()


def dumps(data: Any) -> bytes:
    return orjson.dumps(data, default=_encoder.default)


class FastJSONRenderer(JSONRenderer):
    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context=None
    ) -> bytes:  # noqa: ANN001
        if data is None:
            return b""
        return dumps(data)
