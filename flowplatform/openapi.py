"""OpenAPI generation: the schema class of every view, and post-processing that documents
the error envelope on every operation."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework import serializers

# Some character Python's ``str.strip()`` keeps (ECMA ``\S`` differs: it counts U+001C-U+001F
# and U+0085 as text, U+FEFF as space), for the pattern below.
NOT_BLANK_PATTERN = (
    "[^\\t-\\r \\u001c-\\u001f\\u0085\\u00a0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000]"
)


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's, describing one more thing the serializers do: a ``CharField`` that
    trims whitespace and refuses blanks rejects ``" "`` or ``"\\t"`` although they satisfy
    ``minLength: 1``; a ``pattern`` asking for one character that is not whitespace says so."""

    def _map_basic_serializer(self, serializer: Any, direction: str) -> Any:
        # Which way the fields being mapped go: outputs are described as rendered (an empty
        # ``description`` is a fine output), only inputs get the pattern.
        directions = self.__dict__.setdefault("_directions", [])
        directions.append(direction)
        try:
            return super()._map_basic_serializer(serializer, direction)
        finally:
            directions.pop()

    def _insert_field_validators(self, field: Any, schema: dict[str, Any]) -> None:
        super()._insert_field_validators(field, schema)
        directions = self.__dict__.get("_directions") or [None]
        if (
            directions[-1] == "request"
            and isinstance(field, serializers.CharField)
            and field.trim_whitespace
            and not field.allow_blank
            and schema.get("type") == "string"
            and not {"pattern", "enum", "format"} & schema.keys()
        ):
            schema["pattern"] = NOT_BLANK_PATTERN


_ENVELOPE = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "code": {"type": "string"},
                "details": {"type": "array", "items": {}},
            },
            "required": ["message", "code", "details"],
        },
        "request_id": {"type": "string", "nullable": True},
    },
    "required": ["error", "request_id"],
}

_DESCRIPTIONS = {
    "400": "Semantically invalid request.",
    "401": "Missing, malformed, revoked or unknown credential.",
    "403": "Authenticated but not allowed.",
    "404": "Unknown id, or an id of another organization.",
    "405": "Method not allowed.",
    "409": "Conflict with the stored state.",
    "413": "Request body too large.",
    "415": "Unsupported media type.",
    "422": "Body or query failed validation.",
    "500": "Unexpected error.",
    "503": "The database is unavailable; nothing was changed. Retry after `Retry-After`.",
}


def add_error_responses(result: dict[str, Any], generator, request, public) -> dict[str, Any]:  # noqa: ANN001
    components = result.setdefault("components", {}).setdefault("schemas", {})
    _require_bodies_with_required_fields(result, components)
    components["ErrorEnvelope"] = _ENVELOPE
    ref = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            codes = ["401", "403", "422", "500", "503"]
            if "{" in path:
                codes.append("404")
            if method in {"post", "put", "patch"}:
                codes += ["400", "413", "415"]
            elif any(p.get("name") == "starting_after" for p in operation.get("parameters", [])):
                codes.append("400")  # an unknown cursor (flowplatform.pagination.unknown_cursor)
            codes += operation.pop("x-error-codes", [])
            for code in codes:
                operation["responses"].setdefault(
                    code,
                    {
                        "description": _DESCRIPTIONS[code],
                        "content": {"application/json": {"schema": ref}},
                    },
                )
    return result


def _require_bodies_with_required_fields(result: dict[str, Any], components: dict) -> None:
    """A body whose JSON form has required fields cannot be omitted: say so
    (``requestBody.required``), which drf-spectacular leaves out when a view documents its
    request per media type (the flow definition endpoints, JSON or YAML)."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            if not body or "required" in body:
                continue
            schema = body.get("content", {}).get("application/json", {}).get("schema", {})
            ref = schema.get("$ref", "")
            if ref.startswith("#/components/schemas/"):
                schema = components.get(ref.rsplit("/", 1)[1], {})
            if schema.get("required"):
                body["required"] = True
