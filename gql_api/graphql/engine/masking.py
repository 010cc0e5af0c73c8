"""Error masking: expected errors keep their message and code; anything else becomes
INTERNAL_SERVER_ERROR with the request id, and the detail goes to the log."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

# The classification of database failures lives below GraphQL (the metrics use it too).
from gql_api.db.failures import classify, database_failure

log = logging.getLogger("gql_api.errors")


def database_error(exc: Exception) -> GraphQLError:
    """A coded GraphQL error for a database failure outside execution (before or after it);
    anything else is not ours to hide and is raised again."""
    error = database_failure(exc)
    if error is None:
        raise exc
    return GraphQLError(error.message, original_error=error, extensions=error.extensions)


_COERCION_MARKERS = ("invalid value", "was not provided", "must not be null")


def is_coercion_error(error: GraphQLError) -> bool:
    """A variable value that does not fit its declared type (found before execution starts)."""
    return error.message.startswith("Variable '$") and any(
        marker in error.message for marker in _COERCION_MARKERS
    )


def with_code(error: GraphQLError) -> GraphQLError:
    """Parse and validation errors get the conventional codes clients switch on."""
    if error.extensions and "code" in error.extensions:
        return error
    if is_coercion_error(error):
        code = "BAD_USER_INPUT"  # the client sent a variable value of the wrong type
    elif error.message.startswith("Syntax Error"):
        code = "TOO_MANY_TOKENS" if "tokens" in error.message else "GRAPHQL_PARSE_FAILED"
    else:
        code = "GRAPHQL_VALIDATION_FAILED"
    error.extensions = {**(error.extensions or {}), "code": code}
    return error


class MaskUnexpectedErrors(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        request_id = getattr(self.execution_context.context, "request_id", None)
        result.errors = [self._mask(error, request_id) for error in result.errors]
        for error in result.errors:  # the first stage, so the last to leave: logged by now
            drop_tracebacks(error)

    def _mask(self, error: GraphQLError, request_id: str | None) -> GraphQLError:
        original = error.original_error
        if original is None or (isinstance(original, GraphQLError) and error.path is None):
            # Syntax, validation and variable coercion errors: the message is for the client.
            return with_code(error)
        expected = classify(original)
        if expected is not None:
            if expected is original:
                return error
            return GraphQLError(
                expected.message,
                nodes=error.nodes,
                path=error.path,
                original_error=expected,
                extensions=expected.extensions,
            )
        log.error("unexpected error (request %s) at %s", request_id, error.path, exc_info=original)
        return GraphQLError(
            "Internal server error",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        )


def drop_tracebacks(error: BaseException) -> None:
    """Takes the tracebacks off an error and the errors it carries (the original, its cause
    and context). A traceback holds the frames it passed through, and these hold the error (a
    stage keeps it in its result): a cycle that only the cyclic collector frees, late, with
    the request's body and document in it. Without them an answered request is freed as soon
    as it is dropped, which lets the collector run seldom (gql_api.web.lifespan)."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        linked = (getattr(current, "original_error", None), current.__cause__, current.__context__)
        pending += [e for e in linked if isinstance(e, BaseException)]
        pending += [e for e in getattr(current, "exceptions", ()) if isinstance(e, BaseException)]
