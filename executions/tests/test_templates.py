"""Placeholders: parsing them and resolving a task's input at run time (no database)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executions.dsl import (
    Reference,
    ResolutionError,
    TaskSpec,
    find_placeholders,
    is_placeholder,
    join_loc,
    parse_placeholder,
    render_value,
    resolve_input,
    validate_definition,
)

FLOW_INPUT = {
    "url": "https://example.com",
    "limit": 10,
    "filters": {"lang": "en", "tags": ["a", "b"]},
    "items": [{"name": "first"}, {"name": "second"}],
    "by_id": {"42": "answer"},
    "nothing": None,
    "flag": False,
}
OUTPUTS = {
    "fetch": {"status_code": 200, "json": {"title": "Hello", "rows": [1, 2, 3]}},
    "count": 3,
    "empty": None,
}


def render(value: Any) -> Any:
    return render_value(value, flow_input=FLOW_INPUT, upstream_outputs=OUTPUTS)


def failure(value: Any) -> ResolutionError:
    with pytest.raises(ResolutionError) as caught:
        render_value(value, flow_input=FLOW_INPUT, upstream_outputs=OUTPUTS, loc="parameters.x")
    return caught.value


# -- parsing placeholders ---------------------------------------------------------------------


def test_parse_placeholder() -> None:
    assert parse_placeholder("{{input.url}}") == Reference("{{input.url}}", "input", ("url",))
    ref = parse_placeholder("{{  fetch.output.json.0 }}")
    assert ref is not None and ref.root == "fetch" and not ref.is_input
    assert ref.segments == ("output", "json", "0") and ref.path == ("json", "0")
    assert parse_placeholder("{{input}}") == Reference("{{input}}", "input", ())
    for bad in ("{{}}", "{{ }}", "{{input.}}", "{{.x}}", "{{input..x}}", "{{a b}}", "x{{input}}"):
        assert parse_placeholder(bad) is None, bad


def test_find_placeholders() -> None:
    found = find_placeholders("{{input.a}}-{{ b.output }}-{{ x | y }}-{ {c} }")
    assert [text for text, _ in found] == ["{{input.a}}", "{{ b.output }}", "{{ x | y }}"]
    assert found[2][1] is None
    assert find_placeholders("{{{input.x}}}") == [
        ("{{input.x}}", Reference("{{input.x}}", "input", ("x",)))
    ]


def test_is_placeholder() -> None:
    assert is_placeholder("{{input.url}}") and is_placeholder("{{ a.output }}")
    assert not is_placeholder(" {{input.url}}") and not is_placeholder("{{a}}{{b}}")
    assert not is_placeholder(3) and not is_placeholder(None)


def test_join_loc() -> None:
    assert join_loc("", "tasks") == "tasks"
    assert join_loc("tasks", 2) == "tasks[2]"
    assert join_loc("tasks[2]", "url") == "tasks[2].url"
    assert join_loc("p", "with space") == 'p["with space"]'


# -- a whole placeholder keeps the JSON type --------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{input}}", FLOW_INPUT),
        ("{{input.filters}}", {"lang": "en", "tags": ["a", "b"]}),
        ("{{input.filters.tags}}", ["a", "b"]),
        ("{{input.limit}}", 10),
        ("{{input.nothing}}", None),
        ("{{input.flag}}", False),
        ("{{ input.url }}", "https://example.com"),
        ("{{input.items.1.name}}", "second"),
        ("{{input.by_id.42}}", "answer"),
        ("{{fetch.output}}", OUTPUTS["fetch"]),
        ("{{fetch.output.json.rows.2}}", 3),
        ("{{count.output}}", 3),
        ("{{empty.output}}", None),
    ],
)
def test_whole_placeholder_is_the_referenced_value(template: str, expected: Any) -> None:
    assert render(template) == expected
    assert type(render(template)) is type(expected)


# -- embedded placeholders render as text -----------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("GET {{input.url}}/x", "GET https://example.com/x"),
        ("limit={{input.limit}}", "limit=10"),
        ("n={{input.nothing}} f={{input.flag}}", "n=null f=false"),
        ("tags: {{input.filters.tags}}", 'tags: ["a","b"]'),
        ("{{input.filters}}!", '{"lang":"en","tags":["a","b"]}!'),
        ("{{fetch.output.json.title}}, {{ input.items.0.name }}", "Hello, first"),
        ("no placeholders {here}", "no placeholders {here}"),
        ("{{{input.limit}}}", "{10}"),
    ],
)
def test_embedded_placeholder_renders_text(template: str, expected: str) -> None:
    assert render(template) == expected


def test_non_ascii_text_is_kept() -> None:
    value = render_value("say {{input.x}}", flow_input={"x": ["é"]}, upstream_outputs={})
    assert value == 'say ["é"]'


def test_nested_structures_are_rendered_and_keys_are_not() -> None:
    template = {
        "{{input.url}}": "{{input.url}}",
        "list": ["{{input.limit}}", {"deep": "{{fetch.output.json.title}}"}, 7, None, True],
        "plain": 1.5,
    }
    assert render(template) == {
        "{{input.url}}": "https://example.com",
        "list": [10, {"deep": "Hello"}, 7, None, True],
        "plain": 1.5,
    }


def test_rendering_does_not_modify_the_template() -> None:
    template = {"a": ["{{input.limit}}"]}
    render(template)
    assert template == {"a": ["{{input.limit}}"]}


# -- run-time failures ------------------------------------------------------------------------


def test_missing_key_names_the_placeholder_and_segment() -> None:
    error = failure({"y": "{{fetch.output.json.subtitle}}"})
    assert error.placeholder == "{{fetch.output.json.subtitle}}"
    assert error.segment == "subtitle" and error.loc == "parameters.x.y"
    assert str(error) == (
        "cannot resolve {{fetch.output.json.subtitle}} in parameters.x.y: "
        "fetch.output.json has no key 'subtitle' (keys: 'title', 'rows')"
    )


def test_missing_input_key() -> None:
    error = failure("see {{input.missing.deeper}}")
    assert error.segment == "missing" and "input has no key 'missing'" in str(error)


def test_index_out_of_range() -> None:
    error = failure("{{input.items.5.name}}")
    assert error.segment == "5"
    assert "index 5 is out of range, input.items has 2 items" in str(error)


def test_non_numeric_segment_on_a_list() -> None:
    assert "input.items is a list; 'name' is not an index" in str(failure("{{input.items.name}}"))


def test_path_into_a_scalar() -> None:
    assert "input.url is string, it has no 'host'" in str(failure("{{input.url.host}}"))
    assert "empty.output is null, it has no 'x'" in str(failure("{{empty.output.x}}"))


def test_missing_upstream_output() -> None:
    error = failure("{{other.output}}")
    assert error.segment is None
    assert "the output of task 'other' is not available" in str(error)


def test_malformed_placeholders_fail_at_run_time_too() -> None:
    assert "malformed placeholder" in str(failure("{{ }}"))
    assert "expected {{fetch.output…}}" in str(failure("{{fetch.outputs}}"))


# -- resolve_input over a validated flow ------------------------------------------------------


def test_resolve_input_for_the_design_example() -> None:
    definition = validate_definition(
        {
            "tasks": [
                {
                    "name": "fetch",
                    "task_executor_name": "http_request",
                    "parameters": {"method": "GET", "url": "{{input.url}}"},
                },
                {
                    "name": "extract",
                    "task_executor_name": "transform",
                    "parameters": {"template": {"title": "{{fetch.output.json.title}}"}},
                },
            ]
        }
    )
    fetch, extract = definition.tasks
    assert resolve_input(task=fetch, flow_input=FLOW_INPUT, upstream_outputs={}) == {
        "method": "GET",
        "url": "https://example.com",
    }
    assert resolve_input(task=extract, flow_input=None, upstream_outputs=OUTPUTS) == {
        "template": {"title": "Hello"}
    }
    with pytest.raises(ResolutionError) as caught:
        resolve_input(task=extract, flow_input=None, upstream_outputs={"fetch": {"json": {}}})
    assert caught.value.loc == "parameters.template.title"


def test_resolve_input_without_placeholders_returns_the_parameters() -> None:
    spec = TaskSpec(name="a", task_executor_name="noop", parameters={"output": [1, 2]})
    assert resolve_input(task=spec, flow_input=None, upstream_outputs={}) == {"output": [1, 2]}


# -- properties -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_any_json_value_passes_through_a_whole_placeholder(value: Any) -> None:
    assert render_value("{{input.v}}", flow_input={"v": value}, upstream_outputs={}) == value
    assert render_value("{{t.output}}", flow_input=None, upstream_outputs={"t": value}) == value


@settings(max_examples=200, deadline=None)
@given(json_values.filter(lambda v: not isinstance(v, str)))
def test_embedded_values_are_compact_json(value: Any) -> None:
    rendered = render_value("<{{input.v}}>", flow_input={"v": value}, upstream_outputs={})
    assert rendered == f"<{json.dumps(value, separators=(',', ':'), ensure_ascii=False)}>"
    assert json.loads(rendered[1:-1]) == value
