"""The GraphQL request pipeline: the stages every request passes, once each, in this order,
whichever executor answers it, and the one function or class that owns each.

====================  ==========================================================================
stage                 owner
====================  ==========================================================================
HTTP decode           ``endpoint.GraphQLEndpoint`` (Strawberry's ``AsyncBaseHTTPView``: media
                      types, GET/POST rules, JSON with ``decode_json``, batching)
context               ``context.make_context`` (the viewer looked up once), via
                      ``GraphQLEndpoint.get_context``
persisted documents   ``persisted.PersistedDocuments.resolve`` (APQ, trusted documents), via
                      ``GraphQLEndpoint.execute_single``
parse (cached)        ``documents.DocumentStore.prepare``, via ``limits.request_limits``
validate (cached)     ``documents.PreparedDocument.errors``, via ``limits.request_limits``
limits, cost,         ``limits.request_limits`` (``shape_errors``, ``cost.operation_cost``)
introspection policy
execute               ``planned.planned_execution`` when the document has a plan (decided when
                      it is compiled), else graphql-core through Strawberry
mask errors           ``masking.MaskUnexpectedErrors``
metrics               ``gql_api.metrics.MetricsExtension``
logging               ``gql_api.logs.RequestLogExtension`` (the access line:
                      ``gql_api.app.RequestIdMiddleware``)
encode                ``GraphQLEndpoint.process_result`` / ``run`` / ``encode_json``
====================  ==========================================================================

:func:`stages` is that list as it runs: each stage is a Strawberry
``SchemaExtension`` class (its owner's), and :func:`pipeline_extension` runs them as ONE extension,
entering each hook in this order and leaving in the reverse one, as Strawberry's own runner
would (masking, first, sees the final errors). One extension instead of five saves Strawberry's
per-request inspection of every hook of every extension (about a fifth of a ``me`` request's
CPU in the view).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

from strawberry.extensions import SchemaExtension

from gql_api import metrics
from gql_api.config import Settings
from gql_api.graphql.limits import request_limits
from gql_api.graphql.masking import MaskUnexpectedErrors
from gql_api.graphql.planned import planned_execution
from gql_api.graphql.schema import Schema, build_schema
from gql_api.logs import RequestLogExtension

HOOKS = ("on_operation", "on_parse", "on_validate", "on_execute")


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
    return ordered


def pipeline_extension(ordered: list[type[SchemaExtension]]) -> type[SchemaExtension]:
    """One extension that runs the stages' hooks in order (see the module docstring)."""
    hooks: dict[str, list[tuple[int, Any, bool]]] = {name: [] for name in HOOKS}
    for index, stage in enumerate(ordered):
        for name in HOOKS:
            hook = getattr(stage, name)
            if hook is getattr(SchemaExtension, name):
                continue
            is_async = inspect.isasyncgenfunction(hook)
            if not (is_async or inspect.isgeneratorfunction(hook)):
                raise TypeError(f"{stage.__name__}.{name} must be a generator")
            hooks[name].append((index, hook, is_async))

    class GraphQLPipeline(SchemaExtension):
        def _stages(self) -> list[SchemaExtension]:
            made: list[SchemaExtension] | None = getattr(self, "_made", None)
            if made is None:
                made = self._made = [stage() for stage in ordered]
                for stage in made:
                    stage.execution_context = self.execution_context
            return made

        def on_operation(self) -> Iterator[None]:
            yield from _around(self._stages(), hooks["on_operation"])

        def on_parse(self) -> Iterator[None]:
            yield from _around(self._stages(), hooks["on_parse"])

        def on_validate(self) -> Iterator[None]:
            yield from _around(self._stages(), hooks["on_validate"])

        async def on_execute(self) -> AsyncIterator[None]:
            made = self._stages()
            entered = []
            for index, hook, is_async in hooks["on_execute"]:
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

    return GraphQLPipeline


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


def build_pipeline_schema(settings: Settings) -> Schema:
    return build_schema(extensions=[pipeline_extension(stages(settings))])  # type: ignore[return-value]
