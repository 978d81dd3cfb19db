"""The embedded stack's faster moto Scan and projected Query give the pages moto's own give.

moto's Scan sorts the whole table and walks it up to the page's start key on every page; the stack's
patch (``_install_fast_dynamodb_queries``) starts at the key instead. moto projects an item by turning it
into plain JSON once per projected name; the stack picks top-level names from the item. moto copies every
item an index Query matches; the stack skips that copy where the page holds only some names (a KEYS_ONLY
or INCLUDE index, a ProjectionExpression). Same items, same pages, same order, same last keys, the stored
items untouched: checked here against moto's own implementation on the template's directory table.
moto backs up every table a transaction names, once per item of the transaction; the patch backs up only
the items it writes: the same end, applied or cancelled, checked against moto's own too.
"""

from __future__ import annotations

import copy
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from moto.dynamodb import responses
from moto.dynamodb.models import table as table_module
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

from rostersync.dynamodb_answers import PlainAnswerParser, answer_session
from rostersync_tools.local.stack import (
    _install_fast_attribute_value_answers,
    _install_fast_dynamodb_queries,
    _install_fast_dynamodb_requests,
    _install_fast_dynamodb_results,
    install_speed_only_patches,
)


def _pages(client: Any, operation: str = "scan", **kwargs: Any) -> list[tuple[list[dict[str, Any]], Any]]:
    """Every page to the end. A last key seen before, or more pages than any of these tables has, fails
    the test: paging that goes round (as it did with a broken sort) would otherwise never end."""
    pages, seen = [], set()
    while True:
        page = getattr(client, operation)(**kwargs)
        pages.append((page["Items"], page.get("LastEvaluatedKey")))
        if "LastEvaluatedKey" not in page:
            return pages
        last = json.dumps(page["LastEvaluatedKey"], sort_keys=True)
        assert last not in seen, f"{operation} paging came back to a last key it had given: {last}"
        assert len(pages) < 5_000, f"{operation} paging did not end after 5,000 pages"
        seen.add(last)
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.fixture
def filled_table(dynamodb: Any, directory_table: str) -> str:
    _install_fast_dynamodb_queries()
    table = directory_table
    # Several partitions; sort keys whose code-point order differs from insertion order (accents, CJK,
    # digits after letters), and items large enough that the 1 MB page limit cuts pages too.
    names = ["zed", "Émile", "émile", "中文", "a10", "a9", "A", "a", "~", "0"]
    items = []
    for n in range(300):
        pk = f"d{n % 7}#people#{n % 3}"
        sk = f"{names[n % len(names)]}-{(n * 7919) % 1000:03d}"
        item = {"pk": {"S": pk}, "sk": {"S": sk}, "n": {"N": str(n)}, "blob": {"S": "x" * (8_000 if n % 5 else 10)}}
        if n % 2:  # nested values, for projections of maps, lists and sets
            item["doc"] = {"M": {"label": {"S": f"n{n}"}, "tags": {"L": [{"S": "a"}, {"N": "1.50"}]}}}
            item["ids"] = {"SS": ["x", "y"]}
        items.append({"PutRequest": {"Item": item}})
    for start in range(0, len(items), 25):  # BatchWriteItem's limit
        assert not dynamodb.batch_write_item(RequestItems={table: items[start : start + 25]})["UnprocessedItems"]
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
def test_the_fast_scan_pages_are_moto_s_own(
    dynamodb: Any, filled_table: str, options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the table scanned page by page with the stack's scan (counting moto's copies of items)
    copies: list[Item] = []
    copy_item = Item.__deepcopy__
    monkeypatch.setattr(Item, "__deepcopy__", lambda item, memo: copies.append(item) or copy_item(item, memo))
    fast = _pages(dynamodb, TableName=filled_table, **options)
    monkeypatch.undo()
    if "Segment" not in options:  # a segment is moto's own scan
        assert copies == []

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


