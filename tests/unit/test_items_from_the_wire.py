"""A directory item read from DynamoDB's answer (``directory.repository._from_item``) is, value for value and
type for type, what boto3's generic ``TypeDeserializer`` and ``_plain`` make of it: its common values are
read from their one type key, every other one goes the generic way."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer

from rostersync.directory.repository import _from_item, _plain

WIRE_VALUES: dict[str, dict[str, Any]] = {
    "text": {"S": "Ana"},
    "empty text": {"S": ""},
    "true": {"BOOL": True},
    "false": {"BOOL": False},
    "null": {"NULL": True},
    "whole number": {"N": "17"},
    "negative number": {"N": "-3"},
    "minus zero": {"N": "-0"},
    "leading zeros": {"N": "007"},
    "fraction": {"N": "1.5"},
    "exponent": {"N": "1E+3"},
    "huge number": {"N": "123456789012345678901234567890"},
    "non-ascii digits": {"N": "٣"},
    "map": {"M": {"given_name": {"S": "Ana"}, "grade": {"N": "4"}, "alumni": {"BOOL": False}}},
    "nested": {"M": {"schools": {"L": [{"S": "sch-1"}, {"M": {"n": {"N": "2.25"}}}]}, "none": {"NULL": True}}},
    "empty map": {"M": {}},
    "list": {"L": [{"S": "student"}, {"N": "5"}, {"L": []}]},
    "string set": {"SS": ["a", "b"]},
    "number set": {"NS": ["1", "2.5"]},
    "binary": {"B": b"\x00\x01"},
}


def _generic(item: dict[str, Any]) -> dict[str, Any]:
    deserializer = TypeDeserializer()
    return {k: _plain(deserializer.deserialize(v)) for k, v in item.items()}


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same type all the way down (``1 == True`` and ``1 == 1.0`` are not the same here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.mark.parametrize("name", WIRE_VALUES)
def test_each_value_is_what_the_generic_deserialiser_makes_of_it(name: str) -> None:
    item = {"id": {"S": "per_1"}, "value": WIRE_VALUES[name]}
    assert _same(_from_item(item), _generic(item)), (_from_item(item), _generic(item))


def test_a_whole_product_account_is_what_the_generic_deserialiser_makes_of_it() -> None:
    item = {f"a{n}": value for n, value in enumerate(WIRE_VALUES.values())}
    read = _from_item(item)
    assert _same(read, _generic(item))
    assert read["a5"] == 17 and type(read["a5"]) is int  # the directory stores whole numbers as ints
    assert read["a9"] == 1  # a fraction is cut to an int, as ``_plain`` always cut it
    assert read["a19"] == Binary(b"\x00\x01") and read["a18"] == {Decimal("1"), Decimal("2.5")}
