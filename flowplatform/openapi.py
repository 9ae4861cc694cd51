"""OpenAPI post-processing: document the error envelope on every operation."""

from __future__ import annotations

from typing import Any

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
}


def add_error_responses(result: dict[str, Any], generator, request, public) -> dict[str, Any]:  # noqa: ANN001
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorEnvelope"] = _ENVELOPE
    ref = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            codes = ["401", "403", "422", "500"]
            if "{" in path:
                codes.append("404")
            if method in {"post", "put", "patch"}:
                codes += ["400", "413", "415"]
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
