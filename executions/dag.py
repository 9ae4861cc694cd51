"""A small immutable dependency graph over task names.

Pure Python (no Django) so the engine, the staleness rules and flow validation share one
implementation that is tested without a database.  Nodes keep their definition order, which
makes every answer deterministic: ties in a topological order, the order of ``ready()`` and the
way cycles are named all follow the order in which tasks were written.

Edges point from a task to the tasks it depends on (its *upstream*).  Work flows the other way,
so a cycle ``a → b → a`` reads "b runs after a, a runs after b".  Every traversal is iterative:
a 10,000-task chain must not hit Python's recursion limit.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping, Set

__all__ = ["DAG", "CycleError", "format_cycle"]

Cycle = tuple[str, ...]

# Enumerating every elementary cycle can be exponential; a definition with more cycles than this
# needs fixing before the full list would help anyone.
DEFAULT_CYCLE_LIMIT = 50


def format_cycle(cycle: Cycle) -> str:
    """Render ``("a", "b", "c")`` as ``a → b → c → a`` (a self-loop is ``a → a``)."""
    return " → ".join((*cycle, cycle[0]))


class CycleError(ValueError):
    """Raised when an order is asked of a graph that has cycles."""

    def __init__(self, cycles: list[Cycle]) -> None:
        self.cycles = cycles
        super().__init__("dependency cycle: " + "; ".join(format_cycle(c) for c in cycles))


class DAG:
    """Dependency graph built from ``{node: iterable of upstream nodes}``.

    Construction accepts cyclic input on purpose, so validation can ask ``find_cycles()``;
    ``topological_order()`` raises ``CycleError`` for such a graph.
    """

    def __init__(self, upstream: Mapping[str, Iterable[str]]) -> None:
        self._nodes: tuple[str, ...] = tuple(upstream)
        self._position = {node: i for i, node in enumerate(self._nodes)}
        ups: dict[str, tuple[str, ...]] = {}
        downs: dict[str, list[str]] = {node: [] for node in self._nodes}
        for node, deps in upstream.items():
            unique = tuple(dict.fromkeys(deps))
            for dep in unique:
                if dep not in self._position:
                    raise ValueError(f"{node!r} depends on unknown node {dep!r}")
                downs[dep].append(node)
            ups[node] = unique
        self._upstream = ups
        self._downstream = {node: tuple(children) for node, children in downs.items()}
        self._order: tuple[str, ...] | None = None

    # -- basic queries --------------------------------------------------------------------

    @property
    def nodes(self) -> tuple[str, ...]:
        return self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __contains__(self, node: object) -> bool:
        return node in self._position

    def __repr__(self) -> str:
        return f"DAG({dict(self._upstream)!r})"

    def position(self, node: str) -> int:
        """The node's index in definition order."""
        return self._position[self._known(node)]

    def upstream(self, node: str) -> tuple[str, ...]:
        """Direct dependencies of ``node``."""
        return self._upstream[self._known(node)]

    def downstream(self, node: str) -> tuple[str, ...]:
        """Nodes that depend directly on ``node``, in definition order."""
        return self._downstream[self._known(node)]

    def roots(self) -> tuple[str, ...]:
        """Nodes without dependencies: what a fresh execution queues first."""
        return tuple(node for node in self._nodes if not self._upstream[node])

    def leaves(self) -> tuple[str, ...]:
        """Nodes nothing depends on."""
        return tuple(node for node in self._nodes if not self._downstream[node])

    # -- closures -------------------------------------------------------------------------

    def downstream_closure(self, nodes: Iterable[str]) -> set[str]:
        """Every node reachable from ``nodes`` through one or more edges.

        This is what goes stale when an output is edited.  A start node is included only if
        it is reachable from another start node (or from itself, which a DAG never allows).
        """
        return self._reach(nodes, self._downstream)

    def upstream_closure(self, nodes: Iterable[str]) -> set[str]:
        """Every node ``nodes`` transitively depend on (the mirror of ``downstream_closure``)."""
        return self._reach(nodes, self._upstream)

    def _reach(self, nodes: Iterable[str], edges: Mapping[str, tuple[str, ...]]) -> set[str]:
        # A list used as a stack beats a deque here and the visiting order does not matter.
        stack = [self._known(node) for node in nodes]
        seen: set[str] = set()
        while stack:
            for nxt in edges[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    # -- ordering -------------------------------------------------------------------------

    def topological_order(self) -> tuple[str, ...]:
        """Dependencies first; ties broken by definition order (Kahn's algorithm on a heap).

        The result is stable across runs and processes, so it can be shown to users and
        compared in tests.  Raises ``CycleError`` naming the cycles.
        """
        if self._order is None:
            pending = {node: len(deps) for node, deps in self._upstream.items()}
            heap = [self._position[node] for node, count in pending.items() if count == 0]
            heapq.heapify(heap)
            order: list[str] = []
            while heap:
                node = self._nodes[heapq.heappop(heap)]
                order.append(node)
                for child in self._downstream[node]:
                    pending[child] -= 1
                    if pending[child] == 0:
                        heapq.heappush(heap, self._position[child])
            if len(order) != len(self._nodes):
                raise CycleError(self.find_cycles())
            self._order = tuple(order)
        return self._order

    def is_acyclic(self) -> bool:
        try:
            self.topological_order()
        except CycleError:
            return False
        return True

    def in_order(self, nodes: Iterable[str]) -> list[str]:
        """``nodes`` (deduplicated) sorted into topological order, e.g. stale tasks to re-run."""
        wanted = {self._known(node) for node in nodes}
        return [node for node in self.topological_order() if node in wanted]

    def ready(self, completed: Set[str], *, exclude: Set[str] = frozenset()) -> list[str]:
        """Nodes not yet completed (nor in ``exclude``) whose dependencies are all completed.

        ``exclude`` carries what is already queued, running or failed so the caller does not
        schedule it twice.  Definition order.
        """
        return [
            node
            for node in self._nodes
            if node not in completed
            and node not in exclude
            and all(dep in completed for dep in self._upstream[node])
        ]

    def ready_after(
        self, node: str, completed: Set[str], *, exclude: Set[str] = frozenset()
    ) -> list[str]:
        """What ``node``'s completion unblocks: ``ready()`` restricted to its direct dependents.

        Cheaper than ``ready()`` when the engine reacts to one completion in a large flow;
        ``completed`` must already contain ``node``.
        """
        return [
            child
            for child in self.downstream(node)
            if child not in completed
            and child not in exclude
            and all(dep in completed for dep in self._upstream[child])
        ]

    # -- cycles ---------------------------------------------------------------------------

    def find_cycles(self, *, limit: int = DEFAULT_CYCLE_LIMIT) -> list[Cycle]:
        """Distinct cycles covering every node that lies on a cycle, at most ``limit`` of them.

        Every strongly connected component with a cycle is reported (components ordered by
        their earliest node).  Inside one, the shortest cycle through its earliest node comes
        first, then the shortest cycle through each node not yet covered, so each reported
        cycle is new.  A cycle lists nodes in the direction work flows (``a → b``: b depends
        on a) and starts at its earliest node in definition order.  Polynomial, unlike a full
        elementary-cycle enumeration, which can be exponential.
        """
        cycles: list[Cycle] = []
        for component in self._cyclic_components():
            members = set(component)
            covered: set[str] = set()
            for start in component:
                if len(cycles) >= limit:
                    return cycles
                if start not in covered:
                    cycle = self._shortest_cycle(start, members)
                    covered.update(cycle)
                    cycles.append(self._rotate(cycle))
        return cycles

    def _rotate(self, cycle: Cycle) -> Cycle:
        first = min(range(len(cycle)), key=lambda i: self._position[cycle[i]])
        return cycle[first:] + cycle[:first]

    def _shortest_cycle(self, start: str, members: Set[str]) -> Cycle:
        """Breadth-first search from ``start`` back to itself, staying inside its component."""
        parent: dict[str, str] = {}
        frontier = [start]
        while frontier:
            following: list[str] = []
            for node in frontier:
                for child in self._downstream[node]:
                    if child == start:
                        path = [node]
                        while path[-1] != start:
                            path.append(parent[path[-1]])
                        return tuple(reversed(path))
                    if child in members and child not in parent:
                        parent[child] = node
                        following.append(child)
            frontier = following
        raise AssertionError(f"{start!r} is in a cyclic component but on no cycle")

    def _cyclic_components(self) -> list[list[str]]:
        """Strongly connected components that contain a cycle, members in definition order."""
        result = []
        for component in self._strongly_connected_components():
            if len(component) > 1 or component[0] in self._upstream[component[0]]:
                result.append(sorted(component, key=self._position.__getitem__))
        result.sort(key=lambda component: self._position[component[0]])
        return result

    def _strongly_connected_components(self) -> list[list[str]]:
        """Tarjan's algorithm, iterative so long chains cannot exhaust the call stack."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        components: list[list[str]] = []
        for root in self._nodes:
            if root in index:
                continue
            work: list[tuple[str, Iterator[str]]] = []
            self._tarjan_visit(root, index, low, stack, on_stack, work)
            while work:
                node, children = work[-1]
                for child in children:
                    if child not in index:
                        self._tarjan_visit(child, index, low, stack, on_stack, work)
                        break
                    if child in on_stack:
                        low[node] = min(low[node], index[child])
                else:
                    work.pop()
                    if work:
                        parent = work[-1][0]
                        low[parent] = min(low[parent], low[node])
                    if low[node] == index[node]:
                        component: list[str] = []
                        while not component or component[-1] != node:
                            component.append(stack.pop())
                            on_stack.discard(component[-1])
                        components.append(component)
        return components

    def _tarjan_visit(
        self,
        node: str,
        index: dict[str, int],
        low: dict[str, int],
        stack: list[str],
        on_stack: set[str],
        work: list[tuple[str, Iterator[str]]],
    ) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        work.append((node, iter(self._downstream[node])))

    def _known(self, node: str) -> str:
        if node not in self._position:
            raise KeyError(f"unknown node {node!r}")
        return node
