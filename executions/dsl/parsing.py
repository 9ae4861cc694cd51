"""Reading definition text: YAML (1.2 core-schema scalars, no duplicate keys) or strict JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import yaml

from executions.dsl.model import DefinitionError, Problem, _kind

# libyaml's parser is about ten times faster than PyYAML's; resolving and constructing stay in
# Python either way, so the customisations below apply to both.
if TYPE_CHECKING:
    _SafeLoader = yaml.SafeLoader
else:
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeLoader):
    """Safe YAML with YAML 1.2 core-schema scalars and no duplicate keys.

    PyYAML follows YAML 1.1, where ``no`` is ``False``, ``12:30`` is the integer 750, ``010`` is
    octal and ``2024-01-01`` a date (not JSON).  Definitions must mean the same as their JSON
    twin, so only ``true``/``false`` are booleans, numbers look like JSON numbers and
    timestamps stay strings.  A duplicated key would silently drop the first value.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key_node.value!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_REPLACED_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("bool", "int", "float", "timestamp")}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _REPLACED_TAGS]
    for first, resolvers in _SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^-?(?:0|[1-9][0-9]*)$"), list("-0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)$"),
    list("-0123456789"),
)


class _JSONRejected(ValueError):
    """JSON text that parses but is not plain JSON (NaN, duplicate keys)."""


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _JSONRejected(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise _JSONRejected(f"{name} is not a JSON number")


def parse_definition(source: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
    """Parse YAML or JSON text (or accept a mapping) into a dict; no validation beyond that.

    JSON is tried first (fast, and PyYAML trips over some valid JSON such as tab
    indentation); anything else is read as YAML.  Raises ``DefinitionError`` with one
    problem for unreadable text or a document that is not a mapping.
    """
    if isinstance(source, Mapping):
        return dict(source)
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise _whole("syntax_error", f"definition is not UTF-8 text: {exc}") from None
    if not isinstance(source, str):
        raise TypeError(f"a definition is text or a mapping, not {type(source).__name__}")
    document = _load_text(source)
    if not isinstance(document, dict):
        raise _whole(
            "type_error",
            f"a flow definition must be a mapping with a 'tasks' list, got {_kind(document)}",
        )
    return document


def _load_text(text: str) -> Any:
    try:
        if text.lstrip()[:1] in ("{", "["):
            try:
                return json.loads(
                    text, object_pairs_hook=_strict_object, parse_constant=_reject_constant
                )
            except json.JSONDecodeError:
                pass  # not JSON after all: YAML flow style such as {tasks: []}
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except _JSONRejected as exc:
        raise _whole("syntax_error", f"invalid JSON: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        raise _whole("syntax_error", _yaml_message(exc, text)) from None
    except yaml.YAMLError as exc:
        raise _whole("syntax_error", f"invalid YAML: {exc}") from None
    except RecursionError:
        raise _whole("syntax_error", "definition is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer longer than Python reads
        raise _whole("syntax_error", f"invalid number: {exc}") from None


# An unquoted value starting with "{{" is a YAML flow mapping, the commonest slip in a definition.
_UNQUOTED_PLACEHOLDER = re.compile(r"(?:^|[:\-\[,])\s*\{\{")


def _yaml_message(exc: yaml.MarkedYAMLError, text: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    detail = "; ".join(part for part in (exc.context, exc.problem) if part)
    if mark is None:
        return f"invalid YAML: {detail}"
    message = f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {detail}"
    lines = text.splitlines()
    if mark.line < len(lines) and _UNQUOTED_PLACEHOLDER.search(lines[mark.line]):
        message += ' (quote values that start with "{{", e.g. url: "{{input.url}}")'
    return message


def _whole(type_: str, msg: str) -> DefinitionError:
    return DefinitionError([Problem("definition", msg, type_)])
