"""Observability: tracing (``tracing``: OpenTelemetry, off by default; ``operation_span``: the
GraphQL operation's span as a pipeline stage). Logs and metrics live in ``gql_api.logs`` and
``gql_api.metrics`` for now."""