def test_a_scan_sees_a_write_made_between_its_pages_as_moto_s_own_does(dynamodb: Any, filled_table: str) -> None:
    # Given the first page of a scan, the keys' order kept by the stack since
    first = dynamodb.scan(TableName=filled_table, Limit=40, ProjectionExpression="pk, sk")
    start = first["LastEvaluatedKey"]
    scanned = {(i["pk"]["S"], i["sk"]["S"]) for i in first["Items"]}
    assert len(scanned) == 40

    # When items are written before the next page: one sorting before the start key, one after it, and one
    # after it deleted
    added = [("d0#people#0", "!first"), ("d9#people#9", "~last")]
    for pk, sk in added:
        dynamodb.put_item(TableName=filled_table, Item={"pk": {"S": pk}, "sk": {"S": sk}})
    rest = [k for k in _keys_after(dynamodb, filled_table, start) if k not in scanned]
    gone = rest[len(rest) // 2]
    dynamodb.delete_item(TableName=filled_table, Key={"pk": {"S": gone[0]}, "sk": {"S": gone[1]}})
    fast = _pages(dynamodb, TableName=filled_table, ExclusiveStartKey=start, ProjectionExpression="pk, sk")
    patched = Table.scan
    Table.scan = Table._rostersync_generic_scan
    try:
        reference = _pages(dynamodb, TableName=filled_table, ExclusiveStartKey=start, ProjectionExpression="pk, sk")
    finally:
        Table.scan = patched

    # Then the rest of the scan is moto's own: the item added after the start key in it, the deleted one not
    assert fast == reference
    keys = {(i["pk"]["S"], i["sk"]["S"]) for page, _ in fast for i in page}
    assert ("d9#people#9", "~last") in keys and gone not in keys and ("d0#people#0", "!first") not in keys


def _keys_after(client: Any, table: str, start: dict[str, Any]) -> list[tuple[str, str]]:
    pages = _pages(client, TableName=table, ExclusiveStartKey=start, ProjectionExpression="pk, sk")
    return [(i["pk"]["S"], i["sk"]["S"]) for page, _ in pages for i in page]


@pytest.mark.parametrize(
    "projection",
    [
        {"ProjectionExpression": "pk, sk, n"},
        {"ProjectionExpression": "sk, doc, ids, #b, absent_attr", "ExpressionAttributeNames": {"#b": "blob"}},
        {"ProjectionExpression": "sk, doc.label, doc.tags[1]"},
    ],
    ids=["names", "maps-lists-sets-and-a-missing-name", "nested-paths"],
)
def test_the_fast_projected_query_pages_are_moto_s_own(
    dynamodb: Any, filled_table: str, projection: dict[str, Any]
) -> None:
    # Given a partition queried page by page with a projection, through the stack's Query
    options = {
        "TableName": filled_table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": "d1#people#1"}},
        "Limit": 7,
        **projection,
    }
    options["ExpressionAttributeNames"] = projection.get("ExpressionAttributeNames") or None
    if options["ExpressionAttributeNames"] is None:
        del options["ExpressionAttributeNames"]
    fast = _pages(dynamodb, "query", **options)

    # When moto's own projection (and its copy of the matching items) answers the same pages
    patched_project, patched_copy = Item.project, table_module.copy
    Item.project, table_module.copy = Item._rostersync_generic_project, copy
    try:
        reference = _pages(dynamodb, "query", **options)
    finally:
        Item.project, table_module.copy = patched_project, patched_copy

    # Then every page and every last key are the same, and the projection left the stored items whole
    assert len(fast) > 1, "the partition fits one page: the test would not cross a start key"
    assert _sets_sorted(fast) == _sets_sorted(reference)  # moto's own projection shuffles a set's members
    unprojected = ("ProjectionExpression", "ExpressionAttributeNames", "Limit")
    stored = dynamodb.query(**{k: v for k, v in options.items() if k not in unprojected})
    whole = [i for i in stored["Items"] if "doc" in i]
    assert whole and all({"pk", "sk", "n", "blob", "doc", "ids"} <= set(i) for i in whole)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"Limit": 9, "ScanIndexForward": False},
        {
            "FilterExpression": "#f.grade = :g OR contains(ids, :x)",
            "ExpressionAttributeNames": {"#f": "fields"},
            "ExpressionAttributeValues": {":g": {"S": "2"}, ":x": {"S": "x"}},
        },
        {"ProjectionExpression": "sk, #f.grade, ids", "ExpressionAttributeNames": {"#f": "fields"}, "Limit": 11},
        {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
            "ExpressionAttributeValues": {":p": {"S": "p-1"}},
            "Limit": 4,
        },
    ],
    ids=["whole-items-over-the-1-mb-page", "limit-backwards", "filter", "nested-projection", "sort-key-condition"],
)
def test_the_fast_whole_item_query_pages_are_moto_s_own(
    dynamodb: Any, directory_table: str, monkeypatch: pytest.MonkeyPatch, options: dict[str, Any]
) -> None:
    # Given a partition of 160 items of 8 KB (over the 1 MB a page holds), with maps, lists and sets, beside
    # another district's partition
    _install_fast_dynamodb_queries()
    stored = []
    for n in range(200):
        item = {
            "pk": {"S": "d1#people#03" if n % 5 else "d2#people#03"},
            "sk": {"S": f"p-{(n * 7919) % 1000:03d}"},
            "blob": {"S": "x" * 8_000},
            "fields": {"M": {"grade": {"S": str(n % 4)}, "periods": {"L": [{"N": "1"}, {"S": "B"}]}}},
        }
        if n % 3:
            item["ids"] = {"SS": ["x", "y"] if n % 2 else ["z"]}
        stored.append(item)
    for start in range(0, len(stored), 25):
        requests = [{"PutRequest": {"Item": item}} for item in stored[start : start + 25]]
        assert not dynamodb.batch_write_item(RequestItems={directory_table: requests})["UnprocessedItems"]
    query = {
        "TableName": directory_table,
        "KeyConditionExpression": "pk = :pk",
        **options,
        "ExpressionAttributeValues": {":pk": {"S": "d1#people#03"}, **options.get("ExpressionAttributeValues", {})},
    }

    # When the stack's Query answers it page by page (counting moto's copies of items and its measures of
    # their sizes), then moto's own Query, size and copy answer the same pages
    copies: list[Item] = []
    measured: list[tuple[int, int]] = []  # (the Query, the item measured)
    queries: list[None] = []
    copy_item, measure, fast_query = Item.__deepcopy__, Item._rostersync_measure, Table.query
    monkeypatch.setattr(Item, "__deepcopy__", lambda item, memo: copies.append(item) or copy_item(item, memo))
    monkeypatch.setattr(Table, "query", lambda *a, **k: queries.append(None) or fast_query(*a, **k))
    monkeypatch.setattr(
        Item, "_rostersync_measure", lambda item: measured.append((len(queries), id(item))) or measure(item)
    )
    fast = _pages(dynamodb, "query", **query)
    monkeypatch.undo()
    monkeypatch.setattr(Table, "query", Table._rostersync_generic_query)
    monkeypatch.setattr(Item, "size", Item._rostersync_generic_size)
    monkeypatch.setattr(table_module, "copy", copy)
    reference = _pages(dynamodb, "query", **query)
    monkeypatch.undo()

    # Then every page and every last key are the same, no item was copied, and none measured twice by a Query
    assert len(fast) > 1 and len(queries) == len(fast)
    assert _sets_sorted(fast) == _sets_sorted(reference)  # moto's own projection shuffles a set's members
    assert copies == []
    assert measured and len(measured) == len(set(measured))
    # and every stored item is still whole
    got = _read_by_key(dynamodb, directory_table, [{"pk": item["pk"], "sk": item["sk"]} for item in stored])
    assert len(got) == len(stored)
    for item in stored:
        assert _sets_sorted(got[item["pk"]["S"], item["sk"]["S"]]) == _sets_sorted(item)


