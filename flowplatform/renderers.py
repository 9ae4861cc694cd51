"""JSON out: one function, ``dumps``, behind every response, event and WebSocket frame.

orjson writes what the API accepts (``flowplatform.parsers`` bounds every client's JSON).
A stored value it cannot write (integers past 64 bits or nesting past its 254 levels, in
rows stored before those bounds, or written by hand) never breaks a list, a detail or a
replay: integers are written exactly by the standard library, and a value nested too
deeply is replaced by ``UNRENDERABLE`` and logged.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import orjson
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

logger = logging.getLogger(__name__)

_encoder = JSONEncoder()
# orjson stops at 254 levels; deeper values are cut a little above that.
RENDER_DEPTH = 240
UNRENDERABLE = f"[unrenderable: nested more than {RENDER_DEPTH} levels deep]"


def dumps(data: Any) -> bytes:
    try:
        return orjson.dumps(data, default=_encoder.default)
    except orjson.JSONEncodeError:
        return _dumps_anyway(data)


def _dumps_anyway(data: Any) -> bytes:
    trimmed, cut = _trim(data, 0)
    if cut:
        logger.warning("A stored value nested too deeply was rendered as a placeholder")
    try:
        return orjson.dumps(trimmed, default=_encoder.default)
    except orjson.JSONEncodeError:  # integers past 64 bits: written exactly
        text = json.dumps(
            trimmed, cls=_WideEncoder, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
        return text.encode()


def _trim(value: Any, depth: int) -> tuple[Any, bool]:
    if not isinstance(value, dict | list | tuple):
        return value, False
    if depth >= RENDER_DEPTH:
        return UNRENDERABLE, True
    cut = False
    if isinstance(value, dict):
        trimmed_dict = {}
        for key, child in value.items():
            trimmed_dict[key], child_cut = _trim(child, depth + 1)
            cut = cut or child_cut
        return trimmed_dict, cut
    trimmed_list = []
    for child in value:
        item, child_cut = _trim(child, depth + 1)
        trimmed_list.append(item)
        cut = cut or child_cut
    return trimmed_list, cut


class _WideEncoder(JSONEncoder):
    def default(self, obj: Any) -> Any:
        if isinstance(obj, orjson.Fragment):
            return json.loads(obj.contents)
        return super().default(obj)


class JSONOnlyNegotiation(DefaultContentNegotiation):
    """The API answers JSON whatever the request's ``Accept`` says (its error envelope
    included): the view's first renderer, without reading the header or a ``format``
    parameter. Request bodies are still chosen by their ``Content-Type``."""

    def select_renderer(self, request: Any, renderers: list[Any], format_suffix: Any = None) -> Any:
        return renderers[0], renderers[0].media_type


class FastJSONRenderer(JSONRenderer):
    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context=None
    ) -> bytes:  # noqa: ANN001
        if data is None:
            return b""
        return dumps(data)
