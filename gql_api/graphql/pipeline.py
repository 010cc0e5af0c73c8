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

:func:`stages` is that list as Strawberry runs it: schema extensions, whose hooks enter in this
order and leave in the reverse one (masking, first in ``build_schema``, sees the final errors).
"""

from __future__ import annotations

from gql_api import metrics
from gql_api.config import Settings
from gql_api.graphql.limits import request_limits
from gql_api.graphql.planned import planned_execution
from gql_api.graphql.schema import ExtensionFactory, Schema, build_schema
from gql_api.logs import RequestLogExtension


def stages(settings: Settings) -> list[ExtensionFactory]:
    """The schema extensions of the pipeline, in order (masking is added by build_schema)."""
    extensions: list[ExtensionFactory] = [
        request_limits(settings),
        metrics.MetricsExtension,
        RequestLogExtension,
    ]
    if settings.graphql.fast_execution:
        extensions.append(planned_execution(settings))  # the execute stage's faster branch
    return extensions


def build_pipeline_schema(settings: Settings) -> Schema:
    return build_schema(extensions=stages(settings))  # type: ignore[return-value]