def test_an_answer_is_turned_into_the_plain_values_moto_s_own_conversion_gives() -> None:
    # Given a stored item of every attribute type (binary ones, which moto's own conversion decodes,
    # included), nested in maps and lists, and answers built of it as DynamoDB's handlers build theirs
    _install_fast_dynamodb_results()
    _install_fast_dynamodb_queries()
    attrs = {
        "pk": {"S": "d1#people#03"},
        "sk": {"S": "é-中文"},
        "n": {"N": "1.50"},
        "yes": {"BOOL": True},
        "nothing": {"NULL": True},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2.5"]},
        "b": {"B": "aGVsbG8="},
        "bs": {"BS": ["aGVsbG8=", "d29ybGQ="]},
        "doc": {"M": {"l": {"L": [{"S": "x"}, {"N": "2"}, {"M": {"deep": {"B": "aGk="}}}]}, "e": {"M": {}}}},
    }
    item = Item(hash_key=DynamoType(attrs["pk"]), range_key=DynamoType(attrs["sk"]), attrs=attrs)
    answers = [
        {"Item": item.attrs},
        {"Items": [item.attrs, item.attrs], "Count": 2, "ScannedCount": 2, "LastEvaluatedKey": {"pk": attrs["pk"]}},
        {"Attributes": item.attrs, "ConsumedCapacity": {"TableName": "t", "CapacityUnits": 0.5}},
        {"Responses": {"t": [item.attrs]}, "UnprocessedKeys": {}},
        {"Table": {"CreationDateTime": datetime(2026, 12, 1, tzinfo=UTC)}},
        item,  # a model with to_json
    ]

    # When the stack's conversion and moto's own turn each into plain values
    fast = [responses.dynamo_to_dict(answer) for answer in answers]
    reference = [responses._rostersync_generic_dynamo_to_dict(answer) for answer in answers]

    # Then they are equal, of the same types throughout, and the stored item is not part of either; and the
    # stack measures the item as moto's own ``Item.size`` does (a Query's 1 MB page)
    assert Item._rostersync_measure(item) == Item._rostersync_generic_size(item) == item.size()
    assert responses.dynamo_to_dict is not responses._rostersync_generic_dynamo_to_dict
    assert fast == reference
    assert _types(fast) == _types(reference)
    fast[0]["Item"]["doc"]["M"]["l"]["L"].append({"S": "changed"})
    assert len(item.attrs["doc"].value["l"].value) == 3


def test_a_request_s_attribute_values_are_parsed_into_what_moto_s_own_parser_gives() -> None:
    # Given moto's parser of a DynamoDB PutItem, and attribute values of every kind as botocore sends them:
    # plain ones (strings, numbers, booleans, sets, nested maps and lists), and ones moto must still parse
    # itself (binaries it decodes, nulls it drops, members it does not know)
    import botocore.session
    from moto.core import parse

    _install_fast_dynamodb_requests()
    model = botocore.session.get_session().get_service_model("dynamodb")
    shape = model.shape_for("AttributeValue")
    parser = parse.JSONParser(model.operation_model("PutItem"))
    plain = [
        {"S": "é-中文"},
        {"N": "-1.50"},
        {"BOOL": False},
        {"NULL": True},
        {"SS": ["a", "b"]},
        {"NS": ["1", "2.5"]},
        {"M": {"l": {"L": [{"S": "x"}, {"N": "2"}, {"M": {"deep": {"SS": ["y"]}}}]}, "e": {"M": {}}}},
        {"L": []},
    ]
    other = [
        {"B": "aGVsbG8="},
        {"BS": ["aGVsbG8="]},
        {"M": {"ok": {"S": "x"}, "bin": {"B": "aGk="}}},
        {"L": [{"S": "x"}, {"NULL": None}]},
        {"S": None},
        {"Z": "unknown"},
        {"S": "two", "N": "1"},
    ]

    # When the stack's parser and moto's own parse each
    def parsed(value: dict[str, Any], parse_structure: Any) -> Any:
        return parse_structure(parser, shape, copy.deepcopy(value))

    fast = [parsed(v, parse.BaseJSONParser._parse_structure) for v in plain + other]
    reference = [parsed(v, parse.BaseJSONParser._rostersync_generic_parse_structure) for v in plain + other]

    # Then every value parses to the same, of the same types throughout
    assert parse.BaseJSONParser._parse_structure is not parse.BaseJSONParser._rostersync_generic_parse_structure
    assert fast == reference
    assert _types(fast) == _types(reference)
    assert fast[: len(plain)] == plain  # the plain ones as they were sent
    assert fast[len(plain)] == {"B": b"hello"}  # a binary decoded, as moto decodes it


