"""Documents by text: parsed, measured, size-checked and validated once, for both executors.

``prepare`` is the one way a query text becomes a document, whoever executes it (the
pipeline through ``gql_api.graphql.engine.limits``, the planned executor through
``planned.Planner``):

1. parse, with the length and token limits (and graphql-core's own nesting limit);
2. summarise (``gql_api.graphql.engine.analysis``): linear in the text, fragments memoised;
3. refuse what would make validation expensive, with a code, before graphql-core validates:
   more fragment definitions than ``max_fragments`` (TOO_MANY_FRAGMENTS), more field selections
   than ``max_fields`` with every spread written out (TOO_MANY_FIELDS), one response field
   selected more than ``max_field_repeats`` times at one place (TOO_MANY_REPEATED_FIELDS), more
   than ``max_fragment_spreads`` fragments spread into one place (TOO_MANY_FRAGMENTS): the
   "overlapping fields" rule compares those pairwise;
4. validate (with or without "Did you mean" hints, each computed on first use).

Entries are kept in a cache bounded by bytes (``gql_api.graphql.engine.caches``). A parsed document
keeps its whole text alive (``loc.source``) and about a kilobyte per token in nodes, tokens and
validation results, so an entry is priced at its text plus ``BYTES_PER_TOKEN`` per token, and a
text over ``MAX_CACHED_TEXT`` (a large comment, long strings: not a hot query) is never kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema, parse, validate
from graphql.validation import NoFragmentCyclesRule, specified_rules
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from gql_api.config import GraphQLSettings
from gql_api.graphql.engine.analysis import Crowding, DocumentSummary, crowding, summarise
from gql_api.graphql.engine.caches import BytesBoundedLRU

# graphql-core's rules plus the two Strawberry adds in its own pipeline.
RULES = (*specified_rules, MaybeNullValidationRule, OneOfInputValidationRule)

CACHE_BYTES = 32 * 1024 * 1024
MAX_CACHED_TEXT = 64 * 1024
BYTES_PER_TOKEN = 1024  # measured: 500-850 bytes kept per token, validation included


def limit_error(message: str, code: str, **extensions: Any) -> GraphQLError:
    """A refusal with its stable code and the figures behind it (size gates here, the shape
    and cost limits in gql_api.graphql.engine.limits)."""
    return GraphQLError(message, extensions={"code": code, **extensions})


@dataclass
class PreparedDocument:
    document: DocumentNode
    summary: DocumentSummary
    # Worked out on first use (see the module docstring); plans and fixed costs per operation
    # name (names of the document only, so bounded with it).
    crowding: Crowding | None = None
    validation: dict[bool, list[GraphQLError]] = field(default_factory=dict)
    plans: dict[str | None, Any] = field(default_factory=dict)
    # The cost of an operation without variables (gql_api.graphql.engine.limits), by operation name.
    fixed_costs: dict[str | None, int] = field(default_factory=dict)
    # The cost with variables, by operation name and the variables' JSON (None: they do not
    # coerce); a few small sets of variables only (limits.VARIABLE_COSTS), so bounded with it.
    variable_costs: dict[tuple[str | None, bytes], int | None] = field(default_factory=dict)

    def size_errors(self, schema: GraphQLSchema, limits: GraphQLSettings) -> list[GraphQLError]:
        summary = self.summary
        if summary.fragments > limits.max_fragments:
            return [
                limit_error(
                    f"{summary.fragments} fragments exceed the limit of {limits.max_fragments}",
                    "TOO_MANY_FRAGMENTS",
                    fragments=summary.fragments,
                    maxFragments=limits.max_fragments,
                )
            ]
        if summary.fields > limits.max_fields:
            return [
                limit_error(
                    f"{summary.fields} field selections (fragments expanded) exceed the limit"
                    f" of {limits.max_fields}",
                    "TOO_MANY_FIELDS",
                    fields=summary.fields,
                    maxFields=limits.max_fields,
                )
            ]
        if summary.cyclic:
            # Nothing can be measured with fragments expanded: graphql-core's own rule says
            # where the cycle is, before its other rules run.
            return validate(schema, self.document, [NoFragmentCyclesRule])
        if self.crowding is None:
            self.crowding = crowding(self.document)  # linear: max_fields bounds it
        if self.crowding.field_repeats > limits.max_field_repeats:
            return [
                limit_error(
                    f"A field is selected {self.crowding.field_repeats} times at one place,"
                    f" over the limit of {limits.max_field_repeats}",
                    "TOO_MANY_REPEATED_FIELDS",
                    repeats=self.crowding.field_repeats,
                    maxRepeats=limits.max_field_repeats,
                )
            ]
        if self.crowding.fragment_spreads > limits.max_fragment_spreads:
            return [
                limit_error(
                    f"{self.crowding.fragment_spreads} fragments are spread into one place,"
                    f" over the limit of {limits.max_fragment_spreads}",
                    "TOO_MANY_FRAGMENTS",
                    spreads=self.crowding.fragment_spreads,
                    maxSpreads=limits.max_fragment_spreads,
                )
            ]
        return []

    def errors(
        self, schema: GraphQLSchema, limits: GraphQLSettings, *, hide_suggestions: bool
    ) -> list[GraphQLError]:
        """Size errors, else validation errors; none for a valid document."""
        refused = self.size_errors(schema, limits)
        if refused:
            return refused
        errors = self.validation.get(hide_suggestions)
        if errors is None:
            if self.validation.get(not hide_suggestions) == []:
                return []  # valid is valid, hints or not
            errors = self.validation[hide_suggestions] = validate(
                schema, self.document, RULES, hide_suggestions=hide_suggestions
            )
        return errors


class DocumentStore:
    """Prepared documents by text (see the module docstring). One per schema."""

    def __init__(self, *, max_bytes: int = CACHE_BYTES) -> None:
        self._cache: BytesBoundedLRU[tuple[str, int], PreparedDocument] = BytesBoundedLRU(
            max_bytes=max_bytes, max_entry_bytes=max_bytes // 8
        )

    def prepare(self, text: str, limits: GraphQLSettings) -> PreparedDocument:
        """The prepared document; raises the GraphQLError of a text that does not parse, or is
        longer than ``max_query_length`` (lexing a megabyte of comment costs a fifth of a
        second, whatever the token limit)."""
        key = (text, limits.max_tokens)
        prepared = self._cache.get(key)
        if prepared is not None:
            return prepared
        if len(text) > limits.max_query_length:
            raise limit_error(
                f"The query is {len(text)} characters long, over the limit of"
                f" {limits.max_query_length}",
                "QUERY_TOO_LARGE",
                length=len(text),
                maxLength=limits.max_query_length,
            )
        document = parse(text, max_tokens=limits.max_tokens)
        tokens = _unlink_tokens(document)
        prepared = PreparedDocument(document=document, summary=summarise(document))
        if len(text) <= MAX_CACHED_TEXT:
            self._cache.put(key, prepared, len(text) + BYTES_PER_TOKEN * tokens)
        return prepared


def _unlink_tokens(document: DocumentNode) -> int:
    """The document's token count. The parser links its tokens both ways (``prev``, ``next``),
    so a dropped document was garbage only the cyclic collector could free, late, a megabyte at
    a time; nothing reads the links after parsing (error locations come from each node's
    offsets), so they are cut: a document is freed as soon as it is dropped, and a kept one
    holds only the tokens its nodes start and end at."""
    count = 0
    token = document.loc.start_token if document.loc else None
    while token is not None:
        count += 1
        following = token.next
        token.prev = token.next = None
        token = following
    return count
