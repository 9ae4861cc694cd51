"""Input-serializer pieces shared by the flow and flow-execution endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

READ_ONLY_MESSAGE = "This field is set by the server and cannot be given."


class ServerFieldsRejected(serializers.Serializer):
    """Rejects (422, type ``read_only``) body keys that only the server sets, such as ``id``,
    ``version`` or ``created_at``, instead of silently ignoring them. Other unknown keys are
    ignored, as DRF does."""

    server_fields: tuple[str, ...] = ()

    def to_internal_value(self, data: Any) -> Any:
        errors: dict[str, Any] = {}
        if isinstance(data, Mapping):
            errors = {
                name: [ErrorDetail(READ_ONLY_MESSAGE, code="read_only")]
                for name in self.server_fields
                if name in data
            }
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not isinstance(exc.detail, Mapping):
                raise
            errors = {**exc.detail, **errors}
        if errors:
            raise serializers.ValidationError(errors)
        return value


def organization_id_field() -> serializers.UUIDField:
    return serializers.UUIDField(
        required=False,
        help_text="Optional; must be the caller's organization (403 otherwise).",
    )


@extend_schema_field(
    {
        "oneOf": [
            {"type": "object", "additionalProperties": {}},
            {"type": "string"},
        ],
        "description": "The flow definition: an object, or its YAML/JSON text.",
    }
)
class DefinitionField(serializers.Field):
    default_error_messages = {"invalid": "Expected an object or YAML/JSON text."}

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict | str):
            return data
        self.fail("invalid")

    def to_representation(self, value: Any) -> Any:
        return value
