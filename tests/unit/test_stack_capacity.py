"""The embedded stack's DynamoDB capacity units: computed from item sizes the way AWS bills them."""

from __future__ import annotations

from types import SimpleNamespace

from rostersync_tools.local.stack import _read_units, _write_units, dynamodb_item_bytes

# The directory table's shape (template.yaml): pk/sk, ByProviderId keys only, ByParent all attributes.
TABLE = SimpleNamespace(
    hash_key_attr="pk",
    range_key_attr="sk",
    global_indexes=[
        SimpleNamespace(schema=[{"AttributeName": "provider_key"}], projection={"ProjectionType": "KEYS_ONLY"}),
        SimpleNamespace(
            schema=[{"AttributeName": "parent_key"}, {"AttributeName": "sk"}], projection={"ProjectionType": "ALL"}
        ),
    ],
)


def _item(fields: str = "x", parent: str | None = "d#cls-1", provider: str | None = "d#people#clever:1") -> dict:
    item = {"pk": {"S": "d#people#03"}, "sk": {"S": "per-1"}, "fields": {"M": {"name": {"S": fields}}}}
    if parent:
        item["parent_key"] = {"S": parent}
    if provider:
        item["provider_key"] = {"S": provider}
    return item


def test_item_size_counts_names_and_values_as_dynamodb_does():
    assert dynamodb_item_bytes({"ab": {"S": "héllo"}}) == 2 + 6
    assert dynamodb_item_bytes({"n": {"N": "12345"}}) == 1 + 3
    assert dynamodb_item_bytes({"b": {"BOOL": True}}) == 1 + 1
    assert dynamodb_item_bytes({"m": {"M": {"k": {"S": "v"}}}}) == 1 + 3 + 1 + 1 + 1


def test_a_new_item_costs_its_kilobytes_and_one_write_per_index_it_enters():
    # base 1 KB + keys-only index + all-attributes index
    assert _write_units(None, _item(), TABLE) == 3
    # a 2.5 KB item: 3 units in the table, 3 in the ALL index, 1 in the keys-only index
    assert _write_units(None, _item("x" * 2500), TABLE) == 7


def test_an_update_costs_the_larger_image_and_spares_a_keys_only_index_it_does_not_move_in():
    before, after = _item("old"), _item("new")
    assert _write_units(before, after, TABLE) == 2  # table + ByParent (ALL) rewritten; ByProviderId untouched
    assert _write_units(before, before, TABLE) == 1  # nothing changed: the table write only
    moved = _item("new", parent="d#cls-2")
    assert _write_units(before, moved, TABLE) == 1 + 2  # ByParent: old entry deleted, new one put


def test_an_include_index_is_written_when_a_projected_attribute_changes_and_sized_by_what_it_projects():
    # a table whose one index projects ``status`` beside its keys (as the directory's ByMatchBucket does)
    table = SimpleNamespace(
        hash_key_attr="pk",
        range_key_attr="sk",
        global_indexes=[
            SimpleNamespace(
                schema=[{"AttributeName": "provider_key"}],
                projection={"ProjectionType": "INCLUDE", "NonKeyAttributes": ["status"]},
            )
        ],
    )
    before = {**_item("x" * 2500), "status": {"S": "active"}}
    # entering it: one unit (keys and status under 1 KB), not the 3 the whole 2.5 KB item would take
    assert _write_units(None, before, table) == 3 + 1
    # a change to an attribute it does not project: the table write only
    assert _write_units(before, {**before, "fields": {"M": {"name": {"S": "y" * 2500}}}}, table) == 3
    # a change to one it projects: the index entry is rewritten too
    assert _write_units(before, {**before, "status": {"S": "archived"}}, table) == 3 + 1


def test_reads_round_up_to_4_kb_and_halve_when_eventually_consistent():
    small = [_item()] * 10
    assert _read_units(small, consistent=False, per_item=True) == 5.0  # 10 GetItems of < 4 KB
    assert _read_units(small, consistent=False, per_item=False) == 0.5  # one Query over < 4 KB in all
    assert _read_units([_item("x" * 5000)], consistent=True, per_item=True) == 2.0
