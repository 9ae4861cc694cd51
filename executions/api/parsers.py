"""YAML request bodies for the flow endpoints (``application/yaml``, ``text/yaml``).

``YAMLParser`` reads a YAML document into the same data a JSON body would give, using the
flow DSL's loader (YAML 1.2 scalars, no duplicate keys, so ``no`` stays a string).
``YAMLDefinitionParser`` is for endpoints whose body *is* a definition: it passes the text on
as ``{"definition": text}``, so the DSL reports syntax errors with their line and column.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from executions import dsl
from flowplatform.parsers import check_document

YAML_MEDIA_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
# YAML aliases let a few bytes stand for an exponentially large document; JSON cannot.
MAX_VALUES = 250_000


def _read_text(stream: Any, parser_context: dict[str, Any] | None) -> str:
    encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
    try:
        return stream.read().decode(encoding)
    except UnicodeDecodeError as exc:
        raise ParseError(f"YAML body is not {encoding} text: {exc}") from None


class YAMLParser(BaseParser):
    media_type = "application/yaml"

    def parse(self, stream, media_type=None, parser_context=None) -> Any:  # noqa: ANN001
        try:
            data = dsl.parse_definition(_read_text(stream, parser_context))
        except dsl.DefinitionError as exc:
            problem = exc.problems[0]
            if problem.type == "type_error":
                raise ParseError("Expected a YAML mapping.") from None
            raise ParseError(problem.msg) from None
        if _count_values(data, MAX_VALUES) > MAX_VALUES:
            raise ParseError(f"YAML document expands to more than {MAX_VALUES} values.")
        return check_document(data)  # the same bounds as a JSON body


class YAMLDefinitionParser(BaseParser):
    media_type = "application/yaml"

    def parse(self, stream, media_type=None, parser_context=None) -> Any:  # noqa: ANN001
        return {"definition": _read_text(stream, parser_context)}


def _count_values(root: Any, limit: int) -> int:
    """How many values ``root`` holds once aliases are expanded (stops counting past ``limit``)."""
    count, stack = 0, [root]
    while stack and count <= limit:
        value = stack.pop()
        count += 1
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return count


def _per_media_type(base: type[BaseParser]) -> list[type[BaseParser]]:
    return [
        type(f"{base.__name__}_{i}", (base,), {"media_type": media_type})
        for i, media_type in enumerate(YAML_MEDIA_TYPES)
    ]


YAML_PARSERS = _per_media_type(YAMLParser)
YAML_DEFINITION_PARSERS = _per_media_type(YAMLDefinitionParser)
