"""The planned executor reports errors and nulls exactly as graphql-core does (issue 15).

The service's own resolvers seldom fail, so the documents generated from ``schema.graphql``
(tests/test_differential_executor.py) rarely reach an error path. This schema fails in every
way a resolver can, chosen per field by a ``mode`` argument: a value, null, an exception, a
value its type refuses (a string for an Int, a number for a list, a type the interface does not
allow) or a null inside a list; sync and async, under nullable and non-null types, in lists,
objects, interfaces and unions, at any depth. Documents are generated from it by
hypothesis-graphql, reshaped the way clients write them (tests/document_reshaping.py), and
each one runs on the planned executor and on graphql-core: the data (with its key order) and
the errors (message, locations, path) must be identical, and every document must be planned.
No database: a few hundred examples take seconds; ``pytest -m deep`` runs thousands.
"""

from __future__ import annotations

import asyncio
import enum
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import graphql
import pytest
import strawberry
from hypothesis import given, reject, seed, settings
from hypothesis import strategies as st
from hypothesis_graphql import queries
from strawberry.permission import BasePermission

from gql_api.graphql.engine.planned import Planner
from gql_api.graphql.engine.strawberry_seams import core_schema
from gql_api.graphql.schema.root import Schema
from tests.conftest import make_settings
from tests.document_reshaping import Generated, Reshape


@strawberry.enum
class Mode(enum.Enum):
    OK = "ok"
    NULL = "null"
    RAISE = "raise"
    WRONG = "wrong"  # a value the field's type refuses
    HOLE = "hole"  # a null inside a list (else as WRONG)
    DENY = "deny"  # a GraphQLError with extensions


class Refused(Exception):
    pass


def _scalar(mode: Mode, good: Any, wrong: Any) -> Any:
    if mode is Mode.OK:
        return good
    if mode is Mode.NULL:
        return None
    if mode is Mode.RAISE:
        raise Refused(f"refused {good!r}")
    if mode is Mode.DENY:
        raise graphql.GraphQLError("denied", extensions={"code": "DENIED", "value": repr(good)})
    return wrong


def _many(mode: Mode, make: Callable[[int], Any], count: int) -> Any:
    count = max(0, min(count, 3))  # the generator may ask for any Int
    if mode is Mode.OK:
        return [make(i) for i in range(count)]
    if mode is Mode.HOLE:
        return [None if i == 1 else make(i) for i in range(max(count, 2))]
    return _scalar(mode, None, 5)  # 5: not a list


async def _later(delay: int) -> None:
    """Finishes ``delay`` turns of the event loop later: values of one level arrive out of
    their fields' order, and so do their errors."""
    for _ in range(max(0, min(delay, 3))):
        await asyncio.sleep(0)