def test_an_answer_s_items_are_parsed_into_what_botocore_s_own_parser_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given botocore's parser of DynamoDB answers, and a Query answer whose items hold attribute values of
    # every kind as DynamoDB sends them: plain ones (strings, numbers, booleans, sets, nested maps and
    # lists, an empty item), and ones botocore must still parse itself (binaries it decodes, a null member)

    import botocore.session
    from botocore import parsers

    _install_fast_attribute_value_answers()
    model = botocore.session.get_session().get_service_model("dynamodb")
    plain = {
        "pk": {"S": "d1#people#03"},
        "sk": {"S": "é-中文"},
        "n": {"N": "-1.50"},
        "yes": {"BOOL": False},
        "nothing": {"NULL": True},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2.5"]},
        "doc": {"M": {"l": {"L": [{"S": "x"}, {"N": "2"}, {"M": {"deep": {"SS": ["y"]}}}]}, "e": {"M": {}}}},
        "empty": {"L": []},
    }
    binary = {**plain, "b": {"B": "aGVsbG8="}, "bs": {"BS": ["aGVsbG8=", "d29ybGQ="]}}
    nested_binary = {**plain, "doc": {"M": {"ok": {"S": "x"}, "bin": {"B": "aGk="}}}}
    with_null = {**plain, "odd": {"S": None, "N": "1"}}
    body = {
        "Items": [plain, binary, nested_binary, with_null, {}],
        "Count": 5,
        "ScannedCount": 5,
        "LastEvaluatedKey": {"pk": plain["pk"], "sk": plain["sk"]},
        "ConsumedCapacity": {"TableName": "t", "CapacityUnits": 2.5},
    }

    def parsed() -> Any:
        answer = {"status_code": 200, "headers": {}, "body": json.dumps(body).encode("utf-8")}
        return parsers.create_parser("json").parse(answer, model.operation_model("Query").output_shape)

    # When the stack's parser, the runtime clients' (rostersync.dynamodb_answers) and botocore's own parse it
    fast = parsed()
    with monkeypatch.context() as botocore_s_own:
        botocore_s_own.setattr(
            parsers.BaseJSONParser, "_handle_map", parsers.BaseJSONParser._rostersync_generic_handle_map
        )
        botocore_s_own.setattr(
            parsers.BaseJSONParser, "_handle_structure", parsers.BaseJSONParser._rostersync_generic_handle_structure
        )
        reference = parsed()
        answer = {"status_code": 200, "headers": {}, "body": json.dumps(body).encode("utf-8")}
        factory = answer_session()._session.get_component("response_parser_factory")
        runtime = factory.create_parser("json").parse(answer, model.operation_model("Query").output_shape)
        assert isinstance(factory.create_parser("json"), PlainAnswerParser)

    # Then all give the same, of the same types throughout: the plain items as sent, binaries decoded
    assert parsers.BaseJSONParser._handle_map is not parsers.BaseJSONParser._rostersync_generic_handle_map
    fast.pop("ResponseMetadata"), reference.pop("ResponseMetadata"), runtime.pop("ResponseMetadata")
    assert fast == reference == runtime
    assert _types(fast) == _types(reference) == _types(runtime)
    assert fast["Items"][0] == plain
    assert fast["Items"][1]["bs"] == {"BS": [b"hello", b"world"]}
    assert fast["Items"][2]["doc"] == {"M": {"ok": {"S": "x"}, "bin": {"B": b"hi"}}}


def _types(value: Any) -> Any:
    """The type of every value in ``value``, nested as it is."""
    if isinstance(value, dict):
        return (type(value), {k: _types(v) for k, v in value.items()})
    if isinstance(value, list):
        return (type(value), [_types(v) for v in value])
    return type(value)


# The index Queries compared with moto's own: each index's projection (ByMatchBucket INCLUDE, ByProviderId
# KEYS_ONLY, ByParent ALL), with and without a ProjectionExpression, filtered, backwards, always in pages.
_INDEX_KEY = {"ByMatchBucket": "match_bucket", "ByProviderId": "provider_key", "ByParent": "parent_key"}
_INCLUDED = "id, kind, #s, managed_by_sync, content_hash, provider_ids, parent_key, product_edits"


