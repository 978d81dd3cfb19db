"""A district whose enrollments and guardian links were written before the ByMatchBucket index (a stack
upgraded with districts already synced): its Match partitions read the table until every pair carries its
bucket, ``rostersync index-pairs`` gives them theirs, and the next run switches the district to the index."""

from __future__ import annotations

from typing import Any

import pytest

from rostersync import aws
from rostersync.config import runtime_config
from rostersync.directory.keys import PAIR_COLLECTIONS
from rostersync.steps.match import PAIR_INDEX
from rostersync.storage import RunStore
from rostersync_tools.cli.main import main

pytestmark = pytest.mark.e2e


def partition_results(outcome: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    store = RunStore(aws.client("s3"), outcome.bucket, outcome.district_id, outcome.run_id)
    people = store.get_json(store.key("plan/people/result.json"))
    return people, [store.get_json(store.key(f"plan/p{p:04d}/result.json")) for p in range(people["partitions"])]


def pair_counts(outcome: Any) -> dict[str, dict[str, int]]:
    """What a run did to the enrollments and guardian links (the roster's links skipped every night aside)."""
    return {kind: {a: n for a, n in outcome.changed(kind).items() if a != "skipped"} for kind in PAIR_COLLECTIONS}


def test_a_district_synced_before_the_index_reads_the_table_until_its_pairs_are_bucketed(
    district: Any, synthetic: Any, stack: Any, capsys: Any
) -> None:
    # Given a district synced once (it recorded PAIR_INDEX), then put back as an older version left it:
    # no PAIR_INDEX, and its enrollments and guardian links without match_bucket
    made = district(synthetic)
    first = made.sync(export=False)
    assert first.status == "succeeded" and made.state.get_item(PAIR_INDEX) is not None
    dynamodb, config = aws.client("dynamodb"), runtime_config()
    dynamodb.delete_item(TableName=config.sync_state_table, Key={"pk": {"S": made.id}, "sk": {"S": PAIR_INDEX}})
    stripped = 0
    for collection in PAIR_COLLECTIONS:
        for item in made.directory.items().collection(collection):
            assert "clever" in (item.get("provider_ids") or {})  # (the product has no pairs of its own here)
            dynamodb.update_item(
                TableName=config.directory_table,
                Key={"pk": {"S": item["pk"]}, "sk": {"S": item["sk"]}},
                UpdateExpression="REMOVE match_bucket",
            )
            stripped += 1
    assert stripped > 0
    created = {kind: first.counts(kind)["created"] for kind in PAIR_COLLECTIONS}

    # When it syncs again with nothing changed
    second = made.sync(export=False)

    # Then its partitions read the table (the index would show them no pair), found every pair without its
    # bucket, planned every pair unchanged as before, and the district is not switched to the index
    people, parts = partition_results(second)
    assert second.status == "succeeded"
    assert not people["pair_index"] and sum(p["unbucketed"] for p in parts) == stripped
    assert pair_counts(second) == {kind: {"unchanged": n} for kind, n in created.items()}
    assert made.state.get_item(PAIR_INDEX) is None

    # When the operator gives the pairs their buckets
    code = main(["index-pairs", "--district", made.id, "--endpoint", stack.endpoint])
    out = capsys.readouterr().out
    assert code == 0 and f"Gave {stripped} enrollments and guardian links" in out

    # Then the next run finds none left without it and records PAIR_INDEX, and the one after reads the index,
    # still planning every pair unchanged
    third = made.sync(export=False)
    people, parts = partition_results(third)
    assert not people["pair_index"] and [p["unbucketed"] for p in parts] == [0] * len(parts)
    assert (made.state.get_item(PAIR_INDEX) or {}).get("run_id") == third.run_id
    fourth = made.sync(export=False)
    people, parts = partition_results(fourth)
    assert people["pair_index"] and all("unbucketed" not in p for p in parts)
    assert sum(p["index_entries"] for p in parts) == stripped
    assert pair_counts(third) == pair_counts(fourth) == {kind: {"unchanged": n} for kind, n in created.items()}