async def _items_later(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


@strawberry.interface
class Pet:
    name: str


@strawberry.type
class Dog(Pet):
    barks: bool


@strawberry.type
class Cat(Pet):
    @strawberry.field
    async def lives(self, mode: Mode = Mode.OK) -> int:
        return _scalar(mode, 9, "nine")  # type: ignore[no-any-return]


@strawberry.type
class Fish:
    fins: int | None


Creature = Annotated[Dog | Cat | Fish, strawberry.union("Creature")]


def _pet(mode: Mode, n: int) -> Any:
    animal = Dog(name=f"dog{n}", barks=n % 2 == 0) if n % 2 == 0 else Cat(name=f"cat{n}")
    return _scalar(mode, animal, Fish(fins=n))  # a Fish is no Pet


class NotDenied(BasePermission):
    message = "not allowed here"

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return kwargs.get("mode") is not Mode.DENY


@strawberry.type
class Leaf:
    n: int

    @strawberry.field
    def number(self, mode: Mode = Mode.OK) -> int:
        return _scalar(mode, self.n, "not a number")  # type: ignore[no-any-return]

    @strawberry.field
    def maybe_number(self, mode: Mode = Mode.OK) -> int | None:
        return _scalar(mode, self.n, 1.5)  # type: ignore[no-any-return]

    @strawberry.field
    async def word(self, mode: Mode = Mode.OK, delay: int = 0) -> str:
        await _later(delay)
        return _scalar(mode, f"w{self.n}", ["a", "list"])  # type: ignore[no-any-return]

    @strawberry.field
    async def maybe_flag(self, mode: Mode = Mode.OK, delay: int = 0) -> bool | None:
        await _later(delay)
        return _scalar(mode, self.n % 2 == 0, "yes")  # type: ignore[no-any-return]

    @strawberry.field
    def child(self, mode: Mode = Mode.OK) -> Leaf:
        return _scalar(mode, Leaf(n=self.n + 1), Fish(fins=0))  # type: ignore[no-any-return]

    @strawberry.field
    async def maybe_child(self, mode: Mode = Mode.OK) -> Leaf | None:
        return _scalar(mode, Leaf(n=self.n + 1), "a string")  # type: ignore[no-any-return]

    @strawberry.field
    def children(self, mode: Mode = Mode.OK, count: int = 2) -> list[Leaf]:
        return _many(mode, lambda i: Leaf(n=self.n * 10 + i), count)  # type: ignore[no-any-return]

    @strawberry.field
    async def maybe_children(
        self, mode: Mode = Mode.OK, count: int = 2, delay: int = 0
    ) -> list[Leaf | None] | None:
        await _later(delay)
        return _many(mode, lambda i: Leaf(n=self.n * 10 + i), count)  # type: ignore[no-any-return]

    @strawberry.field
    def numbers(self, mode: Mode = Mode.OK, count: int = 2) -> list[int | None]:
        return _many(mode, lambda i: self.n + i, count)  # type: ignore[no-any-return]

    @strawberry.field
    def later_numbers(self, mode: Mode = Mode.OK, count: int = 2) -> list[int]:
        # An async iterable, which graphql-core completes as a list.
        items = _many(mode, lambda i: self.n + i, count)
        return _items_later(items) if isinstance(items, list) else items  # type: ignore[return-value]

    @strawberry.field(permission_classes=[NotDenied])
    async def guarded(self, mode: Mode = Mode.OK) -> Leaf | None:
        # Resolved through Strawberry's own resolve function (a field extension).
        return _scalar(mode, Leaf(n=self.n + 7), 3)  # type: ignore[no-any-return]

    @strawberry.field
    def where(self, info: strawberry.Info) -> str:
        """What a resolver learns from its Info (the planned executor builds its own)."""
        operation = info.operation.name.value if info.operation.name else None
        names = (info.field_name, info.python_name, str(info.parent_type), str(info.return_type))
        return repr((info.path.as_list(), *names, sorted(info.variable_values), operation))

    @strawberry.field
    def shaped(self, info: strawberry.Info) -> Leaf:
        # Its n tells what Strawberry makes of the selection: fragments, aliases, arguments.
        return Leaf(n=len(repr(info.selected_fields)))

    @strawberry.field
    def pet(self, mode: Mode = Mode.OK) -> Pet:
        return _pet(mode, self.n)  # type: ignore[no-any-return]

    @strawberry.field
    async def maybe_pets(self, mode: Mode = Mode.OK, count: int = 2) -> list[Pet | None] | None:
        return _many(mode, lambda i: _pet(Mode.OK, self.n + i), count)  # type: ignore[no-any-return]

    @strawberry.field
    def creature(self, mode: Mode = Mode.OK) -> Creature | None:
        return _scalar(mode, Fish(fins=self.n) if self.n % 3 else _pet(Mode.OK, self.n), "x")  # type: ignore[no-any-return]


@strawberry.input
class Inner:
    words: list[str | None] | None = None
    modes: list[Mode] = strawberry.field(default_factory=lambda: [Mode.OK])
    ratio: float = 0.5


@strawberry.input
class Knob:
    mode: Mode = Mode.OK
    count: int | None = None
    flag: bool | None = True
    inner: Inner | None = None
    inners: list[Inner] | None = None


@strawberry.type
class Query(Leaf):
    @strawberry.field
    def echo(
        self, knob: Knob | None = None, knobs: list[Knob | None] | None = None, label: str = "-"
    ) -> str:
        """What the resolver was given: the arguments as Strawberry converts them."""
        return repr((knob, knobs, label))


SCHEMA = Schema(query=Query, types=[Dog, Cat, Fish])
CORE = core_schema(SCHEMA)
SETTINGS = make_settings("postgresql://unused@127.0.0.1/unused")
PLANNER = Planner(SCHEMA, SETTINGS)
MAX_TOKENS = SETTINGS.graphql.max_tokens


@st.composite
def generated(draw: Callable[[st.SearchStrategy[Any]], Any]) -> Generated:
    document = draw(queries(CORE, print_ast=lambda d: d, allow_x00=False))  # type: ignore[arg-type]
    reshape = Reshape(draw, CORE)
    query = graphql.print_ast(reshape.document(document))
    try:  # the service parses no longer document (a recursive schema makes large ones)
        graphql.parse(query, max_tokens=MAX_TOKENS)
    except graphql.GraphQLError:
        reject()
    return Generated(query, reshape.variables)


def _answer(result: Any) -> tuple[str, list[dict[str, Any]]]:
    return json.dumps(result.data), [e.formatted for e in result.errors or ()]


async def assert_answers_alike(query: str, variables: dict[str, Any] | None = None) -> None:
    assert graphql.validate(CORE, graphql.parse(query)) == [], query  # else neither executes
    plan = PLANNER.plan_for(query, None)
    assert plan is not None, query  # every such document is planned
    planned = await PLANNER.run(plan, None, variables)
    generic = await SCHEMA.execute(query, variable_values=variables)
    assert _answer(planned) == _answer(generic), (query, variables)


def _generated_test(examples: int) -> Callable[..., Any]:
    @seed(15)
    @settings(max_examples=examples, deadline=None, database=None)
    @given(example=generated())
    async def check(example: Generated) -> None:
        await assert_answers_alike(example.query, example.variables)

    return check


test_generated_documents_fail_alike = _generated_test(400)
test_generated_documents_fail_alike_deep = pytest.mark.deep(_generated_test(5000))

# What the generator may not reach in a few hundred examples.
HAND_WRITTEN = [
    "{ n word child(mode: WRONG) { n } }",
    "{ n maybeChild { word(mode: RAISE) child { number(mode: WRONG) } } }",
    "{ n children(mode: HOLE, count: 3) { n } }",
    "{ n maybeChildren(mode: HOLE, count: 3) { n number(mode: NULL) } }",
    "{ n maybeChildren(mode: WRONG) { n } numbers(mode: WRONG) }",
    "{ n numbers(mode: HOLE) maybeChildren { numbers(mode: RAISE) } }",
    "{ n pet(mode: WRONG) { name } }",
    "{ n maybePets(mode: HOLE, count: 3) { name ... on Cat { lives(mode: WRONG) } } }",
    "{ n creature { __typename ... on Fish { fins } ... on Pet { name } } }",
    "{ a: maybeChild { child { child { maybeFlag(mode: WRONG) number(mode: NULL) } } } b: n }",
    "{ maybeChildren(count: 3) { children(count: 2) { word(mode: RAISE) } } }",
    "{ maybeChildren(count: 3) { maybeChild { n } children(mode: RAISE) { n } } n }",
    "{ n laterNumbers maybeChild { laterNumbers(mode: HOLE) } }",
    "query W($d: Int = 1) { where children(count: $d) { where x: maybeChild { y: where } } }",
    "{ shaped { n } a: shaped { n x: n } }",
    "{ n guarded(mode: DENY) { n } b: guarded { guarded(mode: WRONG) { n } c: guarded { n } } }",
    "{ shaped { ...F child { n @include(if: true) } } } fragment F on Leaf { n a: word(delay: 1) }",
    "{ n maybeChild { word(mode: DENY) } children { maybeNumber(mode: DENY) } }",
    '{ echo(knob: {mode: HOLE, inner: {words: ["a", null], modes: [DENY]}}, knobs: [null, {}]) }',
    'query ($k: Knob = {count: 3, inners: [{ratio: 2}]}) { echo(knob: $k) a: echo(label: "x") }',
    "{ a: word(mode: RAISE, delay: 2) b: word(mode: NULL) c: maybeFlag(mode: WRONG, delay: 1) }",
    "{ maybeChildren(count: 3, delay: 1) { a: word(mode: RAISE, delay: 3) b: word(mode: WRONG) }"
    " maybeChild { maybeChildren(delay: 2) { word(mode: NULL, delay: 1) } } n }",
    "{ n maybeChild { laterNumbers(mode: WRONG) } }",
]


@pytest.mark.parametrize("query", HAND_WRITTEN)
async def test_hand_written_documents_fail_alike(query: str) -> None:
    await assert_answers_alike(query)


# Variables a client gets wrong: refused with graphql-core's errors, before any resolver runs.
BAD_VARIABLES: list[tuple[str, dict[str, Any]]] = [
    ("query ($m: Mode!) { word(mode: $m) }", {"m": "nope"}),
    ("query ($m: Mode!) { word(mode: $m) }", {}),
    ("query ($m: Mode!) { word(mode: $m) }", {"m": None}),
    ("query ($m: Mode = OK) { word(mode: $m) }", {"m": None}),
    ("query ($k: Knob) { echo(knob: $k) }", {"k": {"count": "x"}}),
    ("query ($k: Knob) { echo(knob: $k) }", {"k": {"unknown": 1}}),
    ("query ($k: Knob) { echo(knob: $k) }", {"k": {"inner": {"modes": ["OK", None]}}}),
    ("query ($k: Knob) { echo(knob: $k) }", {"k": {"inner": {"modes": "DENY", "words": "a"}}}),
    ("query ($k: [Knob]) { echo(knobs: $k) }", {"k": {"mode": "OK"}}),
    ("query ($k: [Knob]) { echo(knobs: $k) }", {"k": [1, None, {"count": 2**40}]}),
    ("query ($c: Int) { children(count: $c) { n } }", {"c": 1.5}),
    ("query ($c: Int!) { children(count: $c) { n } }", {"c": None}),
]


@pytest.mark.parametrize(("query", "variables"), BAD_VARIABLES)
async def test_variables_a_client_gets_wrong_are_refused_alike(
    query: str, variables: dict[str, Any]
) -> None:
    await assert_answers_alike(query, variables)
