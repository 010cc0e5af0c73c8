"""The GraphQL request pipeline: the stages every request passes, once each, in this order,
whichever executor answers it, and the one function or class that owns each.

====================  ==========================================================================
stage                 owner
====================  ==========================================================================
HTTP decode           ``endpoint.GraphQLEndpoint`` (GET/POST rules, media types, JSON with
                      orjson, batching, the GraphiQL page)
context               ``context.make_context`` (the viewer looked up once), via
                      ``GraphQLEndpoint.context``
persisted documents   ``persisted.PersistedDocuments.resolve`` (APQ, trusted documents), via
                      ``GraphQLEndpoint.execute``
parse (cached)        ``documents.DocumentStore.prepare``, via ``limits.request_limits``
validate (cached)     ``documents.PreparedDocument.errors``, via ``limits.request_limits``
limits, cost,         ``limits.request_limits`` (``shape_errors``, ``cost.operation_cost``)
introspection policy
execute               ``planned.planned_execution`` when the document has a plan (decided when
                      it is compiled), else graphql-core's ``execute``, both from
                      :meth:`Pipeline.execute` (``Schema.execute`` hands every query and
                      mutation to it)
mask errors           ``masking.MaskUnexpectedErrors``
metrics               ``gql_api.observability.metrics.MetricsExtension``
logging               ``gql_api.observability.logs.RequestLogExtension`` (the access line:
                      ``gql_api.web.request_id.RequestIdMiddleware``)
encode                ``GraphQLEndpoint.encode`` / ``respond`` (status and media type)
====================  ==========================================================================

:func:`stages` is that list as it runs: each stage is a Strawberry ``SchemaExtension`` class
(its owner's, with generator hooks). :class:`Pipeline` enters each hook in this order and leaves
in the reverse one, as Strawberry's own runner would (masking, first, sees the final errors).
It drives the stages itself rather than through Strawberry's extension runner, which costs
about a tenth of a ``me`` request's CPU (measured side by side: 390 -> 347 µs in-process);
where Strawberry drives execution (subscriptions), the same stages run as one extension.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, cast

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError, execute, parse, validate
from strawberry.exceptions import MissingQueryError
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.utils.await_maybe import await_maybe

from gql_api.config import Settings
from gql_api.graphql.engine.limits import request_limits
from gql_api.graphql.engine.masking import MaskUnexpectedErrors
from gql_api.graphql.engine.planned import planned_execution
from gql_api.graphql.engine.strawberry_seams import core_schema, pin_operation_name
from gql_api.graphql.schema.root import Schema, build_schema
from gql_api.observability import metrics
from gql_api.observability.logs import RequestLogExtension

HOOKS = ("on_operation", "on_parse", "on_validate", "on_execute")
# graphql-core 3.3 calls its execution context class ``executor_class``; 3.2 called it
# ``execution_context_class`` (Strawberry supports both).
_EXECUTOR_CLASS = next(
    name
    for name in ("executor_class", "execution_context_class")
    if name in inspect.signature(execute).parameters
)


def stages(settings: Settings) -> list[type[SchemaExtension]]:
    """The stages' extension classes, in pipeline order."""
    ordered: list[type[SchemaExtension]] = [
        MaskUnexpectedErrors,
        request_limits(settings),
        metrics.MetricsExtension,
        RequestLogExtension,
    ]
    if settings.graphql.fast_execution:
        ordered.append(planned_execution(settings))  # the execute stage's faster branch
    if settings.tracing.enabled:  # last: its on_execute sees whether the plan answered
        from gql_api.graphql.engine.operation_span import operation_span_stage

        ordered.append(operation_span_stage(settings))
    return ordered