@pytest.mark.parametrize(
    ("index", "options"),
    [
        ("ByMatchBucket", {}),
        ("ByMatchBucket", {"ProjectionExpression": _INCLUDED, "ExpressionAttributeNames": {"#s": "status"}}),
        (
            "ByMatchBucket",
            {
                "FilterExpression": "attribute_exists(#s) AND kind <> :guardian_link",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {":guardian_link": {"S": "guardian_link"}},
            },
        ),
        ("ByMatchBucket", {"ScanIndexForward": False}),
        ("ByProviderId", {}),
        ("ByParent", {}),
        (
            "ByParent",
            {
                "ProjectionExpression": "sk, provider_ids, product_edits, #b, absent_attr",
                "ExpressionAttributeNames": {"#b": "blob"},
            },
        ),
        (
            "ByParent",
            {
                "ProjectionExpression": "pk, sk, #f",
                "FilterExpression": "#f.grade = :g",
                "ExpressionAttributeNames": {"#f": "fields"},
                "ExpressionAttributeValues": {":g": {"S": "2"}},
                "ScanIndexForward": False,
            },
        ),
    ],
    ids=[
        "include",
        "include-projection-with-a-missing-name",
        "include-filter",
        "include-backwards",
        "keys-only",
        "all",
        "all-projection",
        "all-filter-projection-backwards",
    ],
)
def test_the_fast_index_query_pages_are_moto_s_own(
    dynamodb: Any,
    directory_table: str,
    monkeypatch: pytest.MonkeyPatch,
    index: str,
    options: dict[str, Any],
) -> None:
    # Given several districts' enrollments and guardian links, some in each of two index keys, some in
    # neither; a few without an included name (status); each with names no narrower index projects
    _install_fast_dynamodb_queries()
    stored = []
    for n in range(240):
        item = {"pk": {"S": f"d{n % 3}#enrollments#{n % 16:02d}"}, "sk": {"S": f"enr-{(n * 7919) % 1000:03d}"}}
        if n % 4:  # in every index, under the same key
            item.update({name: {"S": f"d{n % 3}#bucket#{n % 2}"} for name in _INDEX_KEY.values()})
            item["blob"] = {"S": "x" * (20_000 if n % 5 == 0 else 10)}
            m = n // 6  # independent of the district (n % 3) and the key (n % 2)
            item.update(
                {
                    "id": {"S": item["sk"]["S"]},
                    "kind": {"S": "guardian_link" if m % 4 == 1 else "enrollment"},
                    "managed_by_sync": {"BOOL": m % 7 != 0},
                    "content_hash": {"S": f"h{n:04d}"},
                    "provider_ids": {"M": {"clever": {"S": f"c{n}"}, "csv": {"S": f"s{n}"}}},
                    "fields": {"M": {"grade": {"S": str(m % 5)}, "periods": {"L": [{"N": "1"}, {"S": "B"}]}}},
                    "district_id": {"S": f"d{n % 3}"},
                }
            )
            if m % 3:
                item["status"] = {"S": "active"}
            if m % 2:
                item["product_edits"] = {"M": {"nickname": {"S": f"n{n}"}, "tags": {"SS": ["a", "b", "c"]}}}
        stored.append(item)
    for start in range(0, len(stored), 25):
        requests = [{"PutRequest": {"Item": item}} for item in stored[start : start + 25]]
        assert not dynamodb.batch_write_item(RequestItems={directory_table: requests})["UnprocessedItems"]
    names = {"#k": _INDEX_KEY[index], **options.get("ExpressionAttributeNames", {})}
    values = {":k": {"S": "d1#bucket#1"}, **options.get("ExpressionAttributeValues", {})}
    query = {
        "TableName": directory_table,
        "IndexName": index,
        "KeyConditionExpression": "#k = :k",
        "Limit": 9,
        **options,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }

    # When the stack's Query answers it page by page (counting moto's copies of whole items), then moto's
    # own Query, projection and copy answer the same pages
    copies = []
    copy_item = Item.__deepcopy__
    monkeypatch.setattr(Item, "__deepcopy__", lambda item, memo: copies.append(item) or copy_item(item, memo))
    fast = _pages(dynamodb, "query", **query)
    monkeypatch.setattr(Item, "__deepcopy__", copy_item)
    monkeypatch.setattr(Table, "query", Table._rostersync_generic_query)
    monkeypatch.setattr(Table, "sorted_items", Table._rostersync_generic_sorted_items)
    monkeypatch.setattr(Item, "project", Item._rostersync_generic_project)
    monkeypatch.setattr(table_module, "copy", copy)
    reference = _pages(dynamodb, "query", **query)
    monkeypatch.undo()

    # Then every page and every last key are the same, over more than one page; no whole item was copied,
    # not even where the page returns them whole (an ALL index without a projection)
    assert len(fast) > 2
    assert _sets_sorted(fast) == _sets_sorted(reference)  # moto's own projection shuffles a set's members
    returned = [i for page, _ in fast for i in page]
    under_key = [i for i in stored if i.get("match_bucket") == {"S": "d1#bucket#1"}]
    assert 0 < len(returned) < len(under_key) if "FilterExpression" in options else len(returned) == len(under_key)
    if index == "ByMatchBucket" and "FilterExpression" not in options:
        assert {"status" in i for i in returned} == {True, False}, "no item lacks an included name"
    assert copies == []
    # and every stored item is still whole: a later read by key returns every attribute it was written with
    got = _read_by_key(dynamodb, directory_table, [{"pk": item["pk"], "sk": item["sk"]} for item in stored])
    assert len(got) == len(stored)
    for item in stored:
        assert _sets_sorted(got[item["pk"]["S"], item["sk"]["S"]]) == _sets_sorted(item)


