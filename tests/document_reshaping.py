"""Generated GraphQL documents rewritten the way clients write theirs, for the differential
tests of the planned executor (tests/test_differential_executor.py against the service's schema,
tests/test_differential_errors.py against a schema that fails in every way it can).

hypothesis-graphql writes plain selections with arguments; :class:`Reshape` adds what clients
add: named and inline fragments (reused, nested), ``@skip``/``@include`` with literals and
variables, ``__typename``, aliases and merged fields, arguments moved into variables (sent, or
left to a default).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import graphql
from hypothesis import strategies as st


def rebuild(node: Any, **changes: Any) -> Any:
    return type(node)(**{**{k: getattr(node, k) for k in node.keys if k != "loc"}, **changes})


def name_node(value: str) -> graphql.NameNode:
    return graphql.NameNode(value=value)


@dataclass
class Generated:
    query: str
    variables: dict[str, Any]


class Reshape:
    """Rewrites a generated document the way clients write theirs (see the module docstring)."""

    def __init__(
        self,
        draw: Callable[[st.SearchStrategy[Any]], Any],
        schema: graphql.GraphQLSchema,
        ids: Sequence[str] = (),
    ) -> None:
        self.draw = draw
        self.schema = schema
        self.ids = ids  # what an ID argument is written as (else as generated)
        self.definitions: list[graphql.VariableDefinitionNode] = []
        self.variables: dict[str, Any] = {}
        self.fragments: list[graphql.FragmentDefinitionNode] = []

    def document(self, document: graphql.DocumentNode) -> graphql.DocumentNode:
        operation = document.definitions[0]
        assert isinstance(operation, graphql.OperationDefinitionNode)
        assert self.schema.query_type is not None
        selection_set = self.selection_set(operation.selection_set, self.schema.query_type)
        name = name_node("Generated") if self.draw(st.booleans()) else None
        operation = rebuild(
            operation,
            name=name,
            selection_set=selection_set,
            variable_definitions=tuple(self.definitions),
        )
        return graphql.DocumentNode(definitions=(operation, *self.fragments))

    def selection_set(
        self, node: graphql.SelectionSetNode, parent: Any
    ) -> graphql.SelectionSetNode:
        selections: list[Any] = [
            self.field(s, parent) if isinstance(s, graphql.FieldNode) else s
            for s in node.selections
        ]
        draw = self.draw
        if draw(st.integers(0, 3)) == 0:
            selections.insert(
                draw(st.integers(0, len(selections))),
                graphql.FieldNode(name=name_node("__typename")),
            )
        if draw(st.integers(0, 3)) == 0:  # the same field under a second key
            original = draw(st.sampled_from(selections))
            if isinstance(original, graphql.FieldNode):
                again = rebuild(original, alias=name_node(f"again_{original.name.value}"))
                selections.append(self.other_page(again))
        if draw(st.integers(0, 2)) == 0:
            index = draw(st.integers(0, len(selections) - 1))
            selections[index] = self.conditional(selections[index])
        if len(selections) > 1 and draw(st.integers(0, 2)) == 0:
            start = draw(st.integers(0, len(selections) - 1))
            end = draw(st.integers(start + 1, len(selections)))
            selections[start:end] = self.fragment(selections[start:end], parent)
        if draw(st.integers(0, 4)) == 0:  # a field written twice: merged into one key
            selections.append(draw(st.sampled_from(selections)))
        return graphql.SelectionSetNode(selections=tuple(selections))

    def other_page(self, node: graphql.FieldNode) -> graphql.FieldNode:
        """The same field under its second key with another page size (different arguments)."""
        arguments = tuple(
            rebuild(a, value=graphql.IntValueNode(value=str(self.draw(st.integers(0, 4)))))
            if a.name.value in ("first", "last") and isinstance(a.value, graphql.IntValueNode)
            else a
            for a in node.arguments or ()
        )
        return rebuild(node, arguments=arguments)

    def field(self, node: graphql.FieldNode, parent: Any) -> graphql.FieldNode:
        definition = parent.fields[node.name.value]
        arguments = tuple(
            self.argument(a, definition.args[a.name.value].type) for a in node.arguments or ()
        )
        selection_set = node.selection_set
        if selection_set is not None:
            selection_set = self.selection_set(
                selection_set, graphql.get_named_type(definition.type)
            )
        return rebuild(node, arguments=arguments, selection_set=selection_set)

    def argument(self, node: graphql.ArgumentNode, type_: Any) -> graphql.ArgumentNode:
        value = node.value
        named = graphql.get_named_type(type_)
        if named.name == "ID" and self.ids and isinstance(value, graphql.StringValueNode):
            value = graphql.StringValueNode(value=self.draw(st.sampled_from(self.ids)))
        if (
            named.name == "Int"
            and node.name.value in ("first", "last")
            and self.draw(st.booleans())
        ):
            value = graphql.IntValueNode(value=str(self.draw(st.integers(0, 6))))
        if self.draw(st.integers(0, 2)) == 0:
            value = self.variable(value, type_)
        return rebuild(node, value=value)

    def variable(self, value: Any, type_: Any) -> graphql.VariableNode:
        name = f"v{len(self.definitions)}"
        literal = graphql.value_from_ast_untyped(value)
        default = None
        if self.draw(st.booleans()):
            self.variables[name] = literal  # sent with the request
        else:
            default = value  # left to the variable's default
        self.definitions.append(
            graphql.VariableDefinitionNode(
                variable=graphql.VariableNode(name=name_node(name)),
                type=graphql.parse_type(str(type_)),
                default_value=default,
                directives=(),
            )
        )
        return graphql.VariableNode(name=name_node(name))

    def conditional(self, selection: Any) -> Any:
        directive = self.draw(st.sampled_from(["include", "skip"]))
        value: Any = graphql.BooleanValueNode(value=self.draw(st.booleans()))
        if self.draw(st.booleans()):
            value = self.variable(value, graphql.GraphQLNonNull(graphql.GraphQLBoolean))
        condition = graphql.DirectiveNode(
            name=name_node(directive),
            arguments=(graphql.ArgumentNode(name=name_node("if"), value=value),),
        )
        return rebuild(selection, directives=(*(selection.directives or ()), condition))

    def fragment(self, selections: list[Any], parent: Any) -> list[Any]:
        selection_set = graphql.SelectionSetNode(selections=tuple(selections))
        kind = self.draw(st.sampled_from(["inline", "typed inline", "named", "named twice"]))
        if kind == "inline":
            return [
                graphql.InlineFragmentNode(
                    type_condition=None, directives=(), selection_set=selection_set
                )
            ]
        condition = graphql.NamedTypeNode(name=name_node(parent.name))
        if kind == "typed inline":
            return [
                graphql.InlineFragmentNode(
                    type_condition=condition, directives=(), selection_set=selection_set
                )
            ]
        name = f"F{len(self.fragments)}"
        self.fragments.append(
            graphql.FragmentDefinitionNode(
                name=name_node(name),
                type_condition=condition,
                directives=(),
                selection_set=selection_set,
            )
        )
        spread = graphql.FragmentSpreadNode(name=name_node(name), directives=())
        return [spread, spread] if kind == "named twice" else [spread]
