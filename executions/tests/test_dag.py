"""The dependency graph: orders, closures, readiness and cycle detection (no database)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executions.dag import DAG, CycleError, format_cycle

# a → b → d, a → c → d, e independent (edges are written as upstream lists)
DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": []}


def test_basic_queries() -> None:
    dag = DAG(DIAMOND)
    assert dag.nodes == ("a", "b", "c", "d", "e")
    assert len(dag) == 5 and "d" in dag and "z" not in dag
    assert list(dag) == ["a", "b", "c", "d", "e"]
    assert dag.upstream("d") == ("b", "c")
    assert dag.downstream("a") == ("b", "c")
    assert dag.roots() == ("a", "e")
    assert dag.leaves() == ("d", "e")
    assert dag.position("c") == 2


def test_duplicate_edges_are_collapsed() -> None:
    dag = DAG({"a": [], "b": ["a", "a"]})
    assert dag.upstream("b") == ("a",)
    assert dag.downstream("a") == ("b",)
    assert dag.topological_order() == ("a", "b")


def test_unknown_upstream_is_rejected() -> None:
    with pytest.raises(ValueError, match="'b' depends on unknown node 'x'"):
        DAG({"a": [], "b": ["x"]})


def test_unknown_node_raises_key_error() -> None:
    dag = DAG(DIAMOND)
    for call in (dag.upstream, dag.downstream, dag.position):
        with pytest.raises(KeyError, match="unknown node 'zz'"):
            call("zz")
    with pytest.raises(KeyError):
        dag.downstream_closure(["zz"])


def test_empty_graph() -> None:
    dag = DAG({})
    assert dag.topological_order() == ()
    assert dag.roots() == () and dag.find_cycles() == []
    assert dag.downstream_closure([]) == set()


# -- ordering ---------------------------------------------------------------------------------


def test_topological_order_breaks_ties_by_definition_order() -> None:
    assert DAG(DIAMOND).topological_order() == ("a", "b", "c", "d", "e")
    # z is defined first but depends on the last node, so it comes after it.
    dag = DAG({"z": ["y"], "x": [], "y": [], "w": ["x"]})
    assert dag.topological_order() == ("x", "y", "z", "w")


def test_topological_order_is_stable_across_runs() -> None:
    graph = {f"t{i}": [f"t{j}" for j in range(i) if (i * 7 + j) % 5 == 0] for i in range(60)}
    first = DAG(graph).topological_order()
    for _ in range(5):
        assert DAG(dict(graph)).topological_order() == first


def test_in_order_sorts_a_subset() -> None:
    dag = DAG(DIAMOND)
    assert dag.in_order(["d", "b", "e", "b"]) == ["b", "d", "e"]


def test_ready() -> None:
    dag = DAG(DIAMOND)
    assert dag.ready(set()) == ["a", "e"]
    assert dag.ready({"a"}) == ["b", "c", "e"]
    assert dag.ready({"a", "b"}, exclude={"c", "e"}) == []
    assert dag.ready({"a", "b", "c", "e"}) == ["d"]
    assert dag.ready(set(DIAMOND)) == []


def test_ready_after_a_completion() -> None:
    dag = DAG(DIAMOND)
    assert dag.ready_after("a", {"a"}) == ["b", "c"]
    assert dag.ready_after("b", {"a", "b"}) == []  # d still waits for c
    assert dag.ready_after("c", {"a", "b", "c"}) == ["d"]
    assert dag.ready_after("c", {"a", "b", "c"}, exclude={"d"}) == []
    assert dag.ready_after("e", {"e"}) == []


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_ready_after_agrees_with_ready(data: st.DataObject) -> None:
    graph = data.draw(random_dags())
    dag = DAG(graph)
    done: set[str] = set()
    for node in dag.topological_order():
        before = set(dag.ready(done))
        done.add(node)
        assert set(dag.ready_after(node, done)) == set(dag.ready(done)) - before - {node}


# -- closures ---------------------------------------------------------------------------------


def test_downstream_closure_excludes_start_nodes() -> None:
    dag = DAG(DIAMOND)
    assert dag.downstream_closure(["a"]) == {"b", "c", "d"}
    assert dag.downstream_closure(["b"]) == {"d"}
    assert dag.downstream_closure(["d"]) == set()
    assert dag.downstream_closure(["b", "e"]) == {"d"}


def test_downstream_closure_includes_a_start_reachable_from_another_start() -> None:
    assert DAG(DIAMOND).downstream_closure(["a", "b"]) == {"b", "c", "d"}


def test_upstream_closure() -> None:
    dag = DAG(DIAMOND)
    assert dag.upstream_closure(["d"]) == {"a", "b", "c"}
    assert dag.upstream_closure(["a", "e"]) == set()


# -- cycles -----------------------------------------------------------------------------------


def test_acyclic_graph_has_no_cycles() -> None:
    dag = DAG(DIAMOND)
    assert dag.find_cycles() == [] and dag.is_acyclic()


def test_self_loop() -> None:
    dag = DAG({"a": ["a"], "b": []})
    assert dag.find_cycles() == [("a",)]
    assert format_cycle(("a",)) == "a → a"


def test_two_cycle() -> None:
    dag = DAG({"a": ["b"], "b": ["a"], "c": ["a"]})
    assert dag.find_cycles() == [("a", "b")]
    assert not dag.is_acyclic()


def test_three_cycle_is_named_in_work_order_from_the_earliest_node() -> None:
    # b depends on a, c on b, a on c: work flows a → b → c → a.
    dag = DAG({"c": ["b"], "a": ["c"], "b": ["a"]})
    assert dag.find_cycles() == [("c", "a", "b")]
    assert format_cycle(dag.find_cycles()[0]) == "c → a → b → c"


def test_separate_cycles_are_each_reported_once() -> None:
    dag = DAG({"a": ["b"], "b": ["a"], "x": [], "c": ["d"], "d": ["e"], "e": ["c"]})
    assert dag.find_cycles() == [("a", "b"), ("c", "e", "d")]


def test_overlapping_cycles_in_one_component_cover_every_node() -> None:
    # a ⇄ b and b ⇄ c form one strongly connected component with two elementary cycles.
    dag = DAG({"a": ["b"], "b": ["a", "c"], "c": ["b"]})
    assert dag.find_cycles() == [("a", "b"), ("b", "c")]


def test_cycle_limit() -> None:
    hub = {"hub": [f"n{i}" for i in range(100)], **{f"n{i}": ["hub"] for i in range(100)}}
    assert len(DAG(hub).find_cycles(limit=7)) == 7
    assert len(DAG(hub).find_cycles()) == 50


def test_topological_order_of_a_cyclic_graph_raises_with_the_cycles() -> None:
    dag = DAG({"a": [], "b": ["a", "c"], "c": ["b"]})
    with pytest.raises(CycleError, match="b → c → b") as caught:
        dag.topological_order()
    assert caught.value.cycles == [("b", "c")]
    with pytest.raises(CycleError):
        dag.in_order(["a"])


# -- scale: iterative algorithms only ---------------------------------------------------------


def chain(n: int) -> dict[str, list[str]]:
    return {f"t{i}": [f"t{i - 1}"] if i else [] for i in range(n)}


def test_long_chain_does_not_recurse() -> None:
    dag = DAG(chain(10_000))
    assert dag.topological_order()[-1] == "t9999"
    assert len(dag.downstream_closure(["t0"])) == 9_999
    assert len(dag.upstream_closure(["t9999"])) == 9_999
    assert dag.find_cycles() == []


def test_long_ring_is_found() -> None:
    ring = chain(10_000)
    ring["t0"] = ["t9999"]
    cycles = DAG(ring).find_cycles()
    assert len(cycles) == 1 and cycles[0][:2] == ("t0", "t1") and len(cycles[0]) == 10_000


def test_wide_fan_out() -> None:
    graph = {"root": [], **{f"n{i}": ["root"] for i in range(1_000)}, "sink": []}
    graph["sink"] = [f"n{i}" for i in range(1_000)]
    dag = DAG(graph)
    assert len(dag.downstream_closure(["root"])) == 1_001
    assert dag.topological_order()[0] == "root" and dag.topological_order()[-1] == "sink"


# -- properties against simple reference implementations --------------------------------------


def reachable(edges: dict[str, list[str]], start: str) -> set[str]:
    """Reference: nodes reachable from ``start`` by one or more downstream edges."""
    downstream: dict[str, list[str]] = {node: [] for node in edges}
    for node, ups in edges.items():
        for up in ups:
            downstream[up].append(node)
    seen: set[str] = set()
    frontier = list(downstream[start])
    while frontier:
        node = frontier.pop()
        if node not in seen:
            seen.add(node)
            frontier.extend(downstream[node])
    return seen


@st.composite
def random_dags(draw: st.DrawFn) -> dict[str, list[str]]:
    """Edges only from lower to higher index (so acyclic), under shuffled names."""
    n = draw(st.integers(min_value=1, max_value=30))
    names = draw(st.permutations([f"task_{i}" for i in range(n)]))
    pairs = [(i, j) for j in range(n) for i in range(j)]
    chosen = draw(st.lists(st.sampled_from(pairs), max_size=80)) if pairs else []
    upstream: dict[str, list[str]] = {name: [] for name in names}
    for i, j in chosen:
        upstream[names[j]].append(names[i])
    order = draw(st.permutations(names))  # definition order independent of the edges
    return {name: upstream[name] for name in order}


@settings(max_examples=200, deadline=None)
@given(random_dags())
def test_order_respects_every_edge(graph: dict[str, list[str]]) -> None:
    order = DAG(graph).topological_order()
    assert sorted(order) == sorted(graph)
    position = {node: i for i, node in enumerate(order)}
    for node, ups in graph.items():
        for up in ups:
            assert position[up] < position[node]


@settings(max_examples=200, deadline=None)
@given(random_dags())
def test_order_is_the_smallest_by_definition_position(graph: dict[str, list[str]]) -> None:
    """Every step takes the earliest-defined node whose dependencies are already placed."""
    dag = DAG(graph)
    done: set[str] = set()
    for node in dag.topological_order():
        assert node == dag.ready(done)[0]
        done.add(node)


@settings(max_examples=200, deadline=None)
@given(random_dags(), st.data())
def test_closures_match_reference(graph: dict[str, list[str]], data: st.DataObject) -> None:
    dag = DAG(graph)
    node = data.draw(st.sampled_from(sorted(graph)))
    assert dag.downstream_closure([node]) == reachable(graph, node)
    assert node not in dag.downstream_closure([node])  # acyclic: never its own descendant
    upstream_ref = {other for other in graph if node in reachable(graph, other)}
    assert dag.upstream_closure([node]) == upstream_ref
    assert dag.find_cycles() == []


@settings(max_examples=200, deadline=None)
@given(random_dags(), st.data())
def test_a_back_edge_makes_a_cycle(graph: dict[str, list[str]], data: st.DataObject) -> None:
    dag = DAG(graph)
    candidates = [
        (node, later) for node in graph for later in sorted(dag.downstream_closure([node]))
    ]
    if not candidates:
        candidates = [(node, node) for node in graph]  # a self-loop is a back edge too
    node, later = data.draw(st.sampled_from(candidates))
    cyclic = {name: list(ups) for name, ups in graph.items()}
    cyclic[node].append(later)  # node now also depends on something downstream of it
    cyclic_dag = DAG(cyclic)
    assert not cyclic_dag.is_acyclic()
    cycles = cyclic_dag.find_cycles()
    assert cycles
    assert any(node in cycle and later in cycle for cycle in cycles)


@st.composite
def random_graphs(draw: st.DrawFn) -> dict[str, list[str]]:
    """Arbitrary directed graphs, cycles and self-loops included."""
    n = draw(st.integers(min_value=1, max_value=12))
    names = [f"n{i}" for i in range(n)]
    edges = draw(st.lists(st.tuples(st.sampled_from(names), st.sampled_from(names)), max_size=30))
    graph: dict[str, list[str]] = {name: [] for name in names}
    for node, up in edges:
        graph[node].append(up)
    return graph


@settings(max_examples=300, deadline=None)
@given(random_graphs())
def test_reported_cycles_are_real_distinct_and_cover_every_cyclic_node(
    graph: dict[str, list[str]],
) -> None:
    dag = DAG(graph)
    cycles = dag.find_cycles()
    on_cycles = {node for node in graph if node in reachable(graph, node)}
    assert dag.is_acyclic() == (not on_cycles)
    assert {node for cycle in cycles for node in cycle} == on_cycles
    assert len(set(cycles)) == len(cycles)
    for cycle in cycles:
        assert len(set(cycle)) == len(cycle)  # elementary
        assert min(cycle, key=dag.position) == cycle[0]  # named from its earliest node
        for i, node in enumerate(cycle):
            assert node in dag.upstream(cycle[(i + 1) % len(cycle)])  # a real edge, work order


def test_random_large_dag_smoke() -> None:
    rng = random.Random(7)
    names = [f"t{i}" for i in range(1_000)]
    graph = {name: rng.sample(names[:i], min(i, 3)) for i, name in enumerate(names)}
    dag = DAG(graph)
    assert dag.downstream_closure(["t0"]) == reachable(graph, "t0")
    assert len(dag.topological_order()) == 1_000