def _read_by_key(client: Any, table: str, keys: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Each item by its key, with BatchGetItem (100 keys a request; moto's GetItem for each key): the items
    by (pk, sk)."""
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for start in range(0, len(keys), 100):
        request = {table: {"Keys": keys[start : start + 100]}}
        while request:
            answer = client.batch_get_item(RequestItems=request)
            items.update({(i["pk"]["S"], i["sk"]["S"]): i for i in answer["Responses"].get(table, [])})
            request = answer.get("UnprocessedKeys") or {}
    return items


def _sets_sorted(value: Any) -> Any:
    """``value`` with the members of every string or number set in order (DynamoDB sets have none)."""
    if isinstance(value, dict):
        return {k: sorted(v) if k in ("SS", "NS") else _sets_sorted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_sets_sorted(v) for v in value]
    return value


def test_an_index_query_after_each_kind_of_write_is_moto_s_own(
    dynamodb: Any, directory_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given items under two match buckets, read once through the stack's grouping of the items by bucket
    _install_fast_dynamodb_queries()
    table = directory_table

    def key(n: int) -> dict[str, Any]:
        return {"pk": {"S": f"d1#enrollments#{n % 16:02d}"}, "sk": {"S": f"enr-{n:03d}"}}

    def under(n: int, bucket: int) -> dict[str, Any]:
        return {
            **key(n),
            "id": {"S": f"enr-{n:03d}"},
            "kind": {"S": "enrollment"},
            "match_bucket": {"S": f"d1#b{bucket}"},
        }

    for start in range(0, 40, 20):
        requests = [{"PutRequest": {"Item": under(n, n % 2)}} for n in range(start, start + 20)]
        assert not dynamodb.batch_write_item(RequestItems={table: requests})["UnprocessedItems"]

    def bucket(b: int) -> list[str]:
        query = {
            "TableName": table,
            "IndexName": "ByMatchBucket",
            "KeyConditionExpression": "match_bucket = :k",
            "ExpressionAttributeValues": {":k": {"S": f"d1#b{b}"}},
            "Limit": 7,
        }
        fast = _pages(dynamodb, "query", **query)
        with monkeypatch.context() as moto_s_own:
            moto_s_own.setattr(Table, "query", Table._rostersync_generic_query)
            moto_s_own.setattr(Table, "sorted_items", Table._rostersync_generic_sorted_items)
            reference = _pages(dynamodb, "query", **query)
        assert _sets_sorted(fast) == _sets_sorted(reference)
        return [item["sk"]["S"] for page, _ in fast for item in page]

    assert len(bucket(0)) == 20 and len(bucket(1)) == 20

    # When each kind of write moves, adds or removes items of a bucket, the next Query answers as moto's own:
    # a PutItem, a BatchWriteItem put and delete, an UpdateItem changing the key in place, a DeleteItem,
    # a TransactWriteItems update, and a transaction that fails and is put back
    dynamodb.put_item(TableName=table, Item=under(100, 0))
    assert "enr-100" in bucket(0)
    requests = [{"PutRequest": {"Item": under(101, 1)}}, {"DeleteRequest": {"Key": key(1)}}]
    dynamodb.batch_write_item(RequestItems={table: requests})
    assert "enr-101" in bucket(1) and "enr-001" not in bucket(1)
    dynamodb.update_item(
        TableName=table,
        Key=key(2),
        UpdateExpression="SET match_bucket = :b",
        ExpressionAttributeValues={":b": {"S": "d1#b1"}},
    )
    assert "enr-002" in bucket(1) and "enr-002" not in bucket(0)
    dynamodb.delete_item(TableName=table, Key=key(4))
    assert "enr-004" not in bucket(0)
    dynamodb.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": table,
                    "Key": key(6),
                    "UpdateExpression": "SET match_bucket = :b",
                    "ExpressionAttributeValues": {":b": {"S": "d1#b1"}},
                }
            }
        ]
    )
    assert "enr-006" in bucket(1) and "enr-006" not in bucket(0)
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": under(102, 0)}},
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": key(8),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
    # Then every answer above was moto's own, and the failed transaction left nothing behind
    assert "enr-102" not in bucket(0)
    assert len(bucket(0)) == 18 and len(bucket(1)) == 22


def test_index_queries_sent_together_group_the_table_once(dynamodb: Any, directory_table: str) -> None:
    # Given 3,000 enrollments under 24 match buckets, just written (the grouping the stack keeps for index
    # Queries is stale)
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    _install_fast_dynamodb_queries()
    buckets = 24

    def enrollment(n: int) -> dict[str, Any]:
        return {
            "pk": {"S": f"d1#enrollments#{n % 16:02d}"},
            "sk": {"S": f"enr-{n:05d}"},
            "match_bucket": {"S": f"d1#b{n % buckets:02d}"},
        }

    for start in range(0, 3_000, 25):
        requests = [{"PutRequest": {"Item": enrollment(n)}} for n in range(start, start + 25)]
        assert not dynamodb.batch_write_item(RequestItems={directory_table: requests})["UnprocessedItems"]
    table = dynamodb_backends[DEFAULT_ACCOUNT_ID][dynamodb.meta.region_name].tables[directory_table]
    walks_before = table.__dict__.get("_rostersync_groupings", 0)

    # When 8 threads send their first bucket's Query at the same moment, as a Match's partitions do
    start = threading.Barrier(8)

    def read(bucket: int) -> list[str]:
        query = {
            "TableName": directory_table,
            "IndexName": "ByMatchBucket",
            "KeyConditionExpression": "match_bucket = :k",
            "ExpressionAttributeValues": {":k": {"S": f"d1#b{bucket:02d}"}},
        }
        start.wait(timeout=60)
        return [item["sk"]["S"] for page, _ in _pages(dynamodb, "query", **query) for item in page]

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(read, range(8)))

    # Then the table was walked for its groups once, not once per thread, and each thread read its bucket
    assert table.__dict__["_rostersync_groupings"] - walks_before == 1
    for bucket, answer in enumerate(answers):
        assert sorted(answer) == [f"enr-{n:05d}" for n in range(bucket, 3_000, buckets)]


@pytest.mark.parametrize("last_fails", [False, True], ids=["applied", "cancelled"])
def test_a_transaction_copies_no_table_and_ends_as_moto_s_own(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch, last_fails: bool
) -> None:
    # Given two tables of the same 150 items, and one transaction of 90 writes for each (puts, updates,
    # deletes), its last write's condition failing or not
    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend

    install_speed_only_patches()
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    attributes = [{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")]
    for table in ("fast", "moto"):
        dynamodb.create_table(
            TableName=table, KeySchema=keys, AttributeDefinitions=attributes, BillingMode="PAY_PER_REQUEST"
        )
        for start in range(0, 150, 25):
            requests = [
                {"PutRequest": {"Item": {"pk": {"S": f"p{n % 4}"}, "sk": {"S": f"s{n:03d}"}, "n": {"N": str(n)}}}}
                for n in range(start, start + 25)
            ]
            assert not dynamodb.batch_write_item(RequestItems={table: requests})["UnprocessedItems"]

    def writes(table: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for n in range(90):
            key = {"pk": {"S": f"p{n % 4}"}, "sk": {"S": f"s{n:03d}"}}
            if n % 3 == 0:
                out.append({"Put": {"TableName": table, "Item": {**key, "n": {"N": "-1"}, "new": {"S": "y"}}}})
            elif n % 3 == 1:
                update = {"UpdateExpression": "SET n = n + :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}
                out.append({"Update": {"TableName": table, "Key": key, **update}})
            else:
                out.append({"Delete": {"TableName": table, "Key": key}})
        out[-1]["Delete"]["ConditionExpression"] = "attribute_not_exists(sk)" if last_fails else "attribute_exists(sk)"
        return out

    def transact(table: str) -> tuple[str | None, list[dict[str, Any]]]:
        try:
            dynamodb.transact_write_items(TransactItems=writes(table))
            error = None
        except dynamodb.exceptions.TransactionCanceledException as exc:
            error = str([reason["Code"] for reason in exc.response["CancellationReasons"]])
        items = sorted(dynamodb.scan(TableName=table)["Items"], key=lambda i: (i["pk"]["S"], i["sk"]["S"]))
        return error, items

    # When the stack's transaction runs on one and moto's own on the other, the tables each copied counted
    copied: list[str] = []
    patched_copy = models.copy

    def counting(copy_module: Any) -> SimpleNamespace:
        def deepcopy(value: Any, memo: Any = None) -> Any:
            made = copy_module.deepcopy(value, memo)
            if made is not value:
                copied.append(type(value).__name__)
            return made

        return SimpleNamespace(deepcopy=deepcopy)

    monkeypatch.setattr(models, "copy", counting(patched_copy))
    fast = transact("fast")
    fast_copies, copied[:] = copied.count("Table"), []
    monkeypatch.setattr(models, "copy", counting(copy))
    monkeypatch.setattr(
        DynamoDBBackend, "transact_write_items", DynamoDBBackend._rostersync_generic_transact_write_items
    )
    reference = transact("moto")
    monkeypatch.undo()

    # Then both end the same: the same error (or none) and the same items, all 90 writes or none of them
    assert fast == reference
    assert (fast[0] is not None) == last_fails
    assert len(fast[1]) == (150 if last_fails else 120)
    # and the stack copied no table, where moto copies one once per write
    assert (fast_copies, copied.count("Table")) == (0, 90)


def test_a_batch_write_is_billed_for_each_item_before_and_after_it(dynamodb: Any, directory_table: str) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    from rostersync_tools.local.stack import _install_consumed_capacity, _write_units

    # Given the directory table holding two 2.5 KB people, and one batch that puts a new person, puts one of
    # the two again moved to another classroom (ByParent: its entry deleted and put again) and deletes the
    # other, asking for the capacity it consumed
    _install_consumed_capacity()

    def person(sk: str, parent: str) -> dict[str, Any]:
        return {
            "pk": {"S": "d1#people#03"},
            "sk": {"S": sk},
            "parent_key": {"S": parent},
            "provider_key": {"S": f"d1#people#clever#{sk}"},
            "fields": {"M": {"note": {"S": "x" * 2_500}}},
        }

    moved_before, deleted = person("per-1", "d1#cls-1"), person("per-2", "d1#cls-1")
    for item in (moved_before, deleted):
        dynamodb.put_item(TableName=directory_table, Item=item)
    new, moved = person("per-3", "d1#cls-1"), person("per-1", "d1#cls-2")
    answer = dynamodb.batch_write_item(
        RequestItems={
            directory_table: [
                {"PutRequest": {"Item": new}},
                {"PutRequest": {"Item": moved}},
                {"DeleteRequest": {"Key": {"pk": deleted["pk"], "sk": deleted["sk"]}}},
            ]
        },
        ReturnConsumedCapacity="TOTAL",
    )

    # Then the batch is billed each write's units from the item before it and after it: 3 KB in the table
    # for each; entering ByProviderId (1) and ByParent (3) for the new one, ByParent's entry moved (2 x 3)
    # for the one put again, and leaving both indexes (1 + 3) for the deleted one
    table = dynamodb_backends[DEFAULT_ACCOUNT_ID][dynamodb.meta.region_name].tables[directory_table]
    expected = _write_units(None, new, table) + _write_units(moved_before, moved, table)
    expected += _write_units(deleted, None, table)
    assert expected == (3 + 1 + 3) + (3 + 2 * 3) + (3 + 1 + 3)
    assert answer["ConsumedCapacity"] == [{"TableName": directory_table, "CapacityUnits": expected}]
    assert answer["UnprocessedItems"] == {}


def test_a_batch_write_naming_one_key_twice_is_refused_as_dynamodb_refuses_it(
    dynamodb: Any, directory_table: str, sync_state_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError
    from moto.dynamodb.responses import DynamoHandler

    from rostersync_tools.local.stack import _install_batch_write_key_check

    # Given the stack's check (installed for this test only), and one person's key
    for name in ("batch_write_item", "_contains_duplicates"):
        monkeypatch.setattr(DynamoHandler, name, getattr(DynamoHandler, name))
    monkeypatch.setattr(DynamoHandler, "_rostersync_batch_keys", False, raising=False)
    _install_batch_write_key_check()
    key = {"pk": {"S": "d1#people#03"}, "sk": {"S": "per-1"}}

    def batch(requests: dict[str, list[dict[str, Any]]]) -> Any:
        return dynamodb.batch_write_item(RequestItems=requests)

    # When a batch puts two different items under that key, or puts it and deletes it, then DynamoDB's
    # ValidationException, and nothing of either batch is written
    for second in ({"PutRequest": {"Item": {**key, "n": {"N": "2"}}}}, {"DeleteRequest": {"Key": key}}):
        with pytest.raises(ClientError) as refused:
            batch({directory_table: [{"PutRequest": {"Item": {**key, "n": {"N": "1"}}}}, second]})
        assert refused.value.response["Error"]["Code"] == "ValidationException"
        assert "Provided list of item keys contains duplicates" in str(refused.value)
        assert "Item" not in dynamodb.get_item(TableName=directory_table, Key=key)
    # And the same key in two tables (moto refused the same item in two), or two keys in one, is a batch
    # like any other
    batch(
        {
            directory_table: [{"PutRequest": {"Item": key}}, {"PutRequest": {"Item": {**key, "sk": {"S": "per-2"}}}}],
            sync_state_table: [{"PutRequest": {"Item": key}}],
        }
    )
    assert dynamodb.get_item(TableName=directory_table, Key=key)["Item"] == key
    assert dynamodb.get_item(TableName=sync_state_table, Key=key)["Item"] == key


def test_a_forward_query_page_starts_at_its_start_key_without_walking_the_partition(
    dynamodb: Any, directory_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a partition of 600 items, read 50 a page
    _install_fast_dynamodb_queries()
    for start in range(0, 600, 25):
        requests = [
            {"PutRequest": {"Item": {"pk": {"S": "d9#enrollments#00"}, "sk": {"S": f"e-{n:04d}"}}}}
            for n in range(start, start + 25)
        ]
        dynamodb.batch_write_item(RequestItems={directory_table: requests})
    query = {
        "TableName": directory_table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": "d9#enrollments#00"}},
        "Limit": 50,
    }
    walked: list[None] = []
    comes_before = Table._item_comes_before_dct
    monkeypatch.setattr(Table, "_item_comes_before_dct", lambda *a, **k: walked.append(None) or comes_before(*a, **k))

    # When the stack's Query pages through it
    fast = _pages(dynamodb, "query", **query)

    # Then no page walked the items before its start key (moto's own walks 50, 100, … 550 of them)
    assert walked == []
    # And the pages are moto's own
    monkeypatch.setattr(Table, "query", Table._rostersync_generic_query)
    assert fast == _pages(dynamodb, "query", **query)
    assert walked, "moto's own Query walks up to each start key"
    assert [item["sk"]["S"] for page, _ in fast for item in page] == [f"e-{n:04d}" for n in range(600)]


def test_the_runtime_s_clients_parse_dynamodb_answers_with_its_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    # The clients rostersync.aws makes on AWS (no invocation session): their endpoint's parser factory is the
    # runtime's, whatever the stack did to botocore's parser class in this process.
    from rostersync import aws
    from rostersync.dynamodb_answers import AnswerParserFactory

    monkeypatch.setattr(aws, "_CLIENTS", {})
    client = aws._client("dynamodb", None, "us-east-1")
    factory = client._endpoint._response_parser_factory  # botocore keeps it there; no public accessor
    assert isinstance(factory, AnswerParserFactory)
    assert isinstance(factory.create_parser("json"), PlainAnswerParser)
    assert not isinstance(factory.create_parser("rest-json"), PlainAnswerParser)  # S3, Lambda: botocore's own
