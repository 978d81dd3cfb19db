"""DynamoDB's answers parsed without walking every attribute value through its shape.

botocore's JSON response parser walks each attribute value of each item through the ``AttributeValue``
shape: every attribute's name and value by their own handlers, each value's ten members looked up, maps
and lists recursed. For values of strings, numbers, booleans, sets of them, and maps and lists of those
(everything rostersync stores), what it builds equals the value as decoded from the JSON. So an item
whose every value is such is taken whole, and such a value alone likewise; anything else (a binary,
which botocore decodes from base64; a member that is JSON null) still goes through botocore's own
parsing. Reading 3.1 M people index entries (an unchanged New York night's people phase) took 44.7 µs an
item in botocore's parser (docs/SCALE.md).

``answer_session`` gives the boto3 session ``rostersync.aws`` makes its clients from: its parser factory
hands this parser to JSON-protocol services (DynamoDB among them; the shortcut applies only to
``AttributeValue`` shapes, so the others parse as before). Nothing is patched process-wide. The embedded
stack applies the same rule to botocore's parser in its own process (``rostersync_tools.local.stack``),
for the sessions it makes for each invocation's role.
"""

from __future__ import annotations

from typing import Any

import boto3
import botocore.session
from botocore import parsers

ATTRIBUTE_VALUE_MEMBERS = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"})


def attribute_value_shape(shape: Any) -> bool:
    """Whether a service-model shape is DynamoDB's ``AttributeValue``, with the ten members it has."""
    return shape.name == "AttributeValue" and shape.members.keys() == ATTRIBUTE_VALUE_MEMBERS


def plain_attribute(value: Any) -> bool:
    """Whether a DynamoDB attribute value, as it came off the wire, holds one member of a known type and no
    binary or null anywhere in it: what a shape-walking parser would build unchanged, member by member."""
    if type(value) is not dict or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    if kind in ("S", "N"):
        return type(inner) is str
    if kind in ("BOOL", "NULL"):
        return type(inner) is bool
    if kind in ("SS", "NS"):
        return type(inner) is list and all(type(each) is str for each in inner)
    if kind == "M":
        return type(inner) is dict and all(plain_attribute(each) for each in inner.values())
    if kind == "L":
        return type(inner) is list and all(plain_attribute(each) for each in inner)
    return False


def plain_map(shape: Any, value: Any) -> bool:
    """Whether ``value`` is a map of plain attribute values (an item) that ``shape`` describes."""
    return (
        type(value) is dict
        and shape.key.type_name == "string"
        and attribute_value_shape(shape.value)
        and all(plain_attribute(each) for each in value.values())
    )


class PlainAnswerParser(parsers.JSONParser):
    """botocore's JSON parser, taking plain attribute values and items as they came."""

    def _handle_structure(self, shape: Any, value: Any) -> Any:
        if attribute_value_shape(shape) and plain_attribute(value):
            return value
        return super()._handle_structure(shape, value)

    def _handle_map(self, shape: Any, value: Any) -> Any:
        if plain_map(shape, value):
            return value
        return super()._handle_map(shape, value)


class AnswerParserFactory(parsers.ResponseParserFactory):
    """botocore's parser factory, with ``PlainAnswerParser`` for the JSON protocol."""

    def create_parser(self, protocol_name: str) -> Any:
        if protocol_name == "json":
            return PlainAnswerParser(**self._defaults)
        return super().create_parser(protocol_name)


def answer_session() -> boto3.session.Session:
    """A boto3 session whose clients parse DynamoDB's answers with ``PlainAnswerParser``."""
    core = botocore.session.get_session()
    core.register_component("response_parser_factory", AnswerParserFactory())
    return boto3.session.Session(botocore_session=core)
