"""Running a plan (``gql_api.graphql.engine.plans`` compiles them): the planned executor's walk.

Errors follow graphql-core: a resolver that raises, or a null in a non-null field, gives the
error located at its path (and at every field node merged under its response key); the field
is null, or the nearest nullable parent is (``data`` when there is none), and work under a
parent made null is dropped as graphql-core cancels it.
"""

from __future__ import annotations

import functools
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

from gql_api.graphql.engine.abstract_types import check_type_of, runtime_type
from gql_api.graphql.engine.plans import FieldPlan, Plan
from gql_api.graphql.engine.readers import ContextOnlyInfo, NullInNonNull, serialize_scalar
from gql_api.graphql.engine.row_builders import build_list, build_one
from gql_api.graphql.engine.rows import per_parent
from gql_api.graphql.engine.scalar_shortcuts import WALK
from gql_api.graphql.engine.settling import PlanPosition, close, is_pending, listed, settle
from gql_api.graphql.engine.strawberry_seams import resolve_info, strawberry_info

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
        # While a level settles: the position holding the field being completed, and the
        # non-null errors that leave it (see _fail).
        self.task_holder: PlanPosition | None = None
        self.deferred: list[tuple[Any, ...]] | None = None

    async def run(self) -> ExecutionResult:
        data: dict[str, Any] = {}
        pending: list[_Pending] = []
        self._resolve_fields(self.fields, None, data, self.root, pending)
        self.deferred = []
        while (pending or self.relations) and not self.root.dead:
            batch, pending = pending, []
            relations, self.relations = list(self.relations.values()), {}
            if self.errors:  # work under a parent made null is dropped, as graphql-core does
                batch = [item for item in batch if item[2].attached() or close(item[5])]
            # A level's resolvers and relations run together: their loads batch and overlap.
            awaitables = [item[5] for item in batch]
            for plan, entries in relations:
                awaitables.append(plan.load(self.context, [e[3] for e in entries]))
            settled = functools.partial(self._settled, batch, relations, pending)
            await settle(awaitables, settled, self.root, self._flush)
        for item in pending:
            close(item[5])
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
            self.task_holder = holder
            self._complete(container, key, holder, plan, graphql_type, value, pending)
            self.task_holder = None
            return
        plan, entries = relations[index - len(batch)]
        if plan.load_json is not None and not isinstance(value, BaseException):
            for (container, key, _, _), text in zip(entries, value, strict=True):
                container[key] = text  # written by PostgreSQL as the row path would: spliced
            return
        for (container, key, holder, _), each in zip(
            entries, per_parent(value, entries), strict=True
        ):
            self.task_holder = holder  # graphql-core awaits each parent's value on its own
            self._complete(container, key, holder, plan, plan.graphql_type, each, pending)
        self.task_holder = None

    def _flush(self) -> None:
        """The non-null errors that left their field, after a level's values that arrived
        together, in arrival order (the first under a parent wins, as in graphql-core)."""
        deferred, self.deferred = self.deferred, None
        for arguments in deferred or ():
            self._fail(*arguments)
        self.deferred = []

    def _escapes(self, holder: PlanPosition) -> bool:
        """Whether a null in a non-null field under ``holder`` leaves the field completed."""
        position = holder
        while position is not self.task_holder:
            if position.nullable or position.parent is None:
                return False
            position = position.parent
        return True

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
                value = plan.fetch(source) if plan.fetch else self._value(plan, source, holder)
                if plan.leaf is not None and (written := plan.leaf(value)) is not WALK:
                    out[plan.key] = written  # a common scalar value (scalar_shortcuts)
                    continue
            except Exception as exc:
                self._fail(exc, out, plan.key, holder, plan, plan.graphql_type)
                continue
            self._complete(out, plan.key, holder, plan, plan.graphql_type, value, pending)

    def _value(self, plan: FieldPlan, source: Any, holder: PlanPosition) -> Any:
        kwargs = plan.arguments.values(self.variables) if plan.arguments is not None else {}
        if plan.resolve is not None:
            assert plan.info_site is not None
            path = [*holder.path(), plan.key]
            return plan.resolve(
                source, resolve_info(plan.info_site, path, self.variables, self.context), **kwargs
            )
        assert plan.resolver is not None  # else ``plan.fetch`` reads the attribute
        if plan.info_name is not None:
            kwargs[plan.info_name] = (
                self.info
                if plan.info_site is None
                else strawberry_info(
                    plan.info_site, [*holder.path(), plan.key], self.variables, self.context
                )
            )
        for name in plan.parent_names:
            kwargs[name] = source
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
            if is_pending(value):
                pending.append((container, key, holder, plan, graphql_type, value))
                return
            nullable = not isinstance(graphql_type, GraphQLNonNull)
            # _fail is given the declared type: an error met below still propagates.
            of_type = graphql_type
            if not nullable:
                if value is None:
                    raise NullInNonNull(f"Cannot return null for non-nullable field {plan.owner}.")
                of_type = graphql_type.of_type
            if value is None:
                container[key] = None
            elif isinstance(of_type, GraphQLList):
                value = listed(value, plan.owner)
                if is_pending(value):  # an async iterable's items: awaited with the level
                    return self._complete(
                        container, key, holder, plan, graphql_type, value, pending
                    )
                objects = build_list(plan, of_type, value)
                if objects is not None:
                    container[key] = objects
                    return
                items: list[Any] = [None] * len(value)
                container[key] = items
                position = PlanPosition(holder, container, key, nullable)
                item_type = of_type.of_type
                for index, item in enumerate(value):
                    self._complete(items, index, position, plan, item_type, item, pending)
            elif isinstance(of_type, GraphQLObjectType):
                self._complete_object(
                    container, key, holder, nullable, plan, of_type, value, pending
                )
            elif plan.by_type is not None:  # an interface or a union
                info = self._info(plan, holder, key)
                runtime = runtime_type(of_type, value, info, plan.nodes)
                check_type_of(runtime, value, info, plan.nodes)
                if plan.children_error is not None:
                    raise plan.children_error
                child: dict[str, Any] = {}
                container[key] = child
                position = PlanPosition(holder, container, key, nullable)
                self._resolve_fields(plan.by_type[runtime.name], value, child, position, pending)
            else:
                container[key] = serialize_scalar(of_type, value)
        except Exception as exc:
            self._fail(exc, container, key, holder, plan, graphql_type)

    def _complete_object(
        self,
        container: Any,
        key: Any,
        holder: PlanPosition,
        nullable: bool,
        plan: FieldPlan,
        graphql_type: GraphQLObjectType,
        value: Any,
        pending: list[_Pending],
    ) -> None:
        """An object's value at ``container[key]``: from the selection's row builder, then the
        fields it leaves, or field by field."""
        if plan.type_checked:
            check_type_of(graphql_type, value, self._info(plan, holder, key), plan.nodes)
        if plan.children_error is not None:
            raise plan.children_error
        if plan.build is not None:
            built = build_one(plan.build, value)
            if built is not None:
                container[key] = built
                if plan.rest:
                    position = PlanPosition(holder, container, key, nullable)
                    self._resolve_fields(plan.rest, value, built, position, pending)
                return
        # Field by field (an error is reported where it is)
        fields: dict[str, Any] = {}
        container[key] = fields
        assert plan.children is not None
        position = PlanPosition(holder, container, key, nullable)
        self._resolve_fields(plan.children, value, fields, position, pending)

    def _info(self, plan: FieldPlan, holder: PlanPosition, key: Any) -> Any:
        """The field's GraphQLResolveInfo (a list item gets its list's, as in graphql-core)."""
        assert plan.info_site is not None
        path = holder.path() if isinstance(key, int) else [*holder.path(), key]
        return resolve_info(plan.info_site, path, self.variables, self.context)

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
        if (
            self.deferred is not None
            and self.task_holder is not None
            and isinstance(graphql_type, GraphQLNonNull)
            and self._escapes(holder)
        ):
            # graphql-core completes a field's value inside the field's own task: errors of
            # nullable fields are recorded there and then, while a null that leaves the field
            # reaches its parent only when the parent collects its fields' results, after every
            # other value that arrived in the same tick was completed. So it waits to the end
            # of this level's arrivals (_flush).
            self.deferred.append((exc, container, key, holder, plan, graphql_type))
            return
        self.errors.append(locate(exc, plan.nodes, [*holder.path(), key]))
        if not isinstance(graphql_type, GraphQLNonNull):
            container[key] = None
            return
        holder.null_from_below()