class Pipeline:
    """The stages' hooks, gathered once; :meth:`execute` drives them for one request.

    Queries and mutations come through :meth:`execute` (``Schema.execute`` hands them over):
    parse, operation type, validate and execute in Strawberry's order and with its results,
    without its per-request runner, which builds a context manager per hook and inspects every
    hook of every extension on each request (about a sixth of a ``me`` request's CPU). The same
    stages also run as one Strawberry extension (:attr:`extension`) wherever Strawberry drives
    execution itself (subscriptions).
    """

    def __init__(self, ordered: list[type[SchemaExtension]]) -> None:
        self.ordered = ordered
        self.hooks: dict[str, list[tuple[int, Any, bool]]] = {name: [] for name in HOOKS}
        for index, stage in enumerate(ordered):
            for name in HOOKS:
                hook = getattr(stage, name)
                if hook is getattr(SchemaExtension, name):
                    continue
                is_async = inspect.isasyncgenfunction(hook)
                if not (is_async or inspect.isgeneratorfunction(hook)):
                    raise TypeError(f"{stage.__name__}.{name} must be a generator")
                if is_async and name != "on_execute":
                    raise TypeError(f"{stage.__name__}.{name} must be a plain generator")
                self.hooks[name].append((index, hook, is_async))
        self.extension = _as_extension(self)

    def made(self, execution_context: ExecutionContext) -> list[SchemaExtension]:
        made = [stage() for stage in self.ordered]
        for stage in made:
            stage.execution_context = execution_context
        return made

    async def execute(self, schema: Any, ec: ExecutionContext) -> ExecutionResult:
        made = self.made(ec)
        with _around(made, self.hooks["on_operation"]):
            try:
                result = await self._prepare(schema, ec, made) or await self._execute(
                    schema, ec, made
                )
            except (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError):
                raise  # the HTTP view answers these with a 400
            except Exception as exc:
                # A document refused while parsing keeps its message and code; anything else
                # is unexpected, and the masking stage (leaving after this) hides and logs it.
                result = PreExecutionError(data=None, errors=[_as_graphql_error(exc)])
            # Settled before the stages leave: masking, metrics and logging see the result.
            return _finish(ec, result)

    async def _execute(self, schema: Any, ec: ExecutionContext, made: list[SchemaExtension]) -> Any:
        async with _around_async(made, self.hooks["on_execute"]):
            if not ec.result:  # else the planned executor has answered
                assert ec.graphql_document is not None  # parsed by _prepare
                ec.result = await await_maybe(
                    execute(
                        core_schema(schema),
                        ec.graphql_document,
                        root_value=ec.root_value,
                        variable_values=ec.variables,
                        operation_name=ec.operation_name,
                        context_value=ec.context,
                        is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]
                        **{_EXECUTOR_CLASS: schema.execution_context_class},
                    )
                )
        return ec.result

    async def _prepare(
        self, schema: Any, ec: ExecutionContext, made: list[SchemaExtension]
    ) -> PreExecutionError | None:
        """Parse, check the operation type, validate: errors that stop before execution."""
        if not ec.query and ec.graphql_document is None:
            raise MissingQueryError
        with _around(made, self.hooks["on_parse"]):
            if ec.graphql_document is None:  # no stage parsed it (the limits stage does)
                try:
                    ec.graphql_document = parse(ec.query or "")
                except GraphQLError as error:
                    ec.pre_execution_errors = [error]
                    return PreExecutionError(data=None, errors=[error])
        pin_operation_name(ec)
        try:
            operation_type = ec.operation_type
        except RuntimeError as error:
            raise CannotGetOperationTypeError(ec.operation_name) from error
        if operation_type not in ec.allowed_operations:
            raise InvalidOperationTypeError(operation_type)
        with _around(made, self.hooks["on_validate"]):
            if ec.pre_execution_errors is None:  # no stage validated it (the limits stage does)
                ec.pre_execution_errors = validate(core_schema(schema), ec.graphql_document)
            if ec.pre_execution_errors:
                return PreExecutionError(data=None, errors=ec.pre_execution_errors)
        return None


def _finish(ec: ExecutionContext, result: Any) -> ExecutionResult:
    """What Strawberry's ``_handle_execution_result`` makes of a result (its errors are not
    logged here: the masking stage logs the unexpected ones)."""
    if result.errors:
        ec.pre_execution_errors = result.errors
    if isinstance(result, GraphQLExecutionResult):
        result = ExecutionResult(data=result.data, errors=result.errors)
    result.extensions = dict(ec.extensions_results)
    ec.result = result
    return cast(ExecutionResult, result)


def _as_graphql_error(exc: Exception) -> GraphQLError:
    if isinstance(exc, GraphQLError):
        return exc
    return GraphQLError(str(exc), original_error=exc)


def _as_extension(pipeline: Pipeline) -> type[SchemaExtension]:
    """The stages as ONE Strawberry extension, for execution Strawberry drives itself."""
    hooks = pipeline.hooks

    class GraphQLPipeline(SchemaExtension):
        def _stages(self) -> list[SchemaExtension]:
            made: list[SchemaExtension] | None = getattr(self, "_made", None)
            if made is None:
                made = self._made = pipeline.made(self.execution_context)
            return made

        def on_operation(self) -> Iterator[None]:
            with _around(self._stages(), hooks["on_operation"]):
                yield

        def on_parse(self) -> Iterator[None]:
            with _around(self._stages(), hooks["on_parse"]):
                yield

        def on_validate(self) -> Iterator[None]:
            with _around(self._stages(), hooks["on_validate"]):
                yield

        async def on_execute(self) -> AsyncIterator[None]:
            async with _around_async(self._stages(), hooks["on_execute"]):
                yield

    return GraphQLPipeline


@contextmanager
def _around(made: list[SchemaExtension], hooks: list[tuple[int, Any, bool]]) -> Iterator[None]:
    """Enters the stages' generator hooks in order, leaves them in reverse, passing an error
    from the block to each as ``contextlib.ExitStack`` would."""
    entered = []
    for index, hook, _ in hooks:
        generator = hook(made[index])
        next(generator)
        entered.append(generator)
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
    for generator in reversed(entered):
        try:
            if error is None:
                next(generator)
            else:
                generator.throw(error)
        except StopIteration:
            error = None  # finished, or the stage handled the error
        except BaseException as exc:
            error = exc
    if error is not None:
        raise error


@asynccontextmanager
async def _around_async(
    made: list[SchemaExtension], hooks: list[tuple[int, Any, bool]]
) -> AsyncIterator[None]:
    """:func:`_around` for the execute hooks, which may be async generators."""
    entered = []
    for index, hook, is_async in hooks:
        generator = hook(made[index])
        if is_async:
            await generator.__anext__()
        else:
            next(generator)
        entered.append((generator, is_async))
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
    for generator, is_async in reversed(entered):
        try:
            if is_async and error is None:
                await generator.__anext__()
            elif is_async:
                await generator.athrow(error)
            elif error is None:
                next(generator)
            else:
                generator.throw(error)
        except (StopIteration, StopAsyncIteration):
            error = None  # finished, or the stage handled the error
        except BaseException as exc:
            error = exc
    if error is not None:
        raise error


def build_pipeline_schema(settings: Settings) -> Schema:
    pipeline = Pipeline(stages(settings))
    return build_schema(extensions=[pipeline.extension], pipeline=pipeline)  # type: ignore[return-value]
