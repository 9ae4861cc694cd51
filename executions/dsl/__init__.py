"""Flow definitions: parsing, validation and placeholder resolution (DESIGN §7).

Pure Python (no Django, no ORM): services parse and validate here, then persist; the engine
calls ``resolve_input`` when it queues a task.  A definition is YAML or JSON text, or a parsed
mapping ``{"tasks": [...], "description"?: str}``.

Placeholders are ``{{input}}``, ``{{input.<path>}}``, ``{{<task>.output}}`` and
``{{<task>.output.<path>}}``; a path is dot-separated keys, an all-digit segment indexes a list.
A string that is exactly one placeholder becomes the referenced JSON value; inside longer text
the value is rendered as text (strings as-is, anything else as compact JSON).  Every ``{{…}}``
in a parameter string is a placeholder: there is no escape for literal double braces.

Validation reports every problem at once as ``Problem(loc, msg, type)``.  Types:
``syntax_error``, ``type_error``, ``missing``, ``empty``, ``unknown_key``, ``invalid_name``,
``reserved_name``, ``duplicate_name``, ``invalid_executor_name``, ``invalid_value``,
``invalid_placeholder``, ``unknown_reference``, ``unknown_output_path``, ``self_reference``,
``cycle``, and ``parameters.<keyword>`` when a built-in executor's JSON Schema rejects a value.

Modules: ``model`` (``FlowDefinition``, ``TaskSpec``, ``RetryPolicy``, ``Problem``,
``DefinitionError``), ``parsing`` (YAML and JSON text), ``templates`` (placeholders and
``resolve_input``), ``validation`` (``validate_definition``) and ``schemas`` (built-in
executors' parameter schemas).
"""

from executions.dsl.model import (
    MAX_RETRY_DELAY_SECONDS as MAX_RETRY_DELAY_SECONDS,
)
from executions.dsl.model import (
    DefinitionError,
    FlowDefinition,
    Problem,
    RetryPolicy,
    TaskSpec,
)
from executions.dsl.parsing import parse_definition
from executions.dsl.templates import INPUT_ROOT as INPUT_ROOT
from executions.dsl.templates import OUTPUT_KEY as OUTPUT_KEY
from executions.dsl.templates import (
    Reference,
    ResolutionError,
    find_placeholders,
    is_placeholder,
    join_loc,
    parse_placeholder,
    render_value,
    resolve_input,
)
from executions.dsl.validation import MAX_ATTEMPTS as MAX_ATTEMPTS
from executions.dsl.validation import MAX_BACKOFF_FACTOR as MAX_BACKOFF_FACTOR
from executions.dsl.validation import MAX_BACKOFF_SECONDS as MAX_BACKOFF_SECONDS
from executions.dsl.validation import MAX_DEPTH as MAX_DEPTH
from executions.dsl.validation import MAX_EXECUTOR_NAME_LENGTH as MAX_EXECUTOR_NAME_LENGTH
from executions.dsl.validation import MAX_JSON_VALUES as MAX_JSON_VALUES
from executions.dsl.validation import MAX_TIMEOUT_SECONDS as MAX_TIMEOUT_SECONDS
from executions.dsl.validation import TASK_NAME_PATTERN as TASK_NAME_PATTERN
from executions.dsl.validation import validate_definition

__all__ = [
    "DefinitionError",
    "FlowDefinition",
    "Problem",
    "Reference",
    "ResolutionError",
    "RetryPolicy",
    "TaskSpec",
    "find_placeholders",
    "is_placeholder",
    "join_loc",
    "parse_definition",
    "parse_placeholder",
    "render_value",
    "resolve_input",
    "validate_definition",
]
