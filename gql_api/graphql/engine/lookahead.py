"""What a compiled document reads of the rows a root field's resolver returns, so that the
resolver selects those columns only.

A page of users read every public column, and most of reading a row is turning its values into
Python objects (a timestamp costs more than the rest of its row's bookkeeping): Q2 shows seven
of the thirteen, and selecting those took 11% off the server's CPU per Q2 in process, about 3%
over HTTP, and 5-8% off PostgreSQL's (bench/RESULTS.md, "A page reads the columns it shows").
Relations already select what their selections read
(``rows.Relation``); this does the same for the rows a root field returns, wherever they sit in
its value (a connection's ``edges { node }``).

The compiler works out, per root field, the columns its rows must hold
(:func:`returned_columns`): every column field of every selection of those rows, and the keys
their relations load by, when the objects between the field and its rows are registered row
holders (``rows.row_holder``: a connection, its edges). Whenever that is not known (a field of
the rows calls a resolver with the whole row, an object on the way may read them, the rows are
of several types) there is no hint and the resolver reads whole
rows, as it always does under the generic executor. The planned executor makes the hints of
the running document visible to the resolvers it calls (:func:`hinting`, a context variable:
per request, inherited by the tasks of its fields), and a resolver asks with
:func:`row_columns`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gql_api.graphql.engine.field_plans import FieldPlan

_HINTS: ContextVar[dict[str, frozenset[str]] | None] = ContextVar("row_columns", default=None)


def row_columns(field: str) -> frozenset[str] | None:
    """The columns that the running document reads of the rows root field ``field`` (its
    Python name) returns, or None: read whole rows."""
    hints = _HINTS.get()
    return None if hints is None else hints.get(field)


@contextmanager
def hinting(fields: list[FieldPlan]) -> Iterator[None]:
    """While the planned executor runs these root fields: their hints for their resolvers."""
    hints = {p.python_name: p.row_columns for p in fields if p.row_columns is not None}
    if not hints:
        yield
        return
    token = _HINTS.set(hints)
    try:
        yield
    finally:
        _HINTS.reset(token)


def hint_root_fields(fields: list[FieldPlan]) -> None:
    """Sets each root field's ``row_columns`` when the document compiles: what its selection
    reads, or all its aliases' together (a field selected twice calls its resolver twice, and
    a hint is per field name); None when any of them reads whole rows."""
    merged: dict[str, frozenset[str] | None] = {}
    for plan in fields:
        read = returned_columns(plan)
        name = plan.python_name
        if name in merged:
            earlier = merged[name]
            read = None if earlier is None or read is None else earlier | read
        merged[name] = read
    for plan in fields:
        plan.row_columns = merged[plan.python_name]


def returned_columns(plan: FieldPlan) -> frozenset[str] | None:
    """The columns the selections of the rows ``plan``'s value holds read (not those loaded
    through a relation: a relation selects its own), or None when it is not known."""
    row_types: set[type] = set()
    columns: set[str] = set()
    stack = [plan]
    # Each plan once: plans are shared wherever the same fields meet the same type (a fragment
    # spread twice, in a fragment spread twice, ...), so walking every path could take time
    # exponential in the document's size.
    seen: set[int] = set()
    while stack:  # iterative: a document's depth is bounded elsewhere, the stack here is not
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if current.opaque:
            return None  # an object between the field and its rows that may read them
        lists = [current.children or [], *(current.by_type or {}).values()]
        if current.row_type is not None:
            read = _read_by(current)
            if read is None:
                return None
            row_types.add(current.row_type)
            columns |= read
        for children in lists:
            stack.extend(child for child in children if child.relation is None)
    if not row_types:  # a holder whose rows are not selected (a count, a page's info)
        return frozenset() if plan.children is not None else None
    if len(row_types) != 1:
        return None
    return frozenset(columns)


def _read_by(selection: FieldPlan) -> frozenset[str] | None:
    """The columns one selection of a row type reads of each row, or None: the whole row."""
    if selection.by_type is not None:
        return None  # an interface or a union some of whose types are rows: not worked out
    if selection.children_error is not None:
        return frozenset()  # each object fails before a field of it is read
    columns: set[str] = set()
    for child in selection.children or ():
        if child.typename is not None:
            continue
        if child.column is not None:
            columns.add(child.column.name)
        elif child.relation is not None:
            columns |= child.relation.parent_columns
        else:
            return None
    return frozenset(columns)
