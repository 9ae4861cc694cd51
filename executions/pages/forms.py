"""Forms of the browser pages."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from flowplatform.exceptions import ValidationFailed
from flowplatform.parsers import load_json


class BoundedJSONDecoder(json.JSONDecoder):
    """The API's reading of JSON (``flowplatform.parsers.load_json``): NaN and Infinity,
    nesting too deep and numbers the renderer cannot write are not valid input."""

    def decode(self, s: str, *args: Any) -> Any:  # noqa: ARG002 - json's signature
        try:
            return load_json(s, ("input",))
        except ValidationFailed as exc:
            raise json.JSONDecodeError(exc.message, s, 0) from None


class StartExecutionForm(forms.Form):
    input = forms.JSONField(
        label="Input (JSON)",
        required=False,
        initial=dict,
        decoder=BoundedJSONDecoder,
        help_text="Any JSON value; the flow's tasks read it as {{input.<path>}}.",
        widget=forms.Textarea(
            attrs={"rows": 6, "spellcheck": "false", "autocomplete": "off", "class": "code"}
        ),
        error_messages={"invalid": "Not valid JSON: check quotes, commas and brackets."},
    )
