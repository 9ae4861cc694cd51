"""Forms of the browser pages."""

from __future__ import annotations

import json
from typing import Any

from django import forms


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (and the API's parser) does not.
    raise json.JSONDecodeError(f"{name} is not valid JSON", name, 0)


class StrictJSONDecoder(json.JSONDecoder):
    def __init__(self, **kwargs: Any) -> None:
        kwargs["parse_constant"] = _reject_constant
        super().__init__(**kwargs)


class StartExecutionForm(forms.Form):
    input = forms.JSONField(
        label="Input (JSON)",
        required=False,
        initial=dict,
        decoder=StrictJSONDecoder,
        help_text="Any JSON value; the flow's tasks read it as {{input.<path>}}.",
        widget=forms.Textarea(
            attrs={"rows": 6, "spellcheck": "false", "autocomplete": "off", "class": "code"}
        ),
        error_messages={"invalid": "Not valid JSON: check quotes, commas and brackets."},
    )
