"""What a document asks for, worked out in time linear in its size.

A fragment may spread another one twice, that one the next twice, and so on: walked naively,
sixty such fragments are 2^60 visits for a 2 KB document. So every analysis here goes through
:func:`fragment_order`: fragments are summarised once each, dependencies first, and a spread
reuses the summary of its fragment. Counts come out as if every spread were written out (the
size of what execution would see); the work stays proportional to the text.

:func:`summarise` is the one walk for everything static (size, aliases, depth, introspection,
root fields); a new static rule belongs in :class:`Selection`, not in a walk of its own. The
cost depends on the variables and lives in ``gql_api.graphql.engine.cost``, memoised the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})


@dataclass(frozen=True)
class Selection:
    """A selection set with its fragments expanded."""

    fields: int = 0  # field selections, every spread written out
    aliases: int = 0
    # The deepest field; __typename and introspection fields are not counted (introspection is
    # gated by policy, and GraphiQL's own query is deeper than any sane limit).
    depth: int = 0
    introspects: bool = False
    # Field names selected at this level, through fragments, counted per alias.
    top_level: Mapping[str, int] = field(default_factory=dict)


EMPTY = Selection()


@dataclass(frozen=True)
class DocumentSummary:
    operations: Mapping[str | None, Selection]  # by name; an anonymous operation under None
    fragments: int  # fragment definitions
    # Field selections of every operation and of every fragment no operation spreads: what
    # validation walks, spreads written out.
    fields: int
    # A fragment spreads itself, directly or not: validation refuses it, and nothing may walk
    # the document with its fragments expanded.
    cyclic: bool = False


def fragments_of(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def operations_of(document: DocumentNode) -> list[OperationDefinitionNode]:
    return [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]


def find_operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = operations_of(document)
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((op for op in operations if op.name and op.name.value == name), None)


def spread_names(selection_set: SelectionSetNode) -> set[str]:
    """The fragments a selection set spreads, at any depth (not through the fragments)."""
    names: set[str] = set()
    stack = [selection_set]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FragmentSpreadNode):
                names.add(selection.name.value)
            elif isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
                stack.append(selection.selection_set)
    return names


def fragment_order(fragments: Mapping[str, FragmentDefinitionNode]) -> list[str]:
    """Fragment names, each after every fragment it spreads. Validation refuses cycles, but
    this must not hang before it runs: a cycle is cut where it closes. Iterative, so a long
    chain of fragments cannot exhaust the stack."""
    return _topological(fragments)[0]


def _topological(fragments: Mapping[str, FragmentDefinitionNode]) -> tuple[list[str], bool]:
    spreads = {name: spread_names(f.selection_set) for name, f in fragments.items()}
    order: list[str] = []
    seen: set[str] = set()
    cyclic = False
    for root in fragments:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(spreads[root]))]
        open_ = {root}  # on the current path: meeting one again closes a cycle
        while stack:
            name, children = stack[-1]
            for child in children:
                cyclic = cyclic or child in open_
                if child in fragments and child not in seen:
                    seen.add(child)
                    open_.add(child)
                    stack.append((child, iter(spreads[child])))
                    break
            else:
                stack.pop()
                open_.discard(name)
                order.append(name)
    return order, cyclic


def reachable_fragments(
    roots: Iterable[SelectionSetNode], fragments: Mapping[str, FragmentDefinitionNode]
) -> set[str]:
    reached: set[str] = set()
    pending = [name for root in roots for name in spread_names(root)]
    while pending:
        name = pending.pop()
        if name in reached or name not in fragments:
            continue
        reached.add(name)
        pending.extend(spread_names(fragments[name].selection_set))
    return reached


def _merge(into: dict[str, int], counts: Mapping[str, int], times: int = 1) -> None:
    for name, count in counts.items():
        into[name] = into.get(name, 0) + count * times


def _summarise(selection_set: SelectionSetNode, done: Mapping[str, Selection]) -> Selection:
    fields = aliases = depth = 0
    introspects = False
    top: dict[str, int] = {}
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            name = selection.name.value
            child = _summarise(selection.selection_set, done) if selection.selection_set else EMPTY
            fields += 1 + child.fields
            aliases += (selection.alias is not None) + child.aliases
            introspects = introspects or child.introspects or name in INTROSPECTION_ROOTS
            if not name.startswith("__"):
                depth = max(depth, 1 + child.depth)
            top[name] = top.get(name, 0) + 1
            continue
        if isinstance(selection, InlineFragmentNode):
            part = _summarise(selection.selection_set, done)
        else:
            assert isinstance(selection, FragmentSpreadNode)
            # Unknown or cyclic: validation reports it; until then it selects nothing.
            part = done.get(selection.name.value, EMPTY)
        fields += part.fields
        aliases += part.aliases
        depth = max(depth, part.depth)
        introspects = introspects or part.introspects
        _merge(top, part.top_level)
    return Selection(fields, aliases, depth, introspects, top)


def summarise(document: DocumentNode) -> DocumentSummary:
    fragments = fragments_of(document)
    done: dict[str, Selection] = {}
    order, cyclic = _topological(fragments)
    for name in order:
        done[name] = _summarise(fragments[name].selection_set, done)
    operations = operations_of(document)
    summaries = {
        (op.name.value if op.name else None): _summarise(op.selection_set, done)
        for op in operations
    }
    used = reachable_fragments((op.selection_set for op in operations), fragments)
    unused = sum(done[name].fields for name in fragments if name not in used)
    fields = sum(s.fields for s in summaries.values()) + unused
    return DocumentSummary(
        operations=summaries, fragments=len(fragments), fields=fields, cyclic=cyclic
    )


@dataclass(frozen=True)
class Crowding:
    """The most crowded place of a document, fragments expanded as execution does (a
    fragment once per place). graphql-core's "overlapping fields can be merged" rule compares
    pairwise the fields that share a response path, and the fragments spread into one place:
    quadratic, so both are bounded before validation."""

    field_repeats: int  # field selections sharing one response path
    fragment_spreads: int  # distinct fragments spread into one place


def crowding(document: DocumentNode) -> Crowding:
    """Linear in the fields of the expanded document: call it once their number is known to be
    bounded (:attr:`DocumentSummary.fields`), and only without cycles (it would not end)."""
    fragments = fragments_of(document)
    operations = operations_of(document)
    used = reachable_fragments((op.selection_set for op in operations), fragments)
    roots = [op.selection_set for op in operations] + [
        f.selection_set for name, f in fragments.items() if name not in used
    ]
    repeats = spreads = 0
    stack: list[list[SelectionSetNode]] = [[root] for root in roots]
    while stack:
        groups: dict[str, list[SelectionSetNode | None]] = {}
        visited: set[str] = set()
        pending = stack.pop()
        while pending:
            for selection in pending.pop().selections:
                if isinstance(selection, FieldNode):
                    key = selection.alias.value if selection.alias else selection.name.value
                    groups.setdefault(key, []).append(selection.selection_set)
                elif isinstance(selection, InlineFragmentNode):
                    pending.append(selection.selection_set)
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    if name in fragments and name not in visited:
                        visited.add(name)
                        pending.append(fragments[name].selection_set)
        spreads = max(spreads, len(visited))
        for subsets in groups.values():
            repeats = max(repeats, len(subsets))
            children = [s for s in subsets if s is not None]
            if children:
                stack.append(children)
    return Crowding(field_repeats=repeats, fragment_spreads=spreads)
