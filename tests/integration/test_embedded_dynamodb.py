"""The embedded stack's faster moto Scan gives the pages moto's own Scan gives.

moto's Scan sorts the whole table and walks it up to the page's start key on every page; the stack's
patch (``_install_fast_dynamodb_queries``) starts at the key instead. Same items, same pages, same order,
same last keys: checked here against moto's own implementation on the template's directory table.
"""

from __future__ import annotations

from typing import Any

import pytest
from moto.dynamodb.models.table import Table

from rostersync_tools.local.stack import _install_fast_dynamodb_queries


def _pages(client: Any, **kwargs: Any) -> list[tuple[list[dict[str, Any]], dict[str, Any] | None]]:
    pages = []
    while True:
        page = client.scan(**kwargs)
        pages.append((page["Items"], page.get("LastEvaluatedKey")))
        if "LastEvaluatedKey" not in page:
            return pages
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.fixture
def filled_table(dynamodb: Any, directory_table: str) -> str:
    _install_fast_dynamodb_queries()
    table = directory_table
    # Several partitions; sort keys whose code-point order differs from insertion order (accents, CJK,
    # digits after letters), and items large enough that the 1 MB page limit cuts pages too.
    names = ["zed", "Émile", "émile", "中文", "a10", "a9", "A", "a", "~", "0"]
    for n in range(300):
        pk = f"d{n % 7}#people#{n % 3}"
        sk = f"{names[n % len(names)]}-{(n * 7919) % 1000:03d}"
        item = {"pk": {"S": pk}, "sk": {"S": sk}, "n": {"N": str(n)}, "blob": {"S": "x" * (8_000 if n % 5 else 10)}}
        dynamodb.put_item(TableName=table, Item=item)
    return table


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"Limit": 37},
        {
            "Limit": 50,
            "FilterExpression": "#n > :k",
            "ExpressionAttributeNames": {"#n": "n"},
            "ExpressionAttributeValues": {":k": {"N": "150"}},
        },
        {"ProjectionExpression": "pk, sk, n", "Limit": 61},
        {"Segment": 1, "TotalSegments": 3},
    ],
    ids=["size-limited", "limit", "filter", "projection", "segment"],
)
def test_the_fast_scan_pages_are_moto_s_own(dynamodb: Any, filled_table: str, options: dict[str, Any]) -> None:
    # Given the table scanned page by page with the stack's scan
    fast = _pages(dynamodb, TableName=filled_table, **options)

    # When moto's own scan reads it the same way
    patched = Table.scan
    Table.scan = Table._rostersync_generic_scan
    try:
        reference = _pages(dynamodb, TableName=filled_table, **options)
    finally:
        Table.scan = patched

    # Then every page and every last key are the same
    if "Segment" not in options:
        assert len(fast) > 1, "the table fits one page: the test would not cross a start key"
    assert fast == reference
    if not options:
        scanned = [(i["pk"]["S"], i["sk"]["S"]) for items, _ in fast for i in items]
        assert len(scanned) == len(set(scanned)) == 300
