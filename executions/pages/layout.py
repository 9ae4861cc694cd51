"""A layered (Sugiyama-style) drawing of a flow's DAG for the browser pages.

Pure Python over ``executions.dag.DAG``. Work flows left to right:

1. layers are longest-path depths from the roots (a task sits one column right of its
   deepest dependency);
2. an edge that skips columns gets a small invisible waypoint in every column it crosses, so
   it is routed between the boxes instead of under them;
3. rows inside a column are ordered by a few barycenter sweeps, which removes most crossings;
4. each edge is drawn as smooth curves from a dependency's right side, through its
   waypoints, to its dependant's left side.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from executions.dag import DAG

NODE_WIDTH = 172
NODE_HEIGHT = 76
WAYPOINT_HEIGHT = 14
GAP_X = 52
GAP_Y = 22
MARGIN = 12
ARROW_ROOM = 7
SWEEPS = 6

# A waypoint is named by its edge and column: ("→", source, target, layer).
Item = str | tuple[str, str, str, int]


@dataclass(frozen=True)
class NodeBox:
    name: str
    layer: int
    row: int
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class EdgePath:
    source: str
    target: str
    d: str  # SVG path data


@dataclass(frozen=True)
class Layout:
    nodes: tuple[NodeBox, ...]
    edges: tuple[EdgePath, ...]
    width: int
    height: int
    layers: int


def layer_of(dag: DAG) -> dict[str, int]:
    """Longest-path depth of each node: roots are 0, a node is 1 + its deepest dependency."""
    depth: dict[str, int] = {}
    for node in dag.topological_order():
        ups = dag.upstream(node)
        depth[node] = 1 + max(depth[up] for up in ups) if ups else 0
    return depth


def _chains(dag: DAG, depth: Mapping[str, int]) -> dict[tuple[str, str], list[Item]]:
    """Every edge as the list of items it passes through, source first, target last."""
    chains: dict[tuple[str, str], list[Item]] = {}
    for node in dag.topological_order():
        for up in dag.upstream(node):
            waypoints: list[Item] = [("→", up, node, k) for k in range(depth[up] + 1, depth[node])]
            chains[(up, node)] = [up, *waypoints, node]
    return chains


def _order_layers(
    dag: DAG, depth: Mapping[str, int], chains: Mapping[tuple[str, str], list[Item]]
) -> list[list[Item]]:
    count = max(depth.values(), default=-1) + 1
    layers: list[list[Item]] = [[] for _ in range(count)]
    ups: dict[Item, list[Item]] = {}
    downs: dict[Item, list[Item]] = {}
    for node in dag.nodes:  # definition order is the starting point
        layers[depth[node]].append(node)
    for chain in chains.values():
        for earlier, later in zip(chain, chain[1:], strict=False):
            downs.setdefault(earlier, []).append(later)
            ups.setdefault(later, []).append(earlier)
        for waypoint in chain[1:-1]:
            layers[waypoint[3]].append(waypoint)  # type: ignore[index]
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        indices = range(1, count) if downward else range(count - 2, -1, -1)
        for index in indices:
            fixed = layers[index - 1] if downward else layers[index + 1]
            position = {item: row for row, item in enumerate(fixed)}
            neighbours = ups if downward else downs
            layers[index] = _by_barycenter(layers[index], position, neighbours)
    return layers


def _by_barycenter(
    layer: list[Item], position: Mapping[Item, int], neighbours: Mapping[Item, list[Item]]
) -> list[Item]:
    def key(entry: tuple[int, Item]) -> tuple[float, int]:
        row, item = entry
        placed = [position[other] for other in neighbours.get(item, ()) if other in position]
        return (sum(placed) / len(placed) if placed else float(row), row)

    return [item for _, item in sorted(enumerate(layer), key=key)]


def _height(item: Item) -> int:
    return NODE_HEIGHT if isinstance(item, str) else WAYPOINT_HEIGHT


def layered_layout(dag: DAG) -> Layout:
    """Positions (pixels) for every node and a path for every edge; deterministic."""
    if not len(dag):
        return Layout(nodes=(), edges=(), width=0, height=0, layers=0)
    depth = layer_of(dag)
    chains = _chains(dag, depth)
    layers = _order_layers(dag, depth, chains)
    heights = [sum(_height(i) for i in layer) + (len(layer) - 1) * GAP_Y for layer in layers]
    full_height = max(heights)
    tops: dict[Item, int] = {}
    rows: dict[Item, int] = {}
    for index, layer in enumerate(layers):
        y = MARGIN + (full_height - heights[index]) // 2
        for row, item in enumerate(layer):
            tops[item], rows[item] = y, row
            y += _height(item) + GAP_Y
    boxes = {
        node: NodeBox(
            name=node,
            layer=depth[node],
            row=rows[node],
            x=_column_x(depth[node]),
            y=tops[node],
            width=NODE_WIDTH,
            height=NODE_HEIGHT,
        )
        for node in dag.nodes
    }
    edges = tuple(
        EdgePath(source=up, target=node, d=_path(chain, tops, depth))
        for (up, node), chain in chains.items()
    )
    return Layout(
        nodes=tuple(boxes[node] for node in dag.nodes),
        edges=edges,
        width=2 * MARGIN + len(layers) * NODE_WIDTH + (len(layers) - 1) * GAP_X,
        height=2 * MARGIN + full_height,
        layers=len(layers),
    )


def _column_x(layer: int) -> int:
    return MARGIN + layer * (NODE_WIDTH + GAP_X)


def _path(chain: list[Item], tops: Mapping[Item, int], depth: Mapping[str, int]) -> str:
    """Curves between columns, straight runs through the columns an edge skips."""
    source, target = chain[0], chain[-1]
    assert isinstance(source, str) and isinstance(target, str)
    x = _column_x(depth[source]) + NODE_WIDTH
    y = tops[source] + NODE_HEIGHT // 2
    parts = [f"M{x},{y}"]
    bend = GAP_X // 2
    for item in chain[1:]:
        left = _column_x(item[3] if isinstance(item, tuple) else depth[item])
        next_y = tops[item] + _height(item) // 2
        end_x = left - ARROW_ROOM if item is target else left
        parts.append(f"C{x + bend},{y} {end_x - bend},{next_y} {end_x},{next_y}")
        x, y = end_x, next_y
        if isinstance(item, tuple):
            x = left + NODE_WIDTH
            parts.append(f"L{x},{y}")
    return " ".join(parts)
