"""The fields a selection asks for, collected when a document is compiled, with graphql-core's
``CollectFields`` semantics (spec section 6.3.2): fragment spreads and inline fragments whose
type condition applies are expanded in place, ``@skip``/``@include`` drop what they exclude,
and selections of the same response key merge into one field whose sub-selections merge in
turn. A response key sits where it first appears.

A selection set is collected once per parent type and reused wherever it appears (a fragment
spread a thousand times is expanded once), so compiling stays proportional to the document.

``@skip``/``@include`` whose ``if`` reads a variable cannot be decided from the text: the
compiler collects the document once per combination a request actually sends
(:func:`conditional_selections` lists those selections, :func:`inclusions` evaluates them for
one request's variables with graphql-core's own rule: ``@skip`` wins over ``@include``).
"""

from __future__ import annotations

from typing import Any

from graphql import (
    BooleanValueNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLIncludeDirective,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    VariableNode,
    VariableValues,
    get_directive_values,
    is_abstract_type,
)

# Response key -> the field nodes merged under it (keyed by identity, in document order).
Fields = dict[str, dict[int, FieldNode]]

_CONDITIONS = (GraphQLSkipDirective.name, GraphQLIncludeDirective.name)


def conditional_selections(
    document: DocumentNode, operation: OperationDefinitionNode
) -> list[Condition]:
    """The selections of the operation, and of the fragments it spreads, whose
    ``@skip``/``@include`` read a variable (each fragment walked once)."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    found: list[Condition] = []
    pending: list[SelectionSetNode] = [operation.selection_set]
    walked: set[str] = set()
    while pending:
        for selection in pending.pop().selections:
            if _reads_a_variable(selection):
                found.append(Condition(selection))
            inner = getattr(selection, "selection_set", None)
            if isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = fragments.get(name)
                inner = fragment.selection_set if fragment and name not in walked else None
                walked.add(name)
            if inner is not None:
                pending.append(inner)
    return found


def _reads_a_variable(node: SelectionNode) -> bool:
    return any(
        isinstance(argument.value, VariableNode)
        for directive in node.directives or ()
        if directive.name.value in _CONDITIONS
        for argument in directive.arguments or ()
    )


def included(node: SelectionNode, variables: VariableValues | None) -> bool:
    """graphql-core's ``should_include_node``: raises its GraphQLError for a null ``if``."""
    skip = get_directive_values(GraphQLSkipDirective, node, variables)
    if skip and skip["if"]:
        return False
    include = get_directive_values(GraphQLIncludeDirective, node, variables)
    return not (include and not include["if"])


class ConditionError(Exception):
    """A selection's ``if`` that graphql-core refuses (a null): raised where the selection set
    holding it is collected, as graphql-core raises it there."""

    def __init__(self, error: GraphQLError) -> None:
        super().__init__(error.message)
        self.error = error


class Condition:
    """A selection's ``@skip``/``@include`` that reads a variable, decided per request: from
    the booleans the variables were coerced to, or by graphql-core for anything else (a null,
    a variable not given), which says why it refuses. graphql-core's own reading of the
    directives, for every request, was 9 µs of an ``@include`` page."""

    __slots__ = ("include", "node", "skip")

    def __init__(self, node: SelectionNode) -> None:
        self.node = node
        self.skip = _if_argument(node, GraphQLSkipDirective.name, absent=False)
        self.include = _if_argument(node, GraphQLIncludeDirective.name, absent=True)

    def decide(self, variables: VariableValues) -> bool | GraphQLError:
        skip, include = self.skip, self.include
        if skip.__class__ is str:
            skip = variables.coerced.get(skip)  # type: ignore[arg-type]
        if include.__class__ is str:
            include = variables.coerced.get(include)  # type: ignore[arg-type]
        if skip.__class__ is bool and include.__class__ is bool:
            return include and not skip  # @skip wins, as in graphql-core
        return _inclusion(self.node, variables)


def _if_argument(node: SelectionNode, directive: str, *, absent: bool) -> bool | str | None:
    """The ``if`` of the node's ``directive``: its literal, the name of the variable it reads,
    or ``absent`` without that directive; None when graphql-core is to read it."""
    for found in node.directives or ():
        if found.name.value != directive:
            continue
        value = next((a.value for a in found.arguments or () if a.name.value == "if"), None)
        if isinstance(value, VariableNode):
            return value.name.value
        return value.value if isinstance(value, BooleanValueNode) else None
    return absent


def inclusions(
    conditions: list[Condition], variables: VariableValues
) -> tuple[bool | GraphQLError, ...]:
    """Per selection, whether this request includes it, or the error graphql-core raises."""
    return tuple(condition.decide(variables) for condition in conditions)


def _inclusion(node: SelectionNode, variables: VariableValues) -> bool | GraphQLError:
    try:
        return included(node, variables)
    except GraphQLError as error:
        return error


class Collector:
    """Collects the selections of one document for one combination of its conditions
    (``decided``: selection id -> included, for the selections whose condition reads a
    variable)."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        decided: dict[int, bool | GraphQLError],
    ) -> None:
        self.schema = schema
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.decided = decided
        self._collected: dict[tuple[int, str], Fields] = {}

    def collect(self, selection_set: SelectionSetNode, parent: GraphQLObjectType) -> Fields:
        """The fields of a selection set on ``parent`` (shared: do not modify the answer)."""
        memo = (id(selection_set), parent.name)
        fields = self._collected.get(memo)
        if fields is not None:
            return fields
        fields = {}
        for selection in selection_set.selections:
            if not self._included(selection):
                continue
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                fields.setdefault(key, {})[id(selection)] = selection
                continue
            inner = self._fragment_selection(selection, parent)
            if inner is not None:
                _merge(fields, self.collect(inner, parent))
        self._collected[memo] = fields
        return fields

    def subfields(self, nodes: list[FieldNode], parent: GraphQLObjectType) -> Fields:
        """The merged sub-selections of the field nodes of one response key."""
        sets = [node.selection_set for node in nodes if node.selection_set is not None]
        if len(sets) == 1:
            return self.collect(sets[0], parent)
        merged: Fields = {}
        for selection_set in sets:
            _merge(merged, self.collect(selection_set, parent))
        return merged

    def _included(self, node: SelectionNode) -> bool:
        decided = self.decided.get(id(node))
        if isinstance(decided, GraphQLError):
            raise ConditionError(decided)
        if decided is not None:
            return decided
        return not node.directives or included(node, None)  # literal conditions only here

    def _fragment_selection(self, node: Any, parent: GraphQLObjectType) -> Any:
        if isinstance(node, FragmentSpreadNode):
            fragment = self.fragments.get(node.name.value)
            if fragment is None:
                return None
            condition, inner = fragment.type_condition, fragment.selection_set
        else:
            condition, inner = node.type_condition, node.selection_set
        if condition is None or self._applies(condition.name.value, parent):
            return inner
        return None

    def _applies(self, name: str, parent: GraphQLObjectType) -> bool:
        if name == parent.name:
            return True
        conditional = self.schema.get_type(name)
        return is_abstract_type(conditional) and self.schema.is_sub_type(
            conditional,  # type: ignore[arg-type]
            parent,
        )


def _merge(into: Fields, other: Fields) -> None:
    for key, nodes in other.items():
        into.setdefault(key, {}).update(nodes)
