"""Observability: logs (``logs``), metrics (``metrics``, ``pool_metrics``, ``metrics_exposure``)
and tracing (``tracing``: OpenTelemetry, off by default). The GraphQL operation's span is a
pipeline stage, so it lives with the pipeline (``gql_api.graphql.engine.operation_span``)."""
