"""What the serializer makes of a body, to compare plain checks of hot endpoints with it."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from flowplatform.api import parse
from flowplatform.exceptions import ValidationFailed


def validated_or_none(serializer: type[serializers.Serializer], data: Any) -> Any:
    """``parse``'s validated data, or None where it refuses the body."""
    try:
        return parse(serializer, data)
    except ValidationFailed:
        return None
