"""The layered DAG drawing (pure, no database)."""

from __future__ import annotations

import re

from executions.dag import DAG
from executions.pages.layout import (
    GAP_X,
    NODE_HEIGHT,
    NODE_WIDTH,
    layer_of,
    layered_layout,
)


def test_layers_are_longest_path_depths() -> None:
    dag = DAG({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["a", "d"]})
    assert layer_of(dag) == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 3}


def test_nodes_of_one_layer_share_a_column_and_never_overlap() -> None:
    dag = DAG({"a": [], "b": ["a"], "c": ["a"], "d": ["a"], "e": ["b", "c", "d"]})
    layout = layered_layout(dag)
    boxes = {box.name: box for box in layout.nodes}
    assert {boxes[n].x for n in "bcd"} == {boxes["a"].x + NODE_WIDTH + GAP_X}
    ys = sorted(boxes[n].y for n in "bcd")
    assert all(later - earlier >= NODE_HEIGHT for earlier, later in zip(ys, ys[1:], strict=False))
    for box in layout.nodes:
        assert 0 <= box.x and box.x + box.width <= layout.width
        assert 0 <= box.y and box.y + box.height <= layout.height
    # A single node in a layer is centred on the tallest column.
    middle = boxes["c"].y
    assert boxes["a"].y == middle and boxes["e"].y == middle


def test_every_dependency_is_one_left_to_right_edge() -> None:
    dag = DAG({"a": [], "b": ["a"], "c": ["a", "b"]})
    layout = layered_layout(dag)
    assert {(e.source, e.target) for e in layout.edges} == {("a", "b"), ("a", "c"), ("b", "c")}
    boxes = {box.name: box for box in layout.nodes}
    for edge in layout.edges:
        numbers = [int(n) for n in re.findall(r"-?\d+", edge.d)]
        start_x, end_x = numbers[0], numbers[-2]
        assert start_x == boxes[edge.source].x + NODE_WIDTH
        assert boxes[edge.target].x - 10 <= end_x <= boxes[edge.target].x


def test_barycenter_ordering_removes_an_avoidable_crossing() -> None:
    # Written order would draw x→q and y→p as crossing lines; the sweep swaps p and q.
    dag = DAG({"x": [], "y": [], "p": ["y"], "q": ["x"]})
    boxes = {box.name: box for box in layered_layout(dag).nodes}
    assert boxes["x"].y < boxes["y"].y
    assert boxes["q"].y < boxes["p"].y


def test_layout_is_deterministic_and_handles_empty_graphs() -> None:
    dag = DAG({f"t{i}": [f"t{j}" for j in range(i) if (i + j) % 3 == 0] for i in range(30)})
    assert layered_layout(dag) == layered_layout(dag)
    empty = layered_layout(DAG({}))
    assert empty.nodes == () and empty.width == 0


def test_an_edge_that_skips_a_column_is_routed_around_the_boxes_in_it() -> None:
    dag = DAG({"a": [], "b": ["a"], "c": ["b"], "d": ["a", "c"], "e": ["a"]})
    layout = layered_layout(dag)
    boxes = {box.name: box for box in layout.nodes}
    long_edge = next(e for e in layout.edges if (e.source, e.target) == ("a", "d"))
    # Straight runs ("L x,y") cross the skipped columns at a height no box occupies there.
    runs = [int(y) for y in re.findall(r"L-?\d+,(-?\d+)", long_edge.d)]
    assert len(runs) == 2  # columns of b and c
    for y, skipped in zip(runs, ("b", "c"), strict=True):
        box = boxes[skipped]
        assert not box.y <= y <= box.y + box.height
    assert layout.height >= NODE_HEIGHT * 2  # room for the detour
