"""Parsing and validating flow definitions (DESIGN §7), without a database."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executions.dsl import (
    MAX_RETRY_DELAY_SECONDS,
    DefinitionError,
    FlowDefinition,
    Problem,
    RetryPolicy,
    TaskSpec,
    parse_definition,
    validate_definition,
)
from executions.worker.specs import BUILTIN_EXECUTORS

DESIGN_EXAMPLE = """
tasks:
  - name: fetch
    task_executor_name: http_request
    parameters: {method: GET, url: "{{input.url}}"}
    retries: {max_attempts: 3, backoff_seconds: 2}
  - name: extract
    task_executor_name: transform
    parameters: {template: {title: "{{fetch.output.json.title}}"}}
  - name: review
    task_executor_name: human_review
    depends_on: [extract]
"""


def task(name: str, executor: str = "noop", **fields: Any) -> dict[str, Any]:
    return {"name": name, "task_executor_name": executor, **fields}


def flow(*tasks: Any, **top: Any) -> dict[str, Any]:
    return {"tasks": list(tasks), **top}


def problems(source: Any) -> list[tuple[str, str]]:
    """``(loc, type)`` of every problem, asserting the definition is invalid."""
    with pytest.raises(DefinitionError) as caught:
        validate_definition(source)
    return [(p.loc, p.type) for p in caught.value.problems]


def messages(source: Any) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        validate_definition(source)
    return [p.msg for p in caught.value.problems]


# -- valid definitions ------------------------------------------------------------------------


def test_design_example_parses() -> None:
    definition = validate_definition(DESIGN_EXAMPLE)
    assert definition.names == ("fetch", "extract", "review")
    assert definition.order == ("fetch", "extract", "review")
    fetch, extract, review = definition.tasks
    assert fetch.parameters == {"method": "GET", "url": "{{input.url}}"}
    assert fetch.retries == RetryPolicy(max_attempts=3, backoff_seconds=2, backoff_factor=2)
    assert fetch.dependencies == () and fetch.timeout_seconds is None
    assert extract.dependencies == ("fetch",) and extract.depends_on == ()
    assert review.depends_on == ("extract",) and review.dependencies == ("extract",)
    assert review.parameters == {} and review.retries == RetryPolicy()
    assert review.builtin_executor is BUILTIN_EXECUTORS["human_review"]
    assert not review.claimable and fetch.claimable
    assert definition.task("extract") is extract
    assert definition.dag.downstream_closure(["fetch"]) == {"extract", "review"}


def test_json_text_dict_and_bytes_give_the_same_flow() -> None:
    from_yaml = validate_definition(DESIGN_EXAMPLE)
    as_dict = parse_definition(DESIGN_EXAMPLE)
    as_json = json.dumps(as_dict, indent="\t")  # tabs: valid JSON that PyYAML rejects
    assert validate_definition(as_json) == from_yaml
    assert validate_definition(as_dict) == from_yaml
    assert validate_definition(as_json.encode()) == from_yaml
    assert validate_definition(b"\xef\xbb\xbf" + DESIGN_EXAMPLE.encode()) == from_yaml


def test_to_dict_is_canonical_and_round_trips() -> None:
    definition = validate_definition(flow(task("a"), description="demo"))
    stored = definition.to_dict()
    assert stored == {
        "description": "demo",
        "tasks": [
            {
                "name": "a",
                "task_executor_name": "noop",
                "parameters": {},
                "depends_on": [],
                "retries": {"max_attempts": 1, "backoff_seconds": 0, "backoff_factor": 2},
            }
        ],
    }
    full = validate_definition(DESIGN_EXAMPLE)
    assert validate_definition(json.loads(json.dumps(full.to_dict()))) == full
    assert validate_definition(full.to_dict()).to_dict() == full.to_dict()


def test_optional_fields() -> None:
    spec = validate_definition(
        flow(task("a", timeout_seconds=2.5, description="first", parameters=None, depends_on=None))
    ).task("a")
    assert spec.timeout_seconds == 2.5 and spec.description == "first"
    assert spec.to_dict()["timeout_seconds"] == 2.5


def test_external_executor_names_are_allowed_without_schema() -> None:
    spec = validate_definition(flow(task("a", "acme.scrape-v2", parameters={"any": [1]}))).tasks[0]
    assert spec.builtin_executor is None and spec.claimable


def test_parameters_are_copied() -> None:
    raw = flow(task("a", parameters={"nested": {"items": (1, 2)}}))
    definition = validate_definition(raw)
    raw["tasks"][0]["parameters"]["nested"]["items"] = "changed"
    assert definition.task("a").parameters == {"nested": {"items": [1, 2]}}


def test_dependencies_merge_references_and_depends_on_in_definition_order() -> None:
    definition = validate_definition(
        flow(
            task("a"),
            task("b"),
            task("c"),
            task(
                "d",
                parameters={"x": "{{c.output}} {{a.output.k}}", "y": ["{{c.output.0}}"]},
                depends_on=["b", "b"],
            ),
        )
    )
    assert definition.task("d").dependencies == ("a", "b", "c")
    assert definition.task("d").depends_on == ("b",)
    assert definition.order == ("a", "b", "c", "d")


def test_order_keeps_definition_order_for_independent_tasks() -> None:
    definition = validate_definition(
        flow(task("z", depends_on=["y"]), task("x"), task("y"), task("w", depends_on=["x"]))
    )
    assert definition.order == ("x", "y", "z", "w")
    assert definition.order == validate_definition(definition.to_dict()).order


def test_whole_placeholders_pass_schema_type_checks() -> None:
    validate_definition(
        flow(
            task(
                "fetch",
                "http_request",
                parameters={
                    "url": "{{input.url}}",
                    "method": "{{ input.method }}",
                    "timeout_seconds": "{{input.timeout}}",
                    "expected_status": ["{{input.code}}", 200],
                    "headers": "{{input.headers}}",
                },
            )
        )
    )


def test_embedded_placeholders_are_checked_as_strings() -> None:
    source = flow(task("fetch", "http_request", parameters={"url": "x", "method": "G{{input.m}}"}))
    assert problems(source) == [("tasks[0].parameters.method", "parameters.enum")]


def test_yaml_scalars_follow_json() -> None:
    parsed = parse_definition("a: no\nb: 2024-01-01\nc: 12:30\nd: 010\ne: 1.5\nf: true\ng: -3")
    assert parsed == {
        "a": "no",
        "b": "2024-01-01",
        "c": "12:30",
        "d": "010",
        "e": 1.5,
        "f": True,
        "g": -3,
    }


def test_yaml_merge_keys_still_work() -> None:
    parsed = parse_definition("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n")
    assert parsed["other"] == {"x": 1, "y": 3}


def test_retry_policy_delays() -> None:
    policy = RetryPolicy(max_attempts=4, backoff_seconds=2, backoff_factor=3)
    assert [policy.delay_after(n) for n in (1, 2, 3)] == [2.0, 6.0, 18.0]
    assert policy.allows_retry(3) and not policy.allows_retry(4)
    assert RetryPolicy().delay_after(1) == 0.0 and not RetryPolicy().allows_retry(1)
    assert RetryPolicy(backoff_seconds=60, backoff_factor=10).delay_after(10_000) == (
        MAX_RETRY_DELAY_SECONDS
    )


# -- one kind of error at a time --------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("- a\n- b", [("definition", "type_error")]),
        ("", [("definition", "type_error")]),
        ({"tasks": "x"}, [("tasks", "type_error")]),
        ({}, [("tasks", "missing")]),
        ({"tasks": []}, [("tasks", "empty")]),
        (flow(task("a"), version=2), [("version", "unknown_key")]),
        (flow(task("a"), description=3), [("description", "type_error")]),
        (flow(task("a"), ["not", "a", "task"]), [("tasks[1]", "type_error")]),
        (flow({"task_executor_name": "noop"}), [("tasks[0].name", "missing")]),
        (flow({"name": "a"}), [("tasks[0].task_executor_name", "missing")]),
        (flow(task(7)), [("tasks[0].name", "type_error")]),
        (flow(task("a", when="x")), [("tasks[0].when", "unknown_key")]),
        (flow(task("a"), task("a")), [("tasks[1].name", "duplicate_name")]),
        (flow(task("has space")), [("tasks[0].name", "invalid_name")]),
        (flow(task("1st")), [("tasks[0].name", "invalid_name")]),
        (flow(task("a" * 201)), [("tasks[0].name", "invalid_name")]),
        (flow(task("a\n")), [("tasks[0].name", "invalid_name")]),
        (flow(task("input")), [("tasks[0].name", "reserved_name")]),
        (flow(task("a", "HTTP")), [("tasks[0].task_executor_name", "invalid_executor_name")]),
        (flow(task("a", "x" * 201)), [("tasks[0].task_executor_name", "invalid_executor_name")]),
        (flow(task("a", parameters=[1])), [("tasks[0].parameters", "type_error")]),
        (flow(task("a", depends_on="b"), task("b")), [("tasks[0].depends_on", "type_error")]),
        (flow(task("a", depends_on=[1])), [("tasks[0].depends_on[0]", "type_error")]),
        (flow(task("a", depends_on=["b"])), [("tasks[0].depends_on[0]", "unknown_reference")]),
        (flow(task("a", depends_on=["a"])), [("tasks[0].depends_on[0]", "self_reference")]),
        (
            flow(task("a", parameters={"x": "{{foo.bar}}"})),
            [("tasks[0].parameters.x", "unknown_reference")],
        ),
        (
            flow(task("fetch"), task("b", parameters={"x": "{{fetch.outputs}}"})),
            [("tasks[1].parameters.x", "unknown_output_path")],
        ),
        (
            flow(task("fetch"), task("b", parameters={"x": ["{{ fetch }}"]})),
            [("tasks[1].parameters.x[0]", "unknown_output_path")],
        ),
        (
            flow(task("a", parameters={"x": {"y": "see {{a.output}}"}})),
            [("tasks[0].parameters.x.y", "self_reference")],
        ),
        (
            flow(task("a", parameters={"x": "{{ input | upper }}", "y": "{{}}"})),
            [
                ("tasks[0].parameters.x", "invalid_placeholder"),
                ("tasks[0].parameters.y", "invalid_placeholder"),
            ],
        ),
        (
            flow(task("a", "http_request", parameters={"method": "GET"})),
            [("tasks[0].parameters.url", "parameters.required")],
        ),
        (
            flow(task("a", "http_request")),
            [("tasks[0].parameters.url", "parameters.required")],
        ),
        (
            flow(task("a", "validate", parameters={})),
            [
                ("tasks[0].parameters.rows", "parameters.required"),
                ("tasks[0].parameters.schema", "parameters.required"),
            ],
        ),
        (
            flow(task("a", "http_request", parameters={"url": "u", "timeout_seconds": "fast"})),
            [("tasks[0].parameters.timeout_seconds", "parameters.type")],
        ),
        (
            flow(task("a", "http_request", parameters={"url": "u", "expected_status": [99]})),
            [("tasks[0].parameters.expected_status[0]", "parameters.minimum")],
        ),
        (
            flow(task("a", "http_request", parameters={"url": "u", "verb": "GET"})),
            [("tasks[0].parameters.verb", "parameters.additionalProperties")],
        ),
        (
            flow(task("a", "http_request", parameters={"url": "u", "headers": {"X-A": 1}})),
            [("tasks[0].parameters.headers.X-A", "parameters.type")],
        ),
        (flow(task("a", retries=3)), [("tasks[0].retries", "type_error")]),
        (
            flow(task("a", retries={"max_attempts": 0})),
            [("tasks[0].retries.max_attempts", "invalid_value")],
        ),
        (
            flow(task("a", retries={"max_attempts": 101})),
            [("tasks[0].retries.max_attempts", "invalid_value")],
        ),
        (
            flow(task("a", retries={"max_attempts": 1.5})),
            [("tasks[0].retries.max_attempts", "type_error")],
        ),
        (
            flow(task("a", retries={"max_attempts": True})),
            [("tasks[0].retries.max_attempts", "type_error")],
        ),
        (
            flow(task("a", retries={"max_attempts": "3"})),
            [("tasks[0].retries.max_attempts", "type_error")],
        ),
        (
            flow(task("a", retries={"backoff_seconds": -1})),
            [("tasks[0].retries.backoff_seconds", "invalid_value")],
        ),
        (
            flow(task("a", retries={"backoff_factor": 0.5})),
            [("tasks[0].retries.backoff_factor", "invalid_value")],
        ),
        (
            flow(task("a", retries={"backoff_factor": float("nan")})),
            [("tasks[0].retries.backoff_factor", "invalid_value")],
        ),
        (flow(task("a", retries={"attempts": 2})), [("tasks[0].retries.attempts", "unknown_key")]),
        (flow(task("a", timeout_seconds=0)), [("tasks[0].timeout_seconds", "invalid_value")]),
        (flow(task("a", timeout_seconds="1m")), [("tasks[0].timeout_seconds", "type_error")]),
        (flow(task("a", description=["x"])), [("tasks[0].description", "type_error")]),
        (
            flow(task("a", parameters={"x": float("inf")})),
            [("tasks[0].parameters.x", "invalid_value")],
        ),
        (
            flow(task("a", parameters={"x": {1: "one"}})),
            [('tasks[0].parameters.x["1"]', "invalid_value")],
        ),
        (
            flow(task("a", parameters={"when": datetime.date(2024, 1, 1)})),
            [("tasks[0].parameters.when", "invalid_value")],
        ),
    ],
)
def test_each_kind_of_error(source: Any, expected: list[tuple[str, str]]) -> None:
    assert problems(source) == expected


def test_problem_messages_are_helpful() -> None:
    assert messages(flow(task("fetch"), task("b", parameters={"x": "{{fetch.outputs}}"}))) == [
        "unknown path {{fetch.outputs}}: a task's data is reached through '.output', "
        "e.g. {{fetch.output}}"
    ]
    assert messages(flow(task("fetch"), task("b", depends_on=["fetc"]))) == [
        "unknown task 'fetc'; did you mean 'fetch'?"
    ]
    assert (
        "'inputs' is neither 'input' nor a task"
        in messages(flow(task("a", parameters={"x": "{{inputs.url}}"})))[0]
    )
    assert messages(flow(task("a", "http_request", parameters={"url": "u", "verb": 1})))[0] == (
        "unknown parameter 'verb' for executor 'http_request'; allowed: method, url, headers, "
        "params, json, body, timeout_seconds, expected_status"
    )


# -- cycles -----------------------------------------------------------------------------------


def test_two_cycle_is_named() -> None:
    source = flow(task("a", depends_on=["b"]), task("b", parameters={"x": "{{a.output}}"}))
    with pytest.raises(DefinitionError) as caught:
        validate_definition(source)
    assert caught.value.problems == [Problem("tasks[0]", "dependency cycle: a → b → a", "cycle")]


def test_three_cycle_is_named_once() -> None:
    source = flow(
        task("start"),
        task("a", depends_on=["c", "start"]),
        task("b", parameters={"from_a": "{{a.output.x}}"}),
        task("c", depends_on=["b"]),
    )
    assert messages(source) == ["dependency cycle: a → b → c → a"]


def test_every_cycle_is_reported() -> None:
    source = flow(
        task("a", depends_on=["b"]),
        task("b", depends_on=["a"]),
        task("c", depends_on=["d"]),
        task("d", depends_on=["c", "e"]),
        task("e", depends_on=["d"]),
    )
    assert messages(source) == [
        "dependency cycle: a → b → a",
        "dependency cycle: c → d → c",
        "dependency cycle: d → e → d",
    ]


# -- many problems at once --------------------------------------------------------------------


def test_all_problems_are_reported_at_once_in_document_order() -> None:
    source = """
