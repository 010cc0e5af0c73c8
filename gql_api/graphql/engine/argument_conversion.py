"""Strawberry's argument conversion, compiled once per field.

Before Strawberry calls a resolver it turns graphql-core's coerced argument values into Python
ones (``strawberry.types.arguments.convert_arguments``): input objects become their classes,
lists are copied, names become Python names. It works that out from the types on every call:
about 70 us for one ``UserFilter`` here, a twentieth of a users page. The planned executor
compiles the same rules, per field, into one function (:func:`compiled_conversion`), and keeps
Strawberry's own call for what is rarer (``Maybe``, ``GlobalID``, input types that build their
own value): the conversion of such a field is Strawberry's.

The rules mirrored (Strawberry's ``convert_argument``): null and unset stay as they are; a list
of leaves (scalars, enums, optional or not) is copied, any other list converted item by item;
a leaf is passed as is (graphql-core's enum coercion already gives the member); an input object
is its class called with its fields' converted values, each absent field without a default set
to None. ``tests/test_graphql_planned.py`` compares both conversions on every argument of the
schema.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from strawberry.relay import GlobalID
from strawberry.types.arguments import _is_leaf_type, _is_optional_leaf_type
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryOptional,
    has_object_definition,
)
from strawberry.types.enum import has_enum_definition
from strawberry.types.lazy_type import LazyType
from strawberry.types.unset import UNSET

Convert = Callable[[Any], Any]
Converter = Callable[[dict[str, Any], list[Any]], dict[str, Any]]


class _Strawberrys(Exception):
    """A type whose conversion stays Strawberry's."""


def compiled_conversion(
    arguments: list[Any], registry: Mapping[Any, Any], config: Any
) -> Converter | None:
    """``(coerced values, arguments) -> kwargs`` for these arguments, or None when one of their
    types is converted by Strawberry alone."""
    compiler = _Compiler(registry, config)
    try:
        steps = [
            (config.name_converter.from_argument(a), a.python_name, compiler.value(a.type))
            for a in arguments
        ]
    except _Strawberrys:
        return None

    def convert(values: dict[str, Any], _arguments: list[Any]) -> dict[str, Any]:
        return {python: step(values[name]) for name, python, step in steps if name in values}

    return convert


def _same(value: Any) -> Any:
    return value


def _copied(value: Any) -> Any:
    return value if value is None or value is UNSET else list(value)


class _Compiler:
    def __init__(self, registry: Mapping[Any, Any], config: Any) -> None:
        self.registry, self.config = registry, config
        self.inputs: dict[type, Convert] = {}  # per input class (input types may nest themselves)

    def value(self, type_: Any) -> Convert:
        if isinstance(type_, StrawberryMaybe) or type_ is GlobalID:
            raise _Strawberrys
        if isinstance(type_, StrawberryOptional):
            return self.value(type_.of_type)
        if isinstance(type_, StrawberryList):
            item = type_.of_type
            leaf = (GlobalID,)
            if _is_leaf_type(item, self.registry, skip_classes=leaf) or _is_optional_leaf_type(
                item, self.registry, skip_classes=leaf
            ):
                return _copied
            return self._list(self.value(item))
        if _is_leaf_type(type_, self.registry):
            return _same
        if isinstance(type_, LazyType):
            return self.value(type_.resolve_type())
        if has_enum_definition(type_):
            return _same  # graphql-core's coercion gave the member
        if has_object_definition(type_):
            return self._input(type_)
        raise _Strawberrys

    @staticmethod
    def _list(item: Convert) -> Convert:
        def convert(value: Any) -> Any:
            if value is None or value is UNSET:
                return value
            return [item(x) for x in value]

        return convert

    def _input(self, cls: type) -> Convert:
        known = self.inputs.get(cls)
        if known is not None:
            return known
        definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
        if definition.from_input is not None:
            raise _Strawberrys
        steps: list[tuple[str, str, Convert]] = []
        defaults: dict[str, Any] = {}
        if definition.is_input:
            defaults = {
                f.python_name: None
                for f in definition.fields
                if f.default_value is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING
            }

        def convert(value: Any) -> Any:
            if value is None or value is UNSET:
                return value
            kwargs = dict(defaults)
            for name, python, step in steps:
                if name in value:
                    kwargs[python] = step(value[name])
            return cls(**kwargs)

        self.inputs[cls] = convert  # before its fields: a field of its own type finds it
        for f in definition.fields:
            field_type = f.resolve_type(type_definition=definition)
            steps.append(
                (self.config.name_converter.from_field(f), f.python_name, self.value(field_type))
            )
        return convert
