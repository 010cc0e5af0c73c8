"""Running a plan (``gql_api.graphql.plans`` compiles them): the planned executor's walk.

Errors follow graphql-core: a resolver that raises, or a null in a non-null field, gives the
error located at its path (and at every field node merged under its response key); the field
is null, or the nearest nullable parent is (``data`` when there is none), and work under a
parent made null is dropped as graphql-core cancels it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any

from graphql import (
    ExecutionResult,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    VariableValues,
)
from graphql import located_error as locate

from gql_api.graphql.plans import FieldPlan, Plan
from gql_api.graphql.readers import ContextOnlyInfo, NullInNonNull
from gql_api.graphql.strawberry_seams import strawberry_info


class PlanPosition:
    """Where an object or list sits in the response: its slot (``container[key]``), whether
    that slot may be null, and the position of what holds it (None for ``data``)."""

    __slots__ = ("container", "dead", "key", "nullable", "parent")

    def __init__(
        self, parent: PlanPosition | None, container: Any, key: Any, nullable: bool
    ) -> None:
        self.parent, self.container, self.key, self.nullable = parent, container, key, nullable
        self.dead = False  # made null by an error below it

    def path(self) -> list[Any]:
        keys: list[Any] = []
        position: PlanPosition | None = self
        while position is not None and position.parent is not None:
            keys.append(position.key)
            position = position.parent
        return keys[::-1]

    def attached(self) -> bool:
        position: PlanPosition | None = self
        while position is not None:
            if position.dead:
                return False
            position = position.parent
        return True


# A pending value: its slot, the position holding the slot, its field, its type, the awaitable.
_Pending = tuple[Any, Any, PlanPosition, FieldPlan, Any, Any]


class Executor:
    def __init__(
        self, plan: Plan, fields: list[FieldPlan], context: Any, variables: VariableValues
    ) -> None:
        self.plan = plan
        self.fields = fields  # the plan's root fields for this request's @skip/@include
        self.context = context
        self.info = ContextOnlyInfo(context)
        self.variables = variables
        self.errors: list[GraphQLError] = []
        self.root = PlanPosition(None, None, None, nullable=False)
        # Relation fields met on this level: per field, each value's slot and parent row.
        self.relations: dict[int, tuple[FieldPlan, list[tuple[Any, Any, PlanPosition, Any]]]] = {}

    async def run(self) -> ExecutionResult:
        data: dict[str, Any] = {}
        pending: list[_Pending] = []
        self._resolve_fields(self.fields, None, data, self.root, pending)
        while (pending or self.relations) and not self.root.dead:
            batch, pending = pending, []
            relations, self.relations = list(self.relations.values()), {}
            if self.errors:  # work under a parent made null is dropped, as graphql-core does
                batch = [item for item in batch if item[2].attached() or _close(item[5])]
            # All resolvers and relations of this level run together, so their DataLoader calls
            # batch and their statements overlap.
            awaitables = [item[5] for item in batch]
            for plan, entries in relations:
                assert plan.relation is not None
                awaitables.append(plan.relation.load(self.context, [e[3] for e in entries]))
            settled = functools.partial(self._settled, batch, relations, pending)
            await _settle(awaitables, settled, self.root)
        for item in pending:
            _close(item[5])
        return ExecutionResult(None if self.root.dead else data, self.errors or None)

    def _settled(
        self,
        batch: list[_Pending],
        relations: list[tuple[FieldPlan, list[tuple[Any, Any, PlanPosition, Any]]]],
        pending: list[_Pending],
        index: int,
        value: Any,
    ) -> None:
        """Completes awaitable ``index`` of a level: a resolver's value (``batch``) or a
        relation loaded for all its parents (``relations``, after the batch)."""
        if index < len(batch):
            container, key, holder, plan, graphql_type, _ = batch[index]
            self._complete(container, key, holder, plan, graphql_type, value, pending)
            return
        plan, entries = relations[index - len(batch)]
        for (container, key, holder, _), each in zip(
            entries, _per_parent(value, entries), strict=True
        ):
            self._complete(container, key, holder, plan, plan.graphql_type, each, pending)

    def _resolve_fields(
        self,
        plans: list[FieldPlan],
        source: Any,
        out: dict[str, Any],
        holder: PlanPosition,
        pending: list[_Pending],
    ) -> None:
        for plan in plans:
            try:
                if plan.read is not None:
                    out[plan.key] = plan.read(source)
                    continue
                if plan.typename is not None:
                    out[plan.key] = plan.typename
                    continue
                out[plan.key] = None  # keeps the selection's order
                if plan.relation is not None:
                    group = self.relations.get(id(plan))
                    if group is None:
                        group = self.relations[id(plan)] = (plan, [])
                    group[1].append((out, plan.key, holder, source))
                    continue
                value = self._value(plan, source, holder)
            except Exception as exc:
                self._fail(exc, out, plan.key, holder, plan, plan.graphql_type)
                continue
            self._complete(out, plan.key, holder, plan, plan.graphql_type, value, pending)

    def _value(self, plan: FieldPlan, source: Any, holder: PlanPosition) -> Any:
        if plan.compute is not None:
            return plan.compute(source, self.context)
        if plan.to_source is not None:
            source = plan.to_source(source)  # a row, for a field its description leaves out
        if plan.resolver is None:
            return getattr(source, plan.python_name)
        kwargs = plan.arguments.values(self.variables) if plan.arguments is not None else {}
        if plan.info_name is not None:
            kwargs[plan.info_name] = (
                self.info
                if plan.info_site is None
                else strawberry_info(
                    plan.info_site, [*holder.path(), plan.key], self.variables, self.context
                )
            )
        if plan.parent_name is not None:
            kwargs[plan.parent_name] = source
        return plan.resolver(source, **kwargs) if plan.pass_source else plan.resolver(**kwargs)

    def _complete(
        self,
        container: Any,
        key: Any,
        holder: PlanPosition,
        plan: FieldPlan,
        graphql_type: Any,
        value: Any,
        pending: list[_Pending],
    ) -> None:
        """Writes ``value`` at ``container[key]`` as ``graphql_type`` says, or its error."""
        try:
            if isinstance(value, BaseException):
                raise value
            if inspect.isawaitable(value):
                pending.append((container, key, holder, plan, graphql_type, value))
                return
            nullable = not isinstance(graphql_type, GraphQLNonNull)
            if not nullable:
                if value is None:
                    raise NullInNonNull(f"Cannot return null for non-nullable field {plan.owner}.")
                graphql_type = graphql_type.of_type
            if value is None:
                container[key] = None
            elif isinstance(graphql_type, GraphQLList):
                items: list[Any] = [None] * len(value)
                container[key] = items
                position = PlanPosition(holder, container, key, nullable)
                item_type = graphql_type.of_type
                for index, item in enumerate(value):
                    self._complete(items, index, position, plan, item_type, item, pending)
            elif isinstance(graphql_type, GraphQLObjectType):
                child: dict[str, Any] = {}
                container[key] = child
                assert plan.children is not None
                position = PlanPosition(holder, container, key, nullable)
                self._resolve_fields(plan.children, value, child, position, pending)
            else:
                container[key] = _serialize(graphql_type, value)
        except Exception as exc:
            self._fail(exc, container, key, holder, plan, graphql_type)

    def _fail(
        self,
        exc: Exception,
        container: Any,
        key: Any,
        holder: PlanPosition,
        plan: FieldPlan,
        graphql_type: Any,
    ) -> None:
        if not holder.attached():
            return  # under a parent already made null: graphql-core would have cancelled it
        self.errors.append(locate(exc, plan.nodes, [*holder.path(), key]))
        if not isinstance(graphql_type, GraphQLNonNull):
            container[key] = None
            return
        position = holder
        while not position.nullable and position.parent is not None:
            position.dead = True
            position = position.parent
        position.dead = True
        if position.parent is not None:
            position.container[position.key] = None


def _serialize(graphql_type: Any, value: Any) -> Any:
    serialized = graphql_type.serialize(value)
    if serialized is None:
        raise TypeError(
            f"Expected `{graphql_type.name}.serialize({value!r})` to return non-nullish value,"
            f" returned: None"
        )
    return serialized


async def _settle(
    awaitables: list[Any], settled: Callable[[int, Any], None], root: PlanPosition
) -> None:
    """Hands each awaitable's value (or the exception it raised) to ``settled`` as soon as it
    is known, in the order they finish, as graphql-core completes fields. Once an error has
    made ``data`` null the rest is cancelled: graphql-core answers at that moment too, so the
    same error is reported, and the connections the rest hold are freed at once."""
    if len(awaitables) == 1:
        try:
            value = await awaitables[0]
        except Exception as exc:
            value = exc
        settled(0, value)
        return
    tasks = {asyncio.ensure_future(awaitable): index for index, awaitable in enumerate(awaitables)}
    waiting = set(tasks)
    try:
        while waiting and not root.dead:
            done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=tasks.__getitem__):  # one tick: selection order
                if task.cancelled():
                    continue
                exception = task.exception()  # retrieved even when no longer wanted
                if not root.dead:
                    settled(tasks[task], task.result() if exception is None else exception)
    finally:
        for task in waiting:
            task.cancel()
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)


def _per_parent(loaded: Any, entries: list[Any]) -> list[Any]:
    # A relation's loader that failed fails the field of every parent.
    return [loaded] * len(entries) if isinstance(loaded, BaseException) else loaded


def _close(awaitable: Any) -> bool:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()  # a coroutine never awaited: no "never awaited" warning
    return False