tasks:
  - name: fetch
    task_executor_name: http_request
    parameters: {method: FETCH, url: "{{input.url}}"}
    retries: {max_attempts: 0}
  - name: fetch
    task_executor_name: noop
  - name: parse
    task_executor_name: transform
    parameters: {template: "{{fech.output}}", extra: 1}
    depends_on: [parse, missing]
  - name: loop_a
    task_executor_name: noop
    depends_on: [loop_b]
  - name: loop_b
    task_executor_name: noop
    parameters: {x: "{{loop_a.output}}"}
  - "not a task"
"""
    assert problems(source) == [
        ("tasks[0].parameters.method", "parameters.enum"),
        ("tasks[0].retries.max_attempts", "invalid_value"),
        ("tasks[1].name", "duplicate_name"),
        ("tasks[2].parameters.extra", "parameters.additionalProperties"),
        ("tasks[2].depends_on[0]", "self_reference"),
        ("tasks[2].depends_on[1]", "unknown_reference"),
        ("tasks[2].parameters.template", "unknown_reference"),
        ("tasks[3]", "cycle"),
        ("tasks[5]", "type_error"),
    ]


def test_definition_error_summarises_problems() -> None:
    with pytest.raises(DefinitionError) as caught:
        validate_definition(flow(*[task(f"{i}bad") for i in range(12)]))
    error = caught.value
    assert len(error.problems) == 12
    assert str(error).startswith("invalid flow definition: tasks[0].name: invalid task name")
    assert str(error).endswith("(and 2 more)")
    assert error.problems[0].as_dict()["type"] == "invalid_name"


# -- parsing ----------------------------------------------------------------------------------


def test_yaml_syntax_error_has_line_and_column() -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definition("tasks:\n  - name: a\n    task_executor_name: [noop\n")
    (problem,) = caught.value.problems
    assert problem.loc == "definition" and problem.type == "syntax_error"
    assert "line 4" in problem.msg or "line 3" in problem.msg


def test_unquoted_placeholder_gets_a_hint() -> None:
    text = (
        "tasks:\n  - name: a\n    task_executor_name: noop\n    parameters:\n      u: {{input.u}}\n"
    )
    (message,) = messages(text)
    assert "line 5" in message and 'quote values that start with "{{"' in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        ('{"a": NaN}', "NaN is not a JSON number"),
        (b"\xff\xfe", "not UTF-8"),
        ("[" * 5000, "nested too deeply"),
    ],
)
def test_unreadable_text(text: str | bytes, fragment: str) -> None:
    (message,) = messages(text)
    assert fragment in message


def test_yaml_flow_mapping_that_is_not_json() -> None:
    assert (
        parse_definition("{tasks: [{name: a, task_executor_name: noop}]}")["tasks"][0]["name"]
        == "a"
    )


def test_yaml_alias_bomb_is_bounded() -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    text = (
        "\n".join(lines) + "\ntasks:\n  - {name: t, task_executor_name: noop, parameters: {x: *a8}}"
    )
    with pytest.raises(DefinitionError) as caught:
        validate_definition({"tasks": parse_definition(text)["tasks"]})
    (problem,) = caught.value.problems  # 10**9 values, yet counting stops at the budget
    assert problem.type == "invalid_value" and "more than 250000 values" in problem.msg


def test_deep_parameters_are_rejected() -> None:
    deep: Any = "leaf"
    for _ in range(100):
        deep = [deep]
    assert problems(flow(task("a", parameters={"x": deep})))[0][1] == "invalid_value"


def test_parse_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        parse_definition(42)  # type: ignore[arg-type]


# -- property: generated flows ----------------------------------------------------------------


@st.composite
def acyclic_flows(draw: st.DrawFn) -> dict[str, Any]:
    """Random acyclic flows mixing ``depends_on`` and placeholder references."""
    n = draw(st.integers(min_value=1, max_value=15))
    names = draw(st.permutations([f"t{i}" for i in range(n)]))
    tasks = []
    for j, name in enumerate(names):
        earlier = list(names[:j])
        deps = draw(st.lists(st.sampled_from(earlier), max_size=3, unique=True)) if earlier else []
        refs = draw(st.lists(st.sampled_from(earlier), max_size=2)) if earlier else []
        parameters = {f"p{k}": f"{{{{{ref}.output.k}}}}" for k, ref in enumerate(refs)}
        tasks.append(task(name, parameters=parameters, depends_on=deps))
    order = draw(st.permutations(range(n)))
    return flow(*[tasks[i] for i in order])


@settings(max_examples=100, deadline=None)
@given(acyclic_flows())
def test_generated_flows_validate_and_round_trip(source: dict[str, Any]) -> None:
    definition = validate_definition(source)
    assert isinstance(definition, FlowDefinition)
    position = {name: i for i, name in enumerate(definition.order)}
    for spec in definition.tasks:
        assert isinstance(spec, TaskSpec)
        assert set(spec.depends_on) <= set(spec.dependencies)
        assert all(position[dep] < position[spec.name] for dep in spec.dependencies)
    assert validate_definition(definition.to_dict()) == definition


@settings(max_examples=100, deadline=None)
@given(acyclic_flows(), st.data())
def test_generated_back_edges_are_reported_as_cycles(
    source: dict[str, Any], data: st.DataObject
) -> None:
    definition = validate_definition(source)
    edges = [(spec.name, dep) for spec in definition.tasks for dep in spec.dependencies]
    if not edges:
        return
    node, upstream = data.draw(st.sampled_from(edges))
    for raw in source["tasks"]:
        if raw["name"] == upstream:
            raw["depends_on"] = [*raw["depends_on"], node]
    found = problems(source)
    assert found and all(kind == "cycle" for _, kind in found)
